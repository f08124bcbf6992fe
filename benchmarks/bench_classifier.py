"""Benchmark: nucleus classification on the labelled, held-out nuclei of NuCLS and MoNuSAC.

Exports both sets with `wsikit export-classes` (0.25 um/px) into benchmarks/_work/, builds their union, and
runs `wsikit eval classifier` (InfoGAN + the three k-means baselines) on the union and on each set.

Usage::

    python benchmarks/bench_classifier.py [--weights W] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=HERE.parents[1] / "shared" / "data")
    args = parser.parse_args()
    from wsikit.pipeline.eval_classifier import evaluate_classifier, export_classification_dataset

    work = HERE / "_work"
    work.mkdir(exist_ok=True)
    union = work / "classes_all"
    union.mkdir(exist_ok=True)
    for name in ("nucls", "monusac"):
        folder = work / f"classes_{name}"
        export_classification_dataset(name, args.data, folder, overwrite=True)
        for f in folder.iterdir():
            link = union / f.name
            if link.is_symlink() or link.exists():
                link.unlink()
            os.symlink(f.resolve(), link)
    for name in ("all", "nucls", "monusac"):
        res = evaluate_classifier(work / f"classes_{name}", weights=args.weights)
        (HERE / f"results_eval_classifier_{name}.json").write_text(json.dumps(res, indent=2) + "\n")
        print(f"{name}: {res['nuclei']} nuclei {res['per_class']}")
        for r in res["results"]:
            rule, best = r["named_by_rule"], r["hungarian"]
            print(
                f"  {r['method']:<18} rule {rule['accuracy']:.3f} F1 {rule['f1']}  hungarian {best['accuracy']:.3f}"
            )


if __name__ == "__main__":
    main()
