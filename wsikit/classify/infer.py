"""``CellClassifier``: a trained critic's D_Q head as a nucleus classifier with named classes.

Three kinds of weights load into it, all a :class:`~wsikit.models.infogan.Critic` with its D_Q head:

- the paper's unsupervised InfoGAN (``infogan-cells``; whitened 40x40 nucleus crops, K clusters each
  named a cell type by the morphology rule);
- the semi-supervised InfoGAN (7-channel context crops, code k = cell type k);
- the supervised context CNN (the same network trained with labels alone; architecture ``context-cnn-v1``), or
  an ensemble of them (``context-cnn-ensemble-v1``: the mean of their softmaxes).

:meth:`CellClassifier.crops` cuts the input its weights were trained on, so callers never choose.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from wsikit._typing import PathLike
from wsikit.classify.crops import CONTEXT_MPP, context_channels, context_crops, nucleus_crops, to_tensor
from wsikit.classify.naming import CELL_TYPES
from wsikit.classify.neighbourhood import NeighbourhoodStage
from wsikit.errors import ConfigError, ShapeError
from wsikit.models.infogan import CELL_NETWORK_ARCHS, Critic, CriticEnsemble, load_cell_network
from wsikit.models.precision import Precision, autocast, resolve_precision
from wsikit.models.registry import WEIGHTS, WeightsError, weights_path

__all__ = ["CellClassifier", "Prediction", "DEFAULT_CLASSIFIER", "INPUTS"]

DEFAULT_CLASSIFIER = "cells-context-cnn"
"""Shipped weights ``wsikit run`` classifies with: the most accurate model on BRCA-M2C's validation
patients (docs/classification.md)."""

INPUTS = ("nucleus", "context")
"""Crop kinds: ``nucleus`` (40x40 RGB, whitened outside the nucleus unless the weights say otherwise),
``context`` (7 channels, :func:`~wsikit.classify.context_crops`)."""


class Prediction:
    """Per-nucleus output: ``cell_type`` index into :data:`CELL_TYPES`, ``cluster`` of the model, ``probability``
    of the predicted cell type (summed over the clusters of that type)."""

    def __init__(
        self,
        cell_type: npt.NDArray[np.int64],
        cluster: npt.NDArray[np.int64],
        probability: npt.NDArray[np.float64],
    ) -> None:
        self.cell_type = cell_type
        self.cluster = cluster
        self.probability = probability

    def __len__(self) -> int:
        return len(self.cluster)


class CellClassifier:
    """Classify nucleus crops (made by :meth:`crops`) into :data:`CELL_TYPES`.

    Parameters
    ----------
    critic : Critic or CriticEnsemble
        A trained critic (only its trunk and D_Q head are used), or an ensemble of them (the mean of their
        softmaxes).
    cluster_names : list of str
        Cell-type name of each D_Q category.
    meta : dict
        The weights' metadata; ``meta["input"]`` (``nucleus`` or ``context``) says which crops it takes.
    tta : bool, optional
        Average each prediction over the 8 rotations and flips of the crop (default: as the weights say;
        the shipped labelled classifiers do).
    prior : {"training", "uniform"}
        Class prior of the decision. A labelled classifier trained on class-balanced batches scores each
        class as if all were equally frequent; ``training`` multiplies those scores by the class
        frequencies of its training nuclei (``meta["class_prior"]``; BRCA-M2C train: 53% epithelial, 19%
        lymphocyte, 28% fibroblast), the Bayes decision for tissue like the training patients'.
        ``uniform`` leaves them equal (for tissue whose mix is unknown or very different).
    precision : {"auto", "fp32", "bf16"}
        Arithmetic of the network (:mod:`wsikit.models.precision`): ``auto`` is bf16 on CUDA and on CPUs that
        compute it natively (1.7x faster on this project's CPU; BRCA-M2C val unchanged, docs/classification.md),
        float32 elsewhere. Probabilities are bit-identical on 1 or 2 threads either way.
    """

    def __init__(
        self,
        critic: Critic | CriticEnsemble,
        *,
        cluster_names: list[str],
        device: str = "cpu",
        meta: dict[str, Any] | None = None,
        tta: bool | None = None,
        prior: str = "training",
        precision: Precision = "auto",
    ) -> None:
        if len(cluster_names) != critic.config.n_classes:
            raise ConfigError(f"{len(cluster_names)} cluster names for {critic.config.n_classes} clusters")
        unknown = set(cluster_names) - set(CELL_TYPES)
        if unknown:
            raise ConfigError(f"unknown cell types {sorted(unknown)}; valid: {', '.join(CELL_TYPES)}")
        self.meta = meta or {}
        self.tta = bool(self.meta.get("tta", False)) if tta is None else tta
        if prior not in ("training", "uniform"):
            raise ConfigError(f"prior must be 'training' or 'uniform', got {prior!r}")
        self.prior = prior
        if self.input not in INPUTS:
            raise ConfigError(f"unknown classifier input {self.input!r}; valid: {', '.join(INPUTS)}")
        want = context_channels(self.context_mpp) if self.input == "context" else 3
        if critic.config.channels != want:
            raise ConfigError(
                f"{self.input} crops have {want} channels, the network takes {critic.config.channels}"
            )
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        # float32 (float64 until 2026-11-30): 7.7x faster per batch on the CPU (6.2 vs 47.7 ms per 64 crops),
        # the classify stage of a 4,096^2 slide 14% faster; with the same batches (wsikit run cuts them the
        # same way every run) the probabilities are bit-identical with 1 or 2 threads, and on that slide's
        # 6,246 nuclei every class equals the float64 one (probabilities within 1e-6).
        self.critic = critic.eval().to(device).to(torch.float32)
        # Bit-identical probabilities on 1 or 2 threads (a Dask worker runs 1, a single process 2): batches of
        # 5-11 crops gave float32 outputs that differed in the last bit between thread counts (oneDNN / MKL
        # split small problems by thread count), which the neighbourhood stage carries into its output (1
        # class_probability of 1,816 in 1e-6 on a test region). So every batch is padded to ``batch_size``
        # (identical 1 vs 2 threads), and one forward pass runs at a time.
        self._forward_lock = threading.Lock()
        self.cluster_names = list(cluster_names)
        self._lut = np.array([CELL_TYPES.index(n) for n in cluster_names], np.int64)

    @property
    def n_clusters(self) -> int:
        return self.critic.config.n_classes

    @property
    def input(self) -> str:
        """``nucleus`` or ``context``: the crops the weights were trained on."""
        return str(self.meta.get("input", "nucleus"))

    @property
    def context_mpp(self) -> tuple[float, ...]:
        """Resolutions of the surroundings fields of its context crops (empty for nucleus crops)."""
        if self.input != "context":
            return ()
        return tuple(float(m) for m in np.atleast_1d(np.asarray(self.meta.get("context_mpp", CONTEXT_MPP))))

    @property
    def context_radius_um(self) -> float:
        """How far from a nucleus's centre its crops reach, in microns."""
        return max((*self.context_mpp, 0.5 * 1.15)) * self.critic.config.size / 2

    @property
    def whiten(self) -> bool:
        """Whether nucleus crops must have the background whitened (always False for context crops)."""
        return self.input == "nucleus" and bool(self.meta.get("whiten", True))

    @property
    def supervised(self) -> bool:
        """Whether labels trained it (each category is a cell type; no clusters to name)."""
        return self.input == "context"

    @classmethod
    def from_weights(
        cls,
        path: PathLike,
        *,
        n_classes: int | None = None,
        input: str | None = None,
        **kwargs: Any,
    ) -> CellClassifier:
        """Load weights written by ``wsikit train classifier`` or ``wsikit train cell-types``.

        ``input`` (``nucleus`` / ``context``), when given, is the kind of classifier the caller expects.

        Raises
        ------
        WeightsError
            Unreadable, for another architecture, of another kind than ``input``, or made for another number
            of classes than ``n_classes``.
        """
        critic = load_cell_network(path)
        cfg = critic.config
        if n_classes is not None and cfg.n_classes != n_classes:
            raise WeightsError(f"{path}: weights are for K={cfg.n_classes} classes, expected K={n_classes}")
        meta = dict(critic.weights_meta)
        kind = str(meta.get("input", "nucleus"))
        if input is not None and kind != input:
            what = {
                "nucleus": "the unsupervised InfoGAN (whitened 40x40 nucleus crops)",
                "context": "a labelled context classifier (7-channel context crops)",
            }
            raise WeightsError(f"{path}: weights are {what.get(kind, kind)}, not {what.get(input, input)}")
        return cls(critic, cluster_names=list(meta["cluster_names"]), meta=meta, **kwargs)

    @classmethod
    def load(cls, weights: PathLike | None = None, **kwargs: Any) -> CellClassifier:
        """``weights`` if given, else the shipped default (the choice every command's ``--weights`` makes)."""
        return cls.from_weights(weights, **kwargs) if weights else cls.from_pretrained(**kwargs)

    @classmethod
    def from_pretrained(cls, name: str = DEFAULT_CLASSIFIER, **kwargs: Any) -> CellClassifier:
        """Load shipped weights: ``cells-context-cnn`` (default), ``cells-context-infogan`` or ``infogan-cells``
        (the paper's unsupervised InfoGAN; ``cells`` is accepted for it as before)."""
        if name not in WEIGHTS and f"infogan-{name}" in WEIGHTS:
            name = f"infogan-{name}"
        entry = WEIGHTS.get(name)
        arch = entry.arch if entry is not None and entry.arch in CELL_NETWORK_ARCHS else Critic.ARCH
        return cls.from_weights(weights_path(name, arch=arch), **kwargs)

    def crops(
        self,
        image: npt.NDArray[np.uint8],
        labels: npt.NDArray[np.integer],
        *,
        mpp: float,
        ids: npt.NDArray[np.integer] | None = None,
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
        """Cut the crops this classifier takes from a stain-standardized field (see :func:`standardize_stain`)."""
        if self.input == "context":
            return context_crops(image, labels, mpp=mpp, ids=ids, context_mpp=self.context_mpp)
        return nucleus_crops(image, labels, mpp=mpp, ids=ids, whiten=self.whiten)

    @torch.no_grad()
    def probabilities(
        self,
        crops: npt.NDArray[np.uint8],
        *,
        batch_size: int = 64,
        tta: bool | None = None,
        with_prior: bool = True,
    ) -> npt.NDArray[np.float64]:
        """(N, n_clusters) class probabilities of (N, 40, 40, C) uint8 crops: D_Q's softmax, times the class
        prior (see ``prior``) and renormalized; ``with_prior=False`` gives the softmax alone (the input of
        the :attr:`neighbourhood` stage).

        ``tta`` (default: the classifier's ``tta``) averages the softmax over the 8 rotations and flips of
        each crop (the training augmentation), at 8x the cost.
        """
        tta = self.tta if tta is None else tta
        cfg = self.critic.config
        shape = (cfg.size, cfg.size, cfg.channels)
        if crops.ndim != 4 or crops.shape[1:] != shape:
            raise ShapeError(f"crops must be (N, {', '.join(map(str, shape))}) uint8, got {crops.shape}")
        dtype = next(self.critic.parameters()).dtype
        with self._forward_lock:
            out = self._forward(crops, batch_size, tta, dtype)
        p: npt.NDArray[np.float64] = np.concatenate(out) if out else np.zeros((0, cfg.n_classes))
        return self._with_prior(p) if with_prior else p

    def _forward(
        self, crops: npt.NDArray[np.uint8], batch_size: int, tta: bool, dtype: torch.dtype
    ) -> list[npt.NDArray[np.float64]]:
        cfg = self.critic.config
        out = []
        for i in range(0, len(crops), batch_size):
            x = to_tensor(crops[i : i + batch_size]).to(self.device, dtype)
            n = x.shape[0]
            if n < batch_size:  # every batch the same shape (see _forward_lock): pad, then drop the padding
                x = torch.cat([x, x.new_zeros((batch_size - n, *x.shape[1:]))])
            if not tta:
                with autocast(self.device, self.precision):
                    logits = self.critic(x)[1]
                out.append(logits[:n].float().softmax(dim=1).cpu().double().numpy())
                continue
            # the 8 rotations / flips in one forward pass (one large batch runs faster than 8 small ones)
            turned = [torch.rot90(x, k, dims=(2, 3)) for k in range(4)]
            views = torch.cat(turned + [v.flip(3) for v in turned])
            with autocast(self.device, self.precision):
                logits = self.critic(views)[1]
            prob = logits.float().softmax(dim=1).reshape(8, x.shape[0], cfg.n_classes)
            out.append(prob.mean(dim=0)[:n].cpu().double().numpy())
        return out

    def _with_prior(self, p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        weights = self.class_prior
        if weights is not None and len(p):
            p = p * weights
            p = p / p.sum(axis=1, keepdims=True)
        return p

    @property
    def neighbourhood(self) -> NeighbourhoodStage | None:
        """The weights' neighbourhood stage (:mod:`wsikit.classify.neighbourhood`), None if they have none.

        With a stage, a nucleus's cell type also depends on the predictions for the nuclei around it:
        :meth:`predict` alone gives the network's decision; :meth:`refine` the stage's, from the network
        probabilities (``probabilities(..., with_prior=False)``) and centroids of every nucleus of a region.
        """
        meta = self.meta.get("neighbourhood")
        if not meta:
            return None
        cached = self.__dict__.get("_neighbourhood")
        if cached is None:
            cached = NeighbourhoodStage.from_meta(meta)
            self.__dict__["_neighbourhood"] = cached
        return cached

    def refine(
        self,
        network_prob: npt.NDArray[np.float64],
        xy_um: npt.NDArray[np.floating],
        *,
        group: npt.NDArray[Any] | None = None,
    ) -> Prediction:
        """Cell types from the neighbourhood stage: every nucleus of a region (a slide, or fields told apart
        by ``group``) with its network probabilities (N, 3) and centroid in microns (N, 2).

        Raises
        ------
        ConfigError
            The weights have no neighbourhood stage.
        """
        stage = self.neighbourhood
        if stage is None:
            raise ConfigError("these classifier weights have no neighbourhood stage")
        return self._decide(self._with_prior(stage.probabilities(network_prob, xy_um, group=group)))

    @property
    def class_prior(self) -> npt.NDArray[np.float64] | None:
        """Per-category multiplier of the decision (None: the scores as the network gives them)."""
        prior = self.meta.get("class_prior")
        if self.prior != "training" or prior is None:
            return None
        w = np.asarray(prior, np.float64)
        if w.shape != (self.n_clusters,) or (w <= 0).any():
            raise ConfigError(f"weights' class_prior must be {self.n_clusters} positive numbers, got {prior}")
        out: npt.NDArray[np.float64] = w / w.sum()
        return out

    def predict(self, crops: npt.NDArray[np.uint8], *, batch_size: int = 64) -> Prediction:
        """Cell type, cluster and probability of each crop.

        ``batch_size`` crops go through the critic at a time: the activations of its first layer take
        ``batch_size`` x 0.2 MB at the default width (float32), so 64 keeps a chunk's worth of nuclei to ~15 MB
        per thread (512 made ``wsikit run``'s classify stage peak several hundred MB higher).
        """
        return self.decide(self.probabilities(crops, batch_size=batch_size, with_prior=False))

    def decide(self, network_prob: npt.NDArray[np.float64]) -> Prediction:
        """Cell types from network probabilities (``probabilities(..., with_prior=False)``): times the class
        prior, then the most probable type (what :meth:`predict` returns, without running the network)."""
        return self._decide(self._with_prior(network_prob))

    def _decide(self, p: npt.NDArray[np.float64]) -> Prediction:
        cluster = p.argmax(axis=1).astype(np.int64) if len(p) else np.zeros(0, np.int64)
        cell = self._lut[cluster]
        by_type = np.zeros((len(p), len(CELL_TYPES)))
        for k, t in enumerate(self._lut):
            by_type[:, t] += p[:, k]
        prob = np.round(by_type[np.arange(len(p)), cell], 6).astype(np.float64)
        return Prediction(cell, cluster, prob)
