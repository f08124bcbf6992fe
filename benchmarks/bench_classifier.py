"""Benchmark: cell-type classification on labelled nuclei of three sources, every method side by side.

Exports BRCA-M2C val (10 patients that trained nothing; 20x points), NuCLS and MoNuSAC (0.25 um/px with
instance labels) with `wsikit export-classes` into benchmarks/_work/, then runs `wsikit eval classifier` on
each: the labelled classifier (shipped default or --weights), the paper's unsupervised InfoGAN and the
k-means baselines. BRCA-M2C val chose the default classifier, so its figures are validation figures, not
held-out results; NuCLS and MoNuSAC trained and chose nothing.

Usage::

    python benchmarks/bench_classifier.py [--weights W] [--data ../shared/data] [--sets brca_val nucls monusac]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _stamp import stamp  # noqa: E402

SETS = {"brca_val": ("brca_m2c", "val"), "nucls": ("nucls", None), "monusac": ("monusac", None)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=HERE.parents[1] / "shared" / "data")
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--tag", default="", help="Suffix of the result files (e.g. a candidate's name).")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16"],
        help="the classifier networks' arithmetic",
    )
    parser.add_argument(
        "--segmenter-weights", type=Path, default=None, help="U-Net weights (default: shipped)"
    )
    args = parser.parse_args()
    from wsikit.pipeline.eval_classifier import evaluate_classifier, export_classification_dataset

    work = HERE / "_work"
    work.mkdir(exist_ok=True)
    for key in args.sets:
        name, split = SETS[key]
        folder = work / f"classes_{key}"
        export_classification_dataset(name, args.data, folder, split=split, overwrite=True)
        res = evaluate_classifier(
            folder, weights=args.weights, precision=args.precision, segmenter_weights=args.segmenter_weights
        )
        res = {"set": key, **stamp(), **res}
        out = HERE / f"results_eval_classifier_{key}{args.tag}.json"
        out.write_text(json.dumps(res, indent=2) + "\n")
        print(f"{key}: {res['nuclei']} nuclei {res['per_class']}, detection recall {res['detection_recall']}")
        for r in res["results"]:
            s = r["scores"]
            print(
                f"  {r['method']:<18} acc {s['accuracy']:.3f} bal {s['balanced_accuracy']:.3f} "
                f"macro-F1 {s['macro_f1']:.3f} F1 {s['f1']}"
            )


if __name__ == "__main__":
    main()
