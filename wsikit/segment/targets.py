"""Training targets from instance labels (three classes, normalized distance), and instances back from the
network's probabilities."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from wsikit.errors import ShapeError

__all__ = [
    "three_class_target",
    "distance_target",
    "instances_from_probabilities",
    "InstanceParams",
    "touching_weight_map",
    "merge_weak_borders",
    "SEEDS",
]

SEEDS = ("classes", "distance")
"""How :func:`instances_from_probabilities` finds one seed per nucleus (see :class:`InstanceParams`)."""


def three_class_target(labels: npt.NDArray[np.integer], *, boundary_px: int = 2) -> npt.NDArray[np.uint8]:
    """0 background, 1 nucleus interior, 2 nuclear boundary (the inner ``boundary_px`` pixels of each nucleus
    and every pixel where two nuclei touch).

    Examples
    --------
    >>> lab = np.zeros((7, 7), int); lab[1:6, 1:6] = 1
    >>> three_class_target(lab, boundary_px=1)[3]
    array([0, 2, 1, 1, 1, 2, 0], dtype=uint8)
    """
    from scipy import ndimage as ndi
    from skimage.segmentation import find_boundaries

    if labels.ndim != 2:
        raise ShapeError(f"labels must be 2-D, got {labels.shape}")
    if boundary_px < 1:
        raise ShapeError(f"boundary_px must be >= 1, got {boundary_px}")
    edge = find_boundaries(labels, mode="inner", connectivity=1)  # type: ignore[no-untyped-call]
    if boundary_px > 1:
        edge = ndi.binary_dilation(edge, iterations=boundary_px - 1) & (labels > 0)
    out = np.zeros(labels.shape, np.uint8)
    out[labels > 0] = 1
    out[edge] = 2
    return out


def distance_target(labels: npt.NDArray[np.integer]) -> npt.NDArray[np.float32]:
    """Each nucleus pixel's Euclidean distance to the nearest pixel outside its nucleus (another nucleus or
    background; the image edge counts as outside), divided by the largest such distance in its nucleus: 1 at
    the nucleus' deepest pixel(s), small at its border, 0 off nuclei. Touching nuclei get one peak each, with
    a valley where they meet.

    Examples
    --------
    >>> lab = np.zeros((5, 9), int); lab[:, :4] = 1; lab[:, 4:] = 2
    >>> print(np.round(distance_target(lab)[2], 2))
    [0.5  1.   1.   0.5  0.33 0.67 1.   0.67 0.33]
    """
    from scipy import ndimage as ndi

    if labels.ndim != 2:
        raise ShapeError(f"labels must be 2-D, got {labels.shape}")
    lab = labels.astype(np.int64)
    out = np.zeros(lab.shape, np.float32)
    padded = np.pad(lab, 1)  # the image edge counts as a border
    for i, sl in enumerate(ndi.find_objects(padded), start=1):
        if sl is None:
            continue
        win = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in sl)
        inside = padded[win] == i
        dist = ndi.distance_transform_edt(inside)
        peak = float(dist.max())
        # back to the unpadded grid
        y0, x0 = win[0].start - 1, win[1].start - 1
        ys, xs = np.nonzero(inside)
        keep = (ys + y0 >= 0) & (xs + x0 >= 0) & (ys + y0 < lab.shape[0]) & (xs + x0 < lab.shape[1])
        out[ys[keep] + y0, xs[keep] + x0] = dist[ys[keep], xs[keep]] / peak
    return out


@dataclass(frozen=True)
class InstanceParams:
    """Thresholds that turn class probabilities into instances (tuned per model on its validation images).

    Attributes
    ----------
    foreground : float
        A pixel is nucleus when P(interior) + P(boundary) exceeds this.
    marker : float
        With ``seeds="classes"``, seeds are where P(interior) - P(boundary) exceeds this (touching nuclei are
        split along their predicted boundary even where the interior probability stays high); with
        ``seeds="distance"``, where the predicted normalized distance to the nucleus border exceeds it.
    marker_open : int
        Radius (px) of a morphological opening of the seeds, which cuts thin bridges between them.
    min_size : int
        Instances smaller than this many pixels are dropped.
    seeds : str
        ``classes`` (the 3-class map alone, the paper's model) or ``distance`` (the distance output of a
        U-Net trained with one; seeds grow by watershed on the distance instead of the interior probability).
    merge_below : float
        Neighbouring instances whose shared border has a mean P(boundary) under this are one nucleus split by
        two seeds (a vesicular nucleus with a pale centre) and are merged; 0 (default) merges nothing.
    """

    foreground: float = 0.5
    marker: float = 0.5
    marker_open: int = 1
    min_size: int = 10
    seeds: str = "classes"
    merge_below: float = 0.0

    def __post_init__(self) -> None:
        if self.seeds not in SEEDS:
            raise ShapeError(f"seeds must be one of {SEEDS}, got {self.seeds!r}")
        if not (0.0 < self.foreground < 1.0 and -1.0 < self.marker < 1.0):
            raise ShapeError(f"foreground must be in (0, 1) and marker in (-1, 1), got {self}")
        if self.marker_open < 0 or self.min_size < 0:
            raise ShapeError(f"marker_open and min_size must be >= 0, got {self}")
        if not 0.0 <= self.merge_below < 1.0:
            raise ShapeError(f"merge_below must be in [0, 1), got {self.merge_below}")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> InstanceParams:
        """Parameters stored in a weights file's metadata (missing keys keep their defaults)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (values or {}).items() if k in known})


def instances_from_probabilities(
    probs: npt.NDArray[np.floating], params: InstanceParams | None = None
) -> npt.NDArray[np.uint32]:
    """Marker-controlled watershed: nucleus instances from the U-Net's (3, H, W) class probabilities, or
    (4, H, W) when it also predicts the normalized distance map (channel 3).

    Seeds are connected regions where the interior clearly beats the boundary, or where the predicted
    distance is high (``params.seeds``, see :class:`InstanceParams`); each seed grows over the foreground by
    watershed on the interior probability (or the distance), so touching nuclei stay apart along their
    predicted boundary. Small instances are dropped. Ids are 1..N in raster order of their seeds.
    """
    from scipy import ndimage as ndi
    from skimage.morphology import disk
    from skimage.segmentation import watershed

    p = params or InstanceParams()
    if probs.ndim != 3 or probs.shape[0] not in (3, 4):
        raise ShapeError(f"probs must be (3, H, W) or (4, H, W), got {probs.shape}")
    if p.seeds == "distance" and probs.shape[0] != 4:
        raise ShapeError(
            "seeds='distance' needs the distance channel: probabilities of a U-Net trained with one"
        )
    interior, boundary = probs[1], probs[2]
    foreground = (interior + boundary) > p.foreground
    if p.seeds == "distance":
        relief = probs[3]
        markers = (relief > p.marker) & foreground
    else:
        relief = interior
        markers = ((interior - boundary) > p.marker) & foreground
    if p.marker_open:
        markers = ndi.binary_opening(markers, disk(p.marker_open))  # type: ignore[no-untyped-call]
    seeds, _ = ndi.label(markers)
    if seeds.max() == 0:
        return np.zeros(interior.shape, np.uint32)
    grown = watershed(-relief, markers=seeds, mask=foreground)  # type: ignore[no-untyped-call]
    if p.merge_below > 0:
        grown = merge_weak_borders(grown, boundary, p.merge_below)
    sizes = np.bincount(grown.ravel())
    small = sizes < p.min_size
    small[0] = False
    grown[small[grown]] = 0
    # relabel consecutively
    ids = np.unique(grown)
    ids = ids[ids > 0]
    lut = np.zeros(int(grown.max()) + 1, np.uint32)
    lut[ids] = np.arange(1, len(ids) + 1, dtype=np.uint32)
    out: npt.NDArray[np.uint32] = lut[grown]
    return out


def merge_weak_borders(
    labels: npt.NDArray[np.integer], boundary: npt.NDArray[np.floating], below: float
) -> npt.NDArray[np.integer]:
    """Merge neighbouring instances whose shared border has a mean ``boundary`` value under ``below``.

    The border of two 4-connected instances is every pair of adjacent pixels, one in each; its value is the
    mean over those pairs of the larger boundary probability of the two. Merges are transitive (a nucleus cut
    in three by its seeds becomes one); each merged group takes its smallest id.

    Examples
    --------
    >>> lab = np.array([[1, 1, 2, 2, 0, 3, 3]])
    >>> bnd = np.array([[0.1, 0.1, 0.2, 0.1, 0.9, 0.8, 0.1]])
    >>> merge_weak_borders(lab, bnd, 0.5).tolist()
    [[1, 1, 1, 1, 0, 3, 3]]
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs, values = [], []
    for a, b, va, vb in (
        (labels[:, :-1], labels[:, 1:], boundary[:, :-1], boundary[:, 1:]),
        (labels[:-1], labels[1:], boundary[:-1], boundary[1:]),
    ):
        cross = (a != b) & (a > 0) & (b > 0)
        lo, hi = np.minimum(a[cross], b[cross]), np.maximum(a[cross], b[cross])
        pairs.append(np.stack([lo, hi], 1))
        values.append(np.maximum(va[cross], vb[cross]))
    edge = np.concatenate(pairs).astype(np.int64)
    if not len(edge):
        return labels
    key, inverse = np.unique(edge, axis=0, return_inverse=True)
    mean = np.bincount(inverse.ravel(), weights=np.concatenate(values)) / np.bincount(inverse.ravel())
    weak = key[mean < below]
    if not len(weak):
        return labels
    n = int(labels.max()) + 1
    graph = coo_matrix((np.ones(len(weak)), (weak[:, 0], weak[:, 1])), shape=(n, n))
    _, group = connected_components(graph, directed=False)
    # each group's smallest id: group ids are in order of first member, and ids ascend
    first = np.full(group.max() + 1, n, np.int64)
    np.minimum.at(first, group, np.arange(n))
    lut = first[group]
    lut[0] = 0
    out: npt.NDArray[np.integer] = lut[labels].astype(labels.dtype)
    return out


def touching_weight_map(
    labels: npt.NDArray[np.integer], *, w0: float = 10.0, sigma: float = 4.0
) -> npt.NDArray[np.float32]:
    """Per-pixel loss weights that stress the narrow gaps between neighbouring nuclei (Ronneberger et al.).

    ``w = 1 + w0 * exp(-(d1 + d2)^2 / (2 sigma^2))`` where ``d1`` and ``d2`` are the distances (px) to the
    nearest and second-nearest nucleus (0 inside a nucleus for its own). Pixels near only one nucleus get
    weight 1; the pixels separating two touching nuclei get up to ``1 + w0``.

    Examples
    --------
    >>> lab = np.zeros((5, 9), int); lab[:, :4] = 1; lab[:, 5:] = 2
    >>> w = touching_weight_map(lab, w0=10, sigma=2)
    >>> bool(w[2, 4] > w[2, 0] > 1.0)
    True
    >>> float(touching_weight_map(lab == 1, w0=10, sigma=2).max())
    1.0
    """
    from scipy import ndimage as ndi

    if labels.ndim != 2:
        raise ShapeError(f"labels must be 2-D, got {labels.shape}")
    reach = int(np.ceil(3 * sigma))
    big = np.float32(4 * reach + 1)
    d1 = np.full(labels.shape, big, np.float32)
    d2 = np.full(labels.shape, big, np.float32)
    h, w = labels.shape
    for i, sl in enumerate(ndi.find_objects(labels.astype(np.int64)), start=1):
        if sl is None:
            continue
        y0, y1 = max(sl[0].start - reach, 0), min(sl[0].stop + reach, h)
        x0, x1 = max(sl[1].start - reach, 0), min(sl[1].stop + reach, w)
        win = labels[y0:y1, x0:x1] != i
        dist = ndi.distance_transform_edt(win).astype(np.float32)
        a, b = d1[y0:y1, x0:x1], d2[y0:y1, x0:x1]
        nearer = dist < a
        b[:] = np.where(nearer, a, np.minimum(b, dist))
        a[:] = np.where(nearer, dist, a)
    out: npt.NDArray[np.float32] = 1.0 + w0 * np.exp(-((d1 + d2) ** 2) / (2 * sigma**2))
    out[d2 >= big] = 1.0
    return out.astype(np.float32)
