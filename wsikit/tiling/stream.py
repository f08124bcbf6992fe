"""The prefetching patch stream: tissue tiles in batches, decoded ahead on background threads.

Tiles are read by a thread pool (slide decoders release the GIL) while the
consumer works on the previous batch. At most ``prefetch`` batches are in
flight, so memory is bounded by ``prefetch * batch_size * tile bytes``,
whatever the slide size. Batches come out in tile order, so a run is
deterministic.

This module does not import torch at import time; ``as_tensor=True`` imports
it when the first batch is built.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from wsikit._typing import RGBImage
from wsikit.errors import ConfigError
from wsikit.io.slide import Slide
from wsikit.tiling.grid import Tile, TileGrid
from wsikit.tiling.tissue import TissueMask

__all__ = [
    "BAND_PX",
    "PatchBatch",
    "PatchStream",
    "StreamStats",
    "band_order",
    "read_tile",
    "read_tiles",
    "select_tiles",
]


def read_tile(slide: Slide, grid: TileGrid, tile: Tile) -> RGBImage:
    """Read one tile at the grid's working resolution.

    Reads from the most detailed pyramid level that does not need
    up-sampling and resizes (area filter) to ``grid.tile_size``. Parts of the
    tile outside the slide are white.

    Returns
    -------
    numpy.ndarray
        (tile_size, tile_size, 3) uint8.
    """
    size = grid.tile_size
    level = slide.best_level_for_downsample(grid.scale)
    ds = slide.level_downsamples[level]
    loc = (int(round(tile.x0)), int(round(tile.y0)))
    read = max(1, int(round(tile.size0 / ds)))
    region = slide.read_region(loc, level, (read, read))
    if read == size:
        return region
    from PIL import Image

    resample = Image.Resampling.BOX if read > size else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(region).resize((size, size), resample))


def read_tiles(slide: Slide, grid: TileGrid, tiles: Sequence[Tile]) -> np.ndarray:
    """Read several tiles into one (n, 3, size, size) uint8 array.

    Runs of horizontally adjacent tiles at a pyramid level's native
    resolution are read with one ``read_region`` call and sliced, which saves
    per-call overhead and decodes each encoded slide tile once; other tiles
    are read one by one with :func:`read_tile`. The result is identical either way.
    """
    size = grid.tile_size
    out = np.empty((len(tiles), 3, size, size), dtype=np.uint8)
    level = slide.best_level_for_downsample(grid.scale)
    ds = slide.level_downsamples[level]
    native = abs(grid.scale - ds) < 1e-9 * max(ds, 1.0)
    i = 0
    while i < len(tiles):
        j = i + 1
        if native:
            while j < len(tiles) and tiles[j].row == tiles[i].row and tiles[j].col == tiles[j - 1].col + 1:
                j += 1
        if j - i == 1:
            out[i] = read_tile(slide, grid, tiles[i]).transpose(2, 0, 1)
        else:
            first = tiles[i]
            width = (j - i - 1) * grid.stride + size
            region = slide.read_region((int(round(first.x0)), int(round(first.y0))), level, (width, size))
            for k in range(i, j):
                off = (k - i) * grid.stride
                out[k] = region[:, off : off + size].transpose(2, 0, 1)
        i = j
    return out


BAND_PX = 2048
"""Width in level-0 pixels of the vertical bands of :func:`band_order`."""


def band_order(tiles: Sequence[Tile], grid: TileGrid, *, band_px: float = BAND_PX) -> list[Tile]:
    """Order tiles in vertical bands about ``band_px`` level-0 pixels wide, row-major inside each band.

    Slide decoders cache decoded tiles (OpenSlide: 32 MiB by default). In plain
    row-major order a row of patches of a wide slide touches more encoded tiles
    than the cache holds, so each one is decoded again for the next row of
    patches; within a narrow band it stays cached. On a 40,960 px wide JPEG
    pyramid this reads 224 px patches about 1.4x faster (docs/benchmarks.md),
    with memory that does not depend on the slide's width.

    Examples
    --------
    >>> grid = TileGrid(width=4096, height=2048, tile_size=1024)
    >>> [t.index for t in band_order(list(grid), grid)]
    [0, 1, 4, 5, 2, 3, 6, 7]
    """
    per_band = max(1, int(round(band_px / (grid.stride * grid.scale))))
    return sorted(tiles, key=lambda t: (t.col // per_band, t.row, t.col))


def select_tiles(
    grid: TileGrid,
    tissue: TissueMask | None = None,
    *,
    min_tissue: float = 0.1,
    order: Literal["band", "row"] = "band",
) -> list[Tile]:
    """Tiles of ``grid`` whose tissue fraction is at least ``min_tissue`` (every tile when it is 0 or without a mask).

    ``order="band"`` (default) returns them in :func:`band_order`, the fastest
    order to read; ``order="row"`` in row-major grid order.

    Examples
    --------
    >>> import numpy as np
    >>> from wsikit.tiling import TileGrid, TissueMask
    >>> grid = TileGrid(width=400, height=400, tile_size=100)
    >>> m = np.zeros((4, 4), bool); m[0, 0] = True
    >>> [t.index for t in select_tiles(grid, TissueMask(mask=m, downsample=100.0))]
    [0]
    """
    if not 0.0 <= min_tissue <= 1.0:
        raise ConfigError(f"min_tissue must be in [0, 1], got {min_tissue}")
    if order not in ("band", "row"):
        raise ConfigError(f"order must be 'band' or 'row', got {order!r}")
    if tissue is None or min_tissue == 0:
        keep = list(grid)
    else:
        keep = []
        for tile in grid:
            frac = tissue.box_fraction(*tile.bounds0)
            if frac >= min_tissue:
                keep.append(tile)
    return band_order(keep, grid) if order == "band" else keep


@dataclass
class StreamStats:
    """Counters of one pass over a :class:`PatchStream`.

    Attributes
    ----------
    tiles : int
        Tiles delivered.
    batches : int
        Batches delivered.
    wait_s : float
        Seconds the consumer spent blocked waiting for reads.
    total_s : float
        Seconds from the first request to the last batch handed out.
    """

    tiles: int = 0
    batches: int = 0
    wait_s: float = 0.0
    total_s: float = 0.0

    @property
    def wait_share(self) -> float:
        """Share of the pass spent waiting on reads (0..1)."""
        return self.wait_s / self.total_s if self.total_s > 0 else 0.0


@dataclass
class PatchBatch:
    """One batch of tiles.

    Attributes
    ----------
    images : numpy.ndarray or torch.Tensor
        (B, 3, H, W) uint8, channels first.
    tiles : list of Tile
        The tiles, in the same order as ``images``.
    """

    images: Any
    tiles: list[Tile] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tiles)


class PatchStream:
    """Iterate tiles of a slide in batches, reading ahead on background threads.

    Parameters
    ----------
    slide : Slide
        An open slide.
    grid : TileGrid
        Tile geometry (size, overlap, working resolution).
    tiles : sequence of Tile, optional
        Tiles to deliver, in order; default all tiles of ``grid``
        (use :func:`select_tiles` for tissue tiles).
    batch_size : int
        Tiles per batch; the last batch may be smaller.
    workers : int, optional
        Reader threads; default the number of CPU cores.
    prefetch : int
        Batches read ahead of the consumer (memory bound).
    as_tensor : bool
        Yield ``torch.Tensor`` batches instead of numpy arrays.
    pin_memory : bool
        With ``as_tensor``, return page-locked tensors for fast GPU copies.

    Examples
    --------
    >>> from wsikit.io import open_slide
    >>> from wsikit.sample import sample_slide_path
    >>> from wsikit.tiling import PatchStream, TileGrid, select_tiles, tissue_mask
    >>> slide = open_slide(sample_slide_path())
    >>> grid = TileGrid.for_slide(slide, tile_size=224, mpp=1.0)
    >>> tiles = select_tiles(grid, tissue_mask(slide), min_tissue=0.5)
    >>> batch = next(iter(PatchStream(slide, grid, tiles, batch_size=8)))
    >>> tuple(batch.images.shape), batch.images.dtype
    ((8, 3, 224, 224), torch.uint8)
    >>> slide.close()
    """

    def __init__(
        self,
        slide: Slide,
        grid: TileGrid,
        tiles: Sequence[Tile] | None = None,
        *,
        batch_size: int = 32,
        workers: int | None = None,
        prefetch: int = 2,
        as_tensor: bool = True,
        pin_memory: bool = False,
    ) -> None:
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        if prefetch <= 0:
            raise ConfigError(f"prefetch must be positive, got {prefetch}")
        if workers is not None and workers <= 0:
            raise ConfigError(f"workers must be positive, got {workers}")
        self.slide = slide
        self.grid = grid
        self.tiles: Sequence[Tile] = list(grid) if tiles is None else tiles
        self.batch_size = batch_size
        self.workers = workers or os.cpu_count() or 1
        self.prefetch = prefetch
        self.as_tensor = as_tensor
        self.pin_memory = pin_memory
        self.stats = StreamStats()

    def __len__(self) -> int:
        """Number of batches."""
        return math.ceil(len(self.tiles) / self.batch_size)

    def _read_batch(self, tiles: Sequence[Tile]) -> np.ndarray:
        return read_tiles(self.slide, self.grid, tiles)

    def __iter__(self) -> Iterator[PatchBatch]:
        self.stats = StreamStats()
        tiles = self.tiles
        n = len(tiles)
        if n == 0:
            return
        # Split batches into per-thread chunks so all readers stay busy on one batch.
        chunk = max(1, math.ceil(self.batch_size / self.workers))
        start = time.perf_counter()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="wsikit-read") as pool:
            pending: deque[tuple[list[Tile], list[Future[np.ndarray]]]] = deque()
            next_start = 0

            def submit_next() -> None:
                nonlocal next_start
                batch_tiles = list(tiles[next_start : next_start + self.batch_size])
                next_start += len(batch_tiles)
                futures = [
                    pool.submit(self._read_batch, batch_tiles[j : j + chunk])
                    for j in range(0, len(batch_tiles), chunk)
                ]
                pending.append((batch_tiles, futures))

            try:
                while next_start < n and len(pending) < self.prefetch + 1:
                    submit_next()
                while pending:
                    batch_tiles, futures = pending.popleft()
                    t0 = time.perf_counter()
                    parts = [f.result() for f in futures]
                    self.stats.wait_s += time.perf_counter() - t0
                    if next_start < n:
                        submit_next()
                    images = parts[0] if len(parts) == 1 else np.concatenate(parts)
                    self.stats.tiles += len(batch_tiles)
                    self.stats.batches += 1
                    self.stats.total_s = time.perf_counter() - start
                    yield PatchBatch(images=self._convert(images), tiles=batch_tiles)
            finally:
                for _, futures in pending:
                    for f in futures:
                        f.cancel()
        self.stats.total_s = time.perf_counter() - start

    def _convert(self, images: np.ndarray) -> Any:
        if not self.as_tensor:
            return images
        import torch

        tensor = torch.from_numpy(images)
        return tensor.pin_memory() if self.pin_memory else tensor
