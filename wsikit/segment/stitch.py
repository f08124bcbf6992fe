"""Whole-slide stitching of per-tile nucleus instances: every nucleus kept once, whole, with a unique id.

Tiles of ``core + 2 * margin`` working pixels overlap by ``2 * margin``. A nucleus found in a tile is kept
by that tile only if its centroid lies in the tile's core (the cores partition the slide), and it is
kept whole, including the part outside the core. A nucleus narrower than ``margin`` that crosses a core
border is entirely inside both neighbouring tiles, and its centroid is in exactly one core: it is written
once, never cut. Ids are assigned in tile order, so the same input gives the same ids.

:class:`ChunkAssembler` collects kept nuclei into chunk-aligned blocks of the output label image and
releases a block as soon as no later tile can touch it, so the writer owns whole chunks. The pending blocks
form a band across the slide's tissue width; when they exceed a memory budget, :meth:`ChunkAssembler.spill`
hands some over early, and the writer merges them (read, overlay, write) instead of writing them, so memory
is bounded by the budget, not by the slide. Resuming stays exact: the journal holds the spilled set as of its
save, and the tiles after it are painted again with the same ids, so a chunk spilled after the last save is
either rewritten whole (block from the journal + the repainted tiles) or merged with identical pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import numpy.typing as npt

__all__ = ["keep_core_instances", "ChunkAssembler"]

_WRITTEN_CACHE = 4
"""Spilled chunks whose written pixels :class:`ChunkAssembler` keeps read back (4 MB each at 1024 px)."""


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
    smallest y any later nucleus may reach, and write the blocks it yields. Only chunks that hold a
    pending nucleus are in memory (tissue chunks of a band of the slide, never the whole slide).
    :meth:`state` / :meth:`from_state` save and restore everything pending, for resuming a run.
    """

    def __init__(
        self,
        height: int,
        width: int,
        chunk: int,
        read_spilled: Callable[[int, int, int, int], npt.NDArray[np.uint32]] | None = None,
    ) -> None:
        self.height, self.width, self.chunk = height, width, chunk
        self.read_spilled = read_spilled
        """Reads (y, x, h, w) of the written labels: what spilled chunks already hold (see :meth:`add`)."""
        self._blocks: dict[tuple[int, int], npt.NDArray[np.uint32]] = {}
        self._spilled: set[tuple[int, int]] = set()
        self._written: dict[
            tuple[int, int], npt.NDArray[np.uint32]
        ] = {}  # spilled chunks read back, newest last
        self._flushed_until = 0
        self.next_id = 1
        self.duplicates = 0
        """Nuclei skipped by :meth:`add` as found again by a neighbouring tile."""

    def _block(self, r: int, c: int) -> npt.NDArray[np.uint32]:
        key = (r, c)
        if key not in self._blocks:
            h = min(self.chunk, self.height - r * self.chunk)
            w = min(self.chunk, self.width - c * self.chunk)
            self._blocks[key] = np.zeros((h, w), np.uint32)
        return self._blocks[key]

    def add(self, rows: npt.NDArray[np.intp], cols: npt.NDArray[np.intp]) -> int:
        """Paint one nucleus (clipped to the image) with the next id; returns the id, or 0 if it was not painted.

        Pixels an earlier nucleus holds stay its own (first wins), so overlapping detections never cut an
        earlier nucleus down to a sliver. A nucleus more than half of whose pixels are held already is the
        same nucleus found again by a neighbouring tile (watershed differs a little between tiles, and the
        two centroids can fall on either side of the core border): it is skipped and returns 0. In a chunk
        spilled earlier the held pixels are read back with ``read_spilled``, so the result does not depend on
        the memory budget; only ids below :attr:`next_id` count as held, so a resumed run, which paints
        again what a spill wrote after its journal, decides the same.
        """
        keep = (rows >= 0) & (rows < self.height) & (cols >= 0) & (cols < self.width)
        rows, cols = rows[keep], cols[keep]
        if rows.size == 0:
            return 0
        if rows.min() < self._flushed_until:
            raise RuntimeError("a nucleus reaches a chunk row that was already written (margin too small)")
        key = (rows // self.chunk) * (1 << 20) + cols // self.chunk
        parts = []
        held = 0
        for k in np.unique(key):
            r, c = int(k) >> 20, int(k) & ((1 << 20) - 1)
            sel = key == k
            block = self._block(r, c)
            rr, cc = rows[sel] - r * self.chunk, cols[sel] - c * self.chunk
            free = block[rr, cc] == 0
            if (r, c) in self._spilled and self.read_spilled is not None:
                before = self._written_chunk(r, c)[rr, cc]
                free &= (before == 0) | (before >= self.next_id)
            held += int(free.size - np.count_nonzero(free))
            parts.append((block, rr[free], cc[free]))
        if 2 * held > rows.size:
            self.duplicates += 1
            return 0
        nid = self.next_id
        self.next_id += 1
        for block, rr, cc in parts:
            block[rr, cc] = nid
        return nid

    def _written_chunk(self, r: int, c: int) -> npt.NDArray[np.uint32]:
        """What the writer holds of spilled chunk (r, c), read once and kept until the chunk is handed over
        again (at most ``_WRITTEN_CACHE`` chunks), so nuclei along a spilled band do not each read the store."""
        key = (r, c)
        block = self._written.pop(key, None)
        if block is None:
            assert self.read_spilled is not None
            h = min(self.chunk, self.height - r * self.chunk)
            w = min(self.chunk, self.width - c * self.chunk)
            block = np.asarray(self.read_spilled(r * self.chunk, c * self.chunk, h, w), np.uint32)
            while len(self._written) >= _WRITTEN_CACHE:
                self._written.pop(next(iter(self._written)))
        self._written[key] = block
        return block

    def flush_above(self, y: int) -> Iterator[tuple[int, int, npt.NDArray[np.uint32], bool]]:
        """Yield (y, x, block, merge) for every chunk of the rows that end at or above ``y`` (all rows when
        y >= height). ``merge``: part of this chunk was spilled before, so overlay the block's nonzero pixels
        on what is stored instead of replacing it."""
        limit = min(y, self.height)
        r = self._flushed_until // self.chunk
        while r * self.chunk < self.height and min((r + 1) * self.chunk, self.height) <= limit:
            for key in sorted(k for k in self._blocks if k[0] == r):
                block = self._blocks.pop(key)
                self._written.pop(key, None)
                if block.any():
                    yield r * self.chunk, key[1] * self.chunk, block, key in self._spilled
            self._spilled = {k for k in self._spilled if k[0] != r}
            r += 1
            self._flushed_until = min(r * self.chunk, self.height)

    def spill(self, budget_bytes: int) -> Iterator[tuple[int, int, npt.NDArray[np.uint32], bool]]:
        """Hand over pending blocks, top-left first, until at most ``budget_bytes`` stay pending.

        Yields (y, x, block, merge) like :meth:`flush_above`; a spilled block is incomplete (later tiles may
        paint more nuclei into its chunk), so the writer must merge it, and so must every later write of the
        same chunk (the ``merge`` flag says so).
        """
        total = self.pending_bytes
        for key in sorted(self._blocks):
            if total <= budget_bytes:
                break
            block = self._blocks.pop(key)
            total -= block.nbytes
            self._written.pop(key, None)  # the writer's copy changes now: read it again when needed
            if block.any():
                self._spilled.add(key)
                yield key[0] * self.chunk, key[1] * self.chunk, block, True

    @property
    def flushed_until(self) -> int:
        """Level-0 rows above this are written and final."""
        return self._flushed_until

    @property
    def pending_bytes(self) -> int:
        """Memory held by pending chunks."""
        return sum(b.nbytes for b in self._blocks.values())

    def state(self) -> dict[str, npt.NDArray[np.generic]]:
        """Everything pending, as arrays (for ``numpy.savez_compressed``)."""
        keys = sorted(self._blocks)
        out: dict[str, npt.NDArray[np.generic]] = {
            "meta": np.array(
                [self.height, self.width, self.chunk, self._flushed_until, self.next_id], np.int64
            ),
            "keys": np.array(keys, np.int64).reshape(-1, 2),
            "spilled": np.array(sorted(self._spilled), np.int64).reshape(-1, 2),
            "duplicates": np.array(self.duplicates, np.int64),
        }
        for i, k in enumerate(keys):
            out[f"block_{i}"] = self._blocks[k]
        return out

    @classmethod
    def from_state(
        cls,
        state: dict[str, npt.NDArray[np.generic]],
        read_spilled: Callable[[int, int, int, int], npt.NDArray[np.uint32]] | None = None,
    ) -> ChunkAssembler:
        """Rebuild an assembler saved by :meth:`state`."""
        h, w, c, flushed, next_id = (int(v) for v in state["meta"])
        asm = cls(h, w, c, read_spilled)
        asm._flushed_until, asm.next_id = flushed, next_id
        for i, (r, q) in enumerate(np.asarray(state["keys"]).reshape(-1, 2)):
            asm._blocks[(int(r), int(q))] = np.asarray(state[f"block_{i}"], np.uint32)
        asm.duplicates = int(state["duplicates"]) if "duplicates" in state else 0
        if "spilled" in state:
            asm._spilled = {(int(r), int(q)) for r, q in np.asarray(state["spilled"]).reshape(-1, 2)}
        return asm
