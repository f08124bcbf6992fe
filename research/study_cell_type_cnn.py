"""Study: variants of the supervised context CNN, trained on BRCA-M2C train, scored on BRCA-M2C val.

Validation only (10 patients that trained nothing); the held-out test patients are never seen here. Inputs
are the context-crops files of `wsikit train crops --context --split train|val` (nuclei segmented by the
default path, points matched as `wsikit eval classifier` matches them), so a val figure here equals the
`classifier` row of `wsikit eval classifier` on the exported val split for the same weights.

Usage::

    python research/study_cell_type_cnn.py TRAIN.npz VAL.npz --variant NAME [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from wsikit.classify.infer import CellClassifier
from wsikit.classify.metrics import classification_report
from wsikit.classify.naming import CELL_TYPES
from wsikit.classify.supervised import SupervisedTrainConfig, train_context_cnn
from wsikit.pipeline.train_cell_types import load_context_crops

# scanner jitter was off by default when these variants ran (SupervisedTrainConfig's default is now the shipped
# configuration, scanner on): the variants without it say so
VARIANTS = {
    "base": {"scanner": False},
    "natural": {"balanced": False, "scanner": False},
    "wide": {"width": 48, "scanner": False},
    "long": {"steps": 8000, "scanner": False},
    "nojitter": {"jitter": 0.0, "scanner": False},
    "scanner": {"scanner": True},
    "scanner-long": {"scanner": True, "steps": 8000},
    "scanner-wide-long": {"scanner": True, "width": 48, "steps": 8000},
    "scanner-scale": {"scanner": True, "scale": 0.2},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("train", type=Path)
    ap.add_argument("val", type=Path)
    ap.add_argument("--variant", nargs="+", default=["base"], choices=list(VARIANTS))
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--tag", default="", help="Prefix of the saved state dicts.")
    args = ap.parse_args()
    tr, va = load_context_crops(args.train), load_context_crops(args.val)
    rows = []
    for name in args.variant:
        kw = {"steps": args.steps, **VARIANTS[name]}
        cfg = SupervisedTrainConfig(**kw)
        t0 = time.perf_counter()
        state = train_context_cnn(tr["crops"], tr["label"], cfg)
        meta = {"input": "context", "context_mpp": [float(m) for m in tr["context_mpp"]]}
        clf = CellClassifier(state.model, cluster_names=list(CELL_TYPES), meta=meta)
        row = {
            "variant": name,
            "train": str(args.train),
            "config": cfg.__dict__,
            "seconds": round(time.perf_counter() - t0, 1),
        }
        for tta in (False, True):
            p = clf.probabilities(va["crops"], tta=tta)
            rep = classification_report(va["label"], p.argmax(1), CELL_TYPES).to_dict()
            row["tta" if tta else "plain"] = rep
            print(
                f"{name:<9} tta={tta!s:<5} acc {rep['accuracy']:.3f} bal {rep['balanced_accuracy']:.3f} "
                f"mF1 {rep['macro_f1']:.3f} F1 {rep['f1']}",
                flush=True,
            )
        rows.append(row)
        torch.save(state.model.state_dict(), args.train.parent / f"study-cnn-{args.tag}{name}.pth")
    if args.json:
        args.json.write_text(json.dumps({"validation": str(args.val), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
