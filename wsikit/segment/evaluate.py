"""``evaluate_segmenter`` and ``export_dataset``: the segmentation metrics on a folder of labelled images."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np

from wsikit._atomic import staged_directory
from wsikit._typing import PathLike
from wsikit.datasets.nuclei import WORKING_MPP, folder_mpp, load_dataset, resample_image, resize_labels
from wsikit.errors import ConfigError
from wsikit.models.precision import Precision
from wsikit.segment.artefacts import ColourRule, GlassRule, LengthRule
from wsikit.segment.infer import Segmenter
from wsikit.segment.metrics import aggregated_jaccard_index, panoptic_quality, pixel_metrics

__all__ = ["evaluate_segmenter", "evaluate_segmenter_sources", "export_dataset", "load_labelled_folder"]

RUN_AREA_UM2 = (7.5, 400.0)
"""The nuclear area range ``wsikit run`` keeps by default (its --min/--max-nucleus-area)."""
METRICS = ("sensitivity", "specificity", "dice", "jaccard", "aji", "pq")


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
    area_um2: tuple[float, float] | None = None,
    colour_rule: ColourRule | None = None,
    glass_rule: GlassRule | None = None,
    length_rule: LengthRule | None = None,
    _models: tuple[Segmenter, Any] | None = None,
) -> dict[str, Any]:
    """Segment every image of ``folder`` (at ``mpp``) and score it against its labels.

    ``tta`` averages the U-Net over the 8 rotations / flips of each image. Without ``weights`` the shipped
    segmenter that ``wsikit run`` uses with the same ``stain`` is scored (``unet-nuclei-cnn`` for ``cnn``).
    ``area_um2`` = (min, max) drops objects outside that nuclear area, as ``wsikit run`` does
    (:data:`RUN_AREA_UM2`); None keeps every object the segmenter returns. ``colour_rule`` drops objects
    whose raw colour no nucleus has, ``glass_rule`` objects lying on glass, ``length_rule`` objects longer than
    any nucleus, as ``wsikit run`` does (:mod:`wsikit.segment.artefacts`). Returns the per-image and mean
    pixel sensitivity, specificity, Dice, Jaccard, AJI and PQ, and the instance thresholds used.
    """
    seg, norm = _models if _models is not None else _load_models(stain, weights, stain_target, tta)
    rows = []
    start = time.perf_counter()
    for name, raw, labels in load_labelled_folder(folder):
        pred = _predict(seg, norm, raw, mpp, area_um2, colour_rule, glass_rule, length_rule)
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
    mean = {k: float(np.mean([r[k] for r in rows])) for k in METRICS}
    return {
        "mean": mean,
        "images": rows,
        "mpp": mpp,
        **_settings(seg, norm, stain, tta, area_um2, colour_rule, glass_rule, length_rule, start),
    }


def _predict(
    seg: Segmenter,
    norm: Any,
    raw: np.ndarray,
    mpp: float,
    area_um2: tuple[float, float] | None,
    colour_rule: ColourRule | None,
    glass_rule: GlassRule | None,
    length_rule: LengthRule | None = None,
) -> np.ndarray:
    """Instances of ``raw`` (an image of ``mpp`` um/px) on its own grid, by ``wsikit run``'s steps: stain
    normalization, segmentation at the segmenter's resolution, then the area range and the colour, glass and
    length rules (each skipped when None)."""
    image = np.asarray(norm.transform(raw)) if norm is not None else raw
    factor = mpp / seg.mpp
    pred = seg.instances(resample_image(image, factor))
    if area_um2 is not None:
        pred = _keep_area(pred, area_um2, seg.mpp)
    raw_w = resample_image(raw, factor) if colour_rule is not None or glass_rule is not None else raw
    if colour_rule is not None:
        pred = _drop(pred, lambda ids: colour_rule.rejects(raw_w, pred, ids))
    if glass_rule is not None:
        pred = _drop(pred, lambda ids: glass_rule.rejects(raw_w, pred, ids, seg.mpp))
    if length_rule is not None:
        pred = _drop(pred, lambda ids: length_rule.rejects(pred, ids, seg.mpp))
    return resize_labels(pred, raw.shape[:2])


def _drop(pred: np.ndarray, rejects: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Relabel ``pred`` without the objects that ``rejects`` (given the ids 1..n) marks."""
    ids = np.arange(1, int(pred.max()) + 1)
    return _keep(pred, np.concatenate([[False], ~rejects(ids)]))


def _load_models(
    stain: str,
    weights: PathLike | None,
    stain_target: PathLike | None,
    tta: bool,
    precision: Precision = "auto",
    chroma_downsample: int = 2,
    *,
    build_normalizer: bool = True,
) -> tuple[Segmenter, Any]:
    """The segmenter and stain normalizer ``wsikit run`` would use with these options (no normalizer for
    ``none``, or when ``build_normalizer`` is off)."""
    from wsikit.stain.factory import make_normalizer

    seg = Segmenter.load(weights, stain=stain, tta=tta, precision=precision)
    if stain == "none" or not build_normalizer:
        return seg, None
    norm = make_normalizer(
        stain,  # type: ignore[arg-type]
        target=stain_target,
        precision=precision,
        chroma_downsample=chroma_downsample if stain == "cnn" else 1,
    )
    return seg, norm


def _settings(
    seg: Segmenter,
    norm: Any,
    stain: str,
    tta: bool,
    area_um2: tuple[float, float] | None,
    colour_rule: ColourRule | None,
    glass_rule: GlassRule | None,
    length_rule: LengthRule | None,
    start: float,
) -> dict[str, Any]:
    """What an evaluation ran with (recorded beside its figures)."""
    return {
        "stain": stain,
        "tta": tta,
        "area_um2": list(area_um2) if area_um2 is not None else None,
        "colour_rule": asdict(colour_rule) if colour_rule is not None else None,
        "glass_rule": asdict(glass_rule) if glass_rule is not None else None,
        "length_rule": asdict(length_rule) if length_rule is not None else None,
        "instance_params": asdict(seg.instance_params),
        "precision": seg.precision,
        "chroma_downsample": getattr(norm, "chroma_downsample", None),
        "weights": seg.meta.get("weights"),
        "seconds": round(time.perf_counter() - start, 1),
    }


def _keep_area(pred: np.ndarray, area_um2: tuple[float, float], mpp: float) -> np.ndarray:
    """Relabel ``pred`` keeping objects whose area lies in ``area_um2`` (ids 1..n in the old order)."""
    area = np.bincount(pred.ravel()) * mpp**2
    keep = (area >= area_um2[0]) & (area <= area_um2[1])
    keep[0] = False
    return _keep(pred, keep)


def _keep(pred: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Relabel ``pred`` keeping the ids where ``keep`` (indexed by id, 0 = background) holds, as 1..n."""
    lut = np.zeros(len(keep), np.uint32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.uint32)
    return np.asarray(lut[pred])


def evaluate_segmenter_sources(
    folders: list[PathLike],
    *,
    mpp: float = WORKING_MPP,
    weights: PathLike | None = None,
    stain: Literal["none", "macenko", "cnn"] = "cnn",
    stain_target: PathLike | None = None,
    tta: bool = False,
    area_um2: tuple[float, float] | None = RUN_AREA_UM2,
    colour_rule: ColourRule | None = ColourRule(),  # noqa: B008 - frozen dataclass
    glass_rule: GlassRule | None = GlassRule(),  # noqa: B008 - frozen dataclass
    length_rule: LengthRule | None = LengthRule(),  # noqa: B008 - frozen dataclass
    normalizer: Any | None = None,
    precision: Precision = "auto",
    chroma_downsample: int = 2,
) -> dict[str, Any]:
    """Score several labelled folders (one per source) with one protocol; the mean is over sources.

    Each folder is one source (its images' mean is the source's figure); ``mean`` averages the sources, so a
    source with many images does not outweigh the others, and a default chosen on it is chosen on all.
    A folder's ``manifest.json`` ``mpp`` overrides ``mpp``. Defaults are ``wsikit run``'s: CNN normalizer,
    its U-Net, its nuclear area range, its colour, glass and length rules. ``normalizer`` replaces the one ``stain`` names
    (e.g. a :class:`~wsikit.stain.CnnNormalizer` with other options). ``precision``: the networks'
    arithmetic (:mod:`wsikit.models.precision`), ``chroma_downsample``: the CNN's chroma resolution, both as
    ``wsikit run``'s options (until 2026-11-30 evening the CNN ran here at full chroma resolution, 1).

    Returns
    -------
    dict
        ``sources`` (one :func:`evaluate_segmenter` result per folder, with its ``source`` name), ``mean``
        (over sources), ``images`` (every image, tagged with its source) and the settings.
    """
    if not folders:
        raise ConfigError("give at least one labelled folder")
    seg, norm = _load_models(
        stain, weights, stain_target, tta, precision, chroma_downsample, build_normalizer=normalizer is None
    )
    norm = normalizer if normalizer is not None else norm
    start = time.perf_counter()
    sources = []
    for folder in folders:
        res = evaluate_segmenter(
            folder,
            mpp=folder_mpp(folder, default=mpp),
            stain=stain,
            tta=tta,
            area_um2=area_um2,
            colour_rule=colour_rule,
            glass_rule=glass_rule,
            length_rule=length_rule,
            _models=(seg, norm),
        )
        sources.append({"source": Path(folder).name, **res})
    return {
        "mean": {k: float(np.mean([s["mean"][k] for s in sources])) for k in METRICS},
        "sources": sources,
        "images": [{"source": s["source"], **r} for s in sources for r in s["images"]],
        **_settings(seg, norm, stain, tta, area_um2, colour_rule, glass_rule, length_rule, start),
    }
