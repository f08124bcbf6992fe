"""Whole-slide stitching of per-tile nucleus instances: every nucleus kept once, whole, with a unique id.

Tiles of ``core + 2 * margin`` working pixels overlap by ``2 * margin``. A nucleus found in a tile is kept
by that tile only if its centroid lies in the tile's core (the cores partition the slide), and it is
kept whole, including the part outside the core. A nucleus narrower than ``margin`` that crosses a core
border is entirely inside both neighbouring tiles, and its centroid is in exactly one core: it is written
once, never cut. Ids are assigned in tile order, so the same input gives the same ids.

:class:`ChunkAssembler` collects kept nuclei into chunk-aligned blocks of the output label image and
releases a block as soon as no later tile can touch it, so the writer owns whole chunks.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

__all__ = ["keep_core_instances", "ChunkAssembler"]


def keep_core_instances(
    labels: npt.NDArray[np.uint32], core: tuple[int, int, int, int]
) -> list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]:
    """Pixel coordinates (rows, cols) of each instance whose centroid lies in ``core`` = (y0, x0, y1, x1).

    Examples
    --------
    >>> lab = np.zeros((10, 10), np.uint32); lab[1:3, 1:3] = 1; lab[6:9, 6:9] = 2
    >>> [len(r) for r, c in keep_core_instances(lab, (0, 0, 5, 5))]
    [4]
    """
    from scipy import ndimage as ndi

    out: list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]] = []
    if labels.max() == 0:
        return out
    objects = ndi.find_objects(labels)
    y0, x0, y1, x1 = core
    for i, sl in enumerate(objects):
        if sl is None:
            continue
        rows, cols = np.nonzero(labels[sl] == i + 1)
        rows = rows + sl[0].start
        cols = cols + sl[1].start
        cy, cx = rows.mean(), cols.mean()
        if y0 <= cy < y1 and x0 <= cx < x1:
            out.append((rows, cols))
    return out


class ChunkAssembler:
    """Accumulate nuclei into chunk-aligned blocks of an (height, width) label image, row band by row band.

    Call :meth:`add` with level-0 pixel coordinates of a nucleus; call :meth:`flush_above` with the
    smallest y any later nucleus may reach, and write the blocks it yields. Memory holds the chunk rows
    between the flushed part and the lowest pending nucleus (a band of the slide's width).
    """

    def __init__(self, height: int, width: int, chunk: int) -> None:
        self.height, self.width, self.chunk = height, width, chunk
        self._rows: dict[int, npt.NDArray[np.uint32]] = {}
        self._flushed_until = 0
        self.next_id = 1

    def _row(self, r: int) -> npt.NDArray[np.uint32]:
        if r not in self._rows:
            h = min(self.chunk, self.height - r * self.chunk)
            self._rows[r] = np.zeros((h, self.width), np.uint32)
        return self._rows[r]

    def add(self, rows: npt.NDArray[np.intp], cols: npt.NDArray[np.intp]) -> int:
        """Paint one nucleus (clipped to the image) with the next id; returns the id (0 if nothing is inside)."""
        keep = (rows >= 0) & (rows < self.height) & (cols >= 0) & (cols < self.width)
        rows, cols = rows[keep], cols[keep]
        if rows.size == 0:
            return 0
        if rows.min() < self._flushed_until:
            raise RuntimeError("a nucleus reaches a chunk row that was already written (margin too small)")
        nid = self.next_id
        self.next_id += 1
        chunk_rows = rows // self.chunk
        for r in np.unique(chunk_rows):
            sel = chunk_rows == r
            self._row(int(r))[rows[sel] - r * self.chunk, cols[sel]] = nid
        return nid

    def flush_above(self, y: int) -> Iterator[tuple[int, int, npt.NDArray[np.uint32]]]:
        """Yield (y, x, block) for every chunk of the rows that end at or above ``y`` (all rows when y >= height)."""
        limit = min(y, self.height)
        r = self._flushed_until // self.chunk
        while r * self.chunk < self.height and min((r + 1) * self.chunk, self.height) <= limit:
            row = self._rows.pop(r, None)
            if row is not None:
                for x in range(0, self.width, self.chunk):
                    block = row[:, x : x + self.chunk]
                    if block.any():
                        yield r * self.chunk, x, np.ascontiguousarray(block)
            r += 1
            self._flushed_until = min(r * self.chunk, self.height)
