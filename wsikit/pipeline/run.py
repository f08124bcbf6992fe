"""``run_slide``: one slide end to end - tissue, tiles, stain normalization, segmentation, stitching,
vectorization + measurements, InfoGAN classification, exports and report - resumable after any crash.

Layout of the output folder ``OUT`` (default ``SLIDE_NAME.wsikit`` beside the slide)::

    OUT/result.zarr        OME-Zarr: the slide's overview (1/8 resolution; the normalized slide at full
                           resolution with --save-normalized), labels/nuclei (uint32) and
                           labels/cell_types (uint8, colors + names) at full resolution
    OUT/nuclei.geojson     QuPath detections with classes and measurements
    OUT/cells.parquet      the same rows as a GeoParquet table
    OUT/summary.json       slide-level statistics, models, run time per stage
    OUT/cell_types.png, OUT/density_<class>.png, OUT/report.html
    OUT/DONE               written last: hashes of the inputs, models and options

Work happens in ``OUT/.work``: the segmentation journal (pending nuclei, tiles done), one Parquet part
per label chunk for vectorization + classification, and the outputs in progress. A run killed at any
point continues from there; finished outputs are moved into ``OUT`` at the end and ``DONE`` written last.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from wsikit import __version__
from wsikit._atomic import check_output_parent
from wsikit._typing import PathLike
from wsikit.classify.crops import fit_stain_source, standardize_stain
from wsikit.classify.infer import CellClassifier
from wsikit.classify.naming import CELL_TYPE_COLORS, CELL_TYPES
from wsikit.errors import ConfigError, OutputExistsError, SlideReadError
from wsikit.io import open_slide
from wsikit.io.damage import DamageLog
from wsikit.io.omezarr import OVERVIEW_DOWNSAMPLE, NucleusSource, OmeZarrStore
from wsikit.io.result import ResultStore, RunFolder
from wsikit.io.slide import Slide
from wsikit.models.precision import resolve_precision
from wsikit.pipeline._run_state import (
    RunLock,
    fingerprint_file,
    fingerprint_slide,
    key_of,
    read_done,
    write_done,
)
from wsikit.pipeline.export import CLASS_PROBABILITY, NucleusTableWriter, store_chunk_vectorizer
from wsikit.pipeline.segment import plan_segmentation, segment_into_store, write_slide_overview
from wsikit.segment.artefacts import ColourRule, GlassRule, LengthRule
from wsikit.segment.infer import Segmenter
from wsikit.stain.base import StainFitError
from wsikit.stain.cnn import CnnNormalizer
from wsikit.tiling import tissue_mask
from wsikit.vectorize.chunked import NucleusBatch, Window
from wsikit.vectorize.measure import MEASUREMENT_UNITS

__all__ = ["RunConfig", "RunResult", "run_slide", "default_output", "STAGES", "OUTPUT_FILES"]

log = logging.getLogger(__name__)

STAGES = ("tissue", "segment", "classify", "neighbourhood", "labels", "export", "report")
"""The stages of a run, in order (``neighbourhood`` runs when the classifier has that stage, as the default does)."""
OUTPUT_FILES = RunFolder.OUTPUT_FILES
STAIN_METHODS = ("cnn", "macenko", "reinhard", "none")

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Options of :func:`run_slide` (those that change results are part of the DONE hash)."""

    stain: str = "cnn"
    device: str = "cpu"
    batch_size: int = 4
    workers: int = 2
    slide_mpp: float | None = None
    chunk: int = 1024
    min_tissue: float = 0.01
    segmenter_weights: str | None = None
    classifier_weights: str | None = None
    normalizer_weights: str | None = None
    stain_target: str | None = None
    save_normalized: bool = False
    min_nucleus_um2: float = 7.5
    max_nucleus_um2: float = 400.0
    tta: bool = False
    max_damaged: float = 0.05
    """Largest share of the tissue that unreadable (corrupt) tiles may cover before the slide fails."""
    colour_filter: bool = True
    """Drop segmented objects whose raw colour no nucleus has (pen ink, eosin fragments)."""
    glass_filter: bool = True
    """Drop segmented objects lying on glass (more than 80% of a 4 um ring around them): fibres, fragments."""
    length_filter: bool = True
    """Drop segmented objects longer than any nucleus (:class:`~wsikit.segment.artefacts.LengthRule`): fold
    edges, fibre strands."""
    chroma_downsample: int = 2
    """The CNN normalizer predicts chroma at 1/this resolution (lightness stays full): a quarter of its network
    cost at 2, with segmentation as accurate (docs/segmentation.md)."""
    precision: str = "auto"
    """Arithmetic of the stain CNN, the U-Net and the cell-type networks (:mod:`wsikit.models.precision`):
    ``auto`` is bf16 on CUDA and on CPUs with native bf16, float32 elsewhere; the result's fingerprint holds the
    resolved one."""

    def __post_init__(self) -> None:
        if self.stain not in STAIN_METHODS:
            raise ConfigError(f"stain must be one of {', '.join(STAIN_METHODS)}, got {self.stain!r}")
        if self.batch_size <= 0 or self.workers <= 0:
            raise ConfigError(
                f"batch_size and workers must be positive, got {self.batch_size}, {self.workers}"
            )
        if self.slide_mpp is not None and not 0 < self.slide_mpp < 100:
            raise ConfigError(f"mpp must be a positive number of microns per pixel, got {self.slide_mpp}")
        if not 0 <= self.min_nucleus_um2 < self.max_nucleus_um2:
            raise ConfigError(
                f"nucleus area limits must satisfy 0 <= min < max, got {self.min_nucleus_um2}, {self.max_nucleus_um2}"
            )
        if self.chunk <= 0 or self.chunk % 16:
            raise ConfigError(f"chunk must be a positive multiple of 16, got {self.chunk}")
        resolve_precision(self.precision, "cpu")  # checks the name
        if not 0 <= self.max_damaged <= 1:
            raise ConfigError(f"max_damaged must be a share between 0 and 1, got {self.max_damaged}")

    def result_options(self) -> dict[str, Any]:
        """Options that can change the outputs (not batch size or workers)."""
        d = asdict(self)
        # weights and targets enter through their sha256 (models); their paths do not matter
        for k in (
            "batch_size",
            "workers",
            "device",
            "segmenter_weights",
            "classifier_weights",
            "normalizer_weights",
            "stain_target",
            "max_damaged",  # decides whether a damaged slide fails, not what a finished one holds
        ):
            d.pop(k)
        d["device_type"] = "cuda" if self.device.startswith("cuda") else "cpu"
        d["precision"] = resolve_precision(self.precision, d["device_type"])
        return d


@dataclass(frozen=True)
class RunResult:
    """What :func:`wsikit.run_slide` returns: the output folder, its summary, and whether it was already done."""

    out: Path
    summary: dict[str, Any]
    skipped: bool = False

    @property
    def nuclei(self) -> int:
        """Number of nuclei found."""
        return int(self.summary["nuclei"])

    def open(self) -> ResultStore:
        """The finished folder as a :class:`~wsikit.io.result.ResultStore`."""
        return ResultStore(self.out)


def default_output(slide: PathLike) -> Path:
    """``SLIDE_NAME.wsikit`` beside the slide (the slide's name without its last suffix)."""
    p = Path(slide)
    return p.with_name((p.stem if p.suffix else p.name) + ".wsikit")


def _micro_batch(cfg: RunConfig) -> int | None:
    """Images per network call: 1 on the CPU (same speed, a quarter of the activation memory of 4)."""
    return None if cfg.device.startswith("cuda") else 1


def _in_micro_batches(fn: Callable[[Any], Any], step: int | None) -> Callable[[Any], Any]:
    if step is None:
        return fn

    def run(images: Any) -> Any:
        import torch

        return torch.cat([fn(images[i : i + step]) for i in range(0, images.shape[0], step)])

    return run


@dataclass
class _Models:
    segmenter: Segmenter
    classifier: CellClassifier
    normalize: Callable[[Any], Any] | None
    info: dict[str, Any]


def _weights_info(meta: dict[str, Any]) -> dict[str, str]:
    """File name and fingerprint of the weights a loaded model came from (its ``meta["weights"]``)."""
    path = Path(meta["weights"])
    return {"weights": path.name, "sha256": fingerprint_file(path)}


def _load_models(cfg: RunConfig, slide: Slide) -> _Models:
    seg = Segmenter.load(
        cfg.segmenter_weights, stain=cfg.stain, device=cfg.device, tta=cfg.tta, precision=cfg.precision
    )
    clf = CellClassifier.load(cfg.classifier_weights, device=cfg.device, precision=cfg.precision)
    info: dict[str, Any] = {
        "segmenter": _weights_info(seg.meta),
        "classifier": {**_weights_info(clf.meta), "cluster_names": clf.cluster_names},
        "normalizer": {"method": cfg.stain},
    }
    normalize = None
    if cfg.stain == "none" and cfg.save_normalized:
        raise ConfigError("`save_normalized` needs a stain method (`stain` is none)")
    if cfg.stain != "none":
        from wsikit.sample import sample_slide_path
        from wsikit.stain.factory import make_normalizer

        if cfg.stain == "cnn":
            norm = make_normalizer(
                "cnn",
                weights=cfg.normalizer_weights,
                device=cfg.device,
                chroma_downsample=cfg.chroma_downsample,
                precision=cfg.precision,  # type: ignore[arg-type]  # checked in RunConfig
            )
            info["normalizer"].update(_weights_info(cast(CnnNormalizer, norm).meta))

            def normalize(images: Any) -> Any:
                return norm.transform(images)
        else:
            target = Path(cfg.stain_target) if cfg.stain_target else sample_slide_path()
            norm = make_normalizer(cfg.stain, target=target, device=cfg.device)  # type: ignore[arg-type]
            info["normalizer"].update(target=target.name, sha256=fingerprint_file(target))
            overview, _ = slide.read_overview(2048)
            try:
                source = norm.fit_source(overview)
            except StainFitError:  # (almost) no tissue: nothing to normalize; leave the pixels as they are
                log.warning(
                    "%s: too little tissue to fit %s statistics; tiles are not normalized", slide, cfg.stain
                )
                source = None

            def normalize(images: Any) -> Any:
                return images if source is None else norm.transform(images, source=source)

    batched = None if normalize is None else _in_micro_batches(normalize, _micro_batch(cfg))
    return _Models(seg, clf, batched, info)


# ------------------------------------------------------------------ per-chunk parts
_MEAS = list(MEASUREMENT_UNITS)


def _part_path(parts: Path, y: int, x: int) -> Path:
    return parts / f"{y:09d}_{x:09d}.parquet"


def _write_part(path: Path, batch: NucleusBatch) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely

    cols: dict[str, Any] = {"nucleus_id": pa.array(batch.ids, pa.int64())}
    for k in ("centroid_x", "centroid_y", *_MEAS):
        cols[k] = pa.array(batch.columns[k], pa.float64())
    n = len(batch)
    cols["class"] = pa.array(batch.extra.get("class", np.zeros(n, np.int64)), pa.int64())
    cols["class_probability"] = pa.array(batch.extra.get("class_probability", np.zeros(n)), pa.float64())
    cols["cluster"] = pa.array(batch.extra.get("cluster", np.zeros(n, np.int64)), pa.int64())
    if "network_probability" in batch.extra:
        network = np.asarray(batch.extra["network_probability"])
        for j, name in enumerate(NETWORK_COLUMNS):
            cols[name] = pa.array(network[:, j], pa.float64())
    cols["geometry"] = pa.array(
        shapely.to_wkb(np.asarray(batch.polygons, dtype=object)) if n else [], pa.binary()
    )
    tmp = path.with_name(path.name + ".partial")
    pq.write_table(pa.table(cols), tmp)
    tmp.replace(path)


NETWORK_COLUMNS = tuple(f"network_p_{t}" for t in CELL_TYPES)
"""Part columns of the classifier network's own probabilities (no class prior), kept for the neighbourhood
stage when the classifier has one."""


def _refine_parts(part_files: list[Path], clf: CellClassifier, mpp: float) -> None:
    """The neighbourhood stage over the whole slide: every part's classes from the network probabilities
    and centroids of all nuclei. Idempotent (always from the stored network probabilities), so a crash midway
    is repaired by running it again; each part is replaced atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    # the features need every nucleus at once, but only these few columns: the polygons stay on disk, and
    # each part is read whole again only when it is rewritten (memory: one part at a time)
    wanted = [*NETWORK_COLUMNS, "centroid_x", "centroid_y"]
    sizes = [pq.read_metadata(p).num_rows for p in part_files]
    full = [pq.read_table(p, columns=wanted) for p, n in zip(part_files, sizes, strict=True) if n]
    if not full:  # (a chunk without nuclei has no network columns)
        return
    columns = {c: np.concatenate([t.column(c).to_numpy() for t in full]) for c in wanted}
    prob = np.stack([columns[c] for c in NETWORK_COLUMNS], axis=1)
    xy = np.stack([columns["centroid_x"], columns["centroid_y"]], axis=1)
    pred = clf.refine(prob, xy * mpp)
    new = {
        "class": pa.array(pred.cell_type, pa.int64()),
        "class_probability": pa.array(pred.probability, pa.float64()),
        "cluster": pa.array(pred.cluster, pa.int64()),
    }
    start = 0
    for path, n in zip(part_files, sizes, strict=True):
        if n:
            table = pq.read_table(path)
            for name, values in new.items():
                table = table.set_column(table.column_names.index(name), name, values.slice(start, n))
            tmp = path.with_name(path.name + ".partial")
            pq.write_table(table, tmp)
            tmp.replace(path)
        start += n


def _read_part(path: Path) -> NucleusBatch:
    import pyarrow.parquet as pq
    import shapely

    t = pq.read_table(path)
    d = {k: t.column(k).to_numpy() for k in t.column_names if k != "geometry"}
    geoms = (
        list(shapely.from_wkb(np.asarray(t.column("geometry").to_pylist(), dtype=object)))
        if t.num_rows
        else []
    )
    return NucleusBatch(
        ids=d["nucleus_id"].astype(np.int64),
        polygons=geoms,
        columns={k: d[k].astype(np.float64) for k in ("centroid_x", "centroid_y", *_MEAS)},
        extra={
            "class": d["class"],
            "class_probability": d["class_probability"],
            "cluster": d["cluster"],
            **(
                {"network_probability": np.stack([d[c] for c in NETWORK_COLUMNS], axis=1)}
                if NETWORK_COLUMNS[0] in d
                else {}
            ),
        },
    )


def _classify_window(
    clf: CellClassifier, source: Any, mpp: float
) -> Callable[[Window], dict[str, npt.NDArray[np.generic]]]:
    def on_window(win: Window) -> dict[str, npt.NDArray[np.generic]]:
        if clf.whiten:
            # crops are whitened outside their nucleus: standardizing the nuclei's own pixels is enough
            owned = np.zeros(int(win.labels.max()) + 1, bool)
            owned[win.local_ids] = True
            mask = owned[win.labels]
            image = win.image.copy()
            pixels = win.image[mask][None]
            image[mask] = (standardize_stain(pixels, source=source) if source is not None else pixels)[0]
        else:  # the crops keep the surroundings (the window's halo covers the 64 um context field)
            image = standardize_stain(win.image, source=source) if source is not None else win.image
        crops, _ = clf.crops(image, win.labels, mpp=mpp, ids=win.local_ids)
        network = clf.probabilities(crops, with_prior=False)
        pred = clf.decide(network)
        out: dict[str, npt.NDArray[np.generic]] = {
            "class": pred.cell_type,
            "class_probability": pred.probability.astype(np.float64),
            "cluster": pred.cluster,
        }
        if clf.neighbourhood is not None:  # kept for the neighbourhood stage, which needs the whole slide
            out["network_probability"] = network
        return out

    return on_window


# ------------------------------------------------------------------ the run
def run_slide(
    slide_path: PathLike,
    out: PathLike | None = None,
    *,
    config: RunConfig | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the whole pipeline on one slide; returns the summary (``summary.json``).

    A finished output with the same inputs, models and options is left as is (the summary is returned
    with ``"skipped": True``); ``overwrite`` redoes it.

    Raises
    ------
    SlideOpenError, UnsupportedFormatError
        Missing, unreadable or truncated slide.
    ConfigError
        The slide states no mpp and ``config.slide_mpp`` is not given; bad options.
    OutputExistsError
        ``out`` holds a finished run made differently (without ``overwrite``), or another run holds it.
    StoreError
        ``out`` cannot be created.
    """
    cfg = config or RunConfig()
    slide_p = Path(slide_path)
    out_p = Path(out) if out is not None else default_output(slide_p)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with open_slide(slide_p) as slide:  # fails first, with a clear message, on a bad slide
        mpp = cfg.slide_mpp if cfg.slide_mpp is not None else slide.mpp_x
        if mpp is None:
            raise ConfigError(f"{slide_p}: the slide does not state its microns per pixel; give `mpp`")
        check_output_parent(out_p)
        out_p.mkdir(exist_ok=True)
        with RunLock(out_p):
            models = _load_models(cfg, slide)
            fp = {
                "slide": {"name": slide_p.name, "sha256": fingerprint_slide(slide_p)},
                "models": models.info,
                "options": cfg.result_options(),
                "wsikit": __version__,
            }
            key = key_of(fp)
            done = read_done(out_p)
            if done is not None and not overwrite:
                if done.get("key") == key:
                    summary: dict[str, Any] = json.loads(RunFolder(out_p).summary.read_text())
                    return {**summary, "skipped": True, "out": str(out_p)}
                raise OutputExistsError(
                    f"{out_p}: holds a finished run made with other inputs, models or options; use `overwrite`"
                )
            if overwrite or done is not None:
                _clear(out_p)
            staging = RunFolder(out_p).work
            work = staging.root
            if work.exists() and (not staging.key.exists() or staging.key.read_text().strip() != key):
                log.warning("%s: discarding unfinished work made with other inputs or options", work)
                shutil.rmtree(work)
            work.mkdir(exist_ok=True)
            staging.key.write_text(key)
            # corrupt tiles are read as glass and recorded (kept in the work folder across a resume)
            slide.skip_damaged(DamageLog(staging.damage_log))
            job = _RunJob(slide, slide_p, staging, cfg, models, float(mpp), timings, progress)
            summary = _run(job)
            timings["total"] = round(time.perf_counter() - t0, 2)
            summary["seconds"] = timings
            staging.summary.write_text(json.dumps(summary, indent=2) + "\n")
            _finish(work, out_p)
            write_done(out_p, fp)
    return {**summary, "out": str(out_p)}


def _clear(out: Path) -> None:
    folder = RunFolder(out)
    folder.done.unlink(missing_ok=True)  # first: the folder no longer looks finished
    for p in sorted(out.iterdir()):
        if folder.is_output(p):
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)
    shutil.rmtree(folder.work.root, ignore_errors=True)


def _finish(work: Path, out: Path) -> None:
    folder = RunFolder(out)
    for p in sorted(work.iterdir()):
        if folder.is_output(p):
            target = out / p.name
            if target.is_dir():
                shutil.rmtree(target)
            p.replace(target)
    shutil.rmtree(work)


@dataclass(frozen=True)
class _RunJob:
    """One slide's run in its staging folder: what every stage reads."""

    slide: Slide
    slide_path: Path
    staging: RunFolder
    cfg: RunConfig
    models: _Models
    mpp: float
    timings: dict[str, float]
    progress: Progress | None

    def tick(self, stage: str) -> Callable[[int, int], None]:
        """A progress callback ``(done, total)`` for ``stage``."""
        report = self.progress
        return (lambda d, t: report(stage, d, t)) if report is not None else (lambda d, t: None)

    def stage(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` as the stage ``name``, timing it."""
        t = time.perf_counter()
        result = fn()
        self.timings[name] = round(time.perf_counter() - t, 2)
        log.info("stage %s: %.1f s", name, self.timings[name])
        return result


def _run(job: _RunJob) -> dict[str, Any]:
    """The stages of one slide, each skipped or continued when a previous attempt finished or began it."""
    from wsikit.pipeline.report import read_part_columns, write_report, write_summary

    slide, cfg, staging = job.slide, job.cfg, job.staging
    tissue = job.stage("tissue", lambda: tissue_mask(slide))
    store = job.stage("segment", lambda: _segment(job, tissue))
    _check_damage(slide, tissue, cfg)
    seg_stats = json.loads(staging.segment_stats.read_text()) if staging.segment_stats.exists() else {}
    if cfg.save_normalized and job.models.normalize is not None:
        _save_normalized(job, store)
    staging.parts.mkdir(exist_ok=True)
    chunks = sorted(store.written_chunks("nuclei"))
    job.stage("classify", lambda: _classify(job, store, chunks))
    part_files = [_part_path(staging.parts, r * store.chunk, q * store.chunk) for r, q in chunks]
    if job.models.classifier.neighbourhood is not None:
        job.stage("neighbourhood", lambda: _refine_parts(part_files, job.models.classifier, job.mpp))
    job.stage("labels", lambda: _write_cell_types(store, chunks, part_files, cfg.workers))
    job.stage("export", lambda: _export(staging.root, part_files, job.slide_path, slide, job.mpp))
    damage = _check_damage(slide, tissue, cfg)
    cols = read_part_columns(part_files)
    summary = write_summary(
        staging.root,
        cols,
        slide_p=job.slide_path,
        slide=slide,
        mpp=job.mpp,
        tissue=tissue,
        models=job.models.info,
        options=cfg.result_options(),
        segmentation={k: v for k, v in seg_stats.items() if k != "performance"},
        performance={"segment": seg_stats.get("performance", {})},
        damaged=damage,
    )
    summary["seconds"] = job.timings
    job.stage("report", lambda: write_report(staging.root, cols, slide=slide, store=store, summary=summary))
    return summary


def _segment(job: _RunJob, tissue: Any) -> OmeZarrStore:
    """The nucleus labels in the staging store: continued from the journal after a crash, skipped when done."""
    slide, cfg, staging, mpp = job.slide, job.cfg, job.staging, job.mpp
    store_path, journal, done = staging.store, staging.segment_journal, staging.stage_done("segment")
    if done.exists():
        return OmeZarrStore.open(store_path, mode="r+")
    if store_path.exists() and journal.exists():
        store = OmeZarrStore.open(store_path, mode="r+")
    else:
        journal.unlink(missing_ok=True)
        w0, h0 = slide.dimensions
        store = OmeZarrStore.create(
            store_path,
            height=h0,
            width=w0,
            chunk=cfg.chunk,
            mpp=(mpp, mpp),
            image_downsample=1 if cfg.save_normalized else OVERVIEW_DOWNSAMPLE,
            overwrite=True,
            name=f"{job.slide_path.name} wsikit result",
        )
        store.create_label("nuclei", dtype=np.uint32)
        store.set_source(
            NucleusSource(
                slide=job.slide_path.resolve(),
                slide_id=job.slide_path.stem,
                bounds_offset=(float(slide.bounds_offset[0]), float(slide.bounds_offset[1])),
                slide_mpp=mpp,
            )
        )
    segmenter = job.models.segmenter
    plan = plan_segmentation(
        slide, tissue, working_mpp=segmenter.mpp, slide_mpp=mpp, min_tissue=cfg.min_tissue
    )
    stats = segment_into_store(
        slide,
        store,
        plan,
        segmenter,
        normalize=job.models.normalize,
        batch_size=cfg.batch_size,
        workers=cfg.workers,
        journal=journal,
        progress=job.tick("segment"),
        micro_batch=_micro_batch(cfg),
        area_um2=(cfg.min_nucleus_um2, cfg.max_nucleus_um2),
        colour_rule=ColourRule() if cfg.colour_filter else None,
        glass_rule=GlassRule() if cfg.glass_filter else None,
        length_rule=LengthRule() if cfg.length_filter else None,
    )
    store.build_pyramid("nuclei", workers=cfg.workers)
    store.set_label_metadata("nuclei", properties={0: {"name": "background"}}, colors={0: (0, 0, 0, 0)})
    if not cfg.save_normalized:  # the slide's overview, so that viewers show the labels on the tissue
        write_slide_overview(slide, store, workers=cfg.workers)
    staging.segment_stats.write_text(json.dumps(stats))
    done.touch()
    return store


def _save_normalized(job: _RunJob, store: OmeZarrStore) -> None:
    """The stain-normalized slide at full resolution into the store (``save_normalized``), once."""
    from wsikit.pipeline.normalize import normalize_into_store

    done, norm_fn = job.staging.stage_done("normalized"), job.models.normalize
    if done.exists() or norm_fn is None:
        return
    job.stage(
        "normalized",
        lambda: normalize_into_store(
            job.slide, store, norm_fn, batch_size=job.cfg.batch_size, progress=job.tick("normalized")
        ),
    )
    done.touch()


def _classify(job: _RunJob, store: OmeZarrStore, chunks: list[tuple[int, int]]) -> None:
    """One Parquet part per label chunk (vectorized nuclei, measurements, network probabilities); parts
    written by an earlier attempt are kept."""
    parts, c, classifier = job.staging.parts, store.chunk, job.models.classifier
    overview, _ = job.slide.read_overview(2048)
    on_window = _classify_window(classifier, fit_stain_source(overview), job.mpp)
    todo = [(r * c, q * c) for r, q in chunks if not _part_path(parts, r * c, q * c).exists()]
    # context crops reach context_radius_um (+ half the nucleus) from a nucleus's centre: the halo holds them
    halo = max(32.0, classifier.context_radius_um + 8.0)
    vectorize = store_chunk_vectorizer(store, job.slide, on_window=on_window, halo_um=halo)

    def one(origin: tuple[int, int]) -> None:
        _write_part(_part_path(parts, *origin), vectorize(*origin))

    done, tick = len(chunks) - len(todo), job.tick("classify")
    with ThreadPoolExecutor(job.cfg.workers) as pool:
        for _ in pool.map(one, todo):
            done += 1
            tick(done, len(chunks))


def _check_damage(slide: Slide, tissue: Any, cfg: RunConfig) -> dict[str, Any]:
    """The damaged regions found so far, as the summary reports them; fails past ``cfg.max_damaged``."""
    damage = slide.damage if slide.damage is not None else DamageLog()
    area = damage.area_px
    tissue_px = float(tissue.mask.sum()) * tissue.downsample**2
    share = area / (area + tissue_px) if area else 0.0  # damaged blocks read as glass: not in the mask
    regions = damage.regions
    if share > cfg.max_damaged:
        first = regions[0]
        raise SlideReadError(
            f"{slide.path}: {len(regions)} unreadable regions cover {share:.1%} of the tissue, more than "
            f"max_damaged {cfg.max_damaged:.1%} (first: {first.width}x{first.height} px at "
            f"({first.x}, {first.y}): {first.error})"
        )
    return {
        "count": len(regions),
        "share_of_tissue": round(share, 6),
        "max_share": cfg.max_damaged,
        "boxes_level0": [[r.x, r.y, r.width, r.height] for r in regions],
        "errors": sorted({r.error for r in regions}),
    }


def _write_cell_types(
    store: OmeZarrStore, chunks: list[tuple[int, int]], part_files: list[Path], workers: int
) -> None:
    """labels/cell_types from the nucleus labels and the classes in the parts (only chunks holding nuclei)."""
    import pyarrow.parquet as pq

    ids_l, cls_l, prob_l = [], [], []
    for p in part_files:
        t = pq.read_table(p, columns=["nucleus_id", "class", "class_probability"])
        ids_l.append(t.column("nucleus_id").to_numpy())
        cls_l.append(t.column("class").to_numpy())
        prob_l.append(t.column("class_probability").to_numpy())
    ids = np.concatenate(ids_l) if ids_l else np.zeros(0, np.int64)
    n = int(ids.max()) + 1 if len(ids) else 1
    lut = np.zeros(n, np.uint8)
    prob = np.full(n, np.nan, np.float64)
    if len(ids):
        lut[ids] = np.concatenate(cls_l).astype(np.uint8) + 1
        prob[ids] = np.concatenate(prob_l)
    store.remove_label("cell_types")  # the stage is redone whole after a crash, from the parts
    store.create_label("cell_types", dtype=np.uint8)
    c = store.chunk
    for r, q in chunks:
        y, x = r * c, q * c
        block = store.read_region(
            "nuclei", x=x, y=y, width=min(c, store.width - x), height=min(c, store.height - y)
        )
        store.write_region("cell_types", y, x, lut[np.minimum(block, n - 1)])
    store.build_pyramid("cell_types", workers=workers)
    store.set_label_metadata(
        "cell_types",
        properties={0: {"name": "background"}, **{i + 1: {"name": t} for i, t in enumerate(CELL_TYPES)}},
        colors={0: (0, 0, 0, 0), **{i + 1: (*CELL_TYPE_COLORS[t], 255) for i, t in enumerate(CELL_TYPES)}},
    )
    store.write_nucleus_values(CLASS_PROBABILITY, prob)
    store.set_source(dataclasses.replace(store.source(), has_classes=True, cell_types=tuple(CELL_TYPES)))


def _export(work: Path, part_files: list[Path], slide_p: Path, slide: Slide, mpp: float) -> None:
    staging = RunFolder(work)
    writer = NucleusTableWriter(
        slide_id=slide_p.stem,
        has_mpp=True,
        mpp=mpp,
        offset=(float(slide.bounds_offset[0]), float(slide.bounds_offset[1])),
        geojson=staging.geojson,
        parquet=staging.cells,
        with_classes=True,
    )
    try:
        for p in part_files:
            writer.write(_read_part(p))
    except BaseException:
        writer.abort()
        raise
    writer.close()
