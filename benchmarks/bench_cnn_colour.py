"""Benchmark: the CNN normalizer's compiled CPU colour path against its torch path, side by side in one run.

Four 640 px tiles of the ``bench_run.py`` mosaic (real MoNuSeg tissue at 0.25 um/px) as one batch, as
``wsikit run`` normalizes them (chroma at 1/2, lightness ``keep``, ``--precision auto``), alternated
compiled / torch for ``--repeats`` rounds (median ms per batch): with each tile's own lightness quantiles
(``wsikit run``'s path) and with a slide's; the network alone; and the per-tile quantiles' order statistics
by histogram selection against numpy's full sort. Also the share of pixels where the two paths differ and the
largest difference (grey levels).

Usage::

    python benchmarks/bench_cnn_colour.py [--json benchmarks/results_cnn_colour.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _stamp import stamp  # noqa: E402


def _ms(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from make_slide import build

    from wsikit.io import open_slide
    from wsikit.stain._cnn_cpu import order_statistics
    from wsikit.stain.cnn import _Q, CnnNormalizer
    from wsikit.stain.color import rgb_to_lab

    slide = HERE / "_work" / "mosaic_4096.tiff"
    if not slide.exists():
        build(slide, 4096, HERE.parents[1] / "shared" / "data")
    with open_slide(slide) as s:
        strip = np.asarray(s.read_region((1000, 1000), 0, (640 * 4, 640)))[..., :3]
        overview = np.asarray(s.read_region((0, 0), 0, (2048, 2048)))[..., :3]
    batch = torch.from_numpy(np.stack([strip[:, i * 640 : (i + 1) * 640] for i in range(4)]))
    batch = batch.permute(0, 3, 1, 2).contiguous()
    norm = CnnNormalizer.from_pretrained(chroma_downsample=2)
    slide_source = norm.fit_source(overview)
    row: dict[str, Any] = {**stamp(), "tiles": "4 x 640 px", "precision": norm.precision}
    for label, source in (("own quantiles (wsikit run)", None), ("slide quantiles", slide_source)):
        times: dict[str, list[float]] = {"compiled": [], "torch": []}
        outs = {}
        for _ in range(args.repeats + 1):  # the first round warms up (numba's cache, oneDNN)
            for path in ("compiled", "torch"):
                norm.compiled = path == "compiled"
                begin = time.perf_counter()
                outs[path] = norm.transform(batch, source=source)
                times[path].append((time.perf_counter() - begin) * 1000.0)
        norm.compiled = True
        diff = (outs["compiled"].int() - outs["torch"].int()).abs()
        row[label] = {
            "compiled_ms": round(statistics.median(times["compiled"][1:]), 1),
            "torch_ms": round(statistics.median(times["torch"][1:]), 1),
            "pixels_differing": round(float((diff > 0).float().mean()), 5),
            "max_difference": int(diff.max()),
        }
    lab_l = rgb_to_lab(batch[:1].float())[0, 0].reshape(-1).numpy()  # one tile's lightness
    ranks = _Q.double().numpy() * (lab_l.size - 1)
    ks = np.unique(np.concatenate([np.floor(ranks), np.ceil(ranks)]).astype(np.int64))
    order_statistics(lab_l, ks)
    row["order_statistics_ms"] = round(
        statistics.median(_ms(lambda: order_statistics(lab_l, ks)) for _ in range(9)), 2
    )
    row["numpy_sort_ms"] = round(statistics.median(_ms(lambda: np.sort(lab_l)) for _ in range(9)), 2)
    x = torch.rand(4, 1, 640, 640)
    norm._chroma(x)
    row["network_ms"] = round(statistics.median(_ms(lambda: norm._chroma(x)) for _ in range(args.repeats)), 1)
    print(json.dumps(row, indent=1))
    if args.json:
        args.json.write_text(json.dumps(row, indent=1) + "\n")


if __name__ == "__main__":
    main()
