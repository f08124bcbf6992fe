"""A learned filter of segmented objects that are no annotated nucleus (false positives of the U-Net).

On three annotated validation sources about one object in six that ``wsikit run``'s segmentation keeps overlaps
no annotated nucleus at all; removing exactly those (an oracle) would lift the mean AJI from 0.601 to 0.653 and
PQ from 0.572 to 0.622. :class:`ObjectFilter` scores each object from what the pipeline already has at hand
when it finds the instances (:func:`object_features`: its size, the U-Net's probabilities over it, and its raw
optical density) with a logistic regression fitted on objects of annotated images (:func:`fit_object_filter`),
and drops those scored under its threshold. The threshold is chosen on validation images by the instance
metrics (``research/study_object_filter.py``).

Examples
--------
>>> feats = np.array([[5.0, 0.9, 0.95, 0.1, 0.5, 0.7, 0.4, 0.2], [3.0, 0.5, 0.6, 0.3, 0.2, 0.25, 0.2, 0.05]])
>>> f = ObjectFilter(mean=np.zeros(8), scale=np.ones(8), coef=np.array([0, 8.0, 0, 0, 0, 0, 0, 0]),
...                  bias=-5.0, threshold=0.5)
>>> f.keeps(feats).tolist()
[True, False]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from wsikit.errors import ShapeError

__all__ = ["FEATURES", "ObjectFilter", "object_features", "fit_object_filter"]

FEATURES: tuple[str, ...] = (
    "log_area_px",
    "interior_mean",
    "interior_max",
    "boundary_mean",
    "od_red",
    "od_green",
    "od_blue",
    "od_green_std",
)
"""Per-object features, in order: log of the area in working pixels (0.25 um/px), mean and maximum P(interior)
and mean P(boundary) over the object, mean raw optical density per RGB channel and the standard deviation of
the green one (hematoxylin texture)."""


def object_features(
    probs: npt.NDArray[np.floating], raw: npt.NDArray[np.uint8], labels: npt.NDArray[np.integer]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """(ids, (N, len(FEATURES)) features) of every object of ``labels``.

    Parameters
    ----------
    probs
        (C >= 3, H, W) U-Net probabilities (background, interior, boundary, ...) on the grid of ``labels``.
    raw
        (3, H, W) or (H, W, 3) uint8 pixels before stain normalization, on the same grid.
    labels
        (H, W) instance ids, 0 = background.
    """
    from scipy import ndimage as ndi

    from wsikit.segment.artefacts import optical_density

    if raw.ndim == 3 and raw.shape[-1] == 3 and raw.shape[0] != 3:
        raw = np.moveaxis(raw, -1, 0)
    if (
        probs.ndim != 3
        or probs.shape[0] < 3
        or probs.shape[1:] != labels.shape
        or raw.shape[1:] != labels.shape
    ):
        raise ShapeError(f"probs (C, H, W), raw (3, H, W) and labels (H, W) must share H, W: {probs.shape}, "
                         f"{raw.shape}, {labels.shape}")  # fmt: skip
    lab = np.asarray(labels).astype(np.int64, copy=False)
    ids = np.unique(lab)
    ids = ids[ids > 0]
    if len(ids) == 0:
        return ids, np.zeros((0, len(FEATURES)))
    n = int(lab.max()) + 1
    flat = lab.ravel()
    count = np.bincount(flat, minlength=n).astype(np.float64)[ids]

    def mean(values: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        return np.bincount(flat, weights=values.ravel().astype(np.float64), minlength=n)[ids] / count

    od = optical_density(raw)
    od_green_mean = mean(od[1])
    od_green_sq = mean(od[1].astype(np.float64) ** 2)
    columns = [
        np.log(count),
        mean(probs[1]),
        np.asarray(ndi.maximum(probs[1], lab, ids), np.float64),
        mean(probs[2]),
        mean(od[0]),
        od_green_mean,
        mean(od[2]),
        np.sqrt(np.maximum(od_green_sq - od_green_mean**2, 0.0)),
    ]
    return ids, np.stack(columns, axis=1)


@dataclass(frozen=True)
class ObjectFilter:
    """Logistic regression over standardized :data:`FEATURES`: P(the object is a nucleus); kept when >= threshold."""

    mean: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]
    coef: npt.NDArray[np.float64]
    bias: float
    threshold: float = 0.5

    def scores(self, features: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """P(nucleus) of each row of (N, len(FEATURES)) features."""
        if features.ndim != 2 or features.shape[1] != len(self.coef):
            raise ShapeError(f"features must be (N, {len(self.coef)}), got {features.shape}")
        z = ((features - self.mean) / self.scale) @ self.coef + self.bias
        out: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-z))
        return out

    def keeps(self, features: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """True for each object scored at or above :attr:`threshold`."""
        return np.asarray(self.scores(features) >= self.threshold)

    def with_threshold(self, threshold: float) -> ObjectFilter:
        """The same regression with another threshold."""
        return ObjectFilter(self.mean, self.scale, self.coef, self.bias, float(threshold))

    def to_meta(self) -> dict[str, Any]:
        """JSON-able form, stored in the segmenter weights' metadata (``object_filter``)."""
        return {
            "features": list(FEATURES),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "bias": float(self.bias),
            "threshold": float(self.threshold),
        }

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> ObjectFilter:
        """Inverse of :meth:`to_meta`; a filter of other features is refused."""
        if list(meta.get("features", [])) != list(FEATURES):
            raise ShapeError(
                f"object filter of features {meta.get('features')}, this version computes {FEATURES}"
            )
        return cls(
            np.asarray(meta["mean"], np.float64),
            np.asarray(meta["scale"], np.float64),
            np.asarray(meta["coef"], np.float64),
            float(meta["bias"]),
            float(meta["threshold"]),
        )


def fit_object_filter(
    features: npt.NDArray[np.float64], is_nucleus: npt.NDArray[np.bool_], *, l2: float = 1e-3
) -> ObjectFilter:
    """Fit the logistic regression (class-balanced, L2 ``l2``, L-BFGS in float64; deterministic) on objects
    labelled nucleus / not; threshold 0.5 (choose it on validation images with :meth:`ObjectFilter.with_threshold`)."""
    import torch

    y = np.asarray(is_nucleus, bool)
    if features.ndim != 2 or features.shape[1] != len(FEATURES) or len(y) != len(features):
        raise ShapeError(
            f"features (N, {len(FEATURES)}) and is_nucleus (N,) expected, got {features.shape}, {y.shape}"
        )
    if y.all() or not y.any():
        raise ShapeError("both nuclei and non-nuclei are needed to fit the object filter")
    mean, scale = features.mean(axis=0), features.std(axis=0) + 1e-9
    x = torch.from_numpy((features - mean) / scale)
    t = torch.from_numpy(y.astype(np.float64))
    weight = torch.where(t > 0, 0.5 / t.mean(), 0.5 / (1 - t.mean()))
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=500, tolerance_grad=1e-10, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (
            weight * torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, t, reduction="none")
        ).mean()
        loss = loss + l2 * (w * w).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    opt.step(closure)  # type: ignore[no-untyped-call]
    return ObjectFilter(mean, scale, w.detach().numpy().copy(), float(b.detach()), 0.5)
