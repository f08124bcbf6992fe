"""Study: does the neighbourhood (the predicted types of nearby nuclei) lift the context CNN? BRCA-M2C val only.

Issue 14 allows "the neighbourhood (density and types of nearby nuclei)" as input. The context CNN already sees
64 um around each nucleus; this asks whether the CNN's own predictions for the nuclei around a nucleus (within
25 and 50 um), and how many there are, add to its own prediction, through a small second-stage model
(multinomial logistic regression on 3 + 2 x 4 features, class-balanced, in torch).

Protocol (no test patient is seen; val chooses nothing here but the ship decision, under the rule below):
1. every BRCA-M2C image (train without the two patients also in val, and val) is segmented by the default
   path; every nucleus gets a context crop and a centroid; points name nuclei as ``wsikit eval classifier`` does;
2. the train patients are split into 4 folds; a context CNN in the shipped configuration (4,000 steps,
   scanner jitter, seed 0) is trained on 3 folds and predicts every nucleus of the 4th (out-of-fold), so the
   second stage learns from predictions like those it will get on new patients;
3. a CNN on all train patients (the shipped train-only fit's configuration) predicts every val nucleus;
4. the second stage is fitted on train's out-of-fold features and scored on val; both with the decision of
   ``wsikit run`` (softmax times the training class prior).

Ship rule, committed before any val figure was computed: the neighbourhood stage joins ``wsikit run`` only if
its val accuracy is >= the CNN's + 0.01 and its macro-F1 >= the CNN's.

Follow-up study (2026-11-30, session 9): test-time augmentation under the stage. The CNN's softmax averaged
over the 8 rotations / flips of each crop (``tta``) gained about 0.01 val accuracy for the CNN alone in
``research/study_cell_type_cnn.py``; here the stage is fitted on out-of-fold TTA predictions (the same 4 fold
networks, retrained with the same seed, now kept) and scored on val with the train-only CNN's TTA predictions.
Ship rule, committed before any of these val figures was computed: ``tta`` is switched on in the shipped
weights only if CNN(TTA) + stage reaches val accuracy >= CNN + stage (0.780 above) + 0.005 and macro-F1 >=
its 0.766, **and** ``wsikit run``'s classify + neighbourhood stages stay under 30% of its wall time on both
``benchmarks/bench_run.py`` slides with TTA on.

Follow-up study (2026-11-30, session 10): a seed ensemble under the stage. Two CNNs of the shipped configuration
(seeds 0 and 1) average their softmax; the stage is fitted on the ensemble's out-of-fold predictions (the seed-1
fold networks trained on the same folds). It doubles the network's share of the classify stage (about 1 s of
10 s on the 4,096^2 bench slide), not 8x as TTA. Ship rule, committed before any seed-1 network was trained:
the ensemble replaces the single CNN only if ensemble + stage reaches val accuracy >= 0.780 + 0.005 and macro-F1
>= 0.766, **and** classify + neighbourhood stay under 30% of ``wsikit run`` on both ``benchmarks/bench_run.py``
slides with the ensemble in the shipped weights.

Follow-up study (2026-12-01, session 16): scale jitter in the shipped procedure. Alone, a CNN trained with half
its crops zoomed by up to 1.2x either way scored +0.008 on val (research/study_cell_type_cnn.py, below the +0.01
of that rule); the lymphocytes of the val patient TCGA-A7-A0DB, segmented larger than most, are what the
neighbourhood stage does not correct. Here every network of the shipped procedure (fold and train-only, seeds 0
and 1) is retrained with ``scale=0.2`` and the stage fitted on their out-of-fold ensemble predictions. Ship rule,
committed before any of these networks was trained: the scale-jitter ensemble + stage replaces the shipped
procedure only if its val accuracy is >= the ensemble + stage without it (same run) + 0.005 and its macro-F1 >=
that one's.

Usage::

    python research/study_neighbour_context.py prepare            # segmentation + crops (~4 min)
    python research/study_neighbour_context.py fold K             # K in 0..3, and "full" (~5 min each)
    python research/study_neighbour_context.py score [--json F]
    python research/study_neighbour_context.py weights            # the stage into the weights files
    python research/study_neighbour_context.py score-tta          # the TTA follow-up (after fold 0..3, full)
    python research/study_neighbour_context.py weights --tta      # the TTA stage + ``tta`` into the weights
    python research/study_neighbour_context.py score-stage W.pt   # val figure of another file's stage
    python research/study_neighbour_context.py fold K --seed 1    # the ensemble's second member, K in 0..3, full
    python research/study_neighbour_context.py score-ensemble     # the ensemble follow-up
    python research/study_neighbour_context.py weights-ensemble REFIT.pt   # its stages into the weights
    python research/study_neighbour_context.py fold K --seed S --scale 0.2  # scale jitter, K in 0..3, full; S 0, 1
    python research/study_neighbour_context.py score-scale        # the scale-jitter follow-up
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work" / "neighbour"
DATA = HERE.parents[1] / "shared" / "data"
FOLDS = 4


def prepare() -> None:
    from wsikit.pipeline.train_neighbourhood import gather_field_nuclei

    WORK.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        # train without the patients that also have a val or test slide, as wsikit train does
        f = gather_field_nuclei(
            DATA,
            splits=(split,),
            progress=lambda i, n, s=split: print(f"{s} {i}/{n}", file=sys.stderr, flush=True),
        )
        np.savez(
            WORK / f"{split}.npz",
            crops=f["crops"],
            truth=f["label"],
            image=f["image"],
            patient=f["patient"],
            xy=f["xy_um"],
        )


def _cnn_probabilities(
    train_crops: np.ndarray,
    train_y: np.ndarray,
    crops: np.ndarray,
    save: Path | None = None,
    keep: Path | None = None,
    seed: int = 0,
    scale: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The CNN's softmax for ``crops`` without and with test-time augmentation (8 rotations / flips)."""
    from wsikit.classify.crops import CONTEXT_MPP
    from wsikit.classify.infer import CellClassifier
    from wsikit.classify.naming import CELL_TYPES
    from wsikit.classify.supervised import CNN_ARCH, SupervisedTrainConfig, train_context_cnn
    from wsikit.models.registry import save_checkpoint

    torch.set_num_threads(1)
    state = train_context_cnn(
        train_crops, train_y, SupervisedTrainConfig(steps=4000, scanner=True, seed=seed, scale=scale)
    )
    if keep is not None:  # the fold's network, so later variants need no retraining
        torch.save(state.model.state_dict(), keep)
    if save is not None:  # the train-only fit, in the shipped format (fp16), for `wsikit eval classifier`
        counts = np.bincount(train_y, minlength=3)
        meta = {
            "input": "context",
            "context_mpp": [CONTEXT_MPP],
            "cluster_names": list(CELL_TYPES),
            "class_prior": [round(float(c / counts.sum()), 6) for c in counts],
            "training_data": "BRCA-M2C train (72 patients), research/study_neighbour_context.py fold full"
            + (f" --seed {seed}" if seed else "")
            + (f" --scale {scale}" if scale else ""),
        }
        save_checkpoint(
            save,
            arch=CNN_ARCH,
            config=state.model.config.to_dict(),
            state=state.model.state_dict(),
            meta=meta,
        )
    clf = CellClassifier(
        state.model, cluster_names=list(CELL_TYPES), meta={"input": "context"}, prior="uniform"
    )
    return clf.probabilities(crops, tta=False), clf.probabilities(crops, tta=True)


def fold(which: str, seed: int = 0, scale: float = 0.0) -> None:
    """Train fold ``which`` (0..3, or "full": all train patients, predicting val) with CNN seed ``seed``; files of
    seeds other than 0 carry a ``_seed{S}`` suffix (the ensemble follow-up), files of networks trained with scale
    jitter ``scale`` > 0 a ``_scale`` suffix after it (the scale-jitter follow-up)."""
    tag = (f"_seed{seed}" if seed else "") + ("_scale" if scale else "")
    tr = np.load(WORK / "train.npz")
    labelled = tr["truth"] >= 0
    if which == "full":
        va = np.load(WORK / "val.npz")
        p, p_tta = _cnn_probabilities(
            tr["crops"][labelled],
            tr["truth"][labelled],
            va["crops"],
            save=WORK / f"cells-context-cnn-trainonly{tag}.pt",
            seed=seed,
            scale=scale,
        )
        np.save(WORK / f"prob_val{tag}.npy", p)
        np.save(WORK / f"prob_val{tag}_tta.npy", p_tta)
        return
    k = int(which)
    patients = np.array(sorted(set(tr["patient"].tolist())))
    held = set(patients[np.random.default_rng(0).permutation(len(patients)) % FOLDS == k].tolist())
    out_fold = np.array([p in held for p in tr["patient"].tolist()])
    fit = labelled & ~out_fold
    p, p_tta = _cnn_probabilities(
        tr["crops"][fit],
        tr["truth"][fit],
        tr["crops"][out_fold],
        keep=WORK / f"fold{k}{tag}.state.pt",
        seed=seed,
        scale=scale,
    )
    np.save(WORK / f"prob_train_fold{k}{tag}.npy", p)
    np.save(WORK / f"prob_train_fold{k}{tag}_tta.npy", p_tta)
    np.save(WORK / f"rows_train_fold{k}.npy", np.flatnonzero(out_fold))


def score(out: Path | None) -> None:
    from wsikit.classify.metrics import classification_report
    from wsikit.classify.naming import CELL_TYPES
    from wsikit.classify.neighbourhood import fit_neighbourhood_stage

    tr, va = np.load(WORK / "train.npz"), np.load(WORK / "val.npz")
    prob_tr = np.zeros((len(tr["truth"]), 3))
    for k in range(FOLDS):
        prob_tr[np.load(WORK / f"rows_train_fold{k}.npy")] = np.load(WORK / f"prob_train_fold{k}.npy")
    prob_va = np.load(WORK / "prob_val.npy")
    lab_tr, lab_va = tr["truth"] >= 0, va["truth"] >= 0
    prior = np.bincount(tr["truth"][lab_tr], minlength=3) / lab_tr.sum()  # the training prior, as wsikit run

    def decide(p: np.ndarray) -> np.ndarray:
        return (p * prior).argmax(axis=1)

    stage = fit_neighbourhood_stage(prob_tr, tr["xy"], tr["truth"], group=tr["image"])
    p_stage = stage.probabilities(prob_va, va["xy"], group=va["image"])
    p_stage_oof = stage.probabilities(prob_tr, tr["xy"], group=tr["image"])
    y = va["truth"][lab_va]
    rows = {}
    for name, p in (("cnn", prob_va), ("cnn + neighbourhood", p_stage)):
        rep = classification_report(y, decide(p[lab_va]), CELL_TYPES).to_dict()
        rows[name] = rep
        print(
            f"{name:<22} acc {rep['accuracy']:.3f} bal {rep['balanced_accuracy']:.3f} mF1 {rep['macro_f1']:.3f} F1 {rep['f1']}"
        )
    oof = {
        name: classification_report(tr["truth"][lab_tr], decide(p[lab_tr]), CELL_TYPES).to_dict()["accuracy"]
        for name, p in (("cnn", prob_tr), ("cnn + neighbourhood (in-sample)", p_stage_oof))
    }
    print("train out-of-fold accuracy", oof)
    passed = (
        rows["cnn + neighbourhood"]["accuracy"] >= rows["cnn"]["accuracy"] + 0.01
        and rows["cnn + neighbourhood"]["macro_f1"] >= rows["cnn"]["macro_f1"]
    )
    print("ship rule passed:", passed)
    if out:
        out.write_text(
            json.dumps(
                {
                    "validation": "BRCA-M2C val (10 patients)",
                    "val_nuclei_labelled": int(lab_va.sum()),
                    "train_nuclei_labelled": int(lab_tr.sum()),
                    "radii_um": list(stage.radii_um),
                    "rows": rows,
                    "train_out_of_fold_accuracy": oof,
                    "stage_weights": np.round(stage.weight, 4).tolist(),
                    "ship_rule": "accuracy >= cnn + 0.01 and macro-F1 >= cnn's",
                    "ship_rule_passed": passed,
                },
                indent=1,
            )
            + "\n"
        )


def train_fold_index() -> np.ndarray:
    """Per train nucleus (rows of ``train.npz``), the patient fold (0..FOLDS-1) whose networks did not see it."""
    n = len(np.load(WORK / "train.npz")["truth"])
    fold = np.full(n, -1)
    for k in range(FOLDS):
        fold[np.load(WORK / f"rows_train_fold{k}.npy")] = k
    return fold


def saved_probabilities(tags: tuple[str, ...] = ("",)) -> tuple[np.ndarray, np.ndarray]:
    """Train's out-of-fold and val's CNN softmax saved by ``fold``, averaged over the file tags ``tags`` ("" for
    seed 0, "_seed1", "_tta", "_seed1_tta": an ensemble when several)."""
    tr = np.load(WORK / "train.npz")
    prob_tr = np.zeros((len(tr["truth"]), 3))
    for k in range(FOLDS):
        rows = np.load(WORK / f"rows_train_fold{k}.npy")
        prob_tr[rows] = np.mean([np.load(WORK / f"prob_train_fold{k}{t}.npy") for t in tags], axis=0)
    prob_va = np.mean([np.load(WORK / f"prob_val{t}.npy") for t in tags], axis=0)
    return prob_tr, prob_va


def _score_with_stage(
    name: str, prob_tr: np.ndarray, prob_va: np.ndarray, rows: dict[str, dict], oof: dict[str, float]
) -> None:
    """Val scores of the CNN (``prob_va``) and of it + a stage fitted on ``prob_tr`` into ``rows``, train's
    out-of-fold CNN accuracy into ``oof``; the decision of ``wsikit run`` (times the training prior)."""
    from wsikit.classify.metrics import classification_report
    from wsikit.classify.naming import CELL_TYPES
    from wsikit.classify.neighbourhood import fit_neighbourhood_stage

    tr, va = np.load(WORK / "train.npz"), np.load(WORK / "val.npz")
    lab_tr, lab_va = tr["truth"] >= 0, va["truth"] >= 0
    prior = np.bincount(tr["truth"][lab_tr], minlength=3) / lab_tr.sum()
    stage = fit_neighbourhood_stage(prob_tr, tr["xy"], tr["truth"], group=tr["image"])
    for label, p in ((f"cnn {name}", prob_va), (f"cnn {name} + neighbourhood",
                     stage.probabilities(prob_va, va["xy"], group=va["image"]))):  # fmt: skip
        rep = classification_report(
            va["truth"][lab_va], (p[lab_va] * prior).argmax(axis=1), CELL_TYPES
        ).to_dict()
        rows[label] = rep
        print(
            f"{label:<36} acc {rep['accuracy']:.3f} bal {rep['balanced_accuracy']:.3f} "
            f"mF1 {rep['macro_f1']:.3f} F1 {rep['f1']}"
        )
    oof[name] = classification_report(
        tr["truth"][lab_tr], (prob_tr[lab_tr] * prior).argmax(axis=1), CELL_TYPES
    ).to_dict()["accuracy"]


def score_tta(out: Path) -> None:
    """The pre-registered TTA follow-up: CNN + stage without TTA (as shipped) vs with TTA (the stage fitted on
    out-of-fold TTA predictions), both on val with the training prior."""

    rows: dict[str, dict] = {}
    oof: dict[str, float] = {}
    for suffix in ("", "_tta"):
        _score_with_stage("tta" if suffix else "plain", *saved_probabilities((suffix,)), rows, oof)
    print("train out-of-fold CNN accuracy", oof)
    a, b = rows["cnn plain + neighbourhood"], rows["cnn tta + neighbourhood"]
    accuracy_rule = b["accuracy"] >= a["accuracy"] + 0.005 and b["macro_f1"] >= a["macro_f1"]
    print(
        "accuracy part of the ship rule passed:",
        accuracy_rule,
        "(the run-time part: benchmarks/bench_run.py)",
    )
    out.write_text(
        json.dumps(
            {
                "validation": "BRCA-M2C val (10 patients)",
                "rows": rows,
                "train_out_of_fold_cnn_accuracy": oof,
                "ship_rule": "tta + stage: val accuracy >= plain + stage + 0.005 and macro-F1 >= its; and "
                "classify + neighbourhood < 30% of wsikit run on both bench_run slides",
                "accuracy_rule_passed": accuracy_rule,
            },
            indent=1,
        )
        + "\n"
    )


def _score_members(members: dict[str, tuple[str, ...]]) -> tuple[dict[str, dict], dict[str, float]]:
    """Val rows (CNN, CNN + stage) and train's out-of-fold CNN accuracy of each ensemble ``name -> file tags``."""
    rows: dict[str, dict] = {}
    oof_acc: dict[str, float] = {}
    for name, tags in members.items():
        _score_with_stage(name, *saved_probabilities(tags), rows, oof_acc)
    print("train out-of-fold CNN accuracy", oof_acc)
    return rows, oof_acc


def score_ensemble(out: Path) -> None:
    """The pre-registered seed-ensemble follow-up: CNN + stage as shipped (seed 0) vs the mean softmax of the
    seed-0 and seed-1 CNNs + a stage fitted on the ensemble's out-of-fold predictions; val, training prior."""
    members = {"seed 0": ("",), "seed 1": ("_seed1",), "ensemble seeds 0+1": ("", "_seed1")}
    rows, oof_acc = _score_members(members)
    a, b = rows["cnn seed 0 + neighbourhood"], rows["cnn ensemble seeds 0+1 + neighbourhood"]
    accuracy_rule = b["accuracy"] >= 0.780 + 0.005 and b["macro_f1"] >= 0.766
    print(
        "accuracy part of the ship rule passed:",
        accuracy_rule,
        "(the run-time part: benchmarks/bench_run.py)",
    )
    out.write_text(
        json.dumps(
            {
                "validation": "BRCA-M2C val (10 patients)",
                "rows": rows,
                "train_out_of_fold_cnn_accuracy": oof_acc,
                "ship_rule": "ensemble (seeds 0+1) + stage: val accuracy >= 0.780 + 0.005 and macro-F1 >= 0.766; "
                "and classify + neighbourhood < 30% of wsikit run on both bench_run slides",
                "seed_0_reproduces_shipped": bool(abs(a["accuracy"] - 0.780) < 0.0015),
                "accuracy_rule_passed": accuracy_rule,
            },
            indent=1,
        )
        + "\n"
    )


def score_scale(out: Path) -> None:
    """The pre-registered scale-jitter follow-up (session 16): the shipped procedure (ensemble of seeds 0 and 1 +
    a stage fitted on its out-of-fold predictions) with and without scale jitter (0.2) in every network; val,
    training prior, both fitted and scored in this run."""
    members = {"ensemble": ("", "_seed1"), "ensemble scale jitter": ("_scale", "_seed1_scale")}
    rows, oof_acc = _score_members(members)
    a, b = rows["cnn ensemble + neighbourhood"], rows["cnn ensemble scale jitter + neighbourhood"]
    passed = b["accuracy"] >= a["accuracy"] + 0.005 and b["macro_f1"] >= a["macro_f1"]
    print("ship rule passed:", passed)
    out.write_text(
        json.dumps(
            {
                "validation": "BRCA-M2C val (10 patients)",
                "rows": rows,
                "train_out_of_fold_cnn_accuracy": oof_acc,
                "ship_rule": "scale-jitter ensemble + stage: val accuracy >= ensemble + stage (same run) + 0.005 "
                "and macro-F1 >= its",
                "ship_rule_passed": passed,
            },
            indent=1,
        )
        + "\n"
    )


def score_stage(weights: Path) -> None:
    """Val figure of another weights file's stage (e.g. from ``wsikit train neighbourhood`` on the train-only
    CNN) on the train-only CNN's val predictions, as ``score`` scores the study's own stage."""
    from wsikit.classify.infer import CellClassifier
    from wsikit.classify.metrics import classification_report
    from wsikit.classify.naming import CELL_TYPES

    tr, va = np.load(WORK / "train.npz"), np.load(WORK / "val.npz")
    lab_tr, lab_va = tr["truth"] >= 0, va["truth"] >= 0
    prior = np.bincount(tr["truth"][lab_tr], minlength=3) / lab_tr.sum()
    stage = CellClassifier.load(weights).neighbourhood
    if stage is None:
        raise SystemExit(f"{weights}: no neighbourhood stage")
    p = stage.probabilities(np.load(WORK / "prob_val.npy"), va["xy"], group=va["image"])
    rep = classification_report(va["truth"][lab_va], (p[lab_va] * prior).argmax(axis=1), CELL_TYPES).to_dict()
    print(
        f"{weights}: val acc {rep['accuracy']:.4f} bal {rep['balanced_accuracy']:.4f} "
        f"mF1 {rep['macro_f1']:.4f} F1 {rep['f1']}"
    )


def write_weights(tta: bool = False) -> None:
    """The stage into weights files: (a) fitted on train's out-of-fold predictions, added to the train-only CNN
    (``WORK/cells-context-cnn-trainonly-neighbourhood.pt``: what every val figure is of); (b) fitted on the
    out-of-fold predictions of all 82 train + val patients (val's come from the train-only CNN, which never saw
    them), added to the shipped refit ``cells-context-cnn`` (the refit policy of docs/classification.md: chosen
    on val, then refitted on train + val without scoring)."""
    import shlex

    from wsikit.classify.neighbourhood import fit_neighbourhood_stage
    from wsikit.models.registry import load_checkpoint, save_checkpoint

    tr, va = np.load(WORK / "train.npz"), np.load(WORK / "val.npz")
    suffix = "_tta" if tta else ""
    prob_tr = np.zeros((len(tr["truth"]), 3))
    for k in range(FOLDS):
        prob_tr[np.load(WORK / f"rows_train_fold{k}.npy")] = np.load(WORK / f"prob_train_fold{k}{suffix}.npy")
    prob_va = np.load(WORK / f"prob_val{suffix}.npy")
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    train_only = fit_neighbourhood_stage(prob_tr, tr["xy"], tr["truth"], group=tr["image"])
    both = fit_neighbourhood_stage(
        np.concatenate([prob_tr, prob_va]),
        np.concatenate([tr["xy"], va["xy"]]),
        np.concatenate([tr["truth"], va["truth"]]),
        group=np.concatenate([tr["image"], va["image"] + tr["image"].max() + 1]),
    )
    shipped = HERE.parent / "wsikit" / "models" / "weights" / "cells-context-cnn.pt"
    for stage, src, dst, data in (
        (train_only, WORK / "cells-context-cnn-trainonly.pt", WORK / "cells-context-cnn-trainonly-neighbourhood.pt",
         "out-of-fold CNN predictions of BRCA-M2C train (72 patients, 4 folds by patient)"),
        (both, shipped, shipped,
         "out-of-fold CNN predictions of BRCA-M2C train + val (82 patients; train in 4 folds by patient, val from "
         "the train-only CNN)"),
    ):  # fmt: skip
        ck = load_checkpoint(src, arch=("context-cnn-v1",))
        meta = {**ck["meta"], "neighbourhood": {**stage.to_meta(), "training_data": data, "command": command}}
        meta["tta"] = tta  # the stage learnt from predictions made so
        save_checkpoint(dst, arch=ck["arch"], config=ck["config"], state=ck["state_dict"], meta=meta)
        print("wrote", dst)


def write_ensemble_weights(refit: Path) -> None:
    """The ensemble follow-up's weights, as ``weights`` writes the single CNN's: (a) the train-only ensemble
    (``WORK/cells-context-cnn-trainonly.pt`` + ``..._seed1.pt``) with a stage fitted on train's out-of-fold
    ensemble predictions (``WORK/cells-context-cnn-ensemble-trainonly-neighbourhood.pt``: what the val
    figures are of); (b) ``refit`` (``wsikit train cell-types --members 2`` on train + val) with a stage fitted
    on the out-of-fold ensemble predictions of all 82 patients (val's from the train-only ensemble), written
    as the shipped ``cells-context-cnn``."""
    import shlex

    from wsikit.classify.neighbourhood import fit_neighbourhood_stage
    from wsikit.models.infogan import Critic, CriticEnsemble
    from wsikit.models.registry import load_checkpoint, save_checkpoint

    tr, va = np.load(WORK / "train.npz"), np.load(WORK / "val.npz")
    prob_tr, prob_va = saved_probabilities(("", "_seed1"))
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    train_only = fit_neighbourhood_stage(prob_tr, tr["xy"], tr["truth"], group=tr["image"])
    both = fit_neighbourhood_stage(
        np.concatenate([prob_tr, prob_va]),
        np.concatenate([tr["xy"], va["xy"]]),
        np.concatenate([tr["truth"], va["truth"]]),
        group=np.concatenate([tr["image"], va["image"] + tr["image"].max() + 1]),
    )
    # (a) the train-only ensemble from the two train-only fits
    members = [Critic.load(WORK / f"cells-context-cnn-trainonly{t}.pt") for t in ("", "_seed1")]
    first = load_checkpoint(WORK / "cells-context-cnn-trainonly.pt", arch=(Critic.ARCH,))
    net = CriticEnsemble.of(members)
    meta = {**first["meta"], "method": "ensemble of 2 supervised context CNNs (seeds 0..1)"}
    meta["training_data"] += " (seeds 0 and 1)"
    shipped = HERE.parent / "wsikit" / "models" / "weights" / "cells-context-cnn.pt"
    jobs = [
        (train_only, CriticEnsemble.ARCH, net.config_dict(), net.state_dict(), meta,
         WORK / "cells-context-cnn-ensemble-trainonly-neighbourhood.pt",
         "out-of-fold ensemble predictions of BRCA-M2C train (72 patients, 4 folds by patient, 2 CNNs per fold)"),
    ]  # fmt: skip
    if refit.is_file():  # (b) only once the refit is trained
        c = load_checkpoint(refit, arch=(CriticEnsemble.ARCH,))
        jobs.append(
            (both, c["arch"], c["config"], c["state_dict"], c["meta"], shipped,
             "out-of-fold ensemble predictions of BRCA-M2C train + val (82 patients; train in 4 folds by "
             "patient, 2 CNNs per fold; val from the train-only ensemble)")
        )  # fmt: skip
    for stage, arch, config, state, base_meta, dst, data in jobs:
        out_meta = {
            **base_meta,
            "neighbourhood": {**stage.to_meta(), "training_data": data, "command": command},
        }
        save_checkpoint(dst, arch=arch, config=config, state=state, meta=out_meta)
        print("wrote", dst)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "step",
        choices=[
            "prepare",
            "fold",
            "score",
            "score-tta",
            "score-ensemble",
            "score-scale",
            "score-stage",
            "weights",
            "weights-ensemble",
        ],
    )
    ap.add_argument("which", nargs="?", default="full")
    ap.add_argument("--json", type=Path, default=HERE / "results_study_neighbour_context.json")
    ap.add_argument("--tta", action="store_true", help="weights: the stage fitted on TTA predictions, tta on")
    ap.add_argument("--seed", type=int, default=0, help="fold: the CNN's seed (files of seed S != 0: _seedS)")
    ap.add_argument("--scale", type=float, default=0.0, help="fold: scale jitter of the CNN (files: _scale)")
    args = ap.parse_args()
    if args.step == "prepare":
        prepare()
    elif args.step == "fold":
        fold(args.which, seed=args.seed, scale=args.scale)
    elif args.step == "weights":
        write_weights(tta=args.tta)
    elif args.step == "score-stage":
        score_stage(Path(args.which))
    elif args.step == "weights-ensemble":
        write_ensemble_weights(Path(args.which))
    elif args.step == "score-ensemble":
        score_ensemble(HERE / "results_study_neighbour_ensemble.json")
    elif args.step == "score-scale":
        score_scale(HERE / "results_study_neighbour_scale.json")
    elif args.step == "score-tta":
        score_tta(HERE / "results_study_neighbour_tta.json")
    else:
        score(args.json)


if __name__ == "__main__":
    main()
