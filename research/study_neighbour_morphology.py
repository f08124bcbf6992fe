"""Study: the nucleus's size and darkness, and those of its neighbours, in the neighbourhood stage.

The shipped stage (``wsikit.classify.neighbourhood``) sees a nucleus's CNN softmax and the mean softmax and
count of the nuclei within 25 and 50 um. The CNN sees the nucleus crop in absolute terms; what neither sees is
how large and how dark a nucleus is *compared with the nuclei around it*. Patients differ in how large the same
cell type comes out (the val patient TCGA-A7-A0DB's lymphocytes are segmented larger than most, and 114 of its
142 are called epithelial), while within a field a lymphocyte stays smaller and darker than the tumour cells
beside it. This study adds, per nucleus, two measurements taken from its context crop (the crop the CNN gets,
so training and ``wsikit run`` measure alike): log of the mask's area in um^2 and the mean optical density
inside the mask; and per radius the mean of the same two over the other nuclei within it (the nucleus's own
values when it has none), so the logistic regression can weigh a nucleus against its neighbours.

Protocol (needs ``research/study_neighbour_context.py prepare`` and ``fold K --seed S`` for K in 0..3, full
and S in 0, 1: the shipped ensemble's out-of-fold and train-only predictions):

1. ``cv`` (no val figure): within BRCA-M2C train (72 patients, the 4 patient folds of the fold networks), each
   stage variant is fitted on 3 folds' out-of-fold ensemble predictions and scored on the 4th fold's patients
   (mean of 4), with the training prior as ``wsikit run`` decides. Variants: ``base`` (the shipped 11
   features), ``own`` (+ the nucleus's 2 measurements: 13), ``own+neighbours`` (+ the neighbours' means at 25
   and 50 um: 17).
2. ``score``: the chosen variant and ``base`` fitted on train's out-of-fold predictions, scored on BRCA-M2C val
   (10 patients) with the train-only ensemble's predictions.

Rule, committed before any figure of this study was computed:
- ``cv`` chooses the variant with the higher mean within-train accuracy of ``own`` and ``own+neighbours``; it goes
  to val only if its mean accuracy is >= ``base``'s + 0.003 and its mean macro-F1 >= ``base``'s; otherwise the
  study stops without a val figure.
- On val the variant replaces the shipped stage only if its accuracy is >= ``base``'s (same run) + 0.005 and
  its macro-F1 >= ``base``'s.

Usage::

    python research/study_neighbour_morphology.py cv
    python research/study_neighbour_morphology.py score
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from study_neighbour_context import FOLDS, WORK, saved_probabilities, train_fold_index  # noqa: E402

from wsikit.classify.crops import CROP_MPP  # noqa: E402
from wsikit.classify.metrics import classification_report  # noqa: E402
from wsikit.classify.naming import CELL_TYPES  # noqa: E402
from wsikit.classify.neighbourhood import (  # noqa: E402
    RADII_UM,
    fit_balanced_logistic,
    neighbourhood_features,
)

ENSEMBLE = ("", "_seed1")
VARIANTS = ("base", "own", "own+neighbours")


def crop_measurements(crops: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    """(N, 2): log of the nucleus mask's area in um^2 and the mean optical density (sum over RGB) inside it,
    from context crops (channels 0-2 the nucleus field, 3 its mask)."""
    out = np.zeros((len(crops), 2))
    for i in range(0, len(crops), 4096):
        c = crops[i : i + 4096]
        mask = c[..., 3] > 127
        area = mask.sum(axis=(1, 2))
        od = -np.log10((c[..., :3].astype(np.float64) + 1.0) / 256.0).sum(axis=-1)
        out[i : i + len(c), 0] = np.log(np.maximum(area, 1) * CROP_MPP**2)
        out[i : i + len(c), 1] = (od * mask).sum(axis=(1, 2)) / np.maximum(area, 1)
    return out


def neighbour_means(
    values: npt.NDArray[np.float64], xy: npt.NDArray[np.float64], group: npt.NDArray[Any]
) -> npt.NDArray[np.float64]:
    """Per radius of RADII_UM, the mean of ``values`` (N, 2) over the other nuclei within it (same group); a
    nucleus's own values where it has none. The means and counts are those of the stage's own features
    (``neighbourhood_features``, given the values as its first two "probabilities")."""
    padded = np.concatenate([values, np.zeros((len(values), 1))], axis=1)
    feats = neighbourhood_features(padded, xy, group=group)
    out = []
    for r_i in range(len(RADII_UM)):
        base = 3 + 4 * r_i
        count = np.rint(np.expm1(feats[:, base + 3]))
        out.append(np.where(count[:, None] > 0, feats[:, base : base + 2], values))
    return np.concatenate(out, axis=1)


def features(
    variant: str, prob: np.ndarray, xy: np.ndarray, group: np.ndarray, meas: np.ndarray
) -> np.ndarray:
    base = neighbourhood_features(prob, xy, group=group)
    if variant == "base":
        return base
    if variant == "own":
        return np.concatenate([base, meas], axis=1)
    return np.concatenate([base, meas, neighbour_means(meas, xy, group)], axis=1)


def _predict(fitted: tuple[np.ndarray, ...], feats: np.ndarray) -> np.ndarray:
    mean, std, weight, bias = fitted
    z = ((feats - mean) / std) @ weight.T + bias
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _load() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray, np.ndarray]:
    tr, va = dict(np.load(WORK / "train.npz")), dict(np.load(WORK / "val.npz"))
    prob_tr, prob_va = saved_probabilities(ENSEMBLE)
    return tr, va, prob_tr, prob_va


def cv(out: Path) -> None:
    tr, _, prob, _ = _load()
    truth, xy, image = tr["truth"], tr["xy"], tr["image"]
    meas = crop_measurements(tr["crops"])
    fold = train_fold_index()
    lab = truth >= 0
    prior = np.bincount(truth[lab], minlength=3) / lab.sum()
    rows: dict[str, Any] = {}
    for variant in VARIANTS:
        feats = features(variant, prob, xy, image, meas)
        accs, f1s = [], []
        confusion = np.zeros((3, 3), int)
        for k in range(FOLDS):
            fit, test = (fold != k) & (fold >= 0), (fold == k) & lab
            pred = (_predict(fit_balanced_logistic(feats[fit], truth[fit]), feats[test]) * prior).argmax(1)
            rep = classification_report(truth[test], pred, CELL_TYPES).to_dict()
            accs.append(rep["accuracy"])
            f1s.append(rep["macro_f1"])
            np.add.at(confusion, (truth[test], pred), 1)
        rows[variant] = {
            "accuracy": round(float(np.mean(accs)), 4),
            "macro_f1": round(float(np.mean(f1s)), 4),
            "per_fold_accuracy": np.round(accs, 4).tolist(),
            "confusion_all_folds": confusion.tolist(),
        }
        print(
            f"{variant:<16} acc {np.mean(accs):.4f} mF1 {np.mean(f1s):.4f} folds {np.round(accs, 3).tolist()}"
        )
    best = max(("own", "own+neighbours"), key=lambda v: rows[v]["accuracy"])
    go = (
        rows[best]["accuracy"] >= rows["base"]["accuracy"] + 0.003
        and rows[best]["macro_f1"] >= rows["base"]["macro_f1"]
    )
    print(f"chosen: {best}; goes to val: {go}")
    out.write_text(
        json.dumps(
            {
                "data": "BRCA-M2C train, 72 patients, 4 folds by patient; out-of-fold ensemble (seeds 0, 1) "
                "predictions; stage fitted on 3 folds, scored on the 4th; training prior",
                "rows": rows,
                "chosen": best,
                "rule": "chosen = higher within-train accuracy of own / own+neighbours; to val only with "
                "accuracy >= base + 0.003 and macro-F1 >= base's",
                "goes_to_val": go,
            },
            indent=1,
        )
        + "\n"
    )


def score(out: Path, cv_json: Path) -> None:
    choice = json.loads(cv_json.read_text())
    if not choice["goes_to_val"]:
        raise SystemExit(f"{cv_json}: the within-train step did not pass; no val figure (the rule)")
    variant = choice["chosen"]
    tr, va, prob_tr, prob_va = _load()
    lab_tr, lab_va = tr["truth"] >= 0, va["truth"] >= 0
    prior = np.bincount(tr["truth"][lab_tr], minlength=3) / lab_tr.sum()
    meas_tr, meas_va = crop_measurements(tr["crops"]), crop_measurements(va["crops"])
    rows: dict[str, Any] = {}
    per_patient: dict[str, dict[str, float]] = {}
    for v in ("base", variant):
        fitted = fit_balanced_logistic(features(v, prob_tr, tr["xy"], tr["image"], meas_tr), tr["truth"])
        p = _predict(fitted, features(v, prob_va, va["xy"], va["image"], meas_va))
        pred = (p[lab_va] * prior).argmax(1)
        rep = classification_report(va["truth"][lab_va], pred, CELL_TYPES).to_dict()
        rows[v] = rep
        ok = pred == va["truth"][lab_va]
        pats = va["patient"][lab_va]
        per_patient[v] = {str(q): round(float(ok[pats == q].mean()), 4) for q in sorted(set(pats.tolist()))}
        print(
            f"{v:<16} acc {rep['accuracy']:.4f} bal {rep['balanced_accuracy']:.4f} mF1 {rep['macro_f1']:.4f} "
            f"F1 {rep['f1']}"
        )
    passed = (
        rows[variant]["accuracy"] >= rows["base"]["accuracy"] + 0.005
        and rows[variant]["macro_f1"] >= rows["base"]["macro_f1"]
    )
    print("ship rule passed:", passed)
    out.write_text(
        json.dumps(
            {
                "validation": "BRCA-M2C val (10 patients), train-only ensemble (seeds 0, 1) predictions",
                "val_nuclei_labelled": int(lab_va.sum()),
                "variant": variant,
                "rows": rows,
                "per_patient_accuracy": per_patient,
                "ship_rule": "accuracy >= base + 0.005 and macro-F1 >= base's",
                "ship_rule_passed": passed,
            },
            indent=1,
        )
        + "\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("step", choices=["cv", "score"])
    args = ap.parse_args()
    cv_json = HERE / "results_study_neighbour_morphology_cv.json"
    if args.step == "cv":
        cv(cv_json)
    else:
        score(HERE / "results_study_neighbour_morphology.json", cv_json)


if __name__ == "__main__":
    main()
