"""Profile: where `wsikit run`'s classify stage spends its time (cProfile, one worker, no thread pool).

Runs ``run_slide`` on a benchmark slide (benchmarks/make_slide.py; default the 4,096^2 mosaic that
benchmarks/bench_run.py builds) with the classify stage's chunks processed one after another in this thread, so
cProfile sees them, and prints the functions by cumulative and by own time. docs/benchmarks.md cites its
totals (19.9 s of work before session 9's speed-ups, 12.4 s outside the network after).

Usage::

    python research/profile_classify_stage.py [--slide benchmarks/_work/mosaic_4096.tiff] [--top 40] [--stage report]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
from pathlib import Path
from typing import Any

import wsikit.pipeline.run as run_module
from wsikit.pipeline.run import RunConfig, run_slide

HERE = Path(__file__).resolve().parent


class _Serial:
    """A stand-in for ThreadPoolExecutor that maps in the calling thread."""

    def __init__(self, workers: int) -> None:
        pass

    def __enter__(self) -> _Serial:
        return self

    def __exit__(self, *exc: object) -> bool:
        return False

    def map(self, fn: Any, items: Any) -> Any:
        return map(fn, items)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slide", type=Path, default=HERE.parent / "benchmarks" / "_work" / "mosaic_4096.tiff")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--stage", default="classify", help="the stage to profile (classify, report, export ...)")
    args = ap.parse_args()
    profile = cProfile.Profile()
    stage = run_module._RunJob.stage

    def profiled(job: Any, name: str, fn: Any) -> Any:
        if name != args.stage:
            return stage(job, name, fn)
        run_module.ThreadPoolExecutor = _Serial  # type: ignore[assignment,misc]
        profile.enable()
        try:
            return stage(job, name, fn)
        finally:
            profile.disable()

    run_module._RunJob.stage = profiled  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_slide(args.slide, Path(tmp) / "out", config=RunConfig(workers=1))
    print("stage seconds:", summary["seconds"])
    stats = pstats.Stats(profile)
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top // 2)


if __name__ == "__main__":
    main()
