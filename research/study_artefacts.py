"""Study: colour of segmented objects that are nuclei vs ink and eosin fragments (issue 15, item 2).

Segments images as ``wsikit run`` does by default (CNN normalizer, ``unet-nuclei-cnn`` at 0.25 um/px) and
measures each object's mean optical density per RGB channel on the *raw* pixels (the CNN normalizer
re-colours luminance, so it would paint ink in H&E colours). Sources:

- monuseg_extra/train (26 images, 7 organs; never used to train the shipped U-Net): objects matched to an
  annotated nucleus (IoU > 0.5) are nuclei; the same images with ink strokes painted on them (labels
  unchanged) give objects on ink that match no nucleus;
- brca_m2c val (10 patients, 20x): objects holding an annotated point are nuclei.

Writes the per-object features as an .npz for the rule's choice (validation only: no test data here).

Usage::

    python research/study_artefacts.py --data ../shared/data --out research/artefact_features.npz
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from wsikit.datasets.brca_m2c import load_brca_m2c
from wsikit.datasets.nuclei import resample
from wsikit.segment.infer import Segmenter
from wsikit.stain.factory import make_normalizer

INKS = {  # transmission of each ink per RGB channel (multiplicative: ink absorbs light)
    "teal": (0.15, 0.55, 0.55),
    "blue": (0.25, 0.35, 0.75),
    "green": (0.2, 0.6, 0.3),
    "black": (0.15, 0.15, 0.17),
}


def paint_ink(image: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Three thick random strokes of one ink, blended multiplicatively; returns the image, ink mask, ink name."""
    rng = np.random.default_rng(seed)
    name = list(INKS)[seed % len(INKS)]
    h, w = image.shape[:2]
    mask = np.zeros((h, w), bool)
    yy, xx = np.mgrid[:h, :w]
    for _ in range(3):
        p0, p1, p2 = rng.uniform(0, 1, (3, 2)) * (w, h)
        t = np.linspace(0, 1, 400)[:, None]
        curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
        width = rng.uniform(6, 25)
        for cx, cy in curve[::4]:
            r = width / 2
            y0, y1, x0, x1 = (
                int(max(cy - r, 0)),
                int(min(cy + r + 1, h)),
                int(max(cx - r, 0)),
                int(min(cx + r + 1, w)),
            )
            sub = (yy[y0:y1, x0:x1] - cy) ** 2 + (xx[y0:y1, x0:x1] - cx) ** 2 <= r * r
            mask[y0:y1, x0:x1] |= sub
    strength = rng.uniform(0.6, 1.0)
    trans = np.asarray(INKS[name]) ** strength
    out = image.astype(np.float32)
    out[mask] *= trans
    # speckle: ink is uneven
    noise = rng.normal(1.0, 0.05, (h, w, 1)).astype(np.float32)
    out[mask] *= noise[mask]
    return np.clip(out, 0, 255).astype(np.uint8), mask, name


def object_features(raw: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ids, (N, 5): mean OD red, green, blue, area px, OD std (texture) on the raw pixels."""
    ids = np.unique(labels)
    ids = ids[ids > 0]
    od = -np.log((raw.astype(np.float64) + 1.0) / 256.0)
    feats = [ndi.mean(od[..., c], labels, ids) for c in range(3)]
    area = ndi.sum(np.ones(labels.shape), labels, ids)
    std = ndi.standard_deviation(od.sum(-1), labels, ids)
    return ids, np.stack([*feats, area, std], axis=1) if len(ids) else np.zeros((0, 5))


def segment(seg: Segmenter, norm, image: np.ndarray, mpp: float) -> np.ndarray:
    normed = np.asarray(norm.transform(image))
    factor = mpp / seg.mpp
    img, _ = resample(normed, np.zeros(image.shape[:2], np.uint32), factor)
    pred = seg.instances(img)
    if abs(factor - 1) > 1e-3:
        pred = np.asarray(
            Image.fromarray(pred.astype(np.int32)).resize(image.shape[1::-1], Image.Resampling.NEAREST)
        ).astype(np.uint32)
    return pred


def matched(pred: np.ndarray, truth: np.ndarray) -> set[int]:
    """Predicted ids with IoU > 0.5 against some true nucleus."""
    m = (pred > 0) & (truth > 0)
    pairs, inter = np.unique(np.stack([pred[m], truth[m]]), axis=1, return_counts=True)
    pa = np.bincount(pred.ravel())
    ta = np.bincount(truth.ravel())
    iou = inter / (pa[pairs[0]] + ta[pairs[1]] - inter)
    return {int(p) for p, v in zip(pairs[0], iou, strict=True) if v > 0.5}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("research/artefact_features.npz"))
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    seg = Segmenter.load(None, stain="cnn")
    norm = make_normalizer("cnn")
    rows: list[np.ndarray] = []  # source id, kind (0 nucleus, 1 other, 2 on ink), ink id, features...
    t0 = time.perf_counter()
    root = args.data / "monuseg_extra" / "train"
    files = sorted((root / "images").glob("*.png"))
    if args.limit:
        files = files[: args.limit]
    for i, png in enumerate(files):
        image = np.asarray(Image.open(png).convert("RGB"))
        truth = np.asarray(Image.open(root / "labels" / png.name)).astype(np.uint32)
        pred = segment(seg, norm, image, 0.25)
        ids, f = object_features(image, pred)
        good = matched(pred, truth)
        kind = np.array([0 if int(k) in good else 1 for k in ids])
        rows.append(np.column_stack([np.full(len(ids), 0), kind, np.full(len(ids), -1), f]))
        inked, mask, ink = paint_ink(image, i)
        pred2 = segment(seg, norm, inked, 0.25)
        ids2, f2 = object_features(inked, pred2)
        on_ink = ndi.mean(mask.astype(float), pred2, ids2) if len(ids2) else np.zeros(0)
        good2 = matched(pred2, truth)
        kind2 = np.array(
            [0 if int(k) in good2 else (2 if o > 0.5 else 1) for k, o in zip(ids2, on_ink, strict=True)]
        )
        rows.append(
            np.column_stack([np.full(len(ids2), 1), kind2, np.full(len(ids2), list(INKS).index(ink)), f2])
        )
        print(
            f"{png.stem}: {len(ids)} objects ({len(good)} matched); inked ({ink}): {int((kind2 == 2).sum())} on ink "
            f"[{time.perf_counter() - t0:.0f} s]",
            flush=True,
        )
    for s in load_brca_m2c(args.data, "val"):
        pred = segment(seg, norm, s.image, s.mpp)
        ids, f = object_features(s.image, pred)
        xi = np.clip(s.x.astype(int), 0, s.image.shape[1] - 1)
        yi = np.clip(s.y.astype(int), 0, s.image.shape[0] - 1)
        hit = set(int(v) for v in pred[yi, xi] if v)
        kind = np.array([0 if int(k) in hit else 1 for k in ids])
        rows.append(np.column_stack([np.full(len(ids), 2), kind, np.full(len(ids), -1), f]))
        print(
            f"{s.name}: {len(ids)} objects, {len(hit)} hold a point [{time.perf_counter() - t0:.0f} s]",
            flush=True,
        )
    table = np.concatenate(rows)
    np.savez_compressed(
        args.out,
        table=table,
        columns=np.array(["source", "kind", "ink", "od_r", "od_g", "od_b", "area_px", "od_std"]),
        inks=np.array(list(INKS)),
    )
    print(f"wrote {args.out}: {len(table)} objects")


if __name__ == "__main__":
    main()
