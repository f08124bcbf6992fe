"""Study (issue 14): self-training carried into the shipped procedure (ensemble of 2 CNNs + neighbourhood stage).

research/study_self_training.py measured a single CNN trained on labels + pseudo-labels (unlabelled nuclei of the
training images whose teacher softmax is >= 0.9) at +0.012 / +0.008 val accuracy over the same CNN on labels
alone (seeds 0 / 1). Here every network of the shipped procedure (research/study_neighbour_context.py) becomes a
student, so the neighbourhood stage is fitted on out-of-fold student predictions as it was on the CNNs':

``fold K --seed S`` (K = 0..3 or ``full``): the teacher is that fold's pair of CNNs (seeds 0 and 1, trained on
the other folds' labels: ``fold{K}.state.pt``, ``fold{K}_seed1.state.pt``; for ``full`` the train-only pair);
it pseudo-labels the unlabelled nuclei of the patients the fold trains on; the student (the shipped
configuration, seed S, one thread) trains on their labels + pseudo-labels and predicts the held-out fold (or
val). ``score``: the students' ensemble + a stage fitted on their out-of-fold predictions, on BRCA-M2C val.

Rule, committed before any student of this study trained: the self-trained ensemble + stage replaces the shipped
one (then refit on train + val as before) only if its val accuracy >= 0.789 + 0.005 (the shipped ensemble + stage,
train-only fit) and macro-F1 >= 0.776. The networks' size and the stage are unchanged, so the run time is too.

Usage::

    for k in 0 1 2 3 full; do python research/study_self_training_ensemble.py fold $k --seed 0; done  # and --seed 1
    python research/study_self_training_ensemble.py score
    # only if the rule passed: the train + val refit with pseudo-labels, then its stage into the shipped weights
    python research/study_self_training_ensemble.py pseudo ctx-pseudo.npz
    wsikit train cell-types --crops ctx-train.npz --crops ctx-val.npz --crops ctx-pseudo.npz --model cnn \
        --members 2 --seed 0 --out cells-context-cnn-st.pt
    python research/study_self_training_ensemble.py weights cells-context-cnn-st.pt
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from study_neighbour_context import FOLDS, WORK, _score_with_stage  # noqa: E402

CONFIDENCE = 0.9


def softmax(net: Any, crops: np.ndarray) -> np.ndarray:
    """The network's softmax for context ``crops`` (float32, no class prior, no stage)."""
    from wsikit.classify.infer import CellClassifier
    from wsikit.classify.naming import CELL_TYPES

    clf = CellClassifier(
        net, cluster_names=list(CELL_TYPES), meta={"input": "context"}, prior="uniform", precision="fp32"
    )
    return clf.probabilities(crops, with_prior=False)


def teacher_softmax(files: list[Path], crops: np.ndarray) -> np.ndarray:
    """Mean softmax of the CNNs in ``files`` (fold state dicts, or weights files)."""
    from wsikit.classify.infer import CellClassifier
    from wsikit.classify.supervised import SupervisedTrainConfig
    from wsikit.models.infogan import Critic

    probs = []
    for f in files:
        if f.name.endswith(".state.pt"):
            net = Critic(SupervisedTrainConfig().model_config(crops.shape[-1]))
            net.load_state_dict(torch.load(f, weights_only=True))
            probs.append(softmax(net, crops))
        else:
            probs.append(
                CellClassifier.from_weights(f, precision="fp32").probabilities(crops, with_prior=False)
            )
    return np.mean(probs, axis=0)


def fold(which: str, seed: int) -> None:
    from wsikit.classify.supervised import SupervisedTrainConfig, train_context_cnn

    torch.set_num_threads(1)
    tag = f"_st_seed{seed}"
    tr = np.load(WORK / "train.npz")
    labelled = tr["truth"] >= 0
    if which == "full":
        fits = np.ones(len(labelled), bool)
        teachers = [WORK / "cells-context-cnn-trainonly.pt", WORK / "cells-context-cnn-trainonly_seed1.pt"]
        target = np.load(WORK / "val.npz")["crops"]
    else:
        k = int(which)
        patients = np.array(sorted(set(tr["patient"].tolist())))
        held = set(patients[np.random.default_rng(0).permutation(len(patients)) % FOLDS == k].tolist())
        out_fold = np.array([p in held for p in tr["patient"].tolist()])
        assert np.array_equal(np.flatnonzero(out_fold), np.load(WORK / f"rows_train_fold{k}.npy"))
        fits = ~out_fold
        teachers = [WORK / f"fold{k}.state.pt", WORK / f"fold{k}_seed1.state.pt"]
        target = tr["crops"][out_fold]
    unl = fits & ~labelled
    p = teacher_softmax(teachers, tr["crops"][unl])
    sure = p.max(axis=1) >= CONFIDENCE
    crops = np.concatenate([tr["crops"][fits & labelled], tr["crops"][unl][sure]])
    y = np.concatenate([tr["truth"][fits & labelled], p.argmax(axis=1)[sure]])
    state = train_context_cnn(crops, y, SupervisedTrainConfig(steps=4000, scanner=True, seed=seed))
    torch.save(state.model.state_dict(), WORK / f"fold{which}{tag}.state.pt")
    prob = softmax(state.model, target)
    np.save(WORK / (f"prob_val{tag}.npy" if which == "full" else f"prob_train_fold{which}{tag}.npy"), prob)
    print(which, seed, "pseudo-labelled", int(sure.sum()), "of", int(unl.sum()), round(state.seconds, 1), "s")


def score() -> None:
    from study_neighbour_context import saved_probabilities

    rows: dict[str, dict] = {}
    oof: dict[str, float] = {}
    _score_with_stage(
        "ensemble seeds 0+1 (shipped procedure)", *saved_probabilities(("", "_seed1")), rows, oof
    )
    _score_with_stage(
        "self-trained ensemble seeds 0+1", *saved_probabilities(("_st_seed0", "_st_seed1")), rows, oof
    )
    b = rows["cnn self-trained ensemble seeds 0+1 + neighbourhood"]
    passed = b["accuracy"] >= 0.789 + 0.005 and b["macro_f1"] >= 0.776
    print("train out-of-fold CNN accuracy", oof)
    print("rule passed:", passed)
    (HERE / "results_study_self_training_ensemble.json").write_text(
        json.dumps(
            {
                "rows": rows,
                "train_out_of_fold_cnn_accuracy": oof,
                "passed": passed,
                "rule": "self-trained ensemble + stage: val accuracy >= 0.794 and macro-F1 >= 0.776",
            },
            indent=1,
        )
        + "\n"  # fmt: skip
    )


def pseudo(out: Path) -> None:
    """Pseudo-labels for the train + val refit: the shipped refit ensemble (``cells-context-cnn``, trained on
    train + val labels) labels the unlabelled nuclei of train's and val's images at softmax >= 0.9; written as a
    context-crops file that ``wsikit train cell-types --crops`` pools with the labelled ones."""
    from wsikit.models.registry import weights_path

    tr, va = np.load(WORK / "train.npz"), np.load(WORK / "val.npz")
    unl = np.concatenate([tr["crops"][tr["truth"] < 0], va["crops"][va["truth"] < 0]])
    p = teacher_softmax([Path(weights_path("cells-context-cnn"))], unl)
    sure = p.max(axis=1) >= CONFIDENCE
    label = p.argmax(axis=1)[sure]
    np.savez(
        out,
        crops=unl[sure],
        label=label,
        patient=np.array(["pseudo"] * int(sure.sum())),
        unlabelled=np.zeros((0, *unl.shape[1:]), np.uint8),
        context_mpp=np.array([1.6]),
        split=np.array("pseudo"),
        stain=np.array("cnn"),
    )
    print(
        "pseudo-labelled",
        int(sure.sum()),
        "of",
        len(unl),
        np.bincount(label, minlength=3).tolist(),
        "->",
        out,
    )


def weights(refit: Path) -> None:
    """Stages into the weights, as research/study_neighbour_context.py ``weights-ensemble`` does for the CNNs:
    the train-only students + a stage on their out-of-fold predictions (what the val figure is of), and
    ``refit`` (the students trained on train + val + pseudo-labels) + a stage on all 82 patients' out-of-fold
    student predictions (val's from the train-only students), written as the shipped ``cells-context-cnn``."""
    import shlex

    from study_neighbour_context import saved_probabilities

    from wsikit.classify.neighbourhood import fit_neighbourhood_stage
    from wsikit.models.infogan import CriticEnsemble
    from wsikit.models.registry import load_checkpoint, save_checkpoint

    tr, va = np.load(WORK / "train.npz"), np.load(WORK / "val.npz")
    prob_tr, prob_va = saved_probabilities(("_st_seed0", "_st_seed1"))
    both = fit_neighbourhood_stage(
        np.concatenate([prob_tr, prob_va]),
        np.concatenate([tr["xy"], va["xy"]]),
        np.concatenate([tr["truth"], va["truth"]]),
        group=np.concatenate([tr["image"], va["image"] + tr["image"].max() + 1]),
    )
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    # (a) the train-only students + a stage on train's out-of-fold student predictions (`wsikit eval classifier`)
    from wsikit.classify.supervised import SupervisedTrainConfig
    from wsikit.models.infogan import Critic

    members = []
    for seed in (0, 1):
        net = Critic(SupervisedTrainConfig().model_config(7))
        net.load_state_dict(torch.load(WORK / f"foldfull_st_seed{seed}.state.pt", weights_only=True))
        members.append(net)
    ens = CriticEnsemble.of(members)
    base = load_checkpoint(
        WORK / "cells-context-cnn-ensemble-trainonly-neighbourhood.pt", arch=(CriticEnsemble.ARCH,)
    )
    train_only = fit_neighbourhood_stage(prob_tr, tr["xy"], tr["truth"], group=tr["image"])
    meta_a = {
        **base["meta"],
        "method": "ensemble of 2 self-trained supervised context CNNs (seeds 0..1)",
        "training_data": base["meta"]["training_data"] + " + pseudo-labelled unlabelled nuclei of its images",
        "neighbourhood": {**train_only.to_meta(), "training_data": "out-of-fold self-trained ensemble predictions "
                          "of BRCA-M2C train (72 patients, 4 folds by patient)", "command": command},
    }  # fmt: skip
    dst = WORK / "cells-context-cnn-st-ensemble-trainonly-neighbourhood.pt"
    save_checkpoint(
        dst, arch=CriticEnsemble.ARCH, config=ens.config_dict(), state=ens.state_dict(), meta=meta_a
    )
    print("wrote", dst)
    if not refit.is_file():
        return
    # (b) the refit
    c = load_checkpoint(refit, arch=(CriticEnsemble.ARCH,))
    data = ("out-of-fold predictions of self-trained ensembles on BRCA-M2C train + val (82 patients; train in 4 "
            "folds by patient, 2 students per fold taught by that fold's CNN pair; val from the train-only students)")  # fmt: skip
    meta = {**c["meta"], "neighbourhood": {**both.to_meta(), "training_data": data, "command": command}}
    shipped = HERE.parent / "wsikit" / "models" / "weights" / "cells-context-cnn.pt"
    save_checkpoint(shipped, arch=c["arch"], config=c["config"], state=c["state_dict"], meta=meta)
    print("wrote", shipped)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["fold"] and len(args) == 4 and args[2] == "--seed":
        fold(args[1], int(args[3]))
    elif args == ["score"]:
        score()
    elif args[:1] == ["pseudo"] and len(args) == 2:
        pseudo(Path(args[1]))
    elif args[:1] == ["weights"] and len(args) == 2:
        weights(Path(args[1]))
    else:
        sys.exit(__doc__)
