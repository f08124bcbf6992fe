"""Benchmark: raw slide reads vs. the prefetching patch stream, and peak memory at two slide sizes.

For each slide size (built once by make_slide.py from real MoNuSeg images and
cached in benchmarks/_work/), a fresh subprocess:

1. detects tissue and lists the 224 px tissue tiles at native resolution;
2. alternates, three times, on the same 3,000-tile subset:
   - raw: ``Slide.read_region`` of each tile at level 0 from a thread pool
     with one thread per core, in band order (as the stream reads) and, for
     reference, in row-major order;
   - stream: ``PatchStream`` delivering (64, 3, 224, 224) uint8 tensors;
   - raw 1024: ``read_region`` of 1024 px blocks covering about as many
     megapixels (fewer calls, each JPEG tile decoded once: a decode ceiling);
   and reports the median megapixels/s of each and the stream/raw ratio;
3. streams every tissue tile of the slide once and reports the peak RSS.

Usage::

    python benchmarks/bench_stream.py [--sizes 20480 40960] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"
TILE = 224
SUBSET = 3000


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(path: Path) -> dict[str, object]:
    import numpy as np

    from wsikit.io import open_slide
    from wsikit.tiling import PatchStream, TileGrid, select_tiles, tissue_mask

    workers = os.cpu_count() or 1
    slide = open_slide(path)
    t0 = time.perf_counter()
    tissue = tissue_mask(slide)
    t_tissue = time.perf_counter() - t0
    grid = TileGrid.for_slide(slide, tile_size=TILE)
    tiles = select_tiles(grid, tissue, min_tissue=0.5)  # band order: the order PatchStream users get
    rows = select_tiles(grid, tissue, min_tissue=0.5, order="row")
    mid = len(tiles) // 2
    subset = tiles[max(0, mid - SUBSET // 2) : mid + SUBSET // 2]  # a contiguous run, as in a real pass
    mid = len(rows) // 2
    subset_rows = rows[max(0, mid - SUBSET // 2) : mid + SUBSET // 2]
    mp = len(subset) * TILE * TILE / 1e6

    def raw_pass(which: list = subset) -> float:  # type: ignore[type-arg]
        start = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(lambda t: slide.read_region((int(t.x0), int(t.y0)), 0, (TILE, TILE)), which):
                pass
        return len(which) * TILE * TILE / 1e6 / (time.perf_counter() - start)

    block_grid = TileGrid.for_slide(slide, tile_size=1024)
    blocks = select_tiles(block_grid, tissue, min_tissue=0.5)
    blocks = blocks[:: max(1, len(blocks) // max(1, int(mp / 1.048576)))][: max(1, int(mp / 1.048576))]

    def raw_block_pass() -> float:
        start = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(lambda t: slide.read_region((int(t.x0), int(t.y0)), 0, (1024, 1024)), blocks):
                pass
        return len(blocks) * 1024 * 1024 / 1e6 / (time.perf_counter() - start)

    def stream_pass() -> float:
        start = time.perf_counter()
        for batch in PatchStream(slide, grid, subset, batch_size=64, workers=workers):
            batch.images[:, 0, 0, 0].sum()  # touch the batch like a consumer would
        return mp / (time.perf_counter() - start)

    raw_pass()  # warm-up: file cache, decoder init
    raws, streams, raw_blocks, raw_rows = [], [], [], []
    for _ in range(3):
        raw_rows.append(raw_pass(subset_rows))
        raws.append(raw_pass())
        streams.append(stream_pass())
        raw_blocks.append(raw_block_pass())
    rss_before_full = _rss_mb()
    stream = PatchStream(slide, grid, tiles, batch_size=64, workers=workers)
    start = time.perf_counter()
    checksum = 0
    for batch in stream:
        checksum += int(batch.images[:, :, ::37, ::37].sum())
    full_s = time.perf_counter() - start
    w, h = slide.dimensions
    return {
        "slide": str(path),
        "width": w,
        "height": h,
        "slide_gpx": w * h / 1e9,
        "tissue_fraction": round(tissue.fraction, 4),
        "tissue_detect_s": round(t_tissue, 2),
        "tissue_tiles": len(tiles),
        "subset_tiles": len(subset),
        "workers": workers,
        "raw_mpx_s": [round(v, 1) for v in raws],
        "stream_mpx_s": [round(v, 1) for v in streams],
        "raw_median": round(statistics.median(raws), 1),
        "raw_rowmajor_mpx_s": [round(v, 1) for v in raw_rows],
        "raw_rowmajor_median": round(statistics.median(raw_rows), 1),
        "raw_1024_mpx_s": [round(v, 1) for v in raw_blocks],
        "raw_1024_median": round(statistics.median(raw_blocks), 1),
        "stream_median": round(statistics.median(streams), 1),
        "ratio": round(statistics.median(streams) / statistics.median(raws), 3),
        "full_stream_mpx_s": round(len(tiles) * TILE * TILE / 1e6 / full_s, 1),
        "full_stream_s": round(full_s, 1),
        "full_stream_wait_share": round(stream.stats.wait_share, 3),
        "rss_before_full_mb": round(rss_before_full, 0),
        "peak_rss_mb": round(_rss_mb(), 0),
        "checksum": checksum,
        "numpy": np.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20480, 40960])
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    sys.path.insert(0, str(HERE))
    from make_slide import build

    data = HERE.parents[1] / "shared" / "data"
    results = []
    for size in args.sizes:
        path = WORK / f"mosaic_{size}.tiff"
        if not path.exists():
            build(path, size, data)
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(path)], capture_output=True, text=True, check=True
        )
        res = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(res)
        print(json.dumps(res, indent=1))
    print()
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(
        "| slide (px) | tissue tiles | raw 224 px reads, row-major MP/s | raw 224 px reads, band order MP/s | "
        "raw 1024 px reads MP/s | PatchStream MP/s | stream / raw-224 band | full pass MP/s | "
        "consumer wait share | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['width']} x {r['height']} | {r['tissue_tiles']} | {r['raw_rowmajor_median']} | {r['raw_median']} | "
            f"{r['raw_1024_median']} | "
            f"{r['stream_median']} | "
            f"{r['ratio']:.2f} | {r['full_stream_mpx_s']} | {r['full_stream_wait_share']:.2f} | {r['peak_rss_mb']:.0f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
