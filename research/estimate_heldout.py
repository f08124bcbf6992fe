"""Estimate (not a measurement, chooses nothing): how the shipped procedure would score on 30 new patients with
the class mix of issue 14's held-out BRCA-M2C test patients, from all 82 patients whose predictions no network
or stage saw in training.

Per patient a confusion matrix of the ensemble (seeds 0 and 1) + neighbourhood stage, with the training prior
as ``wsikit run`` decides:
- the 72 train patients: out-of-fold, the networks trained on the other 3 patient folds
  (``research/study_neighbour_context.py fold K``) and the stage fitted on those 3 folds' out-of-fold
  predictions, scored on the 4th (as ``research/study_neighbour_morphology.py cv``'s ``base``);
- the 10 val patients: the train-only ensemble and the stage fitted on all of train's out-of-fold predictions.

Then (1) the pooled per-class rates weighted by the held-out class counts (5,386 / 948 / 1,421), as
``research/estimate_class_mix.py`` does with val alone, and (2) a bootstrap over patients: 10,000 draws of 30
patients with replacement from the 82, each draw's pooled rates weighted by the same counts; the share of draws
meeting each of issue 14's targets (accuracy >= 0.80, macro-F1 >= 0.72, every class F1 >= 0.60). It assumes the
held-out patients are like these 82 but for their class mix.

Usage::

    python research/estimate_heldout.py [--json research/results_estimate_heldout.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from study_neighbour_context import FOLDS, WORK, saved_probabilities, train_fold_index  # noqa: E402

from wsikit.classify.neighbourhood import fit_neighbourhood_stage  # noqa: E402

HELD_OUT_COUNTS = np.array([5386.0, 948.0, 1421.0])


def _scores(confusion: np.ndarray) -> dict[str, float]:
    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    m = rates * HELD_OUT_COUNTS[:, None]
    precision = np.diag(m) / np.maximum(m.sum(axis=0), 1e-12)
    recall = np.diag(m) / m.sum(axis=1)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return {
        "accuracy": float(np.trace(m) / m.sum()),
        "macro_f1": float(f1.mean()),
        **{f"f1_{c}": float(v) for c, v in zip(("epithelial", "lymphocyte", "fibroblast"), f1, strict=True)},
    }


def per_patient_confusions() -> dict[str, np.ndarray]:
    tr, va = np.load(WORK / "train.npz"), np.load(WORK / "val.npz")
    prob_tr, prob_va = saved_probabilities(("", "_seed1"))
    truth, xy, image = tr["truth"], tr["xy"], tr["image"]
    lab = truth >= 0
    prior = np.bincount(truth[lab], minlength=3) / lab.sum()
    fold = train_fold_index()
    pred_tr = np.full(len(truth), -1)
    for k in range(FOLDS):
        fit, test = (fold != k) & (fold >= 0), fold == k
        stage = fit_neighbourhood_stage(prob_tr[fit], xy[fit], truth[fit], group=image[fit])
        # folds hold whole images, and neighbours are never across images: the fold's nuclei alone suffice
        p = stage.probabilities(prob_tr[test], xy[test], group=image[test])
        pred_tr[test] = (p * prior).argmax(1)
    stage = fit_neighbourhood_stage(prob_tr, xy, truth, group=image)
    pred_va = (stage.probabilities(prob_va, va["xy"], group=va["image"]) * prior).argmax(1)
    out: dict[str, np.ndarray] = {}
    for data, pred in ((tr, pred_tr), (va, pred_va)):
        named = data["truth"] >= 0
        for patient in sorted(set(data["patient"][named].tolist())):
            rows = named & (data["patient"] == patient)
            c = np.zeros((3, 3), int)
            np.add.at(c, (data["truth"][rows], pred[rows]), 1)
            out[str(patient)] = out.get(str(patient), np.zeros((3, 3), int)) + c
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", type=Path, default=HERE / "results_estimate_heldout.json")
    ap.add_argument("--draws", type=int, default=10_000)
    args = ap.parse_args()
    confusions = per_patient_confusions()
    names = sorted(confusions)
    stack = np.stack([confusions[n] for n in names])
    pooled = _scores(stack.sum(axis=0))
    rng = np.random.default_rng(0)
    draws = [_scores(stack[rng.integers(0, len(names), 30)].sum(axis=0)) for _ in range(args.draws)]
    keys = list(pooled)
    boot = {k: np.array([d[k] for d in draws]) for k in keys}
    meets = {
        "accuracy >= 0.80": float((boot["accuracy"] >= 0.80).mean()),
        "macro-F1 >= 0.72": float((boot["macro_f1"] >= 0.72).mean()),
        "every class F1 >= 0.60": float(
            np.all(
                [boot[f"f1_{c}"] >= 0.60 for c in ("epithelial", "lymphocyte", "fibroblast")], axis=0
            ).mean()
        ),
    }
    meets["all targets"] = float(
        (
            (boot["accuracy"] >= 0.80)
            & (boot["macro_f1"] >= 0.72)
            & np.all([boot[f"f1_{c}"] >= 0.60 for c in ("epithelial", "lymphocyte", "fibroblast")], axis=0)
        ).mean()
    )
    interval = {
        k: [round(float(np.quantile(v, 0.05)), 3), round(float(np.quantile(v, 0.95)), 3)]
        for k, v in boot.items()
    }
    print("pooled (82 patients), held-out mix:", {k: round(v, 3) for k, v in pooled.items()})
    print("bootstrap 90% intervals (30 patients):", interval)
    print("share of draws meeting:", {k: round(v, 3) for k, v in meets.items()})
    args.json.write_text(
        json.dumps(
            {
                "what": "an estimate, not a measurement: per-patient confusions of the ensemble + stage (train "
                "patients out-of-fold, val patients from the train-only fit), weighted by the held-out class "
                "counts of issue 14 (5386 / 948 / 1421)",
                "patients": len(names),
                "pooled_confusion": stack.sum(axis=0).tolist(),
                "pooled_at_held_out_mix": {k: round(v, 4) for k, v in pooled.items()},
                "bootstrap": {"draws": args.draws, "patients_per_draw": 30, "seed": 0},
                "bootstrap_90pct_interval": interval,
                "share_of_draws_meeting": {k: round(v, 4) for k, v in meets.items()},
            },
            indent=1,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
