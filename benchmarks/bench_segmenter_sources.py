"""Benchmark: nuclei segmentation on several annotated sources with one protocol (issue 15).

Exports MoNuSeg 2018 test (4 images of ../monuseg, 0.25 um/px), MoNuSeg 2018 extra test (8) and extra train
(26; 7 organs, never used to train the shipped U-Nets) with `wsikit export-dataset`, then scores `wsikit run`'s
default path on them (CNN normalizer, `unet-nuclei-cnn`, the 7.5-400 um^2 area range and the colour rule)
with and without the colour rule: per image, per source, and the mean over sources.

Usage::

    python benchmarks/bench_segmenter_sources.py [--data ../shared/data] [--stain cnn]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _stamp import stamp  # noqa: E402

SOURCES = {
    "monuseg_test": ("monuseg", "test"),
    "monuseg_extra_test": ("monuseg_extra", "test"),
    "monuseg_extra_train": ("monuseg_extra", "train"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=HERE.parents[1] / "shared" / "data")
    parser.add_argument("--stain", default="cnn", choices=["cnn", "none", "macenko"])
    args = parser.parse_args()
    from wsikit.segment.artefacts import ColourRule
    from wsikit.segment.evaluate import evaluate_segmenter_sources, export_dataset

    work = HERE / "_work"
    work.mkdir(exist_ok=True)
    folders = []
    for key, (name, split) in SOURCES.items():
        folder = work / key
        if not folder.exists():
            export_dataset(name, args.data, folder, split=split)
        folders.append(folder)
    out = {"stamp": stamp(), "command": " ".join(sys.argv), "runs": {}}
    for label, rule in (("colour_rule", ColourRule()), ("no_colour_rule", None)):
        res = evaluate_segmenter_sources(folders, stain=args.stain, colour_rule=rule)  # type: ignore[arg-type]
        out["runs"][label] = res
        print(label, {k: round(v, 3) for k, v in res["mean"].items()}, flush=True)
        for s in res["sources"]:
            print("  ", s["source"], {k: round(v, 3) for k, v in s["mean"].items()}, flush=True)
    path = HERE / f"results_segmenter_sources_{args.stain}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
