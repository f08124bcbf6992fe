"""Diagnostic (issue 15): does ``wsikit eval segmenter`` lose accuracy on small images such as PanNuke tiles?

Issue 15's held-out sources include 25 PanNuke breast tiles of 256 x 256 px at 0.25 um/px (64 um): far
smaller than the 1,000 px MoNuSeg images every figure of docs/segmentation.md is on. A small image changes
three things on `wsikit run`'s path: the CNN normalizer fits its lightness statistics on fewer pixels, the
U-Net sees no tissue beyond the edge (replicate padding), and nuclei cut by the edge are partial.

This chooses nothing. For each validation source (MoNuSeg test, MoNuSeg 2018 extra test, its two held-out breast
images) every image is cut into non-overlapping ``--tile`` px crops (labels relabelled per crop), and each crop
is scored twice against its labels:

- ``whole``: the image segmented whole (as in docs/segmentation.md), the prediction cut to the crop;
- ``crop``: the crop segmented on its own, as a PanNuke tile is.

The difference is what smallness alone costs (also shown: ``crop_whole_norm``, the crop cut from the image as
normalized whole, which isolates the normalizer's statistics; ``crop_edge_exempt``, objects touching the crop's
edge kept whatever their area, which isolates the area filter). Measured 2026-12-01 (JSON
research/results_study_small_tiles.json): 256 px crops lose 0.010 Dice, 0.015 AJI and 0.005 PQ on the mean over
sources, and neither the normalizer's statistics nor the area filter explains it: it is the U-Net's missing
context at the edge. Mirroring 64 px of the image around it (reflect instead of replicate padding in
``Segmenter.probabilities``) was tried in the same session and did not help (crop AJI 0.593 -> 0.590, whole-image
AJI 0.608 -> 0.605), so the padding is unchanged. Usage::

    python research/study_small_tiles.py [--tile 256] [--json research/results_study_small_tiles.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from study_segmenter_extra import _sources  # noqa: E402

PATHS = ("whole", "crop", "crop_whole_norm", "crop_edge_exempt")


def _rules_on(pred: np.ndarray, raw: np.ndarray, rules: tuple[Any, ...], *, edge_exempt: bool) -> np.ndarray:
    """``wsikit run``'s area range, colour and glass rules on ``pred`` (0.25 um/px); with ``edge_exempt`` the
    objects touching the image edge are kept whatever their area (they are cut, not small)."""
    from wsikit.segment.evaluate import _keep

    (lo, hi), colour, glass = rules
    area = np.bincount(pred.ravel()) * 0.25**2
    keep = (area >= lo) & (area <= hi)
    if edge_exempt:
        border = np.unique(np.concatenate([pred[0], pred[-1], pred[:, 0], pred[:, -1]]))
        keep[border] = True
    keep[0] = False
    pred = _keep(pred, keep)
    ids = np.arange(1, int(pred.max()) + 1)
    pred = _keep(pred, np.concatenate([[False], ~colour.rejects(raw, pred, ids)]))
    ids = np.arange(1, int(pred.max()) + 1)
    return _keep(pred, np.concatenate([[False], ~glass.rejects(raw, pred, ids, 0.25)]))


def _relabel(lab: np.ndarray) -> np.ndarray:
    """Labels 1..n of a crop (ids are compacted; 0 stays background)."""
    ids, inv = np.unique(lab, return_inverse=True)
    out = inv.reshape(lab.shape).astype(np.uint32)
    return out if ids[0] == 0 else out + 1


def _scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from wsikit.segment.metrics import aggregated_jaccard_index, panoptic_quality, pixel_metrics

    pm = pixel_metrics(truth, pred)
    return {
        "dice": float(pm["dice"]),
        "aji": float(aggregated_jaccard_index(truth, pred)),
        "pq": float(panoptic_quality(truth, pred)["pq"]),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    from wsikit.segment.artefacts import ColourRule, GlassRule
    from wsikit.segment.evaluate import RUN_AREA_UM2, _load_models, _predict, load_labelled_folder

    seg, norm = _load_models("cnn", None, None, False)
    rules = (RUN_AREA_UM2, ColourRule(), GlassRule())
    t = args.tile
    out: dict[str, Any] = {"tile": t, "sources": {}}
    start = time.perf_counter()
    for folder in _sources():
        rows = []
        for name, raw, labels in load_labelled_folder(folder):
            whole = _predict(seg, norm, raw, 0.25, *rules)
            normed = np.asarray(norm.transform(raw))
            h, w = labels.shape
            for y in range(0, h - t + 1, t):
                for x in range(0, w - t + 1, t):
                    sl = np.s_[y : y + t, x : x + t]
                    truth = _relabel(labels[sl])
                    if truth.max() == 0:
                        continue
                    crop = np.ascontiguousarray(raw[sl])
                    crop_pred = _predict(seg, norm, crop, 0.25, *rules)
                    wn_pred = _predict(seg, None, np.ascontiguousarray(normed[sl]), 0.25, None, None, None)
                    wn_pred = _rules_on(wn_pred, crop, rules, edge_exempt=False)
                    all_pred = _predict(seg, norm, crop, 0.25, None, None, None)
                    edge_pred = _rules_on(all_pred, crop, rules, edge_exempt=True)
                    rows.append(
                        {
                            "image": name,
                            "y": y,
                            "x": x,
                            "whole": _scores(truth, _relabel(whole[sl])),
                            "crop": _scores(truth, crop_pred),
                            "crop_whole_norm": _scores(truth, wn_pred),
                            "crop_edge_exempt": _scores(truth, edge_pred),
                        }
                    )
        mean = {
            path: {k: float(np.mean([r[path][k] for r in rows])) for k in ("dice", "aji", "pq")}
            for path in PATHS
        }
        out["sources"][folder.name] = {"crops": len(rows), "mean": mean, "rows": rows}
        print(folder.name, len(rows), {p: {k: round(v, 4) for k, v in m.items()} for p, m in mean.items()})
    out["mean"] = {
        path: {
            k: float(np.mean([s["mean"][path][k] for s in out["sources"].values()]))
            for k in ("dice", "aji", "pq")
        }
        for path in PATHS
    }
    out["seconds"] = round(time.perf_counter() - start, 1)
    print("mean over sources", {p: {k: round(v, 4) for k, v in m.items()} for p, m in out["mean"].items()})
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
