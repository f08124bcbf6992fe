"""Benchmark: `wsikit segment` with a zero memory budget for pending labels (every chunk spilled and merged).

A 2,000^2 px field (a real MoNuSeg test image tiled 2 x 2, at 0.25 um/px, 256 px chunks) is segmented with
``max_pending_mb=0``, the worst case for the stitcher's spill path; prints nuclei, chunks spilled and seconds.
Compare commits side by side on the same machine.

Usage::

    python benchmarks/bench_stitch_spill.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=HERE.parents[1] / "shared" / "data")
    args = parser.parse_args()
    from PIL import Image

    from wsikit.pipeline.segment import segment_slide

    tif = args.data / "monuseg" / "test" / "TCGA-2Z-A9J9-01A-01-TS1.tif"
    image = np.asarray(Image.open(tif).convert("RGB"))
    with tempfile.TemporaryDirectory() as tmp:
        field = Path(tmp) / "field.png"
        Image.fromarray(np.tile(image, (2, 2, 1))).save(field)
        start = time.perf_counter()
        stats = segment_slide(
            field,
            Path(tmp) / "out.zarr",
            slide_mpp=0.25,
            min_tissue=0.0,
            core=256,
            margin=64,
            chunk=256,
            batch_size=2,
            max_pending_mb=0.0,
        )
        seconds = time.perf_counter() - start
    print(
        f"nuclei {stats['nuclei']}, chunks spilled {stats['performance']['chunks_spilled']}, {seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
