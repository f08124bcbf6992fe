"""Estimate: what a classifier's val confusion implies for a set with another class mix (not a measurement).

Weights each row of the confusion matrix of ``wsikit eval classifier``'s JSON (normalized: the per-class
rates) by given class counts and prints accuracy, macro-F1 and per-class F1. It assumes each class's nuclei
are called as on val; it chooses nothing. docs/classification.md uses it with the held-out class counts that
issue 14 prints (5,386 epithelial / 948 lymphocyte / 1,421 fibroblast) and with train's mix.

Usage::

    python research/estimate_class_mix.py benchmarks/results_eval_classifier_brca_val_trainonly_neighbourhood.json \\
        --counts 5386 948 1421
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("json", type=Path)
    ap.add_argument("--counts", type=float, nargs=3, required=True, help="epithelial lymphocyte fibroblast")
    args = ap.parse_args()
    res = json.loads(args.json.read_text())
    scores = next(r for r in res["results"] if r["method"] == "classifier")["scores"]
    confusion = np.asarray(scores["confusion"], np.float64)
    rates = confusion / confusion.sum(axis=1, keepdims=True)
    m = rates * np.asarray(args.counts)[:, None]
    precision, recall = np.diag(m) / m.sum(axis=0), np.diag(m) / m.sum(axis=1)
    f1 = 2 * precision * recall / (precision + recall)
    print(
        f"accuracy {np.trace(m) / m.sum():.3f}  macro-F1 {f1.mean():.3f}  "
        f"F1 {' / '.join(f'{v:.2f}' for v in f1)}  (val confusion {confusion.astype(int).tolist()})"
    )


if __name__ == "__main__":
    main()
