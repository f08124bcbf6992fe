"""Name unsupervised clusters after cell types with a morphology rule that never looks at labels.

Rule (prototypes of H&E breast nuclei at 0.5 um/px and above):

1. **lymphocyte**: the cluster with the smallest median nuclear area (lymphocytes are small, round, dark);
2. **fibroblast**: of the others, the cluster with the highest median eccentricity (spindle-shaped);
3. **epithelial**: every remaining cluster (large, pale, round-to-oval nuclei).

With more than three clusters several may share the name epithelial. Clusters nobody was assigned to
(empty) are named by the same rule with NaN medians sorted last.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from wsikit.errors import ShapeError

__all__ = ["CELL_TYPES", "CELL_TYPE_COLORS", "name_clusters"]

CELL_TYPES = ("epithelial", "lymphocyte", "fibroblast")
"""The three cell types, in the order used by every table and label image (label value = index + 1)."""

CELL_TYPE_COLORS: dict[str, tuple[int, int, int]] = {
    "epithelial": (220, 50, 47),
    "lymphocyte": (38, 139, 210),
    "fibroblast": (133, 153, 0),
}


def _median(values: npt.NDArray[np.floating], mask: npt.NDArray[np.bool_]) -> float:
    return float(np.median(values[mask])) if mask.any() else float("nan")


def name_clusters(
    clusters: npt.NDArray[np.integer],
    *,
    area: npt.NDArray[np.floating],
    eccentricity: npt.NDArray[np.floating],
    n_clusters: int,
) -> list[str]:
    """Cell-type name of each cluster 0..n_clusters-1 from the medians of its members (see module rule).

    Examples
    --------
    >>> name_clusters(np.array([0, 0, 1, 1, 2, 2]), area=np.array([50., 60, 20, 22, 40, 45]),
    ...               eccentricity=np.array([.5, .6, .3, .4, .95, .9]), n_clusters=3)
    ['epithelial', 'lymphocyte', 'fibroblast']
    """
    if not (len(clusters) == len(area) == len(eccentricity)):
        raise ShapeError(f"clusters, area and eccentricity must have one entry per nucleus, got "
                         f"{len(clusters)}, {len(area)}, {len(eccentricity)}")
    if n_clusters < 2:
        raise ShapeError(f"n_clusters must be >= 2, got {n_clusters}")
    med_area = np.array([_median(area, clusters == k) for k in range(n_clusters)])
    med_ecc = np.array([_median(eccentricity, clusters == k) for k in range(n_clusters)])
    names = ["epithelial"] * n_clusters
    order_area = np.argsort(np.where(np.isnan(med_area), np.inf, med_area))
    lym = int(order_area[0])
    names[lym] = "lymphocyte"
    rest = [k for k in range(n_clusters) if k != lym]
    ecc = np.array([med_ecc[k] if not np.isnan(med_ecc[k]) else -np.inf for k in rest])
    names[rest[int(np.argmax(ecc))]] = "fibroblast"
    return names
