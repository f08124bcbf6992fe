"""Classification metrics: confusion matrix, per-class precision / sensitivity / F1, accuracy, Hungarian mapping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from wsikit.errors import ShapeError

__all__ = ["ClassificationReport", "classification_report", "hungarian_mapping"]


@dataclass(frozen=True)
class ClassificationReport:
    """Scores of predicted against true class indices over ``classes``."""

    classes: tuple[str, ...]
    confusion: npt.NDArray[np.int64]  # rows: truth, columns: prediction
    precision: npt.NDArray[np.float64]
    sensitivity: npt.NDArray[np.float64]
    f1: npt.NDArray[np.float64]
    accuracy: float
    n: int

    @property
    def balanced_accuracy(self) -> float:
        """Mean sensitivity over the classes present in the truth."""
        v = self.sensitivity[~np.isnan(self.sensitivity)]
        return float(v.mean()) if len(v) else float("nan")

    @property
    def macro_f1(self) -> float:
        """Mean F1 over the classes present in the truth."""
        v = self.f1[~np.isnan(self.f1)]
        return float(v.mean()) if len(v) else float("nan")

    def to_dict(self) -> dict[str, Any]:
        def f(x: float) -> float | None:
            return None if np.isnan(x) else round(float(x), 4)

        return {
            "classes": list(self.classes),
            "n": self.n,
            "accuracy": f(self.accuracy),
            "balanced_accuracy": f(self.balanced_accuracy),
            "macro_f1": f(self.macro_f1),
            "precision": {c: f(v) for c, v in zip(self.classes, self.precision, strict=True)},
            "sensitivity": {c: f(v) for c, v in zip(self.classes, self.sensitivity, strict=True)},
            "f1": {c: f(v) for c, v in zip(self.classes, self.f1, strict=True)},
            "confusion": self.confusion.tolist(),
        }


def classification_report(
    truth: npt.NDArray[np.integer], pred: npt.NDArray[np.integer], classes: tuple[str, ...]
) -> ClassificationReport:
    """Per-class precision (PPV), sensitivity (recall), F1 and overall accuracy.

    A class with no prediction has NaN precision; one absent from the truth has NaN sensitivity.

    Examples
    --------
    >>> r = classification_report(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), ("a", "b"))
    >>> r.accuracy, r.precision.round(3).tolist(), r.sensitivity.tolist()
    (0.75, [1.0, 0.667], [0.5, 1.0])
    >>> r.balanced_accuracy, round(r.macro_f1, 3)
    (0.75, 0.733)
    """
    t, p = np.asarray(truth, np.int64), np.asarray(pred, np.int64)
    if t.shape != p.shape or t.ndim != 1:
        raise ShapeError(f"truth and pred must be 1-D of the same length, got {t.shape}, {p.shape}")
    k = len(classes)
    if len(t) and (t.min() < 0 or t.max() >= k or p.min() < 0 or p.max() >= k):
        raise ShapeError(f"class indices must be in 0..{k - 1}")
    conf = np.zeros((k, k), np.int64)
    np.add.at(conf, (t, p), 1)
    tp = np.diag(conf).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / conf.sum(axis=0)
        sensitivity = tp / conf.sum(axis=1)
        f1 = np.where(
            (precision + sensitivity) > 0, 2 * precision * sensitivity / (precision + sensitivity), 0.0
        )
    f1 = np.where(np.isnan(sensitivity), np.nan, np.nan_to_num(f1, nan=0.0))
    acc = float(tp.sum() / len(t)) if len(t) else float("nan")
    return ClassificationReport(tuple(classes), conf, precision, sensitivity, f1, acc, int(len(t)))


def hungarian_mapping(
    truth: npt.NDArray[np.integer], clusters: npt.NDArray[np.integer], n_clusters: int, n_classes: int
) -> npt.NDArray[np.int64]:
    """Best one-to-one cluster -> class map (maximum agreement); clusters left over map to their majority class.

    Examples
    --------
    >>> hungarian_mapping(np.array([0, 0, 1, 2]), np.array([2, 2, 0, 1]), 3, 3).tolist()
    [1, 2, 0]
    """
    from scipy.optimize import linear_sum_assignment

    counts = np.zeros((n_clusters, n_classes), np.int64)
    np.add.at(counts, (np.asarray(clusters, np.int64), np.asarray(truth, np.int64)), 1)
    rows, cols = linear_sum_assignment(-counts)
    mapping = counts.argmax(axis=1).astype(np.int64)
    mapping[rows] = cols
    out: npt.NDArray[np.int64] = mapping
    return out
