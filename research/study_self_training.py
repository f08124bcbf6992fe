"""Study (issue 14): self-training the context CNN on the unlabelled nuclei of the training images.

BRCA-M2C train's images hold 32,337 segmented nuclei, of which 15,716 carry a label (a point); the context CNN
is not capacity- or step-limited at this data size (docs/classification.md), so more (pseudo-)labelled nuclei
are the lever left. Teacher: the train-only ensemble's two CNNs (seeds 0 and 1, trained on the labelled train
nuclei only), mean softmax on the unlabelled train nuclei; every nucleus whose top class has probability >= 0.9
becomes a pseudo-labelled one. Student: the shipped CNN configuration (4,000 steps, scanner jitter, seed 0),
trained on labelled + pseudo-labelled nuclei, scored alone (no neighbourhood stage) on BRCA-M2C val with the
training prior, against the teacher's seed-0 CNN scored the same way (research/_work/neighbour/prob_val.npy:
the "CNN alone" of docs/classification.md).

Rule, committed before the student trained: self-training is worth carrying into the shipped procedure (fold
networks, stage, refit: a later session) only if the student's val accuracy >= the seed-0 CNN's + 0.01 and its
macro-F1 >= the seed-0 CNN's. Nothing ships from this study.

A second seed (``--seed 1``: the student against the seed-1 CNN, research/_work/neighbour/prob_val_seed1.npy) was
added after the seed-0 result, to see whether the gain is more than one seed's luck; it is read as confirming only
if that student also beats its CNN by >= 0.005 in accuracy.

Usage::

    python research/study_self_training.py [--seed 1]
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work" / "neighbour"
CONFIDENCE = 0.9


def main() -> None:
    import argparse

    from study_self_training_ensemble import softmax, teacher_softmax

    from wsikit.classify.metrics import classification_report
    from wsikit.classify.naming import CELL_TYPES
    from wsikit.classify.supervised import SupervisedTrainConfig, train_context_cnn

    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--seed", type=int, default=0, help="the student's seed, compared with the teacher CNN of that seed"
    )
    seed = ap.parse_args().seed
    tag = f"_seed{seed}" if seed else ""
    torch.set_num_threads(2)
    tr, va = np.load(WORK / "train.npz"), np.load(WORK / "val.npz")
    labelled = tr["truth"] >= 0
    teachers = [WORK / "cells-context-cnn-trainonly.pt", WORK / "cells-context-cnn-trainonly_seed1.pt"]
    unl = tr["crops"][~labelled]
    p = teacher_softmax(teachers, unl)
    sure = p.max(axis=1) >= CONFIDENCE
    pseudo = p.argmax(axis=1)[sure]
    print(
        "unlabelled",
        len(unl),
        "pseudo-labelled",
        int(sure.sum()),
        "per class",
        np.bincount(pseudo, minlength=3).tolist(),
    )
    crops = np.concatenate([tr["crops"][labelled], unl[sure]])
    y = np.concatenate([tr["truth"][labelled], pseudo])
    state = train_context_cnn(crops, y, SupervisedTrainConfig(steps=4000, scanner=True, seed=seed))
    p_student = softmax(state.model, va["crops"])
    p_teacher = np.load(WORK / f"prob_val{tag}.npy")
    prior = (
        np.bincount(tr["truth"][labelled], minlength=3) / labelled.sum()
    )  # the training prior, as wsikit run
    lab = va["truth"] >= 0
    rows = {}
    for name, q in (
        (f"seed-{seed} CNN (labels only)", p_teacher),
        ("student (labels + pseudo-labels)", p_student),
    ):
        rep = classification_report(va["truth"][lab], (q[lab] * prior).argmax(axis=1), CELL_TYPES).to_dict()
        rows[name] = rep
        print(
            f"{name:<34} acc {rep['accuracy']:.4f} bal {rep['balanced_accuracy']:.4f} mF1 {rep['macro_f1']:.4f} F1 {rep['f1']}"
        )
    a, b = rows[f"seed-{seed} CNN (labels only)"], rows["student (labels + pseudo-labels)"]
    passed = b["accuracy"] >= a["accuracy"] + 0.01 and b["macro_f1"] >= a["macro_f1"]
    print("rule passed:", passed)
    (HERE / f"results_study_self_training{tag}.json").write_text(
        json.dumps(
            {
                "confidence": CONFIDENCE,
                "pseudo_labelled": int(sure.sum()),
                "pseudo_per_class": np.bincount(pseudo, minlength=3).tolist(),
                "rows": rows,
                "passed": passed,
                "seconds": round(state.seconds, 1),
            },
            indent=1,
        )
        + "\n"  # fmt: skip
    )


if __name__ == "__main__":
    main()
