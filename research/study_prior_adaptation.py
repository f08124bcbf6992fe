"""Study (issue 14): the class prior of each field estimated from its own nuclei (label-shift EM).

``wsikit run`` multiplies the class-balanced probabilities by the training patients' class mix (52.5%
epithelial, 22.0% lymphocyte, 25.5% fibroblast for the train-only fit). Slides differ in their mix far more than
that: the BRCA-M2C val patients hold 23% epithelial nuclei, the held-out test patients of issue 14 69%. The EM of
Saerens, Latinne and Decaestecker (Neural Computation 2002) estimates a field's own mix from the probabilities of
all its nuclei (p_i(y) proportional to q_i(y) pi(y); pi = mean_i p_i; repeated until pi stops moving), and the
decision uses that mix; ``strength`` > 0 adds that many pseudo-nuclei of the training mix (a Dirichlet prior:
small fields stay near it).

``cv``: within BRCA-M2C train only (no val figure): the ensemble's out-of-fold probabilities, the stage fitted on
3 folds and applied to the 4th fold's fields, each field's prior by EM; mean accuracy / macro-F1 over folds for
the training prior and for EM with strength 0, 100, 300. ``score``: BRCA-M2C val, the shipped procedure (the
train-only ensemble + its stage) with the training prior and with the variant ``cv`` chose.

Ship rule, committed before ``score`` was run: the per-field prior becomes ``wsikit run``'s decision (per slide)
only if on val it reaches accuracy >= the training prior's + 0.01 and macro-F1 >= the training prior's, with the
variant chosen by ``cv`` alone.

Outcome (2026-12-01, this project's VM, JSON research/results_study_prior_adaptation_cv.json): within train the
per-field EM prior loses to the training prior at every strength (accuracy 0.723 / 0.747 / 0.766 at strength 0 /
100 / 300 vs 0.793; macro-F1 0.680-0.733 vs 0.764): the probabilities are not calibrated well enough for EM (it
drifts toward the classes the classifier over-calls in a field, then calls more of them), and the neighbourhood
stage already reads each nucleus's surroundings. ``score`` was therefore not run: there is nothing to carry to
val, and no val figure was looked at.

Usage::

    python research/study_prior_adaptation.py cv
    python research/study_prior_adaptation.py score
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from study_neighbour_context import FOLDS, WORK, saved_probabilities  # noqa: E402

ENSEMBLE = ("", "_seed1")
STRENGTHS = (0.0, 100.0, 300.0)
CHOICE = WORK / "prior_adaptation_choice.json"


def em_prior(q: np.ndarray, start: np.ndarray, strength: float = 0.0, iters: int = 200) -> np.ndarray:
    """The class mix of the nuclei whose class-balanced probabilities are ``q`` (N, 3), by label-shift EM
    from ``start``; ``strength`` pseudo-nuclei of the mix ``start`` are added at each step."""
    pi = start.astype(np.float64).copy()
    for _ in range(iters):
        p = q * pi
        p /= p.sum(axis=1, keepdims=True)
        new = (p.sum(axis=0) + strength * start) / (len(q) + strength)
        if np.abs(new - pi).max() < 1e-7:
            return new
        pi = new
    return pi


def decide(prob: np.ndarray, group: np.ndarray, prior: np.ndarray, strength: float | None) -> np.ndarray:
    """Cell types: ``prob`` x the training ``prior`` (``strength`` None), or x each group's EM prior."""
    if strength is None:
        return np.asarray((prob * prior).argmax(axis=1))
    out = np.empty(len(prob), np.int64)
    for g in np.unique(group):
        sel = group == g
        pi = em_prior(prob[sel], prior, strength)
        out[sel] = (prob[sel] * pi).argmax(axis=1)
    return out


def _report(truth: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    from wsikit.classify.metrics import classification_report
    from wsikit.classify.naming import CELL_TYPES

    lab = truth >= 0
    return classification_report(truth[lab], pred[lab], CELL_TYPES).to_dict()


def cv() -> dict[str, Any]:
    from wsikit.classify.neighbourhood import fit_neighbourhood_stage

    tr = np.load(WORK / "train.npz")
    truth, xy, image = tr["truth"], tr["xy"], tr["image"]
    prob, _ = saved_probabilities(ENSEMBLE)
    fold = np.full(len(truth), -1)
    for k in range(FOLDS):
        fold[np.load(WORK / f"rows_train_fold{k}.npy")] = k
    lab = truth >= 0
    variants: dict[str, float | None] = {
        "training prior": None,
        **{f"EM, strength {s:g}": s for s in STRENGTHS},
    }
    scores: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for k in range(FOLDS):
        fit, test = (fold != k) & (fold >= 0), fold == k
        prior = np.bincount(truth[fit & lab], minlength=3) / (fit & lab).sum()
        stage = fit_neighbourhood_stage(prob[fit], xy[fit], truth[fit], group=image[fit])
        p = stage.probabilities(prob[test], xy[test], group=image[test])
        for name, strength in variants.items():
            scores[name].append(_report(truth[test], decide(p, image[test], prior, strength)))
    out = {
        name: {
            "accuracy": float(np.mean([r["accuracy"] for r in reps])),
            "macro_f1": float(np.mean([r["macro_f1"] for r in reps])),
            "per_fold_accuracy": [round(r["accuracy"], 4) for r in reps],
        }
        for name, reps in scores.items()
    }
    best = max((n for n in variants if variants[n] is not None), key=lambda n: out[n]["accuracy"])
    out["chosen"] = {"variant": best, "strength": variants[best]}
    CHOICE.write_text(json.dumps(out["chosen"]) + "\n")
    return out


def score() -> dict[str, Any]:
    from wsikit.classify.infer import CellClassifier

    choice = json.loads(CHOICE.read_text())
    tr, va = np.load(WORK / "train.npz"), np.load(WORK / "val.npz")
    lab_tr = tr["truth"] >= 0
    prior = np.bincount(tr["truth"][lab_tr], minlength=3) / lab_tr.sum()
    stage = CellClassifier.load(WORK / "cells-context-cnn-ensemble-trainonly-neighbourhood.pt").neighbourhood
    assert stage is not None
    _, prob_va = saved_probabilities(ENSEMBLE)
    p = stage.probabilities(prob_va, va["xy"], group=va["image"])
    base = _report(va["truth"], decide(p, va["image"], prior, None))
    adapted = _report(va["truth"], decide(p, va["image"], prior, choice["strength"]))
    passed = adapted["accuracy"] >= base["accuracy"] + 0.01 and adapted["macro_f1"] >= base["macro_f1"]
    mixes = {
        int(g): em_prior(p[va["image"] == g], prior, choice["strength"]).round(3).tolist()
        for g in np.unique(va["image"])
    }
    return {
        "validation": "BRCA-M2C val (10 patients), train-only ensemble + its stage",
        "training prior": base,
        f"per-field prior ({choice['variant']})": adapted,
        "field_priors": mixes,
        "ship_rule": "accuracy >= training prior's + 0.01 and macro-F1 >= training prior's",
        "passed": passed,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("cv", "score"))
    args = ap.parse_args(argv)
    out = cv() if args.what == "cv" else score()
    short = {
        k: (
            {m: round(v[m], 4) for m in ("accuracy", "macro_f1")}
            if isinstance(v, dict) and "accuracy" in v
            else v
        )
        for k, v in out.items()
    }
    print(json.dumps(short, indent=1))
    (HERE / f"results_study_prior_adaptation_{args.what}.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
