"""open_slide: backend choice, conversions, metadata rules and every bad-input error."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import he_texture, write_pyramid_tiff
from wsikit.errors import SlideOpenError, UnsupportedFormatError, WsikitError
from wsikit.io import open_slide


def test_every_shared_slide_opens(data_dir: Path) -> None:
    paths = sorted((data_dir / "slides").glob("*.svs")) + sorted((data_dir / "slides").glob("*.dcm"))
    paths += sorted((data_dir / "monusac").glob("*.svs"))
    assert len(paths) == 6
    for path in paths:
        with open_slide(path) as slide:
            w, h = slide.dimensions
            assert slide.read_region((w // 2, h // 2), 0, (32, 32)).std() > 0, path


def test_backends_agree_on_the_same_file(sample_slide: Path) -> None:
    with open_slide(sample_slide) as a, open_slide(sample_slide, backend="tifffile") as b:
        assert a.dimensions == b.dimensions
        ra = a.read_region((600, 900), 0, (300, 200)).astype(int)
        rb = b.read_region((600, 900), 0, (300, 200)).astype(int)
        assert np.abs(ra - rb).mean() < 2.0  # two JPEG decoders


def test_generic_tiff_reads_through_tifffile_with_a_bounded_tile_cache(generated: dict[str, Path]) -> None:
    """Generic TIFFs open with tifffile; reads served from its decoded-tile cache equal uncached reads and
    OpenSlide's, across tile borders and level edges, and the cache stays within its byte budget."""
    path = generated["pyramid_jpeg"]
    rng = np.random.default_rng(0)
    with (
        open_slide(path) as cached,
        open_slide(path) as direct,
        open_slide(path, backend="openslide") as reference,
    ):
        assert cached.backend == "tifffile" and reference.backend == "openslide"
        direct.tile_cache_bytes = 0
        tw, th = cached._tile_size(0)  # type: ignore[attr-defined]
        cached.tile_cache_bytes = tw * th * 3 * 8  # the least that caches: 8 tiles, so evictions happen
        for _ in range(60):
            level = int(rng.integers(0, cached.level_count))
            lw, lh = cached.level_dimensions[level]
            ds = cached.level_downsamples[level]
            w, h = (int(v) for v in rng.integers(1, 300, 2))
            x, y = int(rng.integers(-50, lw)), int(rng.integers(-50, lh))
            loc = (int(x * ds), int(y * ds))
            a = cached.read_region(loc, level, (w, h))
            np.testing.assert_array_equal(a, direct.read_region(loc, level, (w, h)))
            np.testing.assert_array_equal(a, reference.read_region(loc, level, (w, h)))
            assert cached._cache_size <= cached.tile_cache_bytes  # type: ignore[attr-defined]
        assert cached._cache and not direct._cache  # type: ignore[attr-defined]


def test_tiles_decoded_directly_equal_tifffiles_zarr_view(generated: dict[str, Path], data_dir: Path) -> None:
    """TiffSlide decodes the tiles under a region itself (on the shared pool): the same pixels as tifffile's
    Zarr view of the level, for JPEG, zlib, 16-bit, gray and Aperio JPEG / JPEG 2000 tiles, at tile borders
    and level edges."""
    from wsikit.io._tiff_backend import TiffSlide, _to_rgb_uint8

    paths = [generated[k] for k in ("pyramid_jpeg", "ome_pyramid", "odd_one_level", "uint16", "gray")]
    paths += [
        data_dir / "slides" / "cmu-1-small-region.svs",
        data_dir / "slides" / "tcga-cr-7395-01a-01-ts1.svs",
    ]
    rng = np.random.default_rng(1)
    direct_levels = 0
    for path in paths:
        slide = TiffSlide(path)
        try:
            for level in range(slide.level_count):
                if slide._pages[level] is None:
                    continue
                direct_levels += 1
                lw, lh = slide.level_dimensions[level]
                boxes = [(0, 0, lw, lh), (lw - 7, lh - 5, 7, 5)]
                boxes += [
                    (int(rng.integers(0, lw - 1)), int(rng.integers(0, lh - 1)), 1, 1) for _ in range(3)
                ]
                for _ in range(6):
                    x, y = int(rng.integers(0, lw - 1)), int(rng.integers(0, lh - 1))
                    boxes.append((x, y, int(rng.integers(1, lw - x + 1)), int(rng.integers(1, lh - y + 1))))
                for x, y, w, h in boxes:
                    zarr_view = np.asarray(slide._levels[level][y : y + h, x : x + w])
                    np.testing.assert_array_equal(
                        slide._read_direct(level, x, y, w, h), _to_rgb_uint8(zarr_view)
                    )
        finally:
            slide.close()
    assert direct_levels >= 10


def test_openslide_reads_of_several_tile_columns_in_parallel_bands_give_the_same_pixels(
    data_dir: Path,
) -> None:
    """Large OpenSlide reads are cut at tile borders into bands read concurrently through one handle: the
    same pixels as one read, over whole images and boxes that start and end inside tiles."""
    from wsikit.io import _openslide_backend as osb

    rng = np.random.default_rng(2)
    for path in (data_dir / "monusac" / "A9K0_1.svs", data_dir / "slides" / "cmu-1-small-region.svs"):
        with open_slide(path, backend="openslide") as slide:
            assert isinstance(slide, osb.OpenSlideSlide)
            lw, lh = slide.level_dimensions[0]
            boxes = [(0, 0, lw, lh)] + [(int(rng.integers(0, lw // 2)), int(rng.integers(0, lh // 2)),
                                         int(rng.integers(300, lw // 2)), int(rng.integers(220, lh // 2))) for _ in range(4)]  # fmt: skip
            for x, y, w, h in boxes:
                assert w * h >= osb._SPLIT_READ_PIXELS
                whole = slide._read_with(slide._osr, 0, x, y, w, h)
                np.testing.assert_array_equal(slide._read_in_columns(slide._osr, 0, x, y, w, h), whole)


def test_sixteen_bit_and_gray_are_converted(generated: dict[str, Path]) -> None:
    expected = he_texture(256, 384, 2)
    with open_slide(generated["uint16"], backend="tifffile") as s:
        np.testing.assert_array_equal(s.read_region((0, 0), 0, (384, 256)), expected)
    gray = he_texture(256, 256, 3)[..., 0]
    with open_slide(generated["gray"], backend="tifffile") as s:
        rgb = s.read_region((0, 0), 0, (256, 256))
        np.testing.assert_array_equal(rgb, np.repeat(gray[..., None], 3, axis=-1))


def test_rgba_png_is_composited_on_white(generated: dict[str, Path]) -> None:
    with open_slide(generated["rgba_png"]) as s:
        region = s.read_region((0, 0), 0, (200, 200)).astype(int)
    src = he_texture(1000, 1300)[:200, :200].astype(int)
    expected = (src * 128 + 255 * 127 + 127) // 255
    assert np.abs(region - expected).max() <= 1


def test_ome_tiff_uses_its_pyramid_and_metadata(generated: dict[str, Path]) -> None:
    with open_slide(generated["ome_pyramid"]) as s:
        assert s.backend == "tifffile" and s.vendor == "ome-tiff"
        assert s.level_count == 3 and s.mpp == pytest.approx((0.5, 0.5))


def test_dicom_column_major_frames_are_stitched_seamlessly(data_dir: Path) -> None:
    """The pathml DICOM stores frames column-major without saying so; the mosaic must be continuous."""
    with open_slide(data_dir / "slides" / "small_dicom.dcm") as s:
        assert s.properties["dicom.frame-size"] == "500x500"
        w, h = s.dimensions
        img = s.read_region((0, 0), 0, (w, h)).astype(np.float32)
    # Jumps between adjacent columns at frame seams vs. everywhere else.
    col_jump = np.abs(np.diff(img, axis=1)).mean(axis=(0, 2))
    seams = col_jump[[499, 999, 1499, 1999, 2499, 2999]]
    assert seams.mean() < 3 * np.median(col_jump) + 2
    row_jump = np.abs(np.diff(img, axis=0)).mean(axis=(1, 2))
    assert row_jump[[499, 999, 1499, 1999, 2499]].mean() < 3 * np.median(row_jump) + 2


def test_mpp_from_placeholder_resolution_is_none(tmp_path: Path) -> None:
    import tifffile

    path = tmp_path / "dpi.tif"
    tifffile.imwrite(path, he_texture(64, 64), resolution=(72, 72), resolutionunit="INCH")
    with open_slide(path) as s:
        assert s.mpp is None


# ------------------------------------------------------------------ bad input
def _assert_one_line(exc: BaseException, path: Path, words: str) -> None:
    msg = str(exc)
    assert "\n" not in msg
    assert str(path) in msg
    assert words in msg


def test_missing_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.svs"
    with pytest.raises(SlideOpenError) as info:
        open_slide(path)
    _assert_one_line(info.value, path, "no such file")
    assert isinstance(info.value, OSError) and isinstance(info.value, WsikitError)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(SlideOpenError) as info:
        open_slide(tmp_path)
    _assert_one_line(info.value, tmp_path, "is a directory")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.svs"
    path.touch()
    with pytest.raises(SlideOpenError) as info:
        open_slide(path)
    _assert_one_line(info.value, path, "file is empty")


def test_text_file_renamed_svs(tmp_path: Path) -> None:
    path = tmp_path / "notes.svs"
    path.write_text("this is not a slide\n")
    with pytest.raises(UnsupportedFormatError) as info:
        open_slide(path)
    _assert_one_line(info.value, path, "not a valid .svs slide")


def test_text_file_other_extension(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    with pytest.raises(UnsupportedFormatError) as info:
        open_slide(path)
    _assert_one_line(info.value, path, "not a slide or image format")


@pytest.mark.parametrize("keep", [500_000, 1_500_000, 1_938_000])
def test_truncated_svs(tmp_path: Path, sample_slide: Path, keep: int) -> None:
    path = tmp_path / "cut.svs"
    path.write_bytes(sample_slide.read_bytes()[:keep])
    with pytest.raises(SlideOpenError) as info:
        open_slide(path)
    _assert_one_line(info.value, path, "truncated or corrupt")


def test_truncated_tile_data(tmp_path: Path) -> None:
    """A tiled TIFF whose directory is intact but whose last tile bytes are cut off."""
    import tifffile

    src = write_pyramid_tiff(tmp_path / "full.tiff", he_texture(512, 512), levels=1, compression="zlib")
    with tifffile.TiffFile(src) as tif:
        page = tif.pages[0]
        ifd_offset = page.offset
        data_end = max(o + c for o, c in zip(page.dataoffsets, page.databytecounts, strict=True))
    assert ifd_offset < data_end  # tifffile writes the directory before the tiles
    cut = tmp_path / "cut.tiff"
    cut.write_bytes(src.read_bytes()[: data_end - 100])
    with pytest.raises(SlideOpenError) as info:
        open_slide(cut)
    _assert_one_line(info.value, cut, "truncated")


def test_a_slide_cut_short_after_a_good_open_fails_on_the_next_open(tmp_path: Path) -> None:
    """The truncation check remembers files that passed only while their size and modification time stay
    the same: the same path cut short later (a copy overwritten by a failed one) fails when opened again."""
    src = write_pyramid_tiff(tmp_path / "full.tiff", he_texture(512, 512), levels=1, compression="zlib")
    path = tmp_path / "slide.tiff"
    whole = src.read_bytes()
    path.write_bytes(whole)
    open_slide(path).close()
    open_slide(path).close()  # the remembered check
    path.write_bytes(whole[: len(whole) - 100])
    with pytest.raises(SlideOpenError) as info:
        open_slide(path)
    _assert_one_line(info.value, path, "truncated")


def test_truncated_dicom(tmp_path: Path, data_dir: Path) -> None:
    path = tmp_path / "cut.dcm"
    path.write_bytes((data_dir / "slides" / "small_dicom.dcm").read_bytes()[:1_000_000])
    with pytest.raises(SlideOpenError) as info:
        open_slide(path)
    _assert_one_line(info.value, path, "truncated or corrupt")


def test_corrupt_png(tmp_path: Path, generated: dict[str, Path]) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(generated["plain_png"].read_bytes()[:2000])
    with pytest.raises(SlideOpenError) as info:
        open_slide(path)
    _assert_one_line(info.value, path, "corrupt or truncated image")


def test_dicom_folder(tmp_path: Path, data_dir: Path) -> None:
    folder = tmp_path / "series"
    folder.mkdir()
    shutil.copy(data_dir / "slides" / "small_dicom.dcm", folder / "level0.dcm")
    (folder / "README.txt").write_text("not dicom")
    with open_slide(folder) as s:
        assert s.backend == "dicom" and s.dimensions == (3236, 2638)


def test_unknown_backend(sample_slide: Path) -> None:
    with pytest.raises(SlideOpenError, match="backend must be one of"):
        open_slide(sample_slide, backend="magic")  # type: ignore[arg-type]


def test_aperio_jpeg_tiles_decoded_by_tifffile_equal_openslide(sample_slide: Path) -> None:
    """The sample SVS (Aperio, JPEG tiles): tifffile decodes its tiles, and every read equals OpenSlide's own
    (forced), inside the slide, across its edges and through the overview."""
    with open_slide(sample_slide) as fast, open_slide(sample_slide, backend="openslide") as slow:
        assert fast.backend == slow.backend == "openslide"
        assert (
            fast.properties["wsikit.tile-decoder"] == "tifffile"
            and "wsikit.tile-decoder" not in slow.properties
        )
        rng = np.random.default_rng(0)
        w0, h0 = fast.dimensions
        for _ in range(40):
            w, h = (int(v) for v in rng.integers(1, 600, 2))
            x, y = int(rng.integers(-100, w0)), int(rng.integers(-100, h0))
            np.testing.assert_array_equal(
                fast.read_region((x, y), 0, (w, h)), slow.read_region((x, y), 0, (w, h))
            )
        np.testing.assert_array_equal(fast.read_overview(700)[0], slow.read_overview(700)[0])


def test_aperio_damaged_tile_is_read_around_like_openslide(tmp_path: Path, sample_slide: Path) -> None:
    """A corrupt JPEG tile in the middle of the sample SVS: with tifffile decoding, reading around damage
    records the same region and gives the same pixels as OpenSlide alone; without it, one clear error."""
    import tifffile

    from wsikit.errors import SlideReadError

    path = Path(shutil.copy(sample_slide, tmp_path / "damaged.svs"))
    with tifffile.TiffFile(path) as t:
        page = t.pages[0]
        offsets, counts, tw = page.dataoffsets, page.databytecounts, page.tilewidth
        per_row = -(-page.imagewidth // tw)
    i = 3 * per_row + 4  # tile (4, 3)
    with open(path, "r+b") as fh:
        fh.seek(offsets[i] + 2)
        fh.write(b"\x00" * (counts[i] - 2))
    with open_slide(path) as fast, open_slide(path, backend="openslide") as slow:
        assert fast.properties.get("wsikit.tile-decoder") == "tifffile"
        box = ((4 * tw - 50, 3 * tw - 50), 0, (tw + 100, tw + 100))
        with pytest.raises(SlideReadError, match="damaged.svs"):
            fast.read_region(*box)
        got = [(s.skip_damaged(), s.read_region(*box)) for s in (fast, slow)]
        (d_fast, p_fast), (d_slow, p_slow) = got
        assert (
            [(r.x, r.y) for r in d_fast.regions] == [(r.x, r.y) for r in d_slow.regions] == [(4 * tw, 3 * tw)]
        )
        np.testing.assert_array_equal(p_fast, p_slow)


def test_aperio_jpeg2000_tiles_decoded_by_tifffile_equal_openslide_at_level_0(data_dir: Path) -> None:
    """A TCGA Aperio JPEG 2000 (RGB) slide: tifffile decodes its tiles and level 0 equals OpenSlide's reads;
    level 1 (downsample 2.00045) gives that level's own pixels at the requested level coordinates, where
    OpenSlide resamples at a fraction of a pixel from them (equal at the origin)."""
    import tifffile

    path = data_dir / "slides" / "tcga-cr-7395-01a-01-ts1.svs"
    with open_slide(path) as fast, open_slide(path, backend="openslide") as slow:
        assert fast.properties["wsikit.tile-decoder"] == "tifffile"
        rng = np.random.default_rng(1)
        w0, h0 = fast.dimensions
        for _ in range(10):
            x, y = int(rng.integers(0, w0 - 300)), int(rng.integers(0, h0 - 300))
            np.testing.assert_array_equal(
                fast.read_region((x, y), 0, (300, 200)), slow.read_region((x, y), 0, (300, 200))
            )
        np.testing.assert_array_equal(
            fast.read_region((0, 0), 1, (256, 256)), slow.read_region((0, 0), 1, (256, 256))
        )
        with tifffile.TiffFile(path) as tif:
            level1 = tif.series[0].levels[1].asarray()
        ds = fast.level_downsamples[1]  # level coordinates are floor(level-0 / downsample)
        lx, ly = int(4000 // ds), int(2000 // ds)
        window = level1[ly : ly + 48, lx : lx + 64]
        np.testing.assert_array_equal(fast.read_region((4000, 2000), 1, (64, 48)), window)
