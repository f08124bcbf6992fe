"""Timing: the cell-type critic in float64 vs float32 (the classify stage of wsikit run, and per batch).

Runs `wsikit run` once on benchmarks/_work/mosaic_4096.tiff (benchmarks/make_slide.py) into research/_work/, then
times the classify stage on the stored result (vectorize + crops + classifier over every label chunk, 2 worker
threads as `wsikit run` uses) with the critic in float64 and in float32, alternating, and compares the classes;
also the critic alone on 64 crops, and float32 with 1 vs 2 torch threads (bit-identity). Figures are printed.

Usage::

    python research/timing_classify_precision.py
"""

from __future__ import annotations

import copy
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from wsikit.classify.crops import fit_stain_source
from wsikit.classify.infer import CellClassifier
from wsikit.io import open_slide
from wsikit.io.omezarr import OmeZarrStore
from wsikit.pipeline.export import store_chunk_vectorizer
from wsikit.pipeline.run import RunConfig, _classify_window, run_slide

ROOT = Path(__file__).resolve().parents[1]
SLIDE = ROOT / "benchmarks" / "_work" / "mosaic_4096.tiff"
OUT = ROOT / "research" / "_work" / "mosaic_4096.wsikit"


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    run_slide(SLIDE, OUT, config=RunConfig())
    store = OmeZarrStore.open(OUT / "result.zarr")
    slide = open_slide(SLIDE)
    source = fit_stain_source(slide.read_overview(2048)[0])
    chunks = sorted(store.written_chunks("nuclei"))
    c64 = CellClassifier.load(None)
    c64.critic = c64.critic.double()
    c32 = CellClassifier.load(None)
    c32.critic = c32.critic.float()

    def stage(clf: CellClassifier) -> tuple[float, np.ndarray]:
        on_window = _classify_window(clf, source, float(store.mpp[0]))
        vec = store_chunk_vectorizer(store, slide, on_window=on_window, halo_um=clf.context_radius_um + 8)
        t = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            batches = list(pool.map(lambda rq: vec(rq[0] * store.chunk, rq[1] * store.chunk), chunks))
        return time.perf_counter() - t, np.concatenate([b.extra["class"] for b in batches])

    classes = {}
    for _ in range(2):
        for name, clf in (("float64", c64), ("float32", c32)):
            s, classes[name] = stage(clf)
            print(f"classify stage, critic {name}: {s:.1f} s, {len(classes[name])} nuclei", flush=True)
    print("classes identical:", bool((classes["float64"] == classes["float32"]).all()))
    x = torch.rand(64, 7, 40, 40, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        for name, m in (("float64", copy.deepcopy(c64.critic)), ("float32", copy.deepcopy(c32.critic))):
            xi = x.to(next(m.parameters()).dtype)
            m(xi)
            t = time.perf_counter()
            for _ in range(20):
                m(xi)
            print(f"critic {name}: {(time.perf_counter() - t) / 20 * 1000:.1f} ms per 64 crops")
        outs = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            outs.append(c32.critic(x)[1].numpy())
        print("float32, 1 vs 2 threads, same batch, bit-identical:", bool(np.array_equal(*outs)))


if __name__ == "__main__":
    main()
