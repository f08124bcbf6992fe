"""Tissue context of each nucleus: how densely it is surrounded by other non-lymphocyte nuclei.

The InfoGAN sees a nucleus alone (its crop is whitened outside the mask). Fibroblasts and epithelial nuclei
overlap in that view (mid-sized, sometimes elongated), but they live in different places: epithelial nuclei
in cohesive nests, fibroblasts scattered in stroma. :func:`nest_density` measures that from the nuclei
alone - the area fraction of a disc of ``radius_um`` around each nucleus covered by *other* nuclei that the
classifier did not call lymphocytes (so lymphocyte-rich stroma does not look like a nest) - and
:func:`refine_with_context` renames the non-lymphocyte nuclei: nest -> epithelial, stroma -> fibroblast.
The threshold between the two is fitted on unlabelled nuclei (:func:`fit_nest_threshold`, Otsu), so no
cell-type label is used anywhere.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from wsikit.classify.naming import CELL_TYPES
from wsikit.errors import ShapeError

__all__ = ["NEST_RADIUS_UM", "nest_density", "fit_nest_threshold", "refine_with_context"]

NEST_RADIUS_UM = 15.0
"""Radius of the neighbourhood, in microns (about one cell diameter around the nucleus's own cell)."""

_LYMPHOCYTE = CELL_TYPES.index("lymphocyte")
_EPITHELIAL = CELL_TYPES.index("epithelial")
_FIBROBLAST = CELL_TYPES.index("fibroblast")


def _disc_fraction_inside(
    centroids: npt.NDArray[np.float64], radius: float, extent: tuple[float, float]
) -> npt.NDArray[np.float64]:
    """Fraction of each disc's area that lies inside the field [0, h) x [0, w) (grid estimate, 1% steps)."""
    g = np.linspace(-radius, radius, 41)
    dy, dx = np.meshgrid(g, g, indexing="ij")
    keep = dy**2 + dx**2 <= radius**2
    dy, dx = dy[keep], dx[keep]
    h, w = extent
    out = np.empty(len(centroids))
    for k, (cy, cx) in enumerate(centroids):
        y, x = cy + dy, cx + dx
        out[k] = np.count_nonzero((y >= 0) & (y < h) & (x >= 0) & (x < w)) / len(dy)
    return out


def nest_density(
    centroids_um: npt.NDArray[np.floating],
    area_um2: npt.NDArray[np.floating],
    cell_type: npt.NDArray[np.integer],
    *,
    radius_um: float = NEST_RADIUS_UM,
    extent_um: tuple[float, float] | None = None,
) -> npt.NDArray[np.float64]:
    """Area fraction of the disc around each nucleus covered by other non-lymphocyte nuclei.

    Parameters
    ----------
    centroids_um
        (N, 2) nucleus centroids (y, x) in microns.
    area_um2
        (N,) nuclear areas in square microns.
    cell_type
        (N,) index into :data:`CELL_TYPES` from the classifier (lymphocytes are not counted as nest members).
    radius_um
        Radius of the disc.
    extent_um
        (height, width) of the field in microns: the disc area outside it is not counted, so nuclei at the
        edge of a small field are not mistaken for isolated ones. None: the field is unbounded.

    Returns
    -------
    (N,) float64, the sum of the neighbours' areas over the disc area inside the field.

    Examples
    --------
    >>> c = np.array([[0., 0], [0, 10], [100, 100]])
    >>> nest_density(c, np.array([50., 50, 50]), np.array([0, 0, 0])).round(3).tolist()
    [0.071, 0.071, 0.0]
    """
    from scipy.spatial import cKDTree

    c = np.asarray(centroids_um, np.float64).reshape(-1, 2)
    a = np.asarray(area_um2, np.float64)
    t = np.asarray(cell_type)
    if not (len(c) == len(a) == len(t)):
        raise ShapeError(f"centroids, areas and cell types differ in length: {len(c)}, {len(a)}, {len(t)}")
    if radius_um <= 0:
        raise ShapeError(f"radius_um must be positive, got {radius_um}")
    if len(c) == 0:
        return np.zeros(0)
    weight = np.where(t == _LYMPHOCYTE, 0.0, a)
    tree = cKDTree(c)
    covered = np.zeros(len(c))
    for i, nbrs in enumerate(tree.query_ball_point(c, r=radius_um)):
        covered[i] = weight[nbrs].sum() - weight[i]
    disc = np.pi * radius_um**2
    if extent_um is not None:
        disc = disc * np.maximum(_disc_fraction_inside(c, radius_um, extent_um), 0.25)
    result: npt.NDArray[np.float64] = covered / disc
    return result


def fit_nest_threshold(density: npt.NDArray[np.floating]) -> float:
    """Otsu threshold of the (unlabelled) nest densities of non-lymphocyte nuclei.

    Examples
    --------
    >>> d = np.r_[np.full(50, 0.02), np.full(50, 0.3)]
    >>> 0.02 <= fit_nest_threshold(d) < 0.3
    True
    """
    from skimage.filters import threshold_otsu

    d = np.asarray(density, np.float64)
    if d.size < 2 or np.ptp(d) == 0:
        raise ShapeError(f"need at least two different densities to fit a threshold, got {d.size}")
    return float(threshold_otsu(d, nbins=256))


def refine_with_context(
    cell_type: npt.NDArray[np.integer], density: npt.NDArray[np.floating], threshold: float
) -> npt.NDArray[np.int64]:
    """Lymphocytes stay; every other nucleus becomes epithelial in a nest (``density >= threshold``), else
    fibroblast.

    Examples
    --------
    >>> refine_with_context(np.array([0, 1, 2, 0, 2]), np.array([.3, .3, .3, .01, .01]), 0.1).tolist()
    [0, 1, 0, 2, 2]
    """
    t = np.asarray(cell_type, np.int64)
    d = np.asarray(density, np.float64)
    if t.shape != d.shape:
        raise ShapeError(f"cell types {t.shape} and densities {d.shape} differ in shape")
    out = np.where(d >= threshold, _EPITHELIAL, _FIBROBLAST)
    result: npt.NDArray[np.int64] = np.where(t == _LYMPHOCYTE, _LYMPHOCYTE, out).astype(np.int64)
    return result
