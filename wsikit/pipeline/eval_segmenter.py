"""``evaluate_segmenter`` and ``export_dataset``: the segmentation metrics on a folder of labelled images."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np

from wsikit._typing import PathLike
from wsikit.errors import ConfigError
from wsikit.pipeline._atomic import staged_directory
from wsikit.segment.data import WORKING_MPP, load_dataset, resample
from wsikit.segment.infer import Segmenter
from wsikit.segment.metrics import aggregated_jaccard_index, panoptic_quality, pixel_metrics

__all__ = ["evaluate_segmenter", "export_dataset", "load_labelled_folder"]


def export_dataset(
    name: str, data: PathLike, out: PathLike, *, split: str = "test", overwrite: bool = False
) -> int:
    """Write a dataset as ``NAME.png`` + ``NAME.labels.tif`` (uint32 instances) at 0.25 um/px; returns the count."""
    import tifffile
    from PIL import Image

    samples = load_dataset(name, data, split=split)
    with staged_directory(Path(out), overwrite=overwrite) as stage:
        for s in samples:
            stem = s.name.split("/")[-1]
            Image.fromarray(s.image).save(stage / f"{stem}.png")
            tifffile.imwrite(stage / f"{stem}.labels.tif", s.labels, compression="zlib")
    return len(samples)


def load_labelled_folder(folder: PathLike) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, RGB image, instance labels) for each ``NAME.png`` with a ``NAME.labels.tif`` beside it."""
    import tifffile
    from PIL import Image

    p = Path(folder)
    if not p.is_dir():
        raise ConfigError(f"{p}: not a folder")
    items = []
    for png in sorted(p.glob("*.png")):
        lab = png.with_name(png.stem + ".labels.tif")
        if not lab.exists():
            continue
        image = np.asarray(Image.open(png).convert("RGB"))
        labels = tifffile.imread(lab).astype(np.uint32)
        if labels.shape != image.shape[:2]:
            raise ConfigError(f"{lab}: labels {labels.shape} do not match image {image.shape[:2]}")
        items.append((png.stem, image, labels))
    if not items:
        raise ConfigError(f"{p}: no NAME.png with NAME.labels.tif")
    return items


def evaluate_segmenter(
    folder: PathLike,
    *,
    mpp: float = WORKING_MPP,
    weights: PathLike | None = None,
    stain: Literal["none", "macenko", "cnn"] = "none",
    stain_target: PathLike | None = None,
    tta: bool = False,
) -> dict[str, Any]:
    """Segment every image of ``folder`` (at ``mpp``) and score it against its labels.

    ``tta`` averages the U-Net over the 8 rotations / flips of each image. Without ``weights`` the shipped
    segmenter that ``wsikit run`` uses with the same ``stain`` is scored (``unet-nuclei-cnn`` for ``cnn``). Returns the per-image and mean
    pixel sensitivity, specificity, Dice, Jaccard, AJI and PQ, and the instance thresholds used.
    """
    from wsikit.pipeline.normalize import make_normalizer

    seg = Segmenter.load(weights, stain=stain, tta=tta)
    norm = None
    if stain != "none":
        norm = make_normalizer(stain, target=stain_target)
    rows = []
    start = time.perf_counter()
    for name, image, labels in load_labelled_folder(folder):
        if norm is not None:
            image = np.asarray(norm.transform(image))
        factor = mpp / seg.mpp
        img, _ = resample(image, labels, factor)
        pred = seg.instances(img)
        if abs(factor - 1) > 1e-3:
            from PIL import Image

            pred = np.asarray(
                Image.fromarray(pred.astype(np.int32)).resize(labels.shape[::-1], Image.Resampling.NEAREST)
            ).astype(np.uint32)
        row: dict[str, Any] = {
            "image": name,
            **pixel_metrics(labels, pred),
            "aji": aggregated_jaccard_index(labels, pred),
        }
        pq = panoptic_quality(labels, pred)
        row.update(
            pq=pq["pq"],
            dq=pq["dq"],
            sq=pq["sq"],
            nuclei_true=int(len(np.unique(labels)) - 1),
            nuclei_pred=int(pred.max()),
        )
        rows.append(row)
    keys = ("sensitivity", "specificity", "dice", "jaccard", "aji", "pq")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    return {
        "mean": mean,
        "images": rows,
        "stain": stain,
        "tta": tta,
        "instance_params": asdict(seg.instance_params),
        "weights": seg.meta.get("weights"),
        "seconds": round(time.perf_counter() - start, 1),
    }
