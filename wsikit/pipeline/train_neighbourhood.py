"""Fit the neighbourhood stage of a context CNN on out-of-fold predictions (``wsikit train neighbourhood``).

The stage (:mod:`wsikit.classify.neighbourhood`) maps a nucleus's CNN probabilities and those of the nuclei
around it to cell-type probabilities. It must learn from predictions like those the CNN makes on patients it
never saw, so the procedure is:

1. every field of the BRCA-M2C splits is segmented as ``wsikit run`` segments a slide, every nucleus gets a
   context crop and a centroid, and each labelled point names the nucleus that holds it
   (:func:`gather_field_nuclei`);
2. the patients are split into ``folds``; per fold a context CNN in the given configuration is trained on the
   other folds' labelled nuclei and predicts every nucleus of the fold (out-of-fold);
3. the stage is fitted on all out-of-fold predictions and written into a copy of the given weights
   (:func:`train_neighbourhood_stage`), with the command, machine and seconds.

The shipped ``cells-context-cnn`` stage was fitted this way by ``research/study_neighbour_context.py`` (4 folds
of BRCA-M2C train; val predicted by the CNN trained on all of train); see docs/classification.md.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from wsikit import __version__
from wsikit._typing import PathLike
from wsikit.classify.naming import CELL_TYPES
from wsikit.errors import ConfigError

__all__ = ["gather_field_nuclei", "load_context_cnn", "train_neighbourhood_stage"]


def load_context_cnn(weights: PathLike) -> dict[str, Any]:
    """The checkpoint of a context CNN (``wsikit train cell-types --model cnn``), the network a stage refines.

    Raises
    ------
    WeightsError, ConfigError
        Missing or unreadable file; weights of another model.
    """
    from wsikit.models.infogan import Critic, CriticEnsemble
    from wsikit.models.registry import load_checkpoint

    ck = load_checkpoint(weights, arch=(Critic.ARCH, CriticEnsemble.ARCH))
    if ck["meta"].get("input") != "context":
        raise ConfigError(f"{weights}: not a context CNN (its input is {ck['meta'].get('input')!r})")
    return ck


def gather_field_nuclei(
    data: PathLike,
    *,
    splits: tuple[str, ...] = ("train",),
    stain: Literal["cnn", "none"] = "cnn",
    max_images: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, npt.NDArray[Any]]:
    """Every segmented nucleus of the BRCA-M2C fields of ``splits``, labelled or not.

    Returns ``{"crops": (N, 40, 40, 7) uint8 context crops, "label": (N,) cell-type index or -1 (no point),
    "image": (N,) field index, "patient": (N,) str, "xy_um": (N, 2) centroid (x, y) in microns, "seconds":
    0-d, the time it took}``.
    Train never holds a patient of val or test (the dataset's splits are by slide).
    """
    from wsikit.classify.crops import context_crops, standardize_stain
    from wsikit.datasets import load_brca_m2c
    from wsikit.pipeline.labelled_nuclei import NucleusMatcher, match_points, nucleus_centres_um

    start = time.perf_counter()
    samples = []
    for split in splits:
        others = tuple(s for s in ("val", "test") if s not in splits)
        samples += load_brca_m2c(data, split, exclude_patients_of=others if split == "train" else ())
    samples = samples[:max_images] if max_images else samples
    if not samples:
        raise ConfigError(f"no BRCA-M2C field in {data} for splits {', '.join(splits)}")
    matcher = NucleusMatcher(stain=stain)
    crops, label, image, patient, xy = [], [], [], [], []
    for i, s in enumerate(samples):
        lab = matcher.segment(s.image, s.mpp)
        c, ids = context_crops(standardize_stain(s.image), lab, mpp=s.mpp)
        if progress is not None:
            progress(i + 1, len(samples))
        if not len(ids):
            continue
        pm = match_points(lab, zip(s.x.tolist(), s.y.tolist(), s.label.tolist(), strict=True))
        t = np.full(len(ids), -1, np.int64)
        row = {int(n): j for j, n in enumerate(ids)}
        for nid, k in zip(pm.ids.tolist(), pm.cell_types.tolist(), strict=True):
            if nid in row:
                t[row[nid]] = k
        crops.append(c)
        label.append(t)
        image.extend([i] * len(ids))
        patient.extend([s.patient] * len(ids))
        xy.append(nucleus_centres_um(lab, ids, s.mpp))
    return {
        "crops": np.concatenate(crops),
        "label": np.concatenate(label),
        "image": np.array(image, np.int64),
        "patient": np.array(patient),
        "xy_um": np.concatenate(xy),
        "seconds": np.array(time.perf_counter() - start),
    }


def train_neighbourhood_stage(
    fields: dict[str, npt.NDArray[Any]],
    weights: PathLike,
    out: PathLike,
    *,
    folds: int = 4,
    steps: int = 4000,
    scanner: bool = True,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    command: str | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Fit the neighbourhood stage on out-of-fold predictions of ``fields`` and write ``weights`` + stage to
    ``out``.

    Parameters
    ----------
    fields
        :func:`gather_field_nuclei`'s output.
    weights
        A context-CNN weights file (``wsikit train cell-types --model cnn``): the network the stage refines;
        its tensors are copied unchanged.
    folds
        Patient folds; each fold's nuclei are predicted by a CNN trained on the other folds' labelled nuclei
        (``steps``, ``scanner``, ``seed``: that CNN's training, as ``wsikit train cell-types``).

    Returns
    -------
    (pathlib.Path, dict)
        The weights file written and a summary (nuclei, folds, out-of-fold accuracy of the CNN and of the
        CNN + stage within the fitted nuclei, seconds).

    Raises
    ------
    ConfigError
        Fewer than 2 patients per fold, a fold without every cell type in its training part, or weights that
        are not a context CNN.
    """
    import torch

    from wsikit._atomic import check_output_parent
    from wsikit.classify.infer import CellClassifier
    from wsikit.classify.neighbourhood import fit_neighbourhood_stage
    from wsikit.classify.supervised import SupervisedTrainConfig, train_context_cnns
    from wsikit.models.registry import save_checkpoint

    start = time.perf_counter()
    out_path = Path(out)
    check_output_parent(out_path)
    ck = load_context_cnn(weights)
    members = int(ck["config"].get("members", 1))
    if folds < 2:
        raise ConfigError(f"folds must be >= 2, got {folds}")
    patients = np.array(sorted(set(fields["patient"].tolist())))
    if len(patients) < folds:
        raise ConfigError(f"{folds} folds need at least {folds} patients, got {len(patients)}")
    fold_of = dict(
        zip(patients.tolist(), np.random.default_rng(seed).permutation(len(patients)) % folds, strict=True)
    )
    fold = np.array([fold_of[p] for p in fields["patient"].tolist()])
    label = np.asarray(fields["label"], np.int64)
    prob = np.zeros((len(label), len(CELL_TYPES)))
    for k in range(folds):
        fit = (fold != k) & (label >= 0)
        counts = np.bincount(label[fit], minlength=len(CELL_TYPES))
        if (counts == 0).any():
            raise ConfigError(
                f"fold {k}: the other folds lack a cell type ({counts.tolist()}); use fewer folds"
            )
        cfg = SupervisedTrainConfig(steps=steps, scanner=scanner, seed=seed)
        # as many members per fold as the weights hold (an ensemble's stage learns from ensemble predictions)
        net, _ = train_context_cnns(fields["crops"][fit], label[fit], cfg, members=members)
        # float32: the shipped stages were fitted on float32 out-of-fold predictions (reproducible as documented)
        clf = CellClassifier(
            net, cluster_names=list(CELL_TYPES), meta={"input": "context"}, prior="uniform", precision="fp32"
        )
        prob[fold == k] = clf.probabilities(fields["crops"][fold == k], with_prior=False)
        if progress is not None:
            progress(k + 1, folds)
    stage = fit_neighbourhood_stage(prob, fields["xy_um"], label, group=fields["image"])
    named = label >= 0
    prior = np.bincount(label[named], minlength=len(CELL_TYPES)) / named.sum()
    refined = stage.probabilities(prob, fields["xy_um"], group=fields["image"])
    seconds = round(time.perf_counter() - start + float(fields.get("seconds", 0.0)), 1)  # with the gathering
    summary = {
        "nuclei": int(len(label)),
        "labelled": int(named.sum()),
        "patients": int(len(patients)),
        "folds": folds,
        # in-sample for the stage (36 numbers): a check that it learnt, not an estimate for new patients
        "cnn_out_of_fold_accuracy": round(float(((prob * prior).argmax(1) == label)[named].mean()), 4),
        "with_stage_accuracy": round(float(((refined * prior).argmax(1) == label)[named].mean()), 4),
        "seconds": seconds,
    }
    meta = {
        **ck["meta"],
        "neighbourhood": {
            **stage.to_meta(),
            "training_data": f"out-of-fold context-CNN predictions of {len(patients)} BRCA-M2C patients "
            f"({folds} folds by patient, {steps} steps each"
            + (f", {members} CNNs per fold, seeds {seed}..{seed + members - 1})" if members > 1 else ")"),
            "command": command or "",
            "seconds": seconds,
            "machine": f"{torch.get_num_threads()} torch threads, wsikit {__version__}",
            "date": dt.date.today().isoformat(),
        },
    }
    save_checkpoint(out_path, arch=ck["arch"], config=ck["config"], state=ck["state_dict"], meta=meta)
    return out_path, summary
