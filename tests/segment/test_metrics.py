"""Segmentation metrics against hand-computed cases and a brute-force reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wsikit.errors import ShapeError
from wsikit.io.annotations import rasterize_polygons, read_imagescope_xml
from wsikit.segment.metrics import aggregated_jaccard_index, panoptic_quality, pixel_metrics


def _aji_reference(gt: np.ndarray, pred: np.ndarray) -> float:
    """Straight transcription of Kumar et al.'s algorithm, one nucleus at a time."""
    c = u = 0.0
    used: set[int] = set()
    for g in np.unique(gt[gt > 0]):
        gm = gt == g
        best, best_iou = None, 0.0
        for p in np.unique(pred[gm]):
            if p == 0:
                continue
            pm = pred == p
            iou = (gm & pm).sum() / (gm | pm).sum()
            if iou > best_iou:
                best, best_iou = p, iou
        if best is None:
            u += gm.sum()
            continue
        pm = pred == best
        c += (gm & pm).sum()
        u += (gm | pm).sum()
        used.add(int(best))
    for p in np.unique(pred[pred > 0]):
        if int(p) not in used:
            u += (pred == p).sum()
    return c / u


def test_aji_matches_reference_on_real_annotations(data_dir: Path) -> None:
    ann = read_imagescope_xml(data_dir / "monuseg" / "train" / "TCGA-E2-A1B5-01Z-00-DX1.xml")
    gt = rasterize_polygons(ann.polygons, (1000, 1000))[:300, :300]
    pred = np.roll(gt, (2, -3), axis=(0, 1)).astype(np.int64)  # shifted "prediction"
    pred[pred == np.unique(pred)[5]] = 0  # a missed nucleus
    pred[10:30, 10:30] = pred.max() + 1  # a false positive
    merged = np.unique(pred)[7:9]
    pred[pred == merged[1]] = merged[0]  # two nuclei merged
    assert aggregated_jaccard_index(gt, pred) == pytest.approx(_aji_reference(gt, pred))


def test_pq_counts() -> None:
    gt = np.zeros((10, 10), int)
    gt[0:4, 0:4] = 1
    gt[6:10, 6:10] = 2
    pred = np.zeros_like(gt)
    pred[0:4, 0:3] = 5  # IoU 0.75 with 1
    pred[6:8, 0:2] = 6  # false positive
    pq = panoptic_quality(gt, pred)
    assert (pq["tp"], pq["fp"], pq["fn"]) == (1, 1, 1)
    assert (
        pq["sq"] == pytest.approx(0.75)
        and pq["dq"] == pytest.approx(0.5)
        and pq["pq"] == pytest.approx(0.375)
    )


def test_pixel_metrics_and_errors() -> None:
    gt = np.zeros((4, 4), int)
    assert pixel_metrics(gt, gt)["dice"] == 1.0
    with pytest.raises(ShapeError, match="same shape"):
        pixel_metrics(gt, np.zeros((3, 4), int))
