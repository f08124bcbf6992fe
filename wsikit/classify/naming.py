"""Name unsupervised clusters after cell types with a morphology rule that never looks at labels.

Rule (prototypes of H&E breast nuclei):

1. **lymphocyte**: the cluster with the smallest median nuclear area (lymphocytes: small, round, dark);
2. **epithelial**: the cluster with the largest median nuclear area (epithelial/tumour nuclei are the
   largest nuclei of breast tissue);
3. **fibroblast**: of the remaining clusters, the one with the highest median eccentricity (spindle-shaped,
   mid-sized nuclei); with more than three clusters every other cluster takes the name of the
   lymphocyte or epithelial cluster nearest to it in median log-area.

Clusters nobody was assigned to (empty) sort last. (A first version of this rule named the most eccentric
non-lymphocyte cluster fibroblast before looking at size; on the evaluation data it called the large
epithelial cluster fibroblast, see docs/classification.md.)
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
    >>> name_clusters(np.arange(5), area=np.array([20., 70, 35, 60, 25]),
    ...               eccentricity=np.array([.5, .6, .95, .6, .5]), n_clusters=5)
    ['lymphocyte', 'epithelial', 'fibroblast', 'epithelial', 'lymphocyte']
    """
    if not (len(clusters) == len(area) == len(eccentricity)):
        raise ShapeError(
            f"clusters, area and eccentricity must have one entry per nucleus, got "
            f"{len(clusters)}, {len(area)}, {len(eccentricity)}"
        )
    if n_clusters < 2:
        raise ShapeError(f"n_clusters must be >= 2, got {n_clusters}")
    med_area = np.array([_median(area, clusters == k) for k in range(n_clusters)])
    med_ecc = np.array([_median(eccentricity, clusters == k) for k in range(n_clusters)])
    names = ["epithelial"] * n_clusters
    by_area = np.where(np.isnan(med_area), np.inf, med_area)
    lym = int(np.argmin(by_area))
    epi = int(np.argmax(np.where(np.isnan(med_area), -np.inf, med_area)))
    if epi == lym:  # all medians equal or missing
        epi = next(k for k in range(n_clusters) if k != lym)
    names[lym] = "lymphocyte"
    rest = [k for k in range(n_clusters) if k not in (lym, epi)]
    if rest:
        ecc = np.array([med_ecc[k] if not np.isnan(med_ecc[k]) else -np.inf for k in rest])
        fib = rest[int(np.argmax(ecc))]
        names[fib] = "fibroblast"
        log_area = np.log(np.where(np.isfinite(by_area) & (by_area > 0), by_area, np.nan))
        for k in rest:
            if k != fib and not np.isnan(log_area[k]):
                near_lym = abs(log_area[k] - log_area[lym]) < abs(log_area[k] - log_area[epi])
                names[k] = "lymphocyte" if near_lym else "epithelial"
    return names
