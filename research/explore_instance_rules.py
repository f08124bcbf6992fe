"""Exploration (issue 15, item 1): can the instance rules alone lift AJI? On the tuning images only.

Every figure here is on the 24 non-breast MoNuSeg 2018 extra-train images (the images earlier sessions tuned the
instance thresholds on; none is in the three validation sources), on ``wsikit run``'s path (CNN normalizer,
chroma 1/2, auto precision) with the run's area range applied after each rule. It chooses nothing for shipping:
no variant was good enough on these images to be carried to the validation sources.

``rules``: the shipped ``unet-nuclei-cnn`` with its thresholds, then

- seeds smaller than ``seed_min`` px dropped before the watershed (their pixels go to a neighbouring seed);
- ``absorb``: objects under the run's minimum area merged into the neighbour they touch instead of dropped;
- the objects grown by 1-3 px (``expand``), or a lower foreground threshold.

``distance``: session 11's distance-output fine-tune (research/study_segmenter_distance.py), with seeds where
the class map's seeds **and** the predicted distance agree (``d``), and watershed reliefs on the distance.

``breakdown``: where the shipped model's AJI goes on these images (pooled over images): the union of matched
pairs, missed nuclei, and unmatched objects (on a nucleus: pieces of a split one; off nuclei).

Usage::

    python research/explore_instance_rules.py rules|distance|breakdown [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from study_segmenter_distance import tuning_pairs  # noqa: E402

DISTANCE = HERE / "_work" / "segmenter_distance" / "unet-nuclei-cnn-distance.pt"
AREA_PX = (120, 6400)  # wsikit run's 7.5-400 um^2 at 0.25 um/px


def _keep_area(grown: np.ndarray) -> np.ndarray:
    sizes = np.bincount(grown.ravel())
    keep = (sizes >= AREA_PX[0]) & (sizes <= AREA_PX[1])
    keep[0] = False
    lut = np.zeros(len(keep), np.uint32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.uint32)
    return np.asarray(lut[grown])


def instances(
    probs: np.ndarray,
    *,
    fg: float = 0.7,
    marker: float = 0.3,
    seed_min: int = 0,
    absorb: bool = False,
    distance: float | None = None,
    relief: str = "interior",
) -> np.ndarray:
    """The shipped rule (foreground 0.7, marker 0.3, no opening) with one variation, then the run's area range."""
    from scipy import ndimage as ndi
    from skimage.segmentation import watershed

    interior, boundary = probs[1], probs[2]
    foreground = (interior + boundary) > fg
    markers = ((interior - boundary) > marker) & foreground
    if distance is not None:
        markers &= probs[3] > distance
    seeds, _ = ndi.label(markers)
    if seed_min:
        sizes = np.bincount(seeds.ravel())
        small = sizes < seed_min
        small[0] = False
        seeds[small[seeds]] = 0
    surface = {"interior": interior, "distance": probs[-1], "both": interior + probs[-1]}[relief]
    grown = watershed(-surface, markers=seeds, mask=foreground)
    if absorb:
        sizes = np.bincount(grown.ravel())
        small = sizes < AREA_PX[0]
        small[0] = False
        kept = np.where(small[grown], 0, grown)
        grown = watershed(-surface, markers=kept, mask=(kept > 0) | small[grown])
    return _keep_area(grown)


def _score(pairs: list[Any], fn: Any) -> dict[str, float]:
    from wsikit.segment.metrics import aggregated_jaccard_index, panoptic_quality, pixel_metrics

    rows = []
    for probs, labels in pairs:
        pred = fn(probs)
        rows.append(
            (
                pixel_metrics(labels, pred)["dice"],
                aggregated_jaccard_index(labels, pred),
                panoptic_quality(labels, pred)["pq"],
            )
        )
    dice, aji, pq = np.mean(rows, axis=0)
    return {"dice": round(float(dice), 4), "aji": round(float(aji), 4), "pq": round(float(pq), 4)}


def rules() -> dict[str, Any]:
    from skimage.segmentation import expand_labels

    from wsikit.models.registry import weights_path
    from wsikit.segment.train import ARCH

    pairs, _ = tuning_pairs(weights_path("unet-nuclei-cnn", arch=ARCH))
    variants: dict[str, Any] = {
        "shipped": lambda p: instances(p),
        "absorb": lambda p: instances(p, absorb=True),
    }
    for s in (20, 40, 80):
        variants[f"seed_min {s}"] = lambda p, s=s: instances(p, seed_min=s)
    for r in (1, 2):
        variants[f"expand {r}"] = lambda p, r=r: expand_labels(instances(p), r)
    for fg in (0.5, 0.6):
        variants[f"foreground {fg}"] = lambda p, fg=fg: instances(p, fg=fg)
    return {name: _score(pairs, fn) for name, fn in variants.items()}


def distance() -> dict[str, Any]:
    pairs, _ = tuning_pairs(DISTANCE)
    variants: dict[str, Any] = {"class seeds (its thresholds)": lambda p: instances(p)}
    for m in (0.1, 0.3):
        for d in (0.3, 0.4, 0.5):
            variants[f"marker {m} and distance > {d}"] = lambda p, m=m, d=d: instances(
                p, marker=m, distance=d
            )
    variants["distance > 0.3, relief distance"] = lambda p: instances(p, distance=0.3, relief="distance")
    variants["distance > 0.3, relief interior + distance"] = lambda p: instances(
        p, distance=0.3, relief="both"
    )
    return {name: _score(pairs, fn) for name, fn in variants.items()}


def breakdown() -> dict[str, Any]:
    from wsikit.models.registry import weights_path
    from wsikit.segment.train import ARCH

    pairs, _ = tuning_pairs(weights_path("unet-nuclei-cnn", arch=ARCH))
    tot = dict.fromkeys(("matched_c", "matched_u", "missed", "split_pieces", "off_nuclei"), 0)
    n_true = n_pred = 0
    for probs, labels in pairs:
        pred = instances(probs)
        m = np.zeros((int(labels.max()) + 1, int(pred.max()) + 1), np.int64)
        np.add.at(m, (labels.ravel().astype(np.int64), pred.ravel().astype(np.int64)), 1)
        true_area, pred_area = m.sum(1), m.sum(0)
        used = np.zeros(m.shape[1], bool)
        for g in range(1, m.shape[0]):
            if true_area[g] == 0:
                continue
            inter = m[g, 1:]
            iou = inter / (true_area[g] + pred_area[1:] - inter)
            if not len(iou) or iou.max() == 0:
                tot["missed"] += int(true_area[g])
                continue
            j = int(iou.argmax()) + 1
            tot["matched_c"] += int(m[g, j])
            tot["matched_u"] += int(true_area[g] + pred_area[j] - m[g, j])
            used[j] = True
        unmatched = ~used
        unmatched[0] = False
        on_nucleus = m[1:].sum(0) > pred_area / 2
        tot["split_pieces"] += int(pred_area[unmatched & on_nucleus].sum())
        tot["off_nuclei"] += int(pred_area[unmatched & ~on_nucleus].sum())
        n_true += int(labels.max())
        n_pred += int(pred.max())
    union = tot["matched_u"] + tot["missed"] + tot["split_pieces"] + tot["off_nuclei"]
    return {
        "nuclei_annotated": n_true,
        "objects": n_pred,
        "pooled_aji": round(tot["matched_c"] / union, 4),
        "matched_pairs_iou": round(tot["matched_c"] / tot["matched_u"], 4),
        "union_share": {
            k: round(tot[k] / union, 4) for k in ("matched_u", "missed", "split_pieces", "off_nuclei")
        },
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("rules", "distance", "breakdown"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    out = {"rules": rules, "distance": distance, "breakdown": breakdown}[args.what]()
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
