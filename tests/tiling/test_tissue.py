"""Tissue detection on real slides and edge cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wsikit.errors import ShapeError
from wsikit.io import open_slide
from wsikit.tiling import TissueMask, detect_tissue, pen_mask, tissue_mask


def test_sample_slide_tissue_area(sample_slide: Path) -> None:
    with open_slide(sample_slide) as slide:
        tm = tissue_mask(slide)
    # The CMU-1 region is about a third tissue (a strip of skin), the rest glass.
    assert 0.25 < tm.fraction < 0.45
    assert tm.area_mm2 == pytest.approx(tm.area_px0 * 0.499**2 / 1e6)
    assert 0.4 < tm.area_mm2 < 0.8


def test_blank_image_has_no_tissue(generated: dict[str, Path]) -> None:
    with open_slide(generated["blank_png"]) as slide:
        tm = tissue_mask(slide)
    assert tm.fraction == 0.0 and tm.area_mm2 is None


def test_noisy_glass_has_no_tissue() -> None:
    rng = np.random.default_rng(0)
    glass = np.clip(rng.normal(240, 4, (300, 300, 3)), 0, 255).astype(np.uint8)
    assert not detect_tissue(glass).any()


def test_field_full_of_tissue_is_mostly_tissue(data_dir: Path) -> None:
    with open_slide(data_dir / "monusac" / "A9K0_1.svs") as slide:
        assert tissue_mask(slide).fraction > 0.8


def test_small_high_resolution_images_are_detected_on_about_1um_pixels(
    data_dir: Path, sample_slide: Path
) -> None:
    """A 0.19 µm/px MoNuSAC crop is detected on 5 x 5 block averages (0.97 µm), with the mask of its full
    resolution to within a few percent of the crop; CMU-1 (0.499 µm/px, 2,967 px) keeps its 2x overview
    (the 2,048 px bound already gives 1 µm); a slide without mpp is unaffected; pixel_um must be > 0."""
    from wsikit.errors import ConfigError

    with open_slide(data_dir / "monusac" / "A9K0_1.svs") as slide:
        coarse = tissue_mask(slide)
        fine = tissue_mask(slide, pixel_um=0.1)
        assert coarse.downsample == 5 and fine.downsample == 1
        ratio = round(coarse.downsample)
        on_fine_grid = np.repeat(np.repeat(coarse.mask, ratio, 0), ratio, 1)[
            : fine.mask.shape[0], : fine.mask.shape[1]
        ]
        h, w = on_fine_grid.shape
        assert (on_fine_grid != fine.mask[:h, :w]).mean() < 0.05
        assert abs(coarse.fraction - fine.fraction) < 0.03
        with pytest.raises(ConfigError, match="pixel_um must be positive"):
            slide.read_overview(2048, pixel_um=0)
    with open_slide(sample_slide) as slide:
        assert tissue_mask(slide).downsample == 2.0
    with open_slide(data_dir / "slides" / "tcga-cr-7395-01a-01-ts1.svs") as slide:  # no mpp in the file
        assert (
            slide.mpp is None and slide.read_overview(2048, pixel_um=1.0)[1] == slide.read_overview(2048)[1]
        )


def test_pen_marks_are_not_tissue(data_dir: Path) -> None:
    with open_slide(data_dir / "slides" / "small_dicom.dcm") as slide:
        overview, _ = slide.read_overview(1024)
        tm = tissue_mask(slide, max_size=1024)
    ink = pen_mask(overview)
    o = overview.astype(int)
    green = (o[..., 1] > o[..., 0] + 20) & (o[..., 1] > o[..., 2])
    assert green.sum() > 20000  # the slide has a green marker line
    assert ink[green].mean() > 0.97
    assert not (tm.mask & green).any()
    assert 0.3 < tm.fraction < 0.6
    # H&E pixels are not ink
    pinkish = (overview[..., 0].astype(int) > overview[..., 1] + 40) & (
        overview[..., 2].astype(int) > overview[..., 1] + 20
    )
    assert ink[pinkish].mean() < 0.01


def test_pen_rule_is_the_hsv_rule_away_from_its_bounds() -> None:
    """The integer pen rule against float64 HSV (skimage) on 300,000 random colours: equal wherever hue,
    saturation and value are not within 1e-6 of one of the rule's bounds."""
    from skimage.color import rgb2hsv

    rgb = np.random.default_rng(0).integers(0, 256, (300, 1000, 3), dtype=np.uint8)
    hsv = rgb2hsv(rgb)
    hue, sat, val = hsv[..., 0] * 360.0, hsv[..., 1], hsv[..., 2]
    want = (
        ((hue > 60) & (hue <= 200) & (sat > 0.08)) | ((hue > 200) & (hue < 245) & (sat > 0.25)) | (val < 0.2)
    )
    near = np.zeros(hue.shape, bool)
    for values, bounds in ((hue, (60, 200, 245)), (sat, (0.08, 0.25)), (val, (0.2,))):
        for bound in bounds:
            near |= np.abs(values - bound) < 1e-6
    got = pen_mask(rgb)
    assert near.sum() < 2000
    assert np.array_equal(got[~near], want[~near])
    assert 0.2 < want.mean() < 0.6  # both kinds of pixel are well represented


def test_closing_equals_scipy_and_keeps_the_edges() -> None:
    """scipy's dilation then erosion with tissue outside the image for the erosion: the closing only adds
    pixels, so tissue that runs off the edge keeps its edge."""
    from scipy import ndimage as ndi

    from wsikit.tiling.tissue import _close3

    rng = np.random.default_rng(1)
    for shape, p in (((97, 131), 0.5), ((64, 64), 0.8), ((3, 50), 0.6), ((1, 9), 0.7)):
        mask = rng.random(shape) < p
        square = np.ones((3, 3), bool)
        want = ndi.binary_erosion(
            ndi.binary_dilation(mask, structure=square), structure=square, border_value=1
        )
        got = _close3(mask)
        assert np.array_equal(got, want) and not (mask & ~got).any(), shape
    assert _close3(np.ones((5, 7), bool)).all()


def test_box_fraction_and_area() -> None:
    mask = np.zeros((10, 20), bool)
    mask[:, :10] = True
    tm = TissueMask(mask=mask, downsample=4.0, mpp=(0.25, 0.25))
    assert tm.box_fraction(0, 0, 40, 40) == 1.0
    assert tm.box_fraction(40, 0, 80, 40) == 0.0
    assert tm.box_fraction(20, 0, 60, 40) == pytest.approx(0.5)
    assert tm.box_fraction(60, 20, 120, 60) == 0.0  # partly outside the slide: glass
    assert tm.area_mm2 == pytest.approx(100 * 16 * 0.0625 / 1e6)


def test_bad_inputs() -> None:
    with pytest.raises(ShapeError, match=r"\(H, W, 3\) uint8"):
        detect_tissue(np.zeros((10, 10), np.uint8))
    with pytest.raises(ShapeError, match=r"\(H, W, 3\) uint8"):
        detect_tissue(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ShapeError, match="wsikit Slide"):
        tissue_mask("slide.svs")


def test_compiled_pixel_pass_equals_the_numpy_formulas() -> None:
    """Saturation, optical density, the ink rule and the (max, min) counts of the compiled pass, bit for bit
    against numpy on 2^20 random colours (the pen rule's own test checks it against float HSV)."""
    from wsikit.tiling._tissue_kernel import pixel_features
    from wsikit.tiling.tissue import _OD_LUT, _SAT_LUT

    rgb = np.random.default_rng(3).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    r, g, b = (rgb[..., c].astype(np.int32) for c in range(3))
    mx, mn = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    ink = pen_mask(rgb)
    for remove_pen in (True, False):
        sat, od, clean, pairs, od_clean = pixel_features(rgb, _OD_LUT, _SAT_LUT, remove_pen)
        want_od = (_OD_LUT[rgb[..., 0]] + _OD_LUT[rgb[..., 1]] + _OD_LUT[rgb[..., 2]]) / np.float32(3.0)
        want_clean = ~ink if remove_pen else np.ones_like(ink)
        np.testing.assert_array_equal(sat, _SAT_LUT[mx, mn])
        np.testing.assert_array_equal(od, want_od)
        np.testing.assert_array_equal(clean, want_clean)
        np.testing.assert_array_equal(pairs, np.bincount((mx * 256 + mn)[want_clean], minlength=65536))
        np.testing.assert_array_equal(od_clean, want_od[want_clean])
    assert 0.2 < ink.mean() < 0.8
