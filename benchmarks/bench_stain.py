"""Benchmark: stain normalization throughput on the CPU (and on CUDA when present).

Side by side in one run, on 256 real 224 px H&E tiles cut from the MoNuSeg images:

- torchstain's Macenko, image by image (fit the source stains + normalize), its documented use;
- wsikit's Macenko applied to batches of 64 with slide-level source statistics (fitted once on the
  pooled tiles, as ``wsikit normalize`` does for a slide), eager and with ``compile=True``
  (torch.compile fuses the per-pixel work; its one-time compilation is reported separately);
- wsikit's Macenko fitting each tile on its own (like torchstain, batched apply);
- wsikit's Reinhard (slide-level statistics, batches of 64);
- the shipped colorization CNN (batches of 64), in patches/s.

Usage::

    python benchmarks/bench_stain.py [--json out.json] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data"
sys.path.insert(0, str(HERE))

from _stamp import stamp  # noqa: E402


def tiles(n: int = 256, size: int = 224) -> np.ndarray:
    from wsikit.io import open_slide

    out = []
    for path in sorted((DATA / "monuseg").glob("*/*.tif")):
        with open_slide(path) as s:
            for y in range(0, 1000 - size + 1, size):
                for x in range(0, 1000 - size + 1, size):
                    out.append(s.read_region((x, y), 0, (size, size)))
    return np.stack(out[:n])


def timed(fn, repeats: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    import torchstain

    from wsikit.stain import MacenkoNormalizer, ReinhardNormalizer
    from wsikit.stain.cnn import CnnNormalizer

    device = args.device
    batch = tiles()
    n = len(batch)
    target = np.asarray(
        __import__("PIL.Image", fromlist=["Image"])
        .open(DATA / "stain/tiatoolbox/target_image.png")
        .convert("RGB")
    )
    ts = torchstain.normalizers.MacenkoNormalizer(backend="torch")
    ts.fit(torch.from_numpy(target).permute(2, 0, 1))
    chw = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()

    def run_torchstain() -> None:
        for img in chw:
            try:
                ts.normalize(img, stains=False)
            except Exception:  # torchstain raises on tiles it cannot fit (e.g. glass): counted as done
                pass

    mac = MacenkoNormalizer(device=device).fit(target)
    mac_compiled = MacenkoNormalizer(device=device, compile=True).fit(target)
    rei = ReinhardNormalizer(device=device).fit(target)
    tensors = chw.to(device)
    mac_stats = mac.fit_source(tensors)
    rei_stats = rei.fit_source(tensors)
    cnn = CnnNormalizer.from_pretrained(device=device, batch_size=64)

    def batched(fn) -> None:  # type: ignore[no-untyped-def]
        for i in range(0, n, 64):
            fn(tensors[i : i + 64])

    results = {
        "tiles": n,
        "tile_size": 224,
        "device": device,
        "threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "torchstain_macenko_per_image_s": timed(run_torchstain),
        "wsikit_macenko_batched_slide_stats_s": timed(
            lambda: batched(lambda b: mac.transform(b, source=mac_stats))
        ),
        "wsikit_macenko_per_tile_fit_s": timed(lambda: batched(mac.transform), repeats=1),
        "wsikit_macenko_compile_first_call_s": timed(
            lambda: mac_compiled.transform(tensors[:64], source=mac_stats), 1
        ),
        "wsikit_macenko_batched_compiled_s": timed(
            lambda: batched(lambda b: mac_compiled.transform(b, source=mac_stats))
        ),
        "wsikit_reinhard_batched_slide_stats_s": timed(
            lambda: batched(lambda b: rei.transform(b, source=rei_stats))
        ),
        "wsikit_cnn_batched_s": timed(lambda: batched(cnn.transform)),
    }
    for key in list(results):
        if key.endswith("_s") and "first_call" not in key:
            results[key[:-2] + "_patches_per_s"] = round(n / float(results[key]), 1)
    results["speedup_batched_macenko_vs_torchstain"] = round(
        results["torchstain_macenko_per_image_s"] / results["wsikit_macenko_batched_slide_stats_s"], 2
    )
    results["speedup_compiled_macenko_vs_torchstain"] = round(
        results["torchstain_macenko_per_image_s"] / results["wsikit_macenko_batched_compiled_s"], 2
    )
    results["speedup_per_tile_macenko_vs_torchstain"] = round(
        results["torchstain_macenko_per_image_s"] / results["wsikit_macenko_per_tile_fit_s"], 2
    )
    results = {**stamp(), **results}
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
