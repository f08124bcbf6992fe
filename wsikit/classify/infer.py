"""``CellClassifier``: the trained InfoGAN's D_Q as a nucleus classifier with named clusters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from wsikit._typing import PathLike
from wsikit.classify.naming import CELL_TYPES
from wsikit.classify.train import ARCH, InfoGan, to_tensor
from wsikit.errors import ConfigError, ShapeError
from wsikit.models.infogan import InfoGanConfig
from wsikit.models.registry import WeightsError, load_checkpoint, weights_path

__all__ = ["CellClassifier", "Prediction"]


class Prediction:
    """Per-nucleus output: ``cell_type`` index into :data:`CELL_TYPES`, ``cluster`` of the model, ``probability``."""

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
    """Classify (N, 40, 40, 3) uint8 nucleus crops (made by :func:`wsikit.classify.nucleus_crops`).

    Parameters
    ----------
    model : InfoGan
        A trained model (only its critic's D_Q head is used).
    cluster_names : list of str
        Cell-type name of each cluster (from the naming rule at training time).
    """

    def __init__(
        self,
        model: InfoGan,
        *,
        cluster_names: list[str],
        device: str = "cpu",
        meta: dict[str, Any] | None = None,
    ) -> None:
        if len(cluster_names) != model.config.n_classes:
            raise ConfigError(f"{len(cluster_names)} cluster names for {model.config.n_classes} clusters")
        unknown = set(cluster_names) - set(CELL_TYPES)
        if unknown:
            raise ConfigError(f"unknown cell types {sorted(unknown)}; valid: {', '.join(CELL_TYPES)}")
        self.device = torch.device(device)
        # float64 on the CPU: the same crops give the same probabilities whatever the thread count
        # (float32 sums in another order differ in the 4th decimal), so runs are reproducible.
        self.model = model.eval().to(device).to(torch.float64 if self.device.type == "cpu" else torch.float32)
        self.cluster_names = list(cluster_names)
        self.meta = meta or {}
        self._lut = np.array([CELL_TYPES.index(n) for n in cluster_names], np.int64)

    @property
    def n_clusters(self) -> int:
        return self.model.config.n_classes

    @property
    def whiten(self) -> bool:
        """Whether the crops it was trained on (and must be given) have the background whitened."""
        return bool(self.meta.get("whiten", True))

    @classmethod
    def from_weights(cls, path: PathLike, *, n_classes: int | None = None, **kwargs: Any) -> CellClassifier:
        """Load weights written by ``wsikit train classifier``.

        Raises
        ------
        WeightsError
            Unreadable, for another architecture, or made for another number of classes than ``n_classes``.
        """
        data = load_checkpoint(path, arch=ARCH)
        cfg = InfoGanConfig(**data["config"])
        if n_classes is not None and cfg.n_classes != n_classes:
            raise WeightsError(f"{path}: weights are for K={cfg.n_classes} classes, expected K={n_classes}")
        model = InfoGan(cfg)
        try:
            model.load_state_dict(data["state_dict"])
        except RuntimeError as exc:
            raise WeightsError(f"{path}: weights do not fit the stated architecture: {exc}") from exc
        meta = {**data["meta"], "weights": str(Path(path))}
        return cls(model, cluster_names=list(meta["cluster_names"]), meta=meta, **kwargs)

    @classmethod
    def load(cls, weights: PathLike | None = None, **kwargs: Any) -> CellClassifier:
        """``weights`` if given, else the shipped default (the choice every command's ``--weights`` makes)."""
        return cls.from_weights(weights, **kwargs) if weights else cls.from_pretrained(**kwargs)

    @classmethod
    def from_pretrained(cls, name: str = "cells", **kwargs: Any) -> CellClassifier:
        """Load the shipped weights ``infogan-<name>``."""
        return cls.from_weights(weights_path(f"infogan-{name}", arch=ARCH), **kwargs)

    def predict(self, crops: npt.NDArray[np.uint8], *, batch_size: int = 64) -> Prediction:
        """Cell type, cluster and probability of each crop.

        ``batch_size`` crops go through the critic at a time: the float64 activations of its first layer take
        ``batch_size`` x 0.4 MB at the default width, so 64 keeps a chunk's worth of nuclei to ~30 MB per
        thread (512 made ``wsikit run``'s classify stage peak several hundred MB higher).
        """
        size = self.model.config.size
        if crops.ndim != 4 or crops.shape[1:] != (size, size, 3):
            raise ShapeError(f"crops must be (N, {size}, {size}, 3) uint8, got {crops.shape}")
        dtype = next(self.model.parameters()).dtype
        x = to_tensor(crops).to(self.device, dtype)
        cl, conf = self.model.predict(x, batch_size=batch_size)
        cluster = cl.cpu().numpy().astype(np.int64)
        prob = np.round(conf.cpu().numpy().astype(np.float64), 6).astype(np.float64)
        return Prediction(self._lut[cluster], cluster, prob)
