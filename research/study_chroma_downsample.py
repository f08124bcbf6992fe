"""Study: the CNN normalizer's chroma predicted at 1/2 resolution (issue 15: a faster segment stage).

The colorizer predicts chroma from lightness; at ``chroma_downsample=2`` it runs on 2x2-averaged lightness and
its chroma is upsampled (bilinear), the lightness staying at full resolution: a quarter of the network's cost.
Scored as `wsikit run` segments (CNN normalizer, unet-nuclei-cnn, area range, colour rule) on the three
annotated sources of benchmarks/bench_segmenter_sources.py (exported there first), mean over sources.

Usage::

    python research/study_chroma_downsample.py [--downsample 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from wsikit.segment.evaluate import evaluate_segmenter_sources
from wsikit.stain.cnn import CnnNormalizer

WORK = Path(__file__).resolve().parents[1] / "benchmarks" / "_work"
SOURCES = ["monuseg_test", "monuseg_extra_test", "monuseg_extra_train"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--downsample", type=int, default=2)
    args = ap.parse_args()
    t0 = time.perf_counter()
    norm = CnnNormalizer.from_pretrained(chroma_downsample=args.downsample)
    res = evaluate_segmenter_sources([WORK / s for s in SOURCES], stain="cnn", normalizer=norm)
    print("mean", {k: round(v, 3) for k, v in res["mean"].items()})
    for s in res["sources"]:
        print("  ", s["source"], {k: round(v, 3) for k, v in s["mean"].items()})
    out = Path(__file__).with_name(f"results_study_chroma_downsample_{args.downsample}.json")
    out.write_text(
        json.dumps(
            {"downsample": args.downsample, "seconds": round(time.perf_counter() - t0, 1), **res}, indent=2
        )
        + "\n"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
