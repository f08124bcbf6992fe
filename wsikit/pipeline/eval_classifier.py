"""Evaluate nucleus classification on labelled points: the InfoGAN beside the paper's k-means baselines.

A labelled folder holds ``NAME.png`` + ``NAME.points.csv`` (``x,y,class name`` in pixels of the PNG) and
optionally ``NAME.labels.tif`` (uint32 nucleus instances). Without labels the shipped segmenter finds
the nuclei. A point is matched to the nucleus that contains it (the first point wins; points on background
are counted as unmatched). Labels are only read to score: clusters are named by the morphology rule of
:mod:`wsikit.classify.naming`, and each method is also scored under its best one-to-one (Hungarian) mapping.
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from wsikit._typing import PathLike
from wsikit.classify.baselines import cnn_features, kmeans, pixel_features, standardized
from wsikit.classify.crops import nucleus_crops, standardize_stain
from wsikit.classify.infer import CellClassifier
from wsikit.classify.metrics import classification_report, hungarian_mapping
from wsikit.classify.naming import CELL_TYPES, name_clusters
from wsikit.errors import ConfigError
from wsikit.io.annotations import read_imagescope_xml, read_npz_instances, read_points_csv
from wsikit.pipeline._atomic import staged_directory
from wsikit.segment.data import WORKING_MPP, resample
from wsikit.vectorize.measure import measure_nuclei

__all__ = [
    "export_classification_dataset",
    "evaluate_classifier",
    "LabelledNuclei",
    "CLASS_ALIASES",
    "METHODS",
]

log = logging.getLogger(__name__)

CLASS_ALIASES = {
    "epithelial": "epithelial",
    "tumor_any": "epithelial",
    "tumor": "epithelial",
    "lymphocyte": "lymphocyte",
    "stil": "lymphocyte",
    "fibroblast": "fibroblast",
    "nontil_stromal": "fibroblast",
    "stromal": "fibroblast",
}
"""Class names accepted in points files (lower case) -> cell type; others (macrophage, other_nucleus ...) are skipped."""

METHODS = ("infogan", "kmeans-pixels", "kmeans-cnn", "kmeans-morphology")
_NUCLS_NAMES = {0: "tumor_any", 1: "nonTIL_stromal", 2: "sTIL", 3: "other_nucleus"}


def export_classification_dataset(
    name: str, data: PathLike, out: PathLike, *, overwrite: bool = False
) -> int:
    """Write ``nucls`` or ``monusac`` as a labelled folder at 0.25 um/px (PNG, points CSV, labels TIFF)."""
    import tifffile
    from PIL import Image

    from wsikit.io import open_slide
    from wsikit.io.annotations import rasterize_polygons

    root = Path(data)
    items: list[
        tuple[str, npt.NDArray[np.uint8], npt.NDArray[np.uint32], list[tuple[float, float, str]]]
    ] = []
    if name == "nucls":
        for png in sorted((root / "nucls" / "images").glob("*.png")):
            inst, _ = read_npz_instances(root / "nucls" / "labels" / f"{png.stem}.npz")
            image = np.asarray(Image.open(png).convert("RGB"))
            pts = [
                (p.x, p.y, p.label)
                for p in read_points_csv(root / "nucls" / "points" / f"{png.stem}.csv", names=_NUCLS_NAMES)
            ]
            items.append((f"nucls_{png.stem}", image, inst, pts))
        src_mpp = 0.2
    elif name == "monusac":
        for svs in sorted((root / "monusac").glob("*.svs")):
            ann = read_imagescope_xml(svs.with_suffix(".xml"))
            with open_slide(svs) as s:
                w, h = s.dimensions
                image = s.read_region((0, 0), 0, (w, h))
            inst = rasterize_polygons(ann.polygons, (h, w))
            pts = []
            for i, poly in enumerate(ann.polygons, start=1):
                ys, xs = np.nonzero(inst == i)
                if len(ys):  # a pixel inside the polygon nearest to its centroid
                    j = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
                    pts.append((float(xs[j]), float(ys[j]), str(poly.label)))
            items.append((f"monusac_{svs.stem}", image, inst, pts))
        src_mpp = 0.19448
    else:
        raise ConfigError(f"unknown labelled dataset {name!r}; valid: nucls, monusac")
    f = src_mpp / WORKING_MPP
    with staged_directory(Path(out), overwrite=overwrite) as stage:
        for stem, image, inst, pts in items:
            img, lab = resample(image, inst.astype(np.uint32), f)
            Image.fromarray(img).save(stage / f"{stem}.png")
            tifffile.imwrite(stage / f"{stem}.labels.tif", lab, compression="zlib")
            with open(stage / f"{stem}.points.csv", "w", newline="") as fh:
                wr = csv.writer(fh)
                wr.writerow(["x", "y", "class"])
                for x, y, c in pts:
                    wr.writerow([round(x * f, 2), round(y * f, 2), c])
    return len(items)


@dataclass
class LabelledNuclei:
    """Crops of matched nuclei with their true class index, measurements and source image."""

    crops: npt.NDArray[np.uint8]
    truth: npt.NDArray[np.int64]
    area: npt.NDArray[np.float64]
    eccentricity: npt.NDArray[np.float64]
    morphology: npt.NDArray[np.float64]  # (N, D) morphology + intensity columns
    image: list[str]
    points: int
    unmatched: int
    skipped: int
    context_crops: npt.NDArray[np.uint8] | None = None
    """The same crops with the tissue around each nucleus kept (only when loaded with ``context=True``)."""


_MORPH = (
    "area",
    "perimeter",
    "major_axis",
    "minor_axis",
    "eccentricity",
    "solidity",
    "circularity",
    "hematoxylin_od_mean",
    "hematoxylin_od_std",
    "eosin_od_mean",
    "red_mean",
    "green_mean",
    "blue_mean",
)


def load_labelled_nuclei(
    folder: PathLike, *, mpp: float = WORKING_MPP, context: bool = False
) -> LabelledNuclei:
    """Read a labelled folder (see module docstring) and cut the crops of the matched nuclei.

    ``context=True`` also cuts each crop with the tissue around the nucleus kept (``context_crops``; the
    shipped classifier's input whitens it).
    """
    import tifffile
    from PIL import Image

    p = Path(folder)
    if not p.is_dir():
        raise ConfigError(f"{p}: not a folder")
    pngs = sorted(q for q in p.glob("*.png") if q.with_name(q.stem + ".points.csv").exists())
    if not pngs:
        raise ConfigError(f"{p}: no NAME.png with NAME.points.csv beside it")
    segmenter = None
    crops, ctx_crops, truth, area, ecc, morph, names = [], [], [], [], [], [], []
    n_points = unmatched = skipped = 0
    for png in pngs:
        image = np.asarray(Image.open(png).convert("RGB"))
        lab_path = png.with_name(png.stem + ".labels.tif")
        if lab_path.exists():
            labels = tifffile.imread(lab_path).astype(np.uint32)
            if labels.shape != image.shape[:2]:
                raise ConfigError(f"{lab_path}: labels {labels.shape} do not match image {image.shape[:2]}")
            work_img, work_lab, work_mpp, f = image, labels, mpp, 1.0
        else:
            from wsikit.segment.infer import Segmenter

            segmenter = segmenter or Segmenter.from_pretrained()
            f = mpp / segmenter.mpp
            work_img, _ = resample(image, np.zeros(image.shape[:2], np.uint32), f)
            work_lab = segmenter.instances(work_img)
            work_mpp = segmenter.mpp
        ids, cls = [], []
        seen: set[int] = set()
        for pt in read_points_csv(png.with_name(png.stem + ".points.csv")):
            n_points += 1
            t = CLASS_ALIASES.get(pt.label.strip().lower())
            if t is None:
                skipped += 1
                continue
            y, x = int(round(pt.y * f)), int(round(pt.x * f))
            if not (0 <= y < work_lab.shape[0] and 0 <= x < work_lab.shape[1]) or work_lab[y, x] == 0:
                unmatched += 1
                continue
            nid = int(work_lab[y, x])
            if nid in seen:
                continue
            seen.add(nid)
            ids.append(nid)
            cls.append(CELL_TYPES.index(t))
        if not ids:
            continue
        std = standardize_stain(work_img)
        c, got = nucleus_crops(std, work_lab, mpp=work_mpp, ids=np.array(ids))
        if context:
            ctx_crops.append(nucleus_crops(std, work_lab, mpp=work_mpp, ids=got, whiten=False)[0])
        m = measure_nuclei(std, work_lab, mpp=work_mpp, ids=got)
        crops.append(c)
        truth.append(np.array(cls, np.int64))
        area.append(m["area"])
        ecc.append(m["eccentricity"])
        morph.append(np.stack([m[k] for k in _MORPH], axis=1))
        names.extend([png.stem] * len(ids))
    if not crops:
        raise ConfigError(f"{p}: no labelled point lies inside a nucleus")
    return LabelledNuclei(
        np.concatenate(crops),
        np.concatenate(truth),
        np.concatenate(area),
        np.concatenate(ecc),
        np.concatenate(morph),
        names,
        n_points,
        unmatched,
        skipped,
        np.concatenate(ctx_crops) if context else None,
    )


def _score(
    name: str,
    clusters: npt.NDArray[np.int64],
    k: int,
    data: LabelledNuclei,
    seconds: float,
    rule_names: list[str] | None = None,
) -> dict[str, Any]:
    names = rule_names or name_clusters(
        clusters, area=data.area, eccentricity=data.eccentricity, n_clusters=k
    )
    lut = np.array([CELL_TYPES.index(n) for n in names])
    by_rule = classification_report(data.truth, lut[clusters], CELL_TYPES)
    mapping = hungarian_mapping(data.truth, clusters, k, len(CELL_TYPES))
    best = classification_report(data.truth, mapping[clusters], CELL_TYPES)
    return {
        "method": name,
        "cluster_names": names,
        "named_by_rule": by_rule.to_dict(),
        "hungarian": {**best.to_dict(), "mapping": [CELL_TYPES[i] for i in mapping]},
        "seconds": round(seconds, 2),
    }


def evaluate_classifier(
    folder: PathLike,
    *,
    mpp: float = WORKING_MPP,
    weights: PathLike | None = None,
    methods: tuple[str, ...] = METHODS,
    seed: int = 0,
) -> dict[str, Any]:
    """Score the InfoGAN classifier and the k-means baselines on one labelled folder, side by side.

    Returns a dict with the counts (points, matched nuclei per class, unmatched, skipped) and, per method,
    the scores with clusters named by the rule and under the Hungarian mapping.
    """
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ConfigError(f"unknown methods {sorted(unknown)}; valid: {', '.join(METHODS)}")
    clf = CellClassifier.load(weights) if "infogan" in methods else None
    data = load_labelled_nuclei(folder, mpp=mpp, context=clf is not None and not clf.whiten)
    results = []
    for method in methods:
        t0 = time.perf_counter()
        if clf is not None and method == "infogan":
            pred = clf.predict(data.crops if data.context_crops is None else data.context_crops)
            results.append(
                _score(
                    method, pred.cluster, clf.n_clusters, data, time.perf_counter() - t0, clf.cluster_names
                )
            )
            continue
        if method == "kmeans-pixels":
            feats = pixel_features(data.crops)
        elif method == "kmeans-cnn":
            from wsikit.segment.infer import Segmenter

            feats = cnn_features(data.crops, Segmenter.from_pretrained().model)
        else:
            feats = standardized(list(data.morphology.T)).astype(np.float32)
        clusters = kmeans(feats, 3, seed=seed)
        results.append(_score(method, clusters, 3, data, time.perf_counter() - t0))
    counts = np.bincount(data.truth, minlength=len(CELL_TYPES))
    return {
        "folder": str(folder),
        "mpp": mpp,
        "points": data.points,
        "nuclei": int(len(data.truth)),
        "per_class": {c: int(n) for c, n in zip(CELL_TYPES, counts, strict=True)},
        "unmatched_points": data.unmatched,
        "skipped_points": data.skipped,
        "classifier": None
        if clf is None
        else {
            "weights": clf.meta.get("weights"),
            "clusters": clf.n_clusters,
            "cluster_names": clf.cluster_names,
        },
        "results": results,
    }
