"""Benchmark: nuclei segmentation speed on the CPU (or CUDA with --device cuda).

1. U-Net patches/s on 144 px patches (batches of 32) for the shipped default model;
2. `wsikit segment` end to end on a pyramidal TIFF built from real MoNuSeg images (make_slide.py, 0.25 um/px):
   megapixels of tissue-tile cores per second, and the share of the stream's time the consumer waited on reads.

Usage::

    python benchmarks/bench_segment.py [--size 10240] [--device cpu] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=10240)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from make_slide import build

    from wsikit.pipeline.segment import segment_slide
    from wsikit.segment.infer import Segmenter

    seg = Segmenter.from_pretrained(device=args.device)
    x = torch.randint(0, 256, (32, 3, 144, 144), dtype=torch.uint8)
    seg.batch_probabilities(x)
    start = time.perf_counter()
    for _ in range(3):
        seg.batch_probabilities(x)
    patches_per_s = 96 / (time.perf_counter() - start)
    slide = HERE / "_work" / f"mosaic_{args.size}.tiff"
    if not slide.exists():
        build(slide, args.size, HERE.parents[1] / "shared" / "data")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = segment_slide(slide, Path(tmp) / "nuclei.zarr", device=args.device, batch_size=4)
        seconds = time.perf_counter() - start
    out = {
        "device": args.device,
        "threads": torch.get_num_threads(),
        "unet_patches_144_per_s": round(patches_per_s, 1),
        "slide": str(slide),
        "slide_px": args.size,
        "nuclei": result["nuclei"],
        "tiles": result["tiles"],
        "tissue_core_megapixels": result["tile_megapixels_level0"],
        "seconds": round(seconds, 1),
        "tissue_megapixels_per_s": round(result["tile_megapixels_level0"] / seconds, 3),
        "read_wait_share": result["performance"]["read_wait_share"],
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
