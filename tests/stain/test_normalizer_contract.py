"""Contract shared by every stain normalizer (Macenko, Reinhard, CNN), on real stain images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wsikit.errors import ConfigError, ShapeError
from wsikit.stain import MacenkoNormalizer, ReinhardNormalizer, StainFitError, StainNormalizer


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def target(data_dir: Path) -> np.ndarray:
    return _rgb(data_dir / "stain" / "tiatoolbox" / "target_image.png")[:512, :512]


@pytest.fixture(scope="module")
def source(data_dir: Path) -> np.ndarray:
    return _rgb(data_dir / "stain" / "histoqc" / "template4.png")[:256, :256]  # pale


class NormalizerContract:
    def make(self) -> StainNormalizer:  # type: ignore[type-arg]
        raise NotImplementedError

    @pytest.fixture
    def norm(self, target: np.ndarray) -> StainNormalizer:  # type: ignore[type-arg]
        return self.make().fit(target)

    def test_layouts_are_preserved(self, norm: StainNormalizer, source: np.ndarray) -> None:  # type: ignore[type-arg]
        out = norm.transform(source)
        assert out.shape == source.shape and out.dtype == np.uint8
        batch = np.stack([source, source[::-1].copy()])
        assert norm.transform(batch).shape == batch.shape
        tensor = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()
        out_t = norm.transform(tensor)
        assert isinstance(out_t, torch.Tensor) and out_t.shape == tensor.shape and out_t.dtype == torch.uint8
        np.testing.assert_array_equal(out_t.permute(0, 2, 3, 1).numpy()[0], out)

    def test_moves_toward_the_target(
        self, norm: StainNormalizer, source: np.ndarray, target: np.ndarray
    ) -> None:  # type: ignore[type-arg]
        out = norm.transform(source)
        tissue = source.astype(int).mean(-1) < 200
        before = np.abs(source[tissue].mean(0) - target.reshape(-1, 3).mean(0)).sum()
        after = np.abs(out[tissue].mean(0) - target.reshape(-1, 3).mean(0)).sum()
        assert after < before

    def test_white_and_tiny_tiles_are_unchanged(self, norm: StainNormalizer) -> None:  # type: ignore[type-arg]
        white = np.full((64, 64, 3), 250, np.uint8)
        np.testing.assert_array_equal(norm.transform(white), white)
        tiny = np.full((3, 5, 3), 120, np.uint8)
        assert norm.transform(tiny).shape == (3, 5, 3)

    def test_background_is_never_colorized(self, norm: StainNormalizer, source: np.ndarray) -> None:  # type: ignore[type-arg]
        tile = source.copy()
        tile[:, :128] = 245  # half glass
        out = norm.transform(tile)
        assert np.abs(out[:, :128].astype(int) - 245).max() <= 2

    def test_saturated_pixels_stay_finite(self, norm: StainNormalizer, source: np.ndarray) -> None:  # type: ignore[type-arg]
        tile = source.copy()
        tile[:20] = 0
        tile[20:40] = 255
        tile[40:60, :, 0] = 255
        out = norm.transform(tile)
        assert out.dtype == np.uint8 and out.shape == tile.shape

    def test_slide_level_source_statistics(self, norm: StainNormalizer, source: np.ndarray) -> None:  # type: ignore[type-arg]
        stats = norm.fit_source(source)
        a = norm.transform(source[:128], source=stats)
        b = norm.transform(source, source=stats)[:128]
        if norm.name != "cnn":
            np.testing.assert_array_equal(a, b)  # a tile is normalized the same whatever else is around it

    def test_bad_inputs(self, norm: StainNormalizer) -> None:  # type: ignore[type-arg]
        with pytest.raises(ShapeError, match=r"\(H, W, 3\)"):
            norm.transform(np.zeros((32, 32), np.uint8))
        with pytest.raises(ShapeError, match=r"\(H, W, 3\)"):
            norm.transform(np.zeros((32, 32, 4), np.uint8))
        with pytest.raises(ShapeError, match="uint8"):
            norm.transform(np.zeros((32, 32, 3), np.uint16))
        with pytest.raises(ShapeError, match="uint8"):
            norm.transform(np.full((32, 32, 3), np.nan, np.float32))
        with pytest.raises(ShapeError, match="empty"):
            norm.transform(np.zeros((0, 32, 3), np.uint8))
        with pytest.raises(ShapeError, match="numpy array or torch tensor"):
            norm.transform([[1, 2, 3]])

    def test_unfitted_and_unfittable(self) -> None:
        norm = self.make()
        with pytest.raises(ConfigError, match="not fitted"):
            norm.transform(np.zeros((8, 8, 3), np.uint8))
        if norm.name != "cnn":
            with pytest.raises(StainFitError, match="too little tissue"):
                norm.fit(np.full((64, 64, 3), 252, np.uint8))


class TestMacenko(NormalizerContract):
    def make(self) -> MacenkoNormalizer:
        return MacenkoNormalizer()


class TestReinhard(NormalizerContract):
    def make(self) -> ReinhardNormalizer:
        return ReinhardNormalizer()


class TestCnn(NormalizerContract):
    """The shipped colorization CNN: same contract; its style is in its weights."""

    def make(self) -> StainNormalizer:  # type: ignore[type-arg]
        from wsikit.stain.cnn import CnnNormalizer

        return CnnNormalizer.from_pretrained()

    @pytest.fixture
    def norm(self, target: np.ndarray) -> StainNormalizer:  # type: ignore[type-arg]
        return self.make()

    def test_layouts_are_preserved(self, norm: StainNormalizer, source: np.ndarray) -> None:  # type: ignore[type-arg]
        out = norm.transform(source)
        assert out.shape == source.shape and out.dtype == np.uint8
        tensor = torch.from_numpy(np.stack([source, source[::-1].copy()])).permute(0, 3, 1, 2).contiguous()
        out_t = norm.transform(tensor)
        assert isinstance(out_t, torch.Tensor) and out_t.shape == tensor.shape and out_t.dtype == torch.uint8
        # batched convolutions may round differently: at most 1 level on a handful of pixels
        diff = np.abs(out_t.permute(0, 2, 3, 1).numpy()[0].astype(int) - out.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3

    def test_white_and_tiny_tiles_are_unchanged(self, norm: StainNormalizer) -> None:  # type: ignore[type-arg]
        white = np.full((64, 64, 3), 250, np.uint8)
        assert np.abs(norm.transform(white).astype(int) - 250).max() <= 3  # glass stays glass
        assert norm.transform(np.full((3, 5, 3), 120, np.uint8)).shape == (3, 5, 3)

    def test_background_is_never_colorized(self, norm: StainNormalizer, source: np.ndarray) -> None:  # type: ignore[type-arg]
        tile = source.copy()
        tile[:, :128] = 245
        out = norm.transform(tile)
        assert np.abs(out[:, 8:120].astype(int) - 245).max() <= 4

    def test_unfitted_and_unfittable(self) -> None:
        norm = self.make()
        with pytest.raises(ConfigError, match="fixed by its weights"):
            norm.fit(np.zeros((8, 8, 3), np.uint8))


def test_cnn_keeps_luminance_and_moves_toward_its_style(data_dir: Path) -> None:
    from wsikit.stain.cnn import CnnNormalizer
    from wsikit.stain.metrics import stain_metrics, style_reference

    norm = CnnNormalizer.from_pretrained()
    assert norm.meta["style"] == "tia"
    style = _rgb(data_dir / "stain" / "tiatoolbox" / "target_image.png")
    # the checkerboard blocks the network never saw in training (benchmarks/prepare_stain_data.py)
    held_out = [
        style[r * 250 : (r + 1) * 250, c * 250 : (c + 1) * 250]
        for r in range(4)
        for c in range(4)
        if (r + c) % 2
    ]
    reference = style_reference(held_out)
    src = _rgb(data_dir / "monuseg" / "train" / "TCGA-A7-A13E-01Z-00-DX1.tif")[:512, :512]
    before = stain_metrics(src, src, reference)
    after = stain_metrics(norm.transform(src), src, reference)
    assert after["ssim_luminance"] >= 0.99
    # The CNN changes chroma only (lightness is the source's), so its distance to the style is in chroma.
    assert after["chroma_distance"] < 0.2 * before["chroma_distance"]  # measured: 13.8 -> 0.7


def test_cnn_lightness_modes(data_dir: Path) -> None:
    from wsikit.stain.cnn import CnnNormalizer
    from wsikit.stain.color import rgb_to_lab

    src = _rgb(data_dir / "monuseg" / "test" / "TCGA-HC-7209-01A-01-TS1.tif")[:256, :256]
    keep = CnnNormalizer.from_pretrained()
    match = CnnNormalizer.from_pretrained(lightness="match")

    def light(img: np.ndarray) -> np.ndarray:
        return rgb_to_lab(torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float())[0, 0].numpy()

    assert np.abs(light(keep.transform(src)) - light(src)).mean() < 0.5  # only rounding to uint8 changes L
    style_q = np.array(keep.meta["style_stats"]["lightness_quantiles"])
    matched_q = np.quantile(light(match.transform(src)), np.linspace(0, 1, 101))
    source_q = np.quantile(light(src), np.linspace(0, 1, 101))
    assert np.abs(matched_q - style_q)[5:95].mean() < np.abs(source_q - style_q)[5:95].mean()
    # slide-level source statistics give the same result as per-image fitting for one image
    stats = keep.fit_source(src)
    diff = np.abs(keep.transform(src, source=stats).astype(int) - keep.transform(src).astype(int))
    assert diff.max() <= 1
    with pytest.raises(ConfigError, match="lightness must be"):
        CnnNormalizer.from_pretrained(lightness="brighter")  # type: ignore[arg-type]


def test_fused_macenko_kernel_equals_the_generic_path(target: np.ndarray, source: np.ndarray) -> None:
    norm = MacenkoNormalizer().fit(target)
    stats = norm.fit_source(source)
    fast = norm.transform(source, source=stats)
    generic = StainNormalizer.transform(norm, source, source=stats)
    assert np.abs(fast.astype(int) - generic.astype(int)).max() <= 1
    # each image fitted on its own (a batch holding a glass tile, returned unchanged)
    batch = np.stack([source, target[:256, :256], np.full_like(source, 250)])
    fast = norm.transform(batch)
    generic = StainNormalizer.transform(norm, batch)
    assert np.abs(fast.astype(int) - generic.astype(int)).max() <= 1 and np.array_equal(fast[2], batch[2])


def _reinhard_by_formula(norm: ReinhardNormalizer, image: np.ndarray) -> np.ndarray:
    """The unfused Reinhard formula (Lab in float64, statistics of all tissue pixels), blended as the kernel."""
    from wsikit.stain.base import tissue_weight
    from wsikit.stain.color import rgb_to_lab
    from wsikit.stain.reinhard import LabStats

    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float()
    lab = rgb_to_lab(x.double()).permute(0, 2, 3, 1).reshape(-1, 3)[tissue_weight(x).reshape(-1) >= 0.5]
    out = norm._apply(x, LabStats(lab.mean(0).float(), lab.std(0).float()))
    w = tissue_weight(x)
    blended = (w * out + (1 - w) * x).add_(0.5).clamp_(0, 255).to(torch.uint8)
    return np.asarray(blended.permute(0, 2, 3, 1).numpy()[0])


@pytest.mark.parametrize("size", [64, 224, 400, 512])
def test_fused_reinhard_kernel_equals_the_formula(data_dir: Path, target: np.ndarray, size: int) -> None:
    """One block of whole images (64, 224), an image over several blocks (400, 512 = FIT_PIXELS): statistics
    of all tissue pixels, the same result as the float64 formula to one grey level on a few pixels."""
    from wsikit.stain.reinhard import CHUNK_PIXELS, FIT_PIXELS

    assert 224**2 < CHUNK_PIXELS < 400**2 <= 512**2 == FIT_PIXELS
    norm = ReinhardNormalizer().fit(target)
    image = _rgb(data_dir / "monuseg" / "test" / "TCGA-2Z-A9J9-01A-01-TS1.tif")[:size, :size].copy()
    fast = norm.transform(image)
    diff = np.abs(fast.astype(int) - _reinhard_by_formula(norm, image).astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    # a batch of several images gives each image its own statistics, as one image at a time
    other = _rgb(data_dir / "monuseg" / "test" / "TCGA-69-7764-01A-01-TS1.tif")[:size, :size].copy()
    both = norm.transform(np.stack([image, other]))
    assert np.array_equal(both[0], fast) and np.array_equal(both[1], norm.transform(other))


def test_reinhard_compiled_kernel_matches_the_torch_kernel_and_any_thread_count(
    data_dir: Path, target: np.ndarray
) -> None:
    """The CPU's compiled loop and the torch ops (the path on GPUs) agree to a grey level on a few pixels, with
    each image's own statistics and with a slide's; a glass tile comes back unchanged; the bytes do not
    depend on the number of threads."""
    import wsikit.stain.reinhard as rh

    norm = ReinhardNormalizer().fit(target)
    tiles = [_rgb(data_dir / "monuseg" / "test" / name)[:224, :224] for name in
             ("TCGA-2Z-A9J9-01A-01-TS1.tif", "TCGA-69-7764-01A-01-TS1.tif", "TCGA-HC-7209-01A-01-TS1.tif")]  # fmt: skip
    batch = torch.from_numpy(np.stack([*tiles, np.full_like(tiles[0], 250)])).permute(0, 3, 1, 2).contiguous()
    assert norm.target is not None
    source = norm.fit_source(tiles[0])
    for stats in (None, source):
        compiled, fitted = rh.reinhard_kernel(batch, norm.target, stats)
        eager, eager_fitted = rh._torch_kernel(batch, norm.target, stats)
        diff = (compiled.int() - eager.int()).abs()
        assert fitted == eager_fitted and diff.max() <= 1 and (diff > 0).float().mean() < 1e-3
        if stats is None:
            assert fitted == [True, True, True, False] and torch.equal(compiled[3], batch[3])
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            one_thread, _ = rh.reinhard_kernel(batch, norm.target, stats)
        finally:
            torch.set_num_threads(threads)
        assert torch.equal(one_thread, compiled)


def test_cnn_compiled_colour_path_matches_the_torch_path_and_any_thread_count(data_dir: Path) -> None:
    """The CNN normalizer's compiled CPU colour work (lightness ``keep``) and its torch path agree to one grey
    level on a small share of pixels, with a slide's lightness quantiles, with each image's own and without a
    style; odd sizes, a glass tile and numpy input; the bytes do not depend on the number of threads."""
    from wsikit.stain.cnn import CnnNormalizer

    norm = CnnNormalizer.from_pretrained(chroma_downsample=2)
    tiles = [_rgb(data_dir / "monuseg" / "test" / name)[:200, :232] for name in
             ("TCGA-2Z-A9J9-01A-01-TS1.tif", "TCGA-69-7764-01A-01-TS1.tif", "TCGA-HC-7209-01A-01-TS1.tif")]  # fmt: skip
    batch = torch.from_numpy(np.stack([*tiles, np.full_like(tiles[0], 250)])).permute(0, 3, 1, 2).contiguous()
    source = norm.fit_source(tiles[1])
    unstyled = CnnNormalizer(norm.model, chroma_downsample=2)
    assert unstyled.style is None
    for n, stats in ((norm, source), (norm, None), (unstyled, None)):
        n.compiled = True
        fast = n.transform(batch, source=stats)
        n.compiled = False
        slow = n.transform(batch, source=stats)
        n.compiled = True
        diff = (fast.int() - slow.int()).abs()
        assert fast.dtype == torch.uint8 and fast.shape == batch.shape
        assert diff.max() <= 1 and (diff > 0).float().mean() < 0.03, (diff.max(), (diff > 0).float().mean())
        assert torch.equal(fast[3], batch[3])  # glass keeps its colour
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            one_thread = n.transform(batch, source=stats)
        finally:
            torch.set_num_threads(threads)
        assert torch.equal(one_thread, fast)
    hwc = norm.transform(tiles[0], source=source)  # numpy (H, W, 3) in, the same bytes out
    np.testing.assert_array_equal(hwc, norm.transform(batch[:1], source=source)[0].permute(1, 2, 0).numpy())


def test_reinhard_compiled_roots_are_float_exact() -> None:
    """The compiled loop's cube root (bits / 3, two Halley steps) and sRGB curve (sqrt(sqrt(cbrt)) ** 5)
    against float64 numpy, over the range they see."""
    from wsikit.stain import _reinhard_cpu as cpu

    x = np.geomspace(1e-4, 4.0, 4001).astype(np.float32)
    cbrt = np.array([cpu._cbrt(v) for v in x], dtype=np.float64)
    assert np.max(np.abs(cbrt / np.cbrt(x.astype(np.float64)) - 1)) < 5e-7
    lin = np.concatenate([np.linspace(-0.1, 0.01, 1001), np.geomspace(0.01, 1.2, 3001)]).astype(np.float32)
    got = np.array([cpu._srgb(v) for v in lin], dtype=np.float64)
    c = np.clip(lin.astype(np.float64), 0.0, None)
    want = np.clip(np.where(c > 0.0031308, 1.055 * c ** (1 / 2.4) - 0.055, 12.92 * c) * 255, 0, 255)
    assert np.max(np.abs(got - want)) < 1e-3  # grey levels


def test_reinhard_with_a_slides_statistics_maps_by_colour_and_pickles(
    data_dir: Path, target: np.ndarray
) -> None:
    """With one slide's statistics a pixel's result depends on its colour alone (the same colour gives the
    same bytes in any image of the batch); a pickled normalizer (Dask) gives the same bytes."""
    import pickle

    norm = ReinhardNormalizer().fit(target)
    image = _rgb(data_dir / "monuseg" / "test" / "TCGA-2Z-A9J9-01A-01-TS1.tif")[:256, :256].copy()
    source = norm.fit_source(image)
    shuffled = image.reshape(-1, 3)[np.random.default_rng(0).permutation(256 * 256)].reshape(256, 256, 3)
    out = norm.transform(np.stack([image, shuffled]), source=source)
    by_colour = dict(zip(map(tuple, image.reshape(-1, 3)), map(tuple, out[0].reshape(-1, 3)), strict=True))
    assert all(
        by_colour[tuple(c)] == tuple(o)
        for c, o in zip(shuffled.reshape(-1, 3), out[1].reshape(-1, 3), strict=True)
    )
    clone = pickle.loads(pickle.dumps(norm))
    np.testing.assert_array_equal(clone.transform(image, source=source), out[0])


def test_reinhard_fits_large_images_on_a_grid(data_dir: Path, target: np.ndarray) -> None:
    """Above FIT_PIXELS the statistics come from every k-th pixel and row: within a grey level or two."""
    norm = ReinhardNormalizer().fit(target)
    image = _rgb(data_dir / "monuseg" / "test" / "TCGA-2Z-A9J9-01A-01-TS1.tif")[:1000, :1000].copy()
    diff = np.abs(norm.transform(image).astype(int) - _reinhard_by_formula(norm, image).astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.5


def test_cnn_bounded_lightness_keeps_the_ssim_bound(data_dir: Path) -> None:
    from wsikit.stain.cnn import CnnNormalizer, luminance_ssim
    from wsikit.stain.color import rgb_to_lab
    from wsikit.stain.metrics import stain_metrics, style_reference

    src = _rgb(data_dir / "monuseg" / "test" / "TCGA-HC-7209-01A-01-TS1.tif")[:256, :256]
    keep = CnnNormalizer.from_pretrained()
    bounded = CnnNormalizer.from_pretrained(lightness="bounded", min_ssim=0.99)
    loose = CnnNormalizer.from_pretrained(lightness="bounded", min_ssim=0.95)
    reference = style_reference([src])  # only its SSIM is used here
    out = bounded.transform(src)
    ssim = stain_metrics(out, src, reference)["ssim_luminance"]
    assert 0.99 <= ssim < 0.995  # the bound holds and is used, not wasted (8-bit rounding included)
    assert 0.95 <= stain_metrics(loose.transform(src), src, reference)["ssim_luminance"] < 0.96

    def light(img: np.ndarray) -> torch.Tensor:
        return rgb_to_lab(torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float())[:, :1]

    # the torch SSIM that steers the share is scikit-image's definition
    assert abs(float(luminance_ssim(light(out), light(src))[0]) - ssim) < 1e-4
    # the lightness moves toward the style's: its median gets closer than the kept lightness's
    style_median = keep.meta["style_stats"]["lightness_quantiles"][50]
    moved = abs(float(light(out).median()) - style_median)
    kept = abs(float(light(keep.transform(src)).median()) - style_median)
    assert moved < kept
    # one share per slide: the statistics of the source give the per-image result for one image
    stats = bounded.fit_source(src)
    assert stats is not None and 0.0 < stats.share < 1.0
    diff = np.abs(bounded.transform(src, source=stats).astype(int) - out.astype(int))
    assert diff.max() <= 1
    with pytest.raises(ConfigError, match="min_ssim"):
        CnnNormalizer.from_pretrained(lightness="bounded", min_ssim=0.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_selection_quantile_equals_torch_quantile(dtype: torch.dtype) -> None:
    from wsikit.stain.macenko import quantile

    g = torch.Generator().manual_seed(0)
    for n in (1, 2, 3, 100, 50_001):
        x = torch.randn(3, n, generator=g, dtype=dtype)
        for q in (0.0, 0.01, 0.3, 0.99, 1.0):
            assert torch.equal(quantile(x, q, dim=1), torch.quantile(x, q, dim=1))
        qs = torch.tensor([0.01, 0.99], dtype=dtype)
        assert torch.equal(quantile(x[0], qs), torch.quantile(x[0], qs))


def test_cnn_lightness_quantiles_equal_torch_quantile() -> None:
    """The CNN's per-tile lightness quantiles come from a compiled histogram selection: the same numbers as
    torch.quantile; its order statistics equal a full sort's, on constant, peaked and negative values too."""
    from wsikit.stain._cnn_cpu import order_statistics
    from wsikit.stain.cnn import _Q, _quantiles_of_lightness, _sorted_quantiles

    g = torch.Generator().manual_seed(0)
    for n in (1, 2, 7, 1000, 409_600):
        x = torch.rand(n, generator=g) * 100
        assert torch.equal(_sorted_quantiles(x, _Q), torch.quantile(x, _Q))
        ties = (x / 10).round() * 10  # few distinct values: many ties
        assert torch.equal(_sorted_quantiles(ties, _Q), torch.quantile(ties, _Q))
    light = torch.rand(1, 1, 640, 640, generator=g) * 100
    assert torch.equal(_quantiles_of_lightness(light), torch.quantile(light.reshape(-1), _Q))
    rng = np.random.default_rng(0)
    glass = np.concatenate([np.full(30_000, 95.1), rng.random(10_000) * 60]).astype(np.float32)
    for values in (
        np.full(500, 5.0, np.float32),
        glass,
        (rng.normal(size=20_000) * 1e-3 - 7).astype(np.float32),
    ):
        ks = np.array([0, 1, 17, values.size // 2, values.size - 2, values.size - 1])
        np.testing.assert_array_equal(order_statistics(values, ks), np.sort(values)[ks])


def test_reinhard_compiled_kernel_runs_in_a_forked_child(target: np.ndarray) -> None:
    """The kernel's thread pool does not survive fork(): a child (a DataLoader or multiprocessing worker)
    starts its own instead of waiting on the parent's dead threads."""
    import multiprocessing

    norm = ReinhardNormalizer().fit(target)
    image = np.ascontiguousarray(np.tile(target[:128, :128], (4, 4, 1)))  # 512 px: split among threads
    expected = norm.transform(image)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(norm.transform, (image,)).get(timeout=60)
    np.testing.assert_array_equal(got, expected)


def test_macenko_compiled_apply_matches_the_torch_kernel_and_any_thread_count(
    data_dir: Path, target: np.ndarray
) -> None:
    """On the CPU Macenko's apply is a compiled loop; the torch kernel (the path on GPUs, and with
    compile=True) gives the same bytes but for a grey level on a few pixels, with a slide's map and with
    each image's own; the bytes do not depend on the number of threads; its exp is float32-accurate."""
    from wsikit.stain import _macenko_cpu
    from wsikit.stain.macenko import _apply_od_map

    x = np.linspace(-12.0, 2.0, 3001).astype(np.float32)
    got = np.array([_macenko_cpu._exp(v) for v in x], dtype=np.float64)
    assert np.max(np.abs(got / np.exp(x.astype(np.float64)) - 1)) < 2e-6

    norm = MacenkoNormalizer().fit(target)
    tiles = np.stack([_rgb(data_dir / "monuseg" / "test" / name)[:224, :224] for name in
                      ("TCGA-2Z-A9J9-01A-01-TS1.tif", "TCGA-69-7764-01A-01-TS1.tif", "TCGA-HC-7209-01A-01-TS1.tif")])  # fmt: skip
    flat = torch.from_numpy(tiles).permute(0, 3, 1, 2).contiguous().reshape(3, 3, -1)
    slide_map = norm.od_map(norm.fit_source(list(tiles))).expand(3, 3, 3)
    own_maps = torch.stack([norm.od_map(norm.fit_source(t)) for t in tiles])
    for maps in (slide_map, own_maps):
        compiled = _macenko_cpu.apply_od_maps(flat.numpy(), maps.numpy(), 0.15, 0.30)
        eager = _apply_od_map(flat, maps, 0.15, 0.30).numpy()
        diff = np.abs(compiled.astype(int) - eager.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-4
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            np.testing.assert_array_equal(
                _macenko_cpu.apply_od_maps(flat.numpy(), maps.numpy(), 0.15, 0.30), compiled
            )
        finally:
            torch.set_num_threads(threads)
    # transform() uses it on the CPU: the same bytes as the function itself
    out = norm.transform(tiles, source=norm.fit_source(list(tiles)))
    np.testing.assert_array_equal(
        out.transpose(0, 3, 1, 2).reshape(3, 3, -1),
        _macenko_cpu.apply_od_maps(flat.numpy(), slide_map.numpy(), 0.15, 0.30),
    )
