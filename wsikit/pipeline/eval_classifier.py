"""Evaluate nucleus classification on labelled points: the labelled classifier, the paper's unsupervised InfoGAN
and the paper's k-means baselines, side by side.

A labelled folder holds ``NAME.png`` + ``NAME.points.csv`` (``x,y,class name`` in pixels of the PNG),
optionally ``NAME.labels.tif`` (uint32 nucleus instances) and ``manifest.json`` (``{"mpp": ...}``). Without
labels the nuclei are segmented as ``wsikit run`` segments them by default. Points are matched to the
nucleus that contains them (:mod:`wsikit.pipeline.labelled_nuclei`); points on background are detection
misses, counted per class. The labelled classifier is scored by its own class names; unsupervised models
(the InfoGAN and k-means) by clusters named with the morphology rule of :mod:`wsikit.classify.naming`, and
also under their best one-to-one (Hungarian) mapping, which uses the labels and is an upper bound.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from wsikit._atomic import staged_directory
from wsikit._typing import PathLike
from wsikit.classify.baselines import cnn_features, kmeans, pixel_features, standardized
from wsikit.classify.crops import CONTEXT_MPP
from wsikit.classify.infer import CellClassifier
from wsikit.classify.metrics import classification_report, hungarian_mapping
from wsikit.classify.naming import CELL_TYPES, name_clusters
from wsikit.datasets.nuclei import WORKING_MPP, folder_mpp, resample, resample_image
from wsikit.errors import ConfigError
from wsikit.io.annotations import read_points_csv
from wsikit.models.precision import Precision
from wsikit.pipeline.labelled_nuclei import CLASS_ALIASES, LabelledNuclei, NucleusMatcher, nucleus_centres_um

__all__ = [
    "export_classification_dataset",
    "evaluate_classifier",
    "load_labelled_nuclei",
    "folder_mpp",
    "LabelledNuclei",
    "CLASS_ALIASES",
    "METHODS",
    "EXPORTABLE",
]

log = logging.getLogger(__name__)

METHODS = ("classifier", "infogan", "kmeans-pixels", "kmeans-cnn", "kmeans-morphology")
"""``classifier``: the labelled cell-type classifier (shipped default or ``weights``); ``infogan``: the
paper's unsupervised InfoGAN (shipped ``infogan-cells`` or ``infogan_weights``); the paper's k-means
baselines, each fitted on the evaluation nuclei themselves with 3 clusters."""
EXPORTABLE = ("nucls", "monusac", "brca_m2c")
BRCA_M2C_MPP = 0.5
"""Resolution BRCA-M2C is exported at (its images are 0.4995-0.5005 um/px)."""


def export_classification_dataset(
    name: str, data: PathLike, out: PathLike, *, split: str | None = None, overwrite: bool = False
) -> int:
    """Write a cell-type-labelled dataset as a labelled folder (the input of :func:`evaluate_classifier`).

    ``nucls`` and ``monusac`` go out at 0.25 um/px with their instance labels (PNG, points CSV, labels
    TIFF); ``brca_m2c`` (``split`` train or val; points only, no outlines) at 0.5 um/px, its classes
    written as the dataset names them (lymphocyte, tumor, stromal: scored as lymphocyte, epithelial,
    fibroblast). Each folder gets a ``manifest.json`` with its mpp, source and class counts.

    Raises
    ------
    ConfigError
        Unknown dataset, a split given for a dataset without splits (or a bad one for BRCA-M2C), an empty
        split or a bad points file (nothing is written then).
    """
    if name == "brca_m2c":
        return _export_brca_m2c(data, out, split=split or "train", overwrite=overwrite)
    if split is not None:
        raise ConfigError(f"{name} has no splits; `split` applies to brca_m2c")
    import tifffile
    from PIL import Image

    from wsikit.datasets.cell_classes import load_monusac_classes, load_nucls_classes

    if name == "nucls":
        samples = load_nucls_classes(data)
    elif name == "monusac":
        samples = load_monusac_classes(data)
    else:
        raise ConfigError(f"unknown labelled dataset {name!r}; valid: {', '.join(EXPORTABLE)}")
    items = [(s.name, s.image, s.instances, s.points) for s in samples]
    src_mpp = samples[0].mpp if samples else WORKING_MPP
    f = src_mpp / WORKING_MPP
    with staged_directory(Path(out), overwrite=overwrite) as stage:
        _write_manifest(stage, name, WORKING_MPP, len(items), [p for *_, pts in items for p in pts])
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


def _write_manifest(
    stage: Path, source: str, mpp: float, images: int, points: list[tuple[float, float, str]], **extra: Any
) -> None:
    counts: dict[str, int] = {}
    for _, _, c in points:
        counts[c] = counts.get(c, 0) + 1
    manifest = {"source": source, "mpp": mpp, "images": images, "points": counts, **extra}
    (stage / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _export_brca_m2c(data: PathLike, out: PathLike, *, split: str, overwrite: bool) -> int:
    from PIL import Image

    from wsikit.datasets import load_brca_m2c

    samples = load_brca_m2c(data, split)  # reads and checks everything before anything is written
    with staged_directory(Path(out), overwrite=overwrite) as stage:
        pts_all: list[tuple[float, float, str]] = []
        for smp in samples:
            f = smp.mpp / BRCA_M2C_MPP
            img = resample_image(smp.image, f)
            Image.fromarray(img).save(stage / f"{smp.name}.png")
            with open(stage / f"{smp.name}.points.csv", "w", newline="") as fh:
                wr = csv.writer(fh)
                wr.writerow(["x", "y", "class"])
                for x, y, c in zip(smp.x, smp.y, smp.label, strict=True):
                    wr.writerow([round(float(x) * f, 2), round(float(y) * f, 2), str(c)])
                    pts_all.append((x, y, str(c)))
        _write_manifest(
            stage,
            f"brca_m2c {split}",
            BRCA_M2C_MPP,
            len(samples),
            pts_all,
            patients=sorted({s.patient for s in samples}),
            classes={"tumor": "epithelial", "lymphocyte": "lymphocyte", "stromal": "fibroblast"},
        )
    return len(samples)


def load_labelled_nuclei(
    folder: PathLike,
    *,
    mpp: float | None = None,
    context: bool = False,
    stain: Literal["cnn", "none"] = "cnn",
    context_mpp: tuple[float, ...] = (CONTEXT_MPP,),
    field_classifier: Any = None,
    segmenter_weights: PathLike | None = None,
) -> LabelledNuclei:
    """Read a labelled folder (see module docstring), match its points to nuclei and cut their crops.

    ``mpp`` None reads it from the folder's ``manifest.json`` (written by ``wsikit export-classes``), else
    0.25. ``context=True`` also cuts the 7-channel context crops. Nuclei are segmented by ``stain``'s path
    unless the folder gives ``NAME.labels.tif`` (with ``segmenter_weights`` if given, else the shipped U-Net for
    ``stain``). ``field_classifier`` (see
    :class:`~wsikit.pipeline.labelled_nuclei.NucleusMatcher`) classifies each field's matched nuclei.
    """
    import tifffile
    from PIL import Image

    p = Path(folder)
    pngs = _labelled_pngs(p)
    mpp = folder_mpp(p) if mpp is None else mpp

    def fields() -> Any:
        for png in pngs:
            image = np.asarray(Image.open(png).convert("RGB"))
            lab_path = png.with_name(png.stem + ".labels.tif")
            labels = None
            if lab_path.exists():
                labels = tifffile.imread(lab_path).astype(np.uint32)
                if labels.shape != image.shape[:2]:
                    raise ConfigError(
                        f"{lab_path}: labels {labels.shape} do not match image {image.shape[:2]}"
                    )
            pts = [(q.x, q.y, q.label) for q in read_points_csv(png.with_name(png.stem + ".points.csv"))]
            yield png.stem, image, mpp, labels, pts

    try:
        matcher = NucleusMatcher(
            stain=stain,
            context=context,
            context_mpp=context_mpp,
            field_classifier=field_classifier,
            segmenter_weights=segmenter_weights,
        )
        return matcher.match(fields())
    except ConfigError as exc:
        if "no labelled point" in str(exc):
            raise ConfigError(f"{p}: no labelled point lies inside a nucleus") from None
        raise


def _labelled_pngs(p: Path) -> list[Path]:
    if not p.is_dir():
        raise ConfigError(f"{p}: not a folder")
    pngs = sorted(q for q in p.glob("*.png") if q.with_name(q.stem + ".points.csv").exists())
    if not pngs:
        raise ConfigError(f"{p}: no NAME.png with NAME.points.csv beside it")
    return pngs


def _report(truth: npt.NDArray[np.int64], pred: npt.NDArray[np.int64]) -> dict[str, Any]:
    return classification_report(truth, pred, CELL_TYPES).to_dict()


def _score_clusters(
    name: str,
    clusters: npt.NDArray[np.int64],
    k: int,
    data: LabelledNuclei,
    seconds: float,
    names: list[str] | None = None,
) -> dict[str, Any]:
    """Scores of an unsupervised method: clusters named by the rule (or ``names``) and by the Hungarian map."""
    names = names or name_clusters(clusters, area=data.area, eccentricity=data.eccentricity, n_clusters=k)
    lut = np.array([CELL_TYPES.index(n) for n in names])
    mapping = hungarian_mapping(data.truth, clusters, k, len(CELL_TYPES))
    return {
        "method": name,
        "labels_used": "none (clusters named by the morphology rule)",
        "cluster_names": names,
        "scores": _report(data.truth, lut[clusters]),
        "hungarian": {**_report(data.truth, mapping[clusters]), "mapping": [CELL_TYPES[i] for i in mapping]},
        "seconds": round(seconds, 2),
    }


def _neighbourhood_classifier(clf: CellClassifier) -> Any:
    """Per field: every segmented nucleus through the network, then the neighbourhood stage (as ``wsikit run``
    does over a slide); returns the cell types of the matched nuclei ``ids``."""

    def classify(
        std: npt.NDArray[np.uint8], labels: npt.NDArray[np.uint32], mpp: float, ids: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int64]:
        present = np.unique(labels)
        crops, got = clf.crops(std, labels, mpp=mpp, ids=present[present > 0])
        network = clf.probabilities(crops, with_prior=False)
        pred = clf.refine(network, nucleus_centres_um(labels, got, mpp))
        row = {int(g): i for i, g in enumerate(got)}
        return pred.cell_type[[row[int(i)] for i in ids]]

    return classify


def evaluate_classifier(
    folder: PathLike,
    *,
    mpp: float | None = None,
    weights: PathLike | None = None,
    infogan_weights: PathLike | None = None,
    methods: tuple[str, ...] = METHODS,
    stain: Literal["cnn", "none"] = "cnn",
    seed: int = 0,
    precision: Precision = "auto",
    segmenter_weights: PathLike | None = None,
) -> dict[str, Any]:
    """Score the labelled classifier, the unsupervised InfoGAN and the k-means baselines on one labelled folder.

    Parameters
    ----------
    folder
        A labelled folder (see the module docstring).
    mpp
        Its resolution; None reads ``manifest.json`` (else 0.25).
    weights
        The labelled (context) classifier to score as ``classifier`` (default: the shipped default).
    infogan_weights
        The unsupervised InfoGAN to score as ``infogan`` (default: the shipped ``infogan-cells``).
    stain
        Segmentation path for folders without instance labels (``cnn``: ``wsikit run``'s default).
    segmenter_weights
        U-Net weights for that segmentation (default: the shipped ones for ``stain``).
    precision
        Arithmetic of the classifier networks, as ``wsikit run``'s ``precision`` (:mod:`wsikit.models.precision`).

    Returns
    -------
    dict
        Counts (points, matched nuclei per class, detection recall per class, unmatched, skipped) and per
        method accuracy, balanced accuracy, macro-F1, per-class precision / sensitivity / F1 and the
        confusion matrix (rows truth, columns prediction, in :data:`CELL_TYPES` order).

    Raises
    ------
    WeightsError
        ``weights`` is the unsupervised format, or ``infogan_weights`` a labelled classifier.
    """
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ConfigError(f"unknown methods {sorted(unknown)}; valid: {', '.join(METHODS)}")
    _labelled_pngs(Path(folder))  # a bad folder is reported before any model loads
    clf = (
        CellClassifier.load(weights, input="context", precision=precision)
        if "classifier" in methods
        else None
    )
    gan = None
    if "infogan" in methods:
        gan = (
            CellClassifier.from_weights(infogan_weights, input="nucleus", precision=precision)
            if infogan_weights
            else CellClassifier.from_pretrained("infogan-cells", input="nucleus", precision=precision)
        )
    data = load_labelled_nuclei(
        folder,
        mpp=mpp,
        # with a neighbourhood stage the field classifier cuts every nucleus's crops itself: not twice
        context=clf is not None and clf.input == "context" and clf.neighbourhood is None,
        stain=stain,
        context_mpp=clf.context_mpp if clf is not None and clf.context_mpp else (CONTEXT_MPP,),
        field_classifier=_neighbourhood_classifier(clf) if clf is not None and clf.neighbourhood else None,
        segmenter_weights=segmenter_weights,
    )
    results = []
    for method in methods:
        t0 = time.perf_counter()
        if method == "classifier" and clf is not None:
            if "field_class" in data.extra:  # the neighbourhood stage: from every nucleus of each field
                cell_type = data.extra["field_class"]
            else:
                cell_type = clf.predict(
                    data.context if clf.input == "context" and data.context is not None else data.crops
                ).cell_type
            results.append(
                {
                    "method": "classifier",
                    "neighbourhood_stage": clf.neighbourhood is not None,
                    "labels_used": "training (BRCA-M2C train split)",
                    "weights": Path(str(clf.meta["weights"])).name,
                    "scores": _report(data.truth, cell_type),
                    "seconds": round(time.perf_counter() - t0, 2),
                }
            )
            continue
        if method == "infogan" and gan is not None:
            pred = gan.predict(data.crops)
            row = _score_clusters(
                method, pred.cluster, gan.n_clusters, data, time.perf_counter() - t0, gan.cluster_names
            )
            row["weights"] = Path(str(gan.meta["weights"])).name
            results.append(row)
            continue
        if method == "kmeans-pixels":
            feats = pixel_features(data.crops)
        elif method == "kmeans-cnn":
            from wsikit.segment.infer import Segmenter

            feats = cnn_features(data.crops, Segmenter.from_pretrained().model)
        else:
            feats = standardized(list(data.morphology.T)).astype(np.float32)
        clusters = kmeans(feats, 3, seed=seed)
        results.append(_score_clusters(method, clusters, 3, data, time.perf_counter() - t0))
    counts = np.bincount(data.truth, minlength=len(CELL_TYPES))
    return {
        "folder": str(folder),
        "mpp": folder_mpp(folder) if mpp is None else mpp,
        "segmentation": "instance labels of the folder"
        if any(Path(folder).glob("*.labels.tif"))
        else f"stain={stain}" + (f", segmenter={Path(segmenter_weights).name}" if segmenter_weights else ""),
        "classifier_precision": next((c.precision for c in (clf, gan) if c is not None), None),
        "points": data.points,
        "nuclei": int(len(data.truth)),
        "per_class": {c: int(n) for c, n in zip(CELL_TYPES, counts, strict=True)},
        "points_per_class": {c: int(n) for c, n in zip(CELL_TYPES, data.points_per_class, strict=True)},
        "detection_recall": data.detection_recall(),
        "unmatched_points": data.unmatched,
        "skipped_points": data.skipped,
        "points_sharing_a_nucleus": data.duplicates,
        "results": results,
    }
