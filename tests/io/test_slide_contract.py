"""Contract tests shared by every slide backend (the StoreTests pattern of zarr-python).

Each subclass supplies one real or generated slide; every test of the contract runs on it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from wsikit.errors import ConfigError
from wsikit.io import Slide, open_slide


class SlideContract:
    backend: str = ""
    n_levels: int | None = None
    mpp: tuple[float, float] | None | str = "any"

    @pytest.fixture
    def path(self, data_dir: Path, generated: dict[str, Path], sample_slide: Path) -> Path:
        raise NotImplementedError

    @pytest.fixture
    def slide(self, path: Path):  # type: ignore[no-untyped-def]
        with open_slide(path) as s:
            yield s

    def test_backend_and_geometry(self, slide: Slide) -> None:
        assert slide.backend == self.backend
        assert slide.level_count >= 1
        if self.n_levels is not None:
            assert slide.level_count == self.n_levels
        assert slide.level_downsamples[0] == pytest.approx(1.0)
        assert list(slide.level_downsamples) == sorted(slide.level_downsamples)
        w0, h0 = slide.dimensions
        for (w, h), ds in zip(slide.level_dimensions, slide.level_downsamples, strict=True):
            assert w == pytest.approx(w0 / ds, abs=2) and h == pytest.approx(h0 / ds, rel=0.01, abs=2)

    def test_mpp_is_stated_or_none(self, slide: Slide) -> None:
        if self.mpp != "any":
            if self.mpp is None:
                assert slide.mpp is None
            else:
                assert slide.mpp == pytest.approx(self.mpp, rel=1e-3)
        if slide.mpp is not None:
            assert all(0.02 < v < 50 for v in slide.mpp)

    def test_read_region_shape_dtype(self, slide: Slide) -> None:
        for level in range(slide.level_count):
            region = slide.read_region((0, 0), level, (97, 61))
            assert region.shape == (61, 97, 3) and region.dtype == np.uint8

    def test_region_past_the_edge_is_white_padded(self, slide: Slide) -> None:
        w, h = slide.dimensions
        region = slide.read_region((w - 10, h - 5), 0, (40, 30))
        assert (region[5:, :] == 255).all() and (region[:, 10:] == 255).all()
        inside = slide.read_region((w - 10, h - 5), 0, (10, 5))
        np.testing.assert_array_equal(region[:5, :10], inside)
        negative = slide.read_region((-20, -20), 0, (40, 40))
        assert (negative[:20] == 255).all()
        np.testing.assert_array_equal(negative[20:, 20:], slide.read_region((0, 0), 0, (20, 20)))

    def test_reads_are_deterministic_and_thread_safe(self, slide: Slide) -> None:
        w, h = slide.dimensions
        boxes = [
            ((x, y), (64, 64))
            for x in range(0, max(w - 64, 1), max(w // 5, 1))
            for y in range(0, max(h - 64, 1), max(h // 5, 1))
        ]
        serial = [slide.read_region(loc, 0, size) for loc, size in boxes]
        with ThreadPoolExecutor(4) as pool:
            parallel = list(pool.map(lambda b: slide.read_region(b[0], 0, b[1]), boxes))
        for a, b in zip(serial, parallel, strict=True):
            np.testing.assert_array_equal(a, b)

    def test_overview_is_bounded_and_exact(self, slide: Slide) -> None:
        image, ds = slide.read_overview(256)
        assert max(image.shape[:2]) <= 256
        w0, h0 = slide.dimensions
        assert image.shape[1] == pytest.approx(w0 / ds, abs=1) and image.shape[0] == pytest.approx(
            h0 / ds, abs=1
        )

    def test_bad_arguments(self, slide: Slide) -> None:
        with pytest.raises(ConfigError, match="level must be in"):
            slide.read_region((0, 0), slide.level_count, (10, 10))
        with pytest.raises(ConfigError, match="size must be positive"):
            slide.read_region((0, 0), 0, (0, 10))

    def test_info_round_trips_to_json(self, slide: Slide) -> None:
        import json

        data = json.loads(json.dumps(slide.info().to_dict()))
        assert data["level_dimensions"][0] == list(slide.dimensions)
        assert slide.path.name in repr(slide)


class MultiLevelContract(SlideContract):
    """Extra checks for pyramids: every level shows the same image."""

    def test_levels_show_the_same_image(self, slide: Slide) -> None:
        assert slide.level_count >= 2
        level = slide.level_count - 1
        ds = slide.level_downsamples[level]
        lw, lh = slide.level_dimensions[level]
        low = slide.read_region((0, 0), level, (lw, lh)).astype(np.float32)
        factor = int(round(ds))
        hi = slide.read_region((0, 0), 0, (lw * factor, lh * factor)).astype(np.float32)
        hi = hi.reshape(lh, factor, lw, factor, 3).mean(axis=(1, 3))
        assert np.abs(low - hi).mean() < 12


class TestAperioJpeg(SlideContract):
    backend, n_levels, mpp = "openslide", 1, (0.499, 0.499)

    @pytest.fixture
    def path(self, sample_slide: Path) -> Path:
        return sample_slide


class TestAperioJpeg2000TwoLevels(MultiLevelContract):
    backend, n_levels, mpp = "openslide", 2, None

    @pytest.fixture
    def path(self, data_dir: Path) -> Path:
        return data_dir / "slides" / "tcga-cr-7395-01a-01-ts1.svs"


class TestMonusacSvs(SlideContract):
    backend, n_levels, mpp = "openslide", 1, (0.19448, 0.19448)

    @pytest.fixture
    def path(self, data_dir: Path) -> Path:
        return data_dir / "monusac" / "A9K0_2.svs"


class TestDicom(SlideContract):
    backend, n_levels, mpp = "dicom", 1, None  # ImagedVolume 15 x 15 mm disagrees with 3236 x 2638 px

    @pytest.fixture
    def path(self, data_dir: Path) -> Path:
        return data_dir / "slides" / "small_dicom.dcm"


class TestGenericPyramidTiff(MultiLevelContract):
    backend, n_levels, mpp = "tifffile", 3, (0.25, 0.25)  # auto: generic TIFFs go to tifffile

    @pytest.fixture
    def path(self, generated: dict[str, Path]) -> Path:
        return generated["pyramid_jpeg"]


class TestGenericPyramidTiffViaOpenSlide(MultiLevelContract):
    backend, n_levels, mpp = "openslide", 3, (0.25, 0.25)

    @pytest.fixture
    def slide(self, generated: dict[str, Path]):  # type: ignore[no-untyped-def]
        with open_slide(generated["pyramid_jpeg"], backend="openslide") as s:
            yield s

    @pytest.fixture
    def path(self, generated: dict[str, Path]) -> Path:
        return generated["pyramid_jpeg"]


class TestOmeTiffPyramid(MultiLevelContract):
    backend, n_levels, mpp = "tifffile", 3, (0.5, 0.5)

    @pytest.fixture
    def path(self, generated: dict[str, Path]) -> Path:
        return generated["ome_pyramid"]


class TestFlatTiff72dpi(SlideContract):
    backend, n_levels, mpp = "tifffile", 1, None  # 72 dpi placeholder is not a microscope resolution

    @pytest.fixture
    def path(self, data_dir: Path) -> Path:
        return data_dir / "monuseg" / "train" / "TCGA-A7-A13E-01Z-00-DX1.tif"


class TestOddSizeOneLevelTiff(SlideContract):
    backend, n_levels, mpp = "tifffile", 1, None

    @pytest.fixture
    def path(self, generated: dict[str, Path]) -> Path:
        return generated["odd_one_level"]


class TestSixteenBitTiff(SlideContract):
    backend, n_levels, mpp = "tifffile", 1, None  # 16 bit scaled to 8 (x 255 / 65535, rounded)

    @pytest.fixture
    def path(self, generated: dict[str, Path]) -> Path:
        return generated["uint16"]


class TestGrayTiffViaTifffile(MultiLevelContract):
    backend, n_levels, mpp = "tifffile", 2, None

    @pytest.fixture
    def slide(self, generated: dict[str, Path]):  # type: ignore[no-untyped-def]
        with open_slide(generated["gray"], backend="tifffile") as s:
            yield s

    @pytest.fixture
    def path(self, generated: dict[str, Path]) -> Path:
        return generated["gray"]


class TestPng(SlideContract):
    backend, n_levels, mpp = "image", 1, None

    @pytest.fixture
    def path(self, data_dir: Path) -> Path:
        return data_dir / "nucls" / "images" / "train_1.png"


class TestRgbaPng(SlideContract):
    backend, n_levels, mpp = "image", 1, None

    @pytest.fixture
    def path(self, data_dir: Path) -> Path:
        return data_dir / "miccai2015" / "image01.png"


class TestJpeg(SlideContract):
    backend, n_levels, mpp = "image", 1, None

    @pytest.fixture
    def path(self, generated: dict[str, Path]) -> Path:
        return generated["plain_jpg"]
