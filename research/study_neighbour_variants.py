"""Within-train cross-validation of neighbourhood-stage variants (no val figure): which radii, and whether a
second pass (the stage applied again to its own outputs) helps. Out-of-fold CNN predictions of BRCA-M2C train
(``research/study_neighbour_context.py fold 0..3``); the stage is fitted on 3 folds' nuclei and scored on the
4th fold's patients, for each fold; reported: mean accuracy / macro-F1 with the training prior, as
``wsikit run`` decides.

Usage::

    python research/study_neighbour_variants.py [--tta]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from wsikit.classify.metrics import classification_report
from wsikit.classify.naming import CELL_TYPES
from wsikit.classify.neighbourhood import fit_neighbourhood_stage

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work" / "neighbour"
FOLDS = 4


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tta", action="store_true")
    args = ap.parse_args()
    suffix = "_tta" if args.tta else ""
    tr = np.load(WORK / "train.npz")
    truth, xy, image = tr["truth"], tr["xy"], tr["image"]
    prob = np.zeros((len(truth), 3))
    fold = np.full(len(truth), -1)
    for k in range(FOLDS):
        rows = np.load(WORK / f"rows_train_fold{k}.npy")
        prob[rows] = np.load(WORK / f"prob_train_fold{k}{suffix}.npy")
        fold[rows] = k
    lab = truth >= 0
    prior = np.bincount(truth[lab], minlength=3) / lab.sum()
    variants = {
        "cnn": None,
        "r25-50": dict(radii=(25.0, 50.0)),
        "r15-30-60": dict(radii=(15.0, 30.0, 60.0)),
        "r25-50-100": dict(radii=(25.0, 50.0, 100.0)),
        "r10-25-50-100": dict(radii=(10.0, 25.0, 50.0, 100.0)),
        "r25-50 x2": dict(radii=(25.0, 50.0), passes=2),
    }
    out = {}
    for name, v in variants.items():
        accs, f1s = [], []
        for k in range(FOLDS):
            fit, test = (fold != k) & (fold >= 0), fold == k
            p_fit, p_all = prob[fit], prob
            if v is None:
                p_test = prob[test]
            else:
                p_cur = prob
                for _ in range(v.get("passes", 1)):
                    stage = fit_neighbourhood_stage(
                        p_cur[fit], xy[fit], truth[fit], group=image[fit], radii_um=v["radii"]
                    )
                    p_cur = stage.probabilities(p_cur, xy, group=image)
                p_test = p_cur[test]
            del p_fit, p_all
            sel = lab[test]
            rep = classification_report(
                truth[test][sel], (p_test[sel] * prior).argmax(1), CELL_TYPES
            ).to_dict()
            accs.append(rep["accuracy"])
            f1s.append(rep["macro_f1"])
        out[name] = {"accuracy": float(np.mean(accs)), "macro_f1": float(np.mean(f1s)), "per_fold": accs}
        print(
            f"{name:<16} acc {np.mean(accs):.4f} mF1 {np.mean(f1s):.4f}  folds {np.round(accs, 3).tolist()}"
        )
    (HERE / f"results_study_neighbour_variants{suffix}.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
