"""Train the labelled cell-type classifiers on BRCA-M2C: gather context crops, train, write weights.

Two models, both on context crops (:func:`~wsikit.classify.context_crops`):

- ``cnn``: the supervised context CNN (:mod:`wsikit.classify.supervised`);
- ``infogan``: the semi-supervised InfoGAN (:mod:`wsikit.classify.train` with ``label_weight`` > 0): the
  paper's generator / WGAN-GP critic / D_Q, D_Q's 3-way code also trained with cross-entropy on the
  labelled nuclei, the GAN on every nucleus (labelled or not) of BRCA-M2C train, MoNuSeg and MICCAI 2015.

The labelled nuclei are BRCA-M2C's train split (less the 2 slides of patients that also have a val slide)
matched to the nuclei ``wsikit run``'s default path
segments (:class:`~wsikit.pipeline.labelled_nuclei.NucleusMatcher`); the val split (other patients) is
left for choosing between models.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from wsikit import __version__
from wsikit._atomic import check_output_parent
from wsikit._typing import PathLike
from wsikit.classify.crops import (
    CONTEXT_MPP,
    CROP_MPP,
    CROP_SIZE,
    context_channels,
    context_crops,
    standardize_stain,
)
from wsikit.classify.naming import CELL_TYPES
from wsikit.datasets.nuclei import WORKING_MPP, load_dataset
from wsikit.errors import ConfigError, ShapeError
from wsikit.models.registry import save_checkpoint
from wsikit.pipeline.labelled_nuclei import UNLABELLED_MIN_AREA_UM2, NucleusMatcher
from wsikit.vectorize.measure import measure_nuclei

__all__ = [
    "gather_context_crops",
    "load_context_crops",
    "pool_context_crops",
    "train_cell_type_classifier",
    "EXTRA_UNLABELLED",
]

log = logging.getLogger(__name__)

EXTRA_UNLABELLED = ("monuseg", "miccai2015")
"""Datasets whose annotated nuclei join the semi-supervised InfoGAN's unlabelled pool (DSB 2018's
64 x 80 um tiles are too small for the 64 um surroundings channels; NuCLS and MoNuSAC are evaluation sets)."""


def gather_context_crops(
    data: PathLike,
    *,
    split: str = "train",
    stain: Literal["cnn", "none"] = "cnn",
    extra_unlabelled: tuple[str, ...] = EXTRA_UNLABELLED,
    context_mpp: tuple[float, ...] = (CONTEXT_MPP,),
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, npt.NDArray[Any]]:
    """Context crops of BRCA-M2C ``split`` (labelled) and of every other nucleus (unlabelled).

    Returns ``{"crops": (N, 40, 40, C) uint8 (C = 4 + 3 per ``context_mpp`` field), "label": (N,) cell-type index, "patient": (N,) str,
    "unlabelled": (M, 40, 40, 7) uint8, "points_per_class", "matched_per_class"}``.
    """
    from wsikit.datasets import load_brca_m2c

    # train never holds a patient of val (the dataset's splits are by slide; two patients are in both)
    samples = load_brca_m2c(data, split, exclude_patients_of=("val", "test") if split == "train" else ())
    matcher = NucleusMatcher(stain=stain, context=True, unlabelled=True, context_mpp=context_mpp)
    n = len(samples)
    fields = (
        (s.name, s.image, s.mpp, None, list(zip(s.x.tolist(), s.y.tolist(), s.label.tolist(), strict=True)))
        for s in samples
    )
    got = matcher.match(fields, progress=None if progress is None else (lambda i: progress(i, n)))
    assert got.context is not None and got.unlabelled is not None
    patient_of = {s.name: s.patient for s in samples}
    pool = [got.unlabelled, got.context]
    for name in extra_unlabelled:
        if name in ("nucls", "monusac", "brca_m2c"):
            raise ConfigError(f"{name} holds evaluation labels and cannot join the unlabelled pool")
        items = list(load_dataset(name, data, split="train"))
        if name == "monuseg":
            items.extend(load_dataset(name, data, split="test"))
        for s in items:
            std = standardize_stain(s.image)
            present = np.unique(s.labels)
            ids = present[present > 0]
            if not len(ids):
                continue
            a = measure_nuclei(std, s.labels, mpp=WORKING_MPP, ids=ids)["area"]
            ids = ids[a >= UNLABELLED_MIN_AREA_UM2]
            if len(ids):
                pool.append(
                    context_crops(std, s.labels, mpp=WORKING_MPP, ids=ids, context_mpp=context_mpp)[0]
                )
    return {
        "crops": got.context,
        "label": got.truth,
        "patient": np.array([patient_of[i] for i in got.image]),
        "unlabelled": np.concatenate(pool),
        "points_per_class": got.points_per_class,
        "matched_per_class": got.matched_per_class,
        "split": np.array(split),
        "context_mpp": np.array(context_mpp, np.float64),
        "stain": np.array(stain),
    }


def load_context_crops(path: PathLike) -> dict[str, npt.NDArray[Any]]:
    """Read a file written from :func:`gather_context_crops` (``wsikit train crops --context``).

    Raises
    ------
    ConfigError
        Missing or unreadable file.
    ShapeError
        Not a context-crops file (e.g. the unsupervised InfoGAN's whitened crops).
    """
    from wsikit.pipeline.train_classifier import read_crops_file

    p = Path(path)
    data = read_crops_file(p)
    mpps = tuple(float(m) for m in np.atleast_1d(data.get("context_mpp", np.array([CONTEXT_MPP]))))
    data["context_mpp"] = np.array(mpps)
    shape = (CROP_SIZE, CROP_SIZE, context_channels(mpps))
    for key in ("crops", "label", "unlabelled"):
        if key not in data:
            raise ShapeError(
                f"{p}: not a context-crops file (no {key!r}; make one with `wsikit train crops --context`)"
            )
        if key != "label" and data[key].shape[1:] != shape:
            raise ShapeError(f"{p}: {key} must be (N, {', '.join(map(str, shape))}), got {data[key].shape}")
    return data


def pool_context_crops(parts: list[dict[str, npt.NDArray[Any]]]) -> dict[str, npt.NDArray[Any]]:
    """Pool context-crops files (e.g. BRCA-M2C train and val for a final refit) into one.

    Raises
    ------
    ConfigError
        No file, or files cut with different surroundings fields.
    """
    if not parts:
        raise ConfigError("no context-crops file to pool")
    if len(parts) == 1:
        return parts[0]
    mpps = {tuple(np.atleast_1d(p["context_mpp"]).tolist()) for p in parts}
    if len(mpps) != 1:
        raise ConfigError(f"context-crops files were cut with different surroundings fields: {sorted(mpps)}")
    out: dict[str, npt.NDArray[Any]] = {
        k: np.concatenate([p[k] for p in parts]) for k in ("crops", "label", "unlabelled")
    }
    out["context_mpp"] = parts[0]["context_mpp"]
    out["split"] = np.array("+".join(str(p.get("split", "?")) for p in parts))
    out["stain"] = parts[0].get("stain", np.array("cnn"))
    return out


def _machine() -> str:
    import os
    import platform

    import torch

    return (
        f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {'CUDA' if torch.cuda.is_available() else 'CPU'}"
    )


def train_cell_type_classifier(
    crops: dict[str, npt.NDArray[Any]],
    out: PathLike,
    *,
    model: Literal["cnn", "infogan"],
    steps: int,
    seed: int = 0,
    label_weight: float = 1.0,
    tta: bool = False,
    scanner: bool | None = None,
    members: int | None = None,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
    command: str | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Train one labelled classifier on gathered context crops and write its weights to ``out``.

    ``tta`` is stored in the weights: whether :class:`~wsikit.classify.CellClassifier` averages its
    predictions over the 8 rotations and flips of a crop by default. ``members`` > 1 (cnn only) trains that
    many CNNs with seeds ``seed``, ``seed + 1``, ... and writes them as one ensemble (the mean of their
    softmaxes; ``members`` times the classify stage's model time). ``scanner`` (scanner jitter) and
    ``members`` default to the shipped ``cells-context-cnn``'s configuration for the cnn (on, 2) and to
    off / 1 for the InfoGAN.
    """
    from wsikit.classify.supervised import SupervisedTrainConfig, train_context_cnns
    from wsikit.classify.train import ARCH, ClassifierTrainConfig, train_classifier
    from wsikit.models.infogan import CriticEnsemble

    out_path = Path(out)
    check_output_parent(out_path)
    x, y = crops["crops"], np.asarray(crops["label"], np.int64)
    mpps = [float(m) for m in np.atleast_1d(crops.get("context_mpp", np.array([CONTEXT_MPP])))]
    channels = context_channels(tuple(mpps))
    if x.ndim != 4 or x.shape[1:] != (CROP_SIZE, CROP_SIZE, channels):
        raise ShapeError(f"crops must be context crops (N, 40, 40, {channels}), got {x.shape}")
    counts = np.bincount(y, minlength=len(CELL_TYPES))
    meta: dict[str, Any] = {
        "input": "context",
        "crop_mpp": CROP_MPP,
        "context_mpp": mpps,
        "crop_size": CROP_SIZE,
        "whiten": False,
        "cluster_names": list(CELL_TYPES),
        "labelled": {c: int(n) for c, n in zip(CELL_TYPES, counts, strict=True)},
        # both models see class-balanced labelled batches: the decision multiplies the training frequencies back
        "class_prior": [round(float(n / counts.sum()), 6) for n in counts],
        "tta": tta,
        "unlabelled": int(len(crops["unlabelled"])) if model == "infogan" else 0,
        "training_data": f"BRCA-M2C {crops.get('split', 'train')} (labelled)"
        + (", every nucleus of it + MoNuSeg + MICCAI 2015 (unlabelled)" if model == "infogan" else ""),
        "segmentation": f"stain={crops.get('stain', 'cnn')}",
        "wsikit_version": __version__,
        "machine": _machine(),
        "date": dt.date.today().isoformat(),
        "command": command or "",
    }
    if model not in ("cnn", "infogan"):
        raise ConfigError(f"model must be 'cnn' or 'infogan', got {model!r}")
    if members not in (None, 1) and model != "cnn":
        raise ConfigError("members (an ensemble) applies to the cnn model")
    if scanner and model != "cnn":
        raise ConfigError("scanner jitter applies to the cnn model")
    members = members if members is not None else (2 if model == "cnn" else 1)
    scanner = scanner if scanner is not None else model == "cnn"
    ckpt = out_path.with_name(out_path.name + ".ckpt")
    net: Any
    if model == "cnn":
        cfg: Any = SupervisedTrainConfig(steps=steps, seed=seed, scanner=scanner)
        net, states = train_context_cnns(x, y, cfg, members=members, progress=progress)
        arch, method = type(net).ARCH, "supervised context CNN"
        if members > 1:
            method = f"ensemble of {members} supervised context CNNs (seeds {seed}..{seed + members - 1})"
        steps_done, seconds = states[0].step, sum(st.seconds for st in states)
        summary: dict[str, Any] = {
            "loss_last": float(np.mean([r["loss"] for st in states for r in st.history[-100:]]))
        }
    else:
        if label_weight <= 0:
            raise ConfigError("the semi-supervised InfoGAN needs label_weight > 0")
        cfg = ClassifierTrainConfig(
            n_classes=len(CELL_TYPES),
            steps=steps,
            seed=seed,
            channels=channels,
            label_weight=label_weight,
            jitter=1.0,
        )
        state = train_classifier(
            crops["unlabelled"], cfg, checkpoint=ckpt, resume=True, progress=progress, labelled=(x, y)
        )
        arch, net, method = ARCH, state.model, "semi-supervised InfoGAN"
        steps_done, seconds = state.step, state.seconds
        last = state.history[-100:]
        summary = {
            "label_ce_last": float(np.mean([r["label_ce"] for r in last])),
            "wasserstein_last": float(np.mean([r["wasserstein"] for r in last])),
        }
    meta.update(method=method, train_config=cfg.__dict__, seconds=round(seconds, 1))
    config = net.config_dict() if isinstance(net, CriticEnsemble) else net.config.to_dict()
    save_checkpoint(out_path, arch=arch, config=config, state=net.state_dict(), meta=meta)
    ckpt.unlink(missing_ok=True)
    summary = {"steps": steps_done, "seconds": round(seconds, 1), **summary}
    return out_path, summary
