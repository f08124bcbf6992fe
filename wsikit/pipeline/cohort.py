"""Many slides: a manifest, a local process pool or a Dask ``distributed`` cluster, and study tables.

Each slide is one task (:func:`run_one`); a failing slide is reported with its error and does not stop
the others. With ``scheduler="tcp://HOST:PORT"`` the tasks go to an existing Dask cluster (see
docs/user-guide.md for Slurm/PBS with dask-jobqueue); the workers must see the slides and outputs at the
same paths (a shared file system).
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from wsikit._atomic import staged_file
from wsikit._typing import PathLike
from wsikit.classify.naming import CELL_TYPES
from wsikit.errors import ConfigError, WsikitError
from wsikit.io.result import RunFolder
from wsikit.pipeline.run import RunConfig, default_output, run_slide

__all__ = ["SlideJob", "read_manifest", "run_one", "run_cohort", "merge_summaries", "STATS_COLUMNS"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlideJob:
    """One slide to run: its path, output folder (None: beside the slide) and mpp override."""

    slide: Path
    out: Path | None = None
    mpp: float | None = None


def read_manifest(path: PathLike) -> list[SlideJob]:
    """Read a CSV with a header and a ``slide`` column (optional ``out`` and ``mpp``); relative paths are
    relative to the manifest's folder.

    Raises
    ------
    ConfigError
        Missing file, no ``slide`` column, a bad mpp, or no rows.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such manifest file")
    jobs = []
    with open(p, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "slide" not in reader.fieldnames:
            raise ConfigError(f"{p}: the manifest needs a header with a 'slide' column (optional: out, mpp)")
        for i, row in enumerate(reader, start=2):
            if not (row.get("slide") or "").strip():
                continue
            slide = Path(row["slide"].strip())
            out = Path(row["out"].strip()) if (row.get("out") or "").strip() else None
            mpp = None
            if (row.get("mpp") or "").strip():
                try:
                    mpp = float(row["mpp"])
                except ValueError:
                    raise ConfigError(f"{p}: line {i}: mpp {row['mpp']!r} is not a number") from None
            jobs.append(
                SlideJob(
                    slide if slide.is_absolute() else p.parent / slide,
                    None if out is None else (out if out.is_absolute() else p.parent / out),
                    mpp,
                )
            )
    if not jobs:
        raise ConfigError(f"{p}: the manifest lists no slides")
    return jobs


def run_one(job: SlideJob, config: RunConfig, overwrite: bool = False) -> dict[str, Any]:
    """Run one slide and report, never raise: ``{"slide", "out", "ok", "error" | summary...}``."""
    cfg = replace(config, slide_mpp=job.mpp) if job.mpp is not None else config
    out = job.out or default_output(job.slide)
    try:
        summary = run_slide(job.slide, out, config=cfg, overwrite=overwrite)
    except (WsikitError, OSError, ValueError) as exc:
        log.error("%s", exc)
        return {"slide": str(job.slide), "out": str(out), "ok": False, "error": str(exc)}
    return {"slide": str(job.slide), "out": str(out), "ok": True, **summary}


def run_cohort(
    jobs: list[SlideJob],
    *,
    config: RunConfig,
    overwrite: bool = False,
    scheduler: str | None = None,
    parallel: int = 1,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every job: here (``parallel`` 1), in a local process pool, or on the Dask cluster at ``scheduler``.

    Results come back in the order of ``jobs``.
    """
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    if scheduler is not None:
        from distributed import Client, as_completed

        with Client(scheduler, timeout="30s") as client:  # type: ignore[no-untyped-call,unused-ignore]
            futures = [
                client.submit(run_one, j, config, overwrite, pure=False, key=f"wsikit-{i}-{j.slide.name}")
                for i, j in enumerate(jobs)
            ]
            index = {f.key: i for i, f in enumerate(futures)}
            for fut in as_completed(futures):  # type: ignore[no-untyped-call,unused-ignore]
                try:
                    res = fut.result()
                except Exception as exc:  # a worker died: report, keep going
                    j = jobs[index[fut.key]]
                    res = {
                        "slide": str(j.slide),
                        "out": str(j.out or default_output(j.slide)),
                        "ok": False,
                        "error": f"worker failed: {type(exc).__name__}: {exc}",
                    }
                results[index[fut.key]] = res
                if on_result is not None:
                    on_result(res)
    elif parallel > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures import as_completed as done_order

        with ProcessPoolExecutor(parallel, mp_context=mp.get_context("spawn")) as pool:
            pending = {pool.submit(run_one, j, config, overwrite): i for i, j in enumerate(jobs)}
            for fut in done_order(pending):
                res = fut.result()
                results[pending[fut]] = res
                if on_result is not None:
                    on_result(res)
    else:
        for i, j in enumerate(jobs):
            res = run_one(j, config, overwrite)
            results[i] = res
            if on_result is not None:
                on_result(res)
    return [r for r in results if r is not None]


STATS_COLUMNS = (
    ["slide_id", "mpp", "tissue_area_mm2", "nuclei", "nuclei_per_mm2"]
    + [f"{c}_{k}" for c in CELL_TYPES for k in ("count", "fraction", "density_per_mm2")]
    + ["lymphocyte_to_epithelial_ratio"]
    + [
        f"{c}_{m}_{s}"
        for c in CELL_TYPES
        for m in ("area_um2", "eccentricity", "hematoxylin_od")
        for s in ("median", "iqr")
    ]
    + ["result"]
)


def merge_summaries(results: list[PathLike], out: PathLike) -> int:
    """Write one CSV row per result folder (its ``summary.json``) to ``out``; returns the row count.

    Raises
    ------
    ConfigError
        A folder without a finished run's ``summary.json``.
    """
    rows = []
    for r in results:
        p = Path(r)
        f = RunFolder(p).summary if p.is_dir() else p
        if not f.is_file() or (p.is_dir() and not RunFolder(p).done.is_file()):
            raise ConfigError(f"{p}: not a finished wsikit run (no summary.json and DONE)")
        s = json.loads(f.read_text())
        row: dict[str, Any] = {
            k: s.get(k) for k in ("slide_id", "mpp", "tissue_area_mm2", "nuclei", "nuclei_per_mm2")
        }
        for c in CELL_TYPES:
            cs = s["classes"][c]
            for k in ("count", "fraction", "density_per_mm2"):
                row[f"{c}_{k}"] = cs[k]
            for m in ("area_um2", "eccentricity", "hematoxylin_od"):
                row[f"{c}_{m}_median"] = cs["morphometry"][m]["median"]
                row[f"{c}_{m}_iqr"] = cs["morphometry"][m]["iqr"]
        row["lymphocyte_to_epithelial_ratio"] = s.get("lymphocyte_to_epithelial_ratio")
        row["result"] = str(p)
        rows.append(row)
    with staged_file(Path(out)) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=STATS_COLUMNS)
        w.writeheader()
        for row in rows:
            w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return len(rows)
