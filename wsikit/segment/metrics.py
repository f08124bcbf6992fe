"""Segmentation metrics: the paper's pixel metrics and the object-level AJI and Panoptic Quality.

All take instance images (0 = background, k > 0 = nucleus k) or boolean masks, as numpy arrays.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from wsikit.errors import ShapeError

__all__ = ["pixel_metrics", "aggregated_jaccard_index", "panoptic_quality", "overlaps"]


def _check(gt: npt.NDArray[np.integer], pred: npt.NDArray[np.integer]) -> None:
    if gt.shape != pred.shape or gt.ndim != 2:
        raise ShapeError(f"ground truth {gt.shape} and prediction {pred.shape} must be 2-D of the same shape")


def pixel_metrics(gt: npt.NDArray[np.generic], pred: npt.NDArray[np.generic]) -> dict[str, float]:
    """Pixel-wise sensitivity, specificity, Dice and Jaccard of foreground (nucleus) vs background.

    Examples
    --------
    >>> gt = np.zeros((4, 4), int); gt[:2] = 1
    >>> pred = np.zeros((4, 4), int); pred[:1] = 1
    >>> pixel_metrics(gt, pred)
    {'sensitivity': 0.5, 'specificity': 1.0, 'dice': 0.6666666666666666, 'jaccard': 0.5}
    """
    _check(gt, pred)  # type: ignore[arg-type]
    g, p = np.asarray(gt) > 0, np.asarray(pred) > 0
    tp = float(np.count_nonzero(g & p))
    fp = float(np.count_nonzero(~g & p))
    fn = float(np.count_nonzero(g & ~p))
    tn = float(g.size) - tp - fp - fn
    return {
        "sensitivity": tp / (tp + fn) if tp + fn else 1.0,
        "specificity": tn / (tn + fp) if tn + fp else 1.0,
        "dice": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0,
        "jaccard": tp / (tp + fp + fn) if tp + fp + fn else 1.0,
    }


def overlaps(
    gt: npt.NDArray[np.integer], pred: npt.NDArray[np.integer]
) -> tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
]:
    """Pairwise intersections of instances.

    Returns
    -------
    gt_ids, pred_ids : arrays of the instance ids present (sorted)
    gt_area, pred_area : their areas
    inter : (len(gt_ids), len(pred_ids)) intersection areas
    """
    _check(gt, pred)
    g = np.asarray(gt).astype(np.int64).ravel()
    p = np.asarray(pred).astype(np.int64).ravel()
    gt_ids, g_inv, gt_area = np.unique(g, return_inverse=True, return_counts=True)
    pred_ids, p_inv, pred_area = np.unique(p, return_inverse=True, return_counts=True)
    pairs = g_inv * len(pred_ids) + p_inv
    counts = np.bincount(pairs, minlength=len(gt_ids) * len(pred_ids)).reshape(len(gt_ids), len(pred_ids))
    gk, pk = gt_ids > 0, pred_ids > 0
    return gt_ids[gk], pred_ids[pk], gt_area[gk], pred_area[pk], counts[np.ix_(gk, pk)]


def aggregated_jaccard_index(gt: npt.NDArray[np.integer], pred: npt.NDArray[np.integer]) -> float:
    """Aggregated Jaccard Index (Kumar et al., IEEE TMI 2017).

    Each ground-truth nucleus is paired with the predicted nucleus of highest IoU;
    AJI = sum of their intersections / (sum of their unions + areas of unused predictions).

    Examples
    --------
    >>> gt = np.zeros((6, 6), int); gt[:3, :3] = 1; gt[3:, 3:] = 2
    >>> aggregated_jaccard_index(gt, gt)
    1.0
    >>> aggregated_jaccard_index(gt, np.zeros_like(gt))
    0.0
    """
    gt_ids, pred_ids, gt_area, pred_area, inter = overlaps(gt, pred)
    if len(gt_ids) == 0:
        return 1.0 if len(pred_ids) == 0 else 0.0
    if len(pred_ids) == 0:
        return 0.0
    union = gt_area[:, None] + pred_area[None, :] - inter
    iou = inter / np.maximum(union, 1)
    best = iou.argmax(axis=1)
    rows = np.arange(len(gt_ids))
    matched = iou[rows, best] > 0
    c = float(inter[rows, best][matched].sum())
    u = float(union[rows, best][matched].sum() + gt_area[~matched].sum())
    used = np.zeros(len(pred_ids), bool)
    used[best[matched]] = True
    u += float(pred_area[~used].sum())
    return c / u if u else 1.0


def panoptic_quality(gt: npt.NDArray[np.integer], pred: npt.NDArray[np.integer]) -> dict[str, float]:
    """Panoptic Quality (Kirillov et al. 2019) with IoU > 0.5 matching (unique by construction).

    Returns ``pq``, ``sq`` (mean IoU of matches), ``dq`` (F1 of detection), and tp/fp/fn counts.
    """
    gt_ids, pred_ids, gt_area, pred_area, inter = overlaps(gt, pred)
    union = gt_area[:, None] + pred_area[None, :] - inter
    iou = inter / np.maximum(union, 1)
    match = iou > 0.5
    tp = int(match.sum())
    fp = len(pred_ids) - tp
    fn = len(gt_ids) - tp
    sq = float(iou[match].mean()) if tp else 0.0
    denom = tp + 0.5 * fp + 0.5 * fn
    dq = tp / denom if denom else 1.0
    return {"pq": sq * dq, "sq": sq, "dq": dq, "tp": tp, "fp": fp, "fn": fn}
