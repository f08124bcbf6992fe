"""Vectorize a whole-slide instance label image chunk by chunk, each nucleus exactly once and whole.

A nucleus belongs to the chunk holding its first pixel in raster order. For a chunk, labels are read
with a ``halo`` of pixels around it; while any nucleus with pixels in the chunk touches the window's
edge, the window is read again with a doubled halo. Every nucleus is therefore seen whole, so nuclei
crossing chunk borders are merged, never split or cut, and each is emitted by exactly one chunk. Memory is one
window at a time, whatever the slide size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from shapely.geometry import Polygon

from wsikit.errors import ShapeError
from wsikit.vectorize.measure import measure_nuclei
from wsikit.vectorize.polygons import label_polygons

__all__ = ["NucleusBatch", "vectorize_chunk", "iter_nucleus_batches", "Window"]

ReadBlock = Callable[[int, int, int, int], npt.NDArray[np.generic]]
"""``read(y, x, h, w)`` -> block of level-0 pixels (labels (h, w); RGB image (h, w, 3), white outside)."""


@dataclass
class Window:
    """A read window: level-0 origin, its RGB pixels and labels relabelled 1..n (``ids`` maps back)."""

    y: int
    x: int
    image: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.int64]  # local ids
    local_ids: npt.NDArray[np.int64]  # local ids of the nuclei owned by the chunk
    ids: npt.NDArray[np.int64]  # their global ids


@dataclass
class NucleusBatch:
    """The nuclei owned by one chunk: global ids, polygons (level-0 pixels), measurement columns."""

    ids: npt.NDArray[np.int64]
    polygons: list[Polygon]
    columns: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    extra: dict[str, npt.NDArray[np.generic]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


def _relabel(raw: npt.NDArray[np.generic]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Local ids 1..n in ascending order of the global ids (0 stays background) and ``uniq`` (local -> global).

    The same result as ``np.unique(raw, return_inverse=True)`` with 0 prepended when absent, but by hashing
    (pandas.factorize) instead of sorting every pixel: about 7x faster on a 1,100^2 window.

    Examples
    --------
    >>> local, uniq = _relabel(np.array([[7, 0], [3, 7]], np.uint32))
    >>> local.tolist(), uniq.tolist()
    ([[2, 0], [1, 2]], [0, 3, 7])
    >>> _relabel(np.array([[5, 9]], np.uint32))[0].tolist()
    [[1, 2]]
    """
    import pandas as pd

    codes, values = pd.factorize(raw.ravel(), sort=False)
    values = np.asarray(values, np.int64)
    if not (values == 0).any():  # no background in the window: add it, so local ids start at 1
        values = np.concatenate([[0], values])
        codes = codes + 1
    order = np.argsort(values, kind="stable")
    rank = np.empty(len(values), np.int64)
    rank[order] = np.arange(len(values))
    local: npt.NDArray[np.int64] = rank[codes].reshape(raw.shape)
    uniq: npt.NDArray[np.int64] = values[order]
    return local, uniq


def _owned_window(
    read_labels: ReadBlock, y0: int, x0: int, chunk: int, height: int, width: int, halo: int
) -> tuple[int, int, npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    from scipy import ndimage as ndi

    ext = max(halo, 1)
    ch, cw = min(chunk, height - y0), min(chunk, width - x0)
    while True:
        wy, wx = max(y0 - ext, 0), max(x0 - ext, 0)
        wh, ww = min(y0 + chunk + ext, height) - wy, min(x0 + chunk + ext, width) - wx
        raw = np.asarray(read_labels(wy, wx, wh, ww))
        if raw.shape != (wh, ww):
            raise ShapeError(f"label reader returned {raw.shape} for a {wh}x{ww} window")
        local, uniq = _relabel(raw)
        core = local[y0 - wy : y0 - wy + ch, x0 - wx : x0 - wx + cw]
        in_core = np.flatnonzero(np.bincount(core.ravel(), minlength=len(uniq)))
        in_core = in_core[in_core > 0]
        objects = ndi.find_objects(local)
        owned, grow = [], False
        for i in in_core:
            ys, xs = objects[i - 1]
            if (
                (ys.start == 0 and wy > 0)
                or (xs.start == 0 and wx > 0)
                or (ys.stop == wh and wy + wh < height)
                or (xs.stop == ww and wx + ww < width)
            ):
                grow = True  # a nucleus reaching into the chunk is not wholly visible yet
                break
            # owner: the chunk holding the nucleus's first pixel in raster order
            row = ys.start
            first_x = xs.start + int(np.argmax(local[row, xs] == i))
            if y0 <= row + wy < y0 + ch and x0 <= first_x + wx < x0 + cw:
                owned.append(int(i))
        if not grow:
            loc = np.array(owned, np.int64)
            return wy, wx, local, loc, uniq[loc].astype(np.int64)
        ext *= 2


def vectorize_chunk(
    read_labels: ReadBlock,
    read_image: ReadBlock | None,
    y0: int,
    x0: int,
    *,
    chunk: int,
    height: int,
    width: int,
    halo: int = 128,
    mpp: float | None = None,
    simplify: float = 0.0,
    on_window: Callable[[Window], dict[str, npt.NDArray[np.generic]]] | None = None,
) -> NucleusBatch:
    """Polygons and measurements of the nuclei owned by the chunk at (``y0``, ``x0``).

    ``read_image`` None skips the intensity measurements (morphology only). ``on_window`` gets the
    window (image, local labels, owned ids) and returns extra per-nucleus columns (e.g. classes).
    """
    wy, wx, local, loc_ids, ids = _owned_window(read_labels, y0, x0, chunk, height, width, halo)
    _, polys = label_polygons(local, loc_ids, offset=(wx, wy), simplify=simplify)
    image: npt.NDArray[np.uint8]
    if read_image is not None:
        image = np.asarray(read_image(wy, wx, local.shape[0], local.shape[1]), dtype=np.uint8)
    else:
        image = np.full((*local.shape, 3), 255, np.uint8)
    cols = measure_nuclei(image, local, mpp=mpp, ids=loc_ids)
    cols["centroid_x"] = cols["centroid_x"] + wx
    cols["centroid_y"] = cols["centroid_y"] + wy
    cols.pop("label")
    if read_image is None:
        for k in list(cols):
            if k.split("_")[0] in ("hematoxylin", "eosin", "red", "green", "blue"):
                cols[k] = np.full(len(ids), np.nan)
    extra = (
        on_window(Window(wy, wx, image, local, loc_ids, ids)) if on_window is not None and len(ids) else {}
    )
    return NucleusBatch(ids, polys, cols, extra)


def iter_nucleus_batches(
    read_labels: ReadBlock,
    read_image: ReadBlock | None,
    *,
    height: int,
    width: int,
    chunk: int,
    chunks: list[tuple[int, int]] | None = None,
    **kwargs: object,
) -> Iterator[NucleusBatch]:
    """:func:`vectorize_chunk` over every chunk (row-major), or over ``chunks`` ((y0, x0) origins)."""
    origins = (
        chunks
        if chunks is not None
        else [(y, x) for y in range(0, height, chunk) for x in range(0, width, chunk)]
    )
    for y0, x0 in origins:
        yield vectorize_chunk(
            read_labels,
            read_image,
            y0,
            x0,
            chunk=chunk,
            height=height,
            width=width,
            **kwargs,  # type: ignore[arg-type]
        )
