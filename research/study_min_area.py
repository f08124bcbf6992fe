"""Study: which segmented objects are too small to be nuclei? Detection precision by object area.

`wsikit run` drops segmented objects under ``--min-nucleus-area`` um^2 (``--stain cnn``: the images restyled by the
shipped CNN normalizer and segmented by the U-Net that `wsikit run` uses after it, its default path). This measures, on held-out annotated
images, how many of the shipped segmenter's objects in each area band match an annotated nucleus (IoU >= 0.5),
and how many annotated nuclei lie in each band, so the cost and gain of a cut-off can be read off. Each
image is segmented as scanned (40x, 0.25 um/px) and as a 20x scan would be (halved, then brought back to the
working resolution the way `wsikit run` does for a 20x slide such as the bundled CMU-1 sample). The
sample slide itself has no annotations; its objects' area distribution is printed beside.

Usage::

    python research/study_min_area.py [--folder benchmarks/_work/monuseg_test] [--folder ...]
        [--json research/results_study_min_area.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

HERE = Path(__file__).resolve().parent
BANDS = (0.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, np.inf)
CUTS = (3.0, 5.0, 7.5, 10.0, 12.5, 15.0)


def matched_pred(gt: npt.NDArray[np.integer], pred: npt.NDArray[np.integer]) -> tuple[Any, Any, Any, Any]:
    """Areas (px) of predicted and true objects and whether each has a partner with IoU >= 0.5."""
    from wsikit.segment.metrics import overlaps

    gt_ids, pred_ids, gt_area, pred_area, inter = overlaps(gt, pred)
    gt_area, pred_area = gt_area.astype(np.float64), pred_area.astype(np.float64)
    union = gt_area[:, None] + pred_area[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros(inter.shape), where=union > 0)
    pred_ok = (iou >= 0.5).any(axis=0) if len(gt_ids) else np.zeros(len(pred_ids), bool)
    gt_ok = (iou >= 0.5).any(axis=1) if len(pred_ids) else np.zeros(len(gt_ids), bool)
    return pred_area, pred_ok, gt_area, gt_ok


def bands(area_um2: npt.NDArray[np.float64], ok: npt.NDArray[np.bool_]) -> list[dict[str, Any]]:
    rows = []
    for lo, hi in zip(BANDS[:-1], BANDS[1:], strict=True):
        sel = (area_um2 >= lo) & (area_um2 < hi)
        rows.append(
            {
                "band_um2": [lo, None if np.isinf(hi) else hi],
                "objects": int(sel.sum()),
                "matched": int(ok[sel].sum()),
                "matched_fraction": round(float(ok[sel].mean()), 3) if sel.any() else None,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, action="append", default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--stain",
        choices=("none", "cnn"),
        default="none",
        help="cnn: restyle each image with the shipped CNN normalizer and segment it with the segmenter "
        "`wsikit run` uses after it (its default path)",
    )
    args = parser.parse_args()
    from wsikit.datasets.nuclei import resample
    from wsikit.segment.evaluate import load_labelled_folder
    from wsikit.segment.infer import Segmenter
    from wsikit.segment.metrics import aggregated_jaccard_index

    folders = args.folder or [
        HERE.parent / "benchmarks" / "_work" / "monuseg_test",
        HERE.parent / "benchmarks" / "_work" / "classes_nucls",
    ]
    seg = Segmenter.load(stain=args.stain)
    restyle = None
    if args.stain == "cnn":
        from wsikit.stain.cnn import CnnNormalizer

        restyle = CnnNormalizer.from_pretrained()
    px_um2 = seg.mpp**2
    out: dict[str, Any] = {
        "stain": args.stain,
        "bands_um2": [b if np.isfinite(b) else None for b in BANDS],
        "sets": {},
    }
    for scan in ("40x", "20x"):
        pa, po, ga, go = [], [], [], []
        aji: dict[float, list[float]] = {c: [] for c in CUTS}
        for folder in folders:
            for _, image, gt in load_labelled_folder(folder):
                if scan == "20x":
                    half, _ = resample(image, np.zeros(image.shape[:2], np.uint32), 0.5)
                    image, _ = resample(
                        half, np.zeros(half.shape[:2], np.uint32), image.shape[0] / half.shape[0]
                    )
                    image = image[: gt.shape[0], : gt.shape[1]]
                    if image.shape[:2] != gt.shape:
                        pad = [(0, gt.shape[0] - image.shape[0]), (0, gt.shape[1] - image.shape[1]), (0, 0)]
                        image = np.pad(image, pad, mode="edge")
                if restyle is not None:
                    image = np.asarray(restyle.transform(image))
                pred = seg.instances(image)
                sizes = np.bincount(pred.ravel()) * px_um2
                for c in CUTS:
                    small = sizes < c
                    small[0] = True
                    aji[c].append(aggregated_jaccard_index(gt, np.where(small[pred], 0, pred)))
                a, ok, g, gok = matched_pred(gt, pred)
                pa.append(a * px_um2)
                po.append(ok)
                ga.append(g * px_um2)
                go.append(gok)
        pred_area, pred_ok = np.concatenate(pa), np.concatenate(po)
        gt_area, gt_ok = np.concatenate(ga), np.concatenate(go)
        cut = {}
        for c in CUTS:
            keep = pred_area >= c
            tp = int(pred_ok[keep].sum())
            prec = tp / max(int(keep.sum()), 1)
            rec = tp / max(len(gt_area), 1)
            cut[str(c)] = {
                "objects_kept": int(keep.sum()),
                "precision": round(prec, 4),
                "recall": round(rec, 4),
                "f1": round(2 * prec * rec / max(prec + rec, 1e-9), 4),
                "mean_aji": round(float(np.mean(aji[c])), 4),
            }
        out["sets"][scan] = {
            "predicted_by_band": bands(pred_area, pred_ok),
            "annotated_by_band": bands(gt_area, gt_ok),
            "detection_at_cut_um2": cut,
        }
        print(scan, json.dumps(out["sets"][scan]["detection_at_cut_um2"]))
        for r in out["sets"][scan]["predicted_by_band"]:
            print("  predicted", r)
        for r in out["sets"][scan]["annotated_by_band"]:
            print("  annotated", r)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
