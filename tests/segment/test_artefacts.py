"""No nuclei on non-nuclear material: the colour rule on real ink (CMU-1) and on ink painted on labelled images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from tests.conftest import SAMPLE, write_pyramid_tiff
from wsikit.io import open_slide
from wsikit.io.omezarr import OmeZarrStore
from wsikit.pipeline.run import RunConfig, run_slide
from wsikit.segment.artefacts import ColourRule, object_od


def _objects_on(mask: np.ndarray, labels: np.ndarray) -> int:
    """Objects with at least half of their pixels on ``mask``."""
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if not len(ids):
        return 0
    return int((np.asarray(ndi.mean(mask.astype(float), labels, ids)) >= 0.5).sum())


def _run_with_and_without(
    tmp_path: Path, origin: tuple[int, int], rule: str
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, dict]]:
    """A 600 x 600 px region of CMU-1 at ``origin`` run with ``rule`` (a :class:`RunConfig` filter field) off
    and on, every other object rule off: the region's pixels, and per run its nucleus labels and summary."""
    with open_slide(SAMPLE) as s:
        img = s.read_region(origin, 0, (600, 600))
    region = write_pyramid_tiff(tmp_path / "region.tiff", img, levels=1, tile=256, mpp=0.499)
    labels, summaries = {}, {}
    for name, on in (("without", False), ("with", True)):
        out = tmp_path / f"{name}.wsikit"
        rules = {"colour_filter": False, "glass_filter": False, "length_filter": False, rule: on}
        run_slide(region, out, config=RunConfig(chunk=256, **rules))
        labels[name] = OmeZarrStore.open(out / "result.zarr").array("nuclei")[:]
        summaries[name] = json.loads((out / "summary.json").read_text())
    return img, labels, summaries


def test_rule_keeps_hematoxylin_and_rejects_ink_and_eosin() -> None:
    od = lambda rgb: -np.log((np.asarray(rgb, float) + 1) / 256)  # noqa: E731
    rule = ColourRule()
    nuclei = [(95, 60, 140), (60, 40, 100), (150, 110, 170), (120, 80, 150)]  # hematoxylin, light to dark
    other = [(60, 150, 150), (40, 110, 60), (40, 40, 45), (230, 120, 190)]  # teal, green, black ink, eosin
    assert not rule.rejects_od(np.array([od(c) for c in nuclei])).any()
    assert rule.rejects_od(np.array([od(c) for c in other])).all()
    labels = np.zeros((4, 4), np.int32)
    assert object_od(np.zeros((4, 4, 3), np.uint8), labels, np.array([], int)).shape == (0, 3)


@pytest.mark.slow
def test_no_nuclei_on_the_pen_ink_of_cmu1(tmp_path: Path) -> None:
    """A 600 x 600 px region of the bundled CMU-1 slide with teal ink, run with and without the rule."""
    img, labels, summaries = _run_with_and_without(tmp_path, (1500, 900), "colour_filter")
    rgb = img.astype(int)
    ink = (rgb[..., 1] > rgb[..., 0] + 15) & (rgb.sum(-1) < 600)
    assert ink.mean() > 0.02  # the region holds ink
    found = {
        name: (_objects_on(ink, labels[name]), sm["nuclei"], sm["segmentation"]["dropped_by_colour"])
        for name, sm in summaries.items()
    }
    (ink_before, n_before, dropped_before), (ink_after, n_after, dropped_after) = (
        found["without"],
        found["with"],
    )
    assert dropped_before == 0 and dropped_after == n_before - n_after > 0
    assert ink_before >= 10 and ink_after <= 0.2 * ink_before, found
    # what the rule drops lies on or beside the ink (ink specks and the eosin / debris they stain)
    a = labels["without"]
    ids = np.unique(a)
    ids = ids[ids > 0]
    gone = ids[np.asarray(ndi.mean((labels["with"] > 0).astype(float), a, ids)) < 0.5]
    near_ink = ndi.binary_dilation(ink, iterations=6)
    touches = np.asarray(ndi.maximum(near_ink.astype(np.uint8), a, gone)) > 0
    assert touches.mean() >= 0.8, (len(gone), touches.mean())


@pytest.mark.slow
def test_painted_ink_on_labelled_images(data_dir: Path, tmp_path: Path) -> None:
    """Ink strokes painted on a MoNuSeg image (labels unchanged): objects on the ink before / after the rule,
    and the annotated nuclei off the ink kept."""
    import tifffile

    from wsikit.segment.evaluate import evaluate_segmenter, export_dataset

    folder = tmp_path / "monuseg"
    export_dataset("monuseg", data_dir, folder, split="test")
    png = sorted(folder.glob("*.png"))[0]
    image = np.asarray(Image.open(png).convert("RGB"))
    h, w = image.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    ink = (np.abs(yy - 0.6 * xx - 150) < 12) | (np.abs(xx - 700) < 9) | (np.hypot(yy - 300, xx - 300) < 60)
    inked = image.astype(float)
    inked[ink] *= (0.15, 0.55, 0.55)  # teal ink: transmits green and blue, absorbs red
    painted = tmp_path / "painted"
    painted.mkdir()
    Image.fromarray(inked.astype(np.uint8)).save(painted / png.name)
    labels = tifffile.imread(png.with_name(png.stem + ".labels.tif"))
    tifffile.imwrite(painted / f"{png.stem}.labels.tif", labels)
    results = {}
    for name, rule in (("without", None), ("with", ColourRule())):
        res = evaluate_segmenter(painted, stain="cnn", area_um2=(7.5, 400.0), colour_rule=rule)
        results[name] = res["images"][0]
    # the evaluation's own predictions are not returned: segment once more to count objects on the ink
    from wsikit.segment.infer import Segmenter
    from wsikit.stain.factory import make_normalizer

    seg = Segmenter.load(None, stain="cnn")
    pred = seg.instances(np.asarray(make_normalizer("cnn").transform(inked.astype(np.uint8))))
    ids = np.arange(1, int(pred.max()) + 1)
    on_ink = np.asarray(ndi.mean(ink.astype(float), pred, ids)) >= 0.5
    rejected = ColourRule().rejects(inked.astype(np.uint8), pred, ids)
    assert on_ink.sum() >= 10 and rejected[on_ink].mean() > 0.8, (on_ink.sum(), rejected[on_ink].mean())
    # off the ink, nearly nothing is rejected
    assert rejected[~on_ink].mean() < 0.01
    # and the scores do not drop on the labelled nuclei: fewer false objects, the same true ones
    assert results["with"]["pq"] >= results["without"]["pq"] - 0.005
    assert results["with"]["nuclei_pred"] < results["without"]["nuclei_pred"]


def test_glass_ring_share_and_rule() -> None:
    """The share of glass around each object, each background pixel counted for its nearest object only:
    an object alone on glass 1, one inside tissue 0, one on a tissue edge in between; objects without ids
    or without background are handled."""
    from wsikit.segment.artefacts import GlassRule, glass_ring_share

    rgb = np.full((60, 120, 3), 245, np.uint8)  # glass
    rgb[:, 60:] = (200, 120, 170)  # eosin-stained tissue on the right half
    labels = np.zeros((60, 120), np.int32)
    labels[25:35, 10:20] = 1  # alone on glass
    labels[25:35, 90:100] = 2  # inside tissue
    labels[25:35, 55:65] = 3  # on the tissue edge: half its ring glass
    share = glass_ring_share(rgb, labels, np.array([1, 2, 3]), ring_px=8)
    assert share[0] == 1.0 and share[1] == 0.0 and 0.3 < share[2] < 0.7
    assert GlassRule(max_share=0.8).rejects(rgb, labels, np.array([1, 2, 3]), mpp=0.5).tolist() == [
        True,
        False,
        False,
    ]
    assert glass_ring_share(rgb, labels, np.array([], int), ring_px=8).shape == (0,)
    assert glass_ring_share(rgb, np.ones((60, 120), np.int32), np.array([1]), ring_px=8).tolist() == [0.0]


@pytest.mark.slow
def test_objects_on_glass_of_cmu1_are_dropped(tmp_path: Path) -> None:
    """A 600 x 600 px region of CMU-1 with dark fibres and fragments on glass, run with and without the rule:
    it drops what the summary counts, and each dropped object has glass around it."""
    from wsikit.segment.artefacts import GlassRule, glass_ring_share

    img, labels, summaries = _run_with_and_without(tmp_path, (1250, 1250), "glass_filter")
    found = {name: (sm["nuclei"], sm["segmentation"]["dropped_on_glass"]) for name, sm in summaries.items()}
    (n_before, dropped_before), (n_after, dropped_after) = found["without"], found["with"]
    assert dropped_before == 0 and dropped_after == n_before - n_after >= 20, found
    a = labels["without"]
    ids = np.unique(a)
    ids = ids[ids > 0]
    gone = ids[np.asarray(ndi.mean((labels["with"] > 0).astype(float), a, ids)) < 0.5]
    kept = ids[np.asarray(ndi.mean((labels["with"] > 0).astype(float), a, ids)) >= 0.5]
    ring = GlassRule().ring_um / 0.499
    gone_share, kept_share = glass_ring_share(img, a, gone, ring), glass_ring_share(img, a, kept, ring)
    # (on the level-0 grid, not the U-Net's: a little under the rule's 0.8 for some)
    assert np.median(gone_share) > 0.7 and np.median(gone_share) > np.median(kept_share) + 0.3, (
        np.median(gone_share),
        np.median(kept_share),
        len(gone),
        len(kept),
    )


def test_object_axes_match_scikit_image_and_the_length_rule() -> None:
    """Major / minor axes from moment sums equal regionprops' for ellipses at any angle, a one-pixel line
    and a single pixel; the rule drops what is longer than its bound in micrometres, whatever the grid."""
    from skimage.draw import ellipse
    from skimage.measure import regionprops_table

    from wsikit.segment.artefacts import LengthRule, object_axes

    labels = np.zeros((300, 300), np.int32)
    for i, (r, c, a, b, rot) in enumerate(
        [(50, 50, 8, 30, 0.3), (150, 60, 12, 12, 0.0), (240, 200, 4, 55, -1.2), (80, 200, 20, 6, 2.0)],
        start=1,
    ):
        rr, cc = ellipse(r, c, a, b, shape=labels.shape, rotation=rot)
        labels[rr, cc] = i
    labels[290, 10:90] = 5  # a one-pixel strand, 80 px
    labels[5, 295] = 6  # a single pixel
    ids = np.arange(1, 7)
    major, minor = object_axes(labels, np.append(ids, 9))  # id 9 has no pixel
    ref = regionprops_table(labels, properties=("axis_major_length", "axis_minor_length"))
    np.testing.assert_allclose(major[:6], ref["axis_major_length"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(minor[:6], ref["axis_minor_length"], rtol=1e-9, atol=1e-9)
    assert major[6] == minor[6] == 0.0
    rule = LengthRule(max_length_um=25.0)
    # at 0.25 um/px: ellipse 1 is 60 px = 15 um, 3 is 110 px = 27.5 um, the 80 px strand 4 sqrt((80^2 - 1) / 12)
    # = 92 px = 23 um; at 0.5 um/px ellipse 1 (30 um) and the strand (46 um) are too long as well
    assert rule.rejects(labels, ids, mpp=0.25).tolist() == [False, False, True, False, False, False]
    assert rule.rejects(labels, ids, mpp=0.5).tolist() == [True, False, True, False, True, False]
    assert rule.rejects(labels, np.array([], int), mpp=0.25).shape == (0,)


@pytest.mark.slow
def test_objects_longer_than_a_nucleus_on_cmu1_are_dropped(tmp_path: Path) -> None:
    """A 600 x 600 px region of CMU-1 with folded and torn tissue edges, run with and without the length rule:
    it drops what the summary counts, every dropped object is long and every kept one shorter."""
    from wsikit.segment.artefacts import LengthRule, object_axes

    _, labels, summaries = _run_with_and_without(tmp_path, (1175, 950), "length_filter")
    found = {
        name: (sm["nuclei"], sm["segmentation"]["dropped_too_long"], sm["segmentation"]["duplicates_skipped"])
        for name, sm in summaries.items()
    }
    (n_before, dropped_before, dup_before), (n_after, dropped_after, dup_after) = (
        found["without"],
        found["with"],
    )
    # a long object dropped by the tile that holds its centroid no longer hides the part of it that a
    # neighbouring tile found as a shorter object: such parts, skipped as duplicates before, are painted now
    assert dropped_before == 0 and dropped_after >= 5, found
    assert n_after == n_before - dropped_after + (dup_before - dup_after), found
    a = labels["without"]
    ids = np.unique(a)
    ids = ids[ids > 0]
    still = np.asarray(ndi.mean((labels["with"] > 0).astype(float), a, ids)) >= 0.5
    length_um = object_axes(a, ids)[0] * 0.499  # on the level-0 grid, not the U-Net's 0.25 um one
    bound = LengthRule().max_length_um
    assert length_um[~still].min() > bound - 2 and length_um[still].max() < bound + 2, (
        np.sort(length_um[~still]),
        np.sort(length_um[still])[-5:],
    )
