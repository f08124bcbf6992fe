"""How much the BRCA-M2C val figure of the shipped configuration depends on which 10 patients val holds.

Refits the ensemble's neighbourhood stage exactly as ``study_neighbour_context.py score-ensemble`` does (on
train's out-of-fold ensemble predictions), predicts every val nucleus, and reports accuracy per val patient and
a bootstrap over patients (patients drawn with replacement, 10,000 draws, seed 0): the spread a set of 10 new
patients like these would show. It chooses nothing. Needs the study's files (``prepare``, ``fold K [--seed 1]``).

Usage::

    python research/val_by_patient.py [--json research/results_val_by_patient.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> None:
    from study_neighbour_context import WORK, saved_probabilities

    from wsikit.classify.neighbourhood import fit_neighbourhood_stage

    ap = argparse.ArgumentParser()
    ap.add_argument("--json", type=Path, default=HERE / "results_val_by_patient.json")
    args = ap.parse_args()
    tr, va = np.load(WORK / "train.npz"), np.load(WORK / "val.npz")
    prob_tr, prob_va = saved_probabilities(("", "_seed1"))
    lab_tr, lab_va = tr["truth"] >= 0, va["truth"] >= 0
    prior = np.bincount(tr["truth"][lab_tr], minlength=3) / lab_tr.sum()
    stage = fit_neighbourhood_stage(prob_tr, tr["xy"], tr["truth"], group=tr["image"])
    pred = (stage.probabilities(prob_va, va["xy"], group=va["image"]) * prior).argmax(axis=1)
    truth, patient = va["truth"][lab_va], va["patient"][lab_va]
    correct = pred[lab_va] == truth
    patients = sorted(set(patient.tolist()))
    per = {
        p: {
            "nuclei": int((patient == p).sum()),
            "accuracy": round(float(correct[patient == p].mean()), 3),
            "classes": np.bincount(truth[patient == p], minlength=3).tolist(),
        }
        for p in patients
    }
    hits = np.array([correct[patient == p].sum() for p in patients], np.float64)
    sizes = np.array([(patient == p).sum() for p in patients], np.float64)
    rng = np.random.default_rng(0)
    draws = rng.integers(0, len(patients), (10_000, len(patients)))
    boot = hits[draws].sum(axis=1) / sizes[draws].sum(axis=1)
    lo, hi = np.quantile(boot, [0.05, 0.95])
    out = {
        "what": "ensemble (seeds 0+1) + stage, BRCA-M2C val, per patient and a bootstrap over patients",
        "accuracy": round(float(correct.mean()), 4),
        "per_patient": per,
        "bootstrap_over_patients": {
            "draws": 10_000,
            "seed": 0,
            "interval_90": [round(float(lo), 3), round(float(hi), 3)],
            "share_at_least_0.80": round(float((boot >= 0.80).mean()), 3),
        },
    }
    for p, r in per.items():
        print(f"{p}: {r['nuclei']:>4} nuclei {r['classes']} accuracy {r['accuracy']:.3f}")
    print(f"all {out['accuracy']:.3f}; patient bootstrap 90% interval {lo:.3f}-{hi:.3f}; "
          f"share of draws >= 0.80: {out['bootstrap_over_patients']['share_at_least_0.80']}")  # fmt: skip
    args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
