"""TileGrid: pure geometry between a tile lattice at a working resolution and level-0 pixels.

A grid covers the whole slide: the last column and row of tiles may extend
past the slide's edge; their outside part is padded at read time, never
dropped. ``scale`` is the number of level-0 pixels per working pixel
(``target_mpp / slide_mpp``), so a tile of ``tile_size`` working pixels spans
``tile_size * scale`` level-0 pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wsikit.errors import ConfigError

if TYPE_CHECKING:
    from wsikit.io.slide import Slide

__all__ = ["Tile", "TileGrid", "NORMALIZER_TILE_SIZE", "SEGMENTER_TILE_SIZE"]

NORMALIZER_TILE_SIZE = 224
"""Patch size of the paper's stain-normalization CNN."""
SEGMENTER_TILE_SIZE = 144
"""Patch size of the paper's nuclei-segmentation U-Net."""


@dataclass(frozen=True, slots=True)
class Tile:
    """One tile of a :class:`TileGrid`.

    Attributes
    ----------
    index : int
        Row-major index in the grid.
    col, row : int
        Position in the lattice.
    x, y : int
        Top-left corner in working-resolution pixels.
    x0, y0 : float
        Top-left corner in level-0 pixels.
    size0 : float
        Side length in level-0 pixels.
    """

    index: int
    col: int
    row: int
    x: int
    y: int
    x0: float
    y0: float
    size0: float

    @property
    def bounds0(self) -> tuple[float, float, float, float]:
        """(x_min, y_min, x_max, y_max) in level-0 pixels."""
        return (self.x0, self.y0, self.x0 + self.size0, self.y0 + self.size0)


@dataclass(frozen=True, kw_only=True)
class TileGrid:
    """A square-tile lattice over a slide at one working resolution.

    Parameters
    ----------
    width, height : int
        Slide size in level-0 pixels.
    tile_size : int
        Tile side in working-resolution pixels (224 normalizer, 144 segmenter).
    overlap : int
        Pixels (working resolution) shared by neighbouring tiles; ``0 <= overlap < tile_size``.
    scale : float
        Level-0 pixels per working pixel (> 0). 1 reads at native resolution.

    Examples
    --------
    >>> grid = TileGrid(width=1000, height=500, tile_size=224, overlap=32, scale=2.0)
    >>> grid.shape  # (rows, cols) of tiles covering 500 x 250 working pixels
    (2, 3)
    >>> grid.tile(4).bounds0
    (384.0, 384.0, 832.0, 832.0)
    >>> grid.to_level0(10, 20)
    (20.0, 40.0)
    """

    width: int
    height: int
    tile_size: int = SEGMENTER_TILE_SIZE
    overlap: int = 0
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.tile_size, int) or self.tile_size <= 0:
            raise ConfigError(f"tile_size must be a positive integer, got {self.tile_size!r}")
        if not isinstance(self.overlap, int) or not 0 <= self.overlap < self.tile_size:
            raise ConfigError(
                f"overlap must be an integer in [0, tile_size={self.tile_size}), got {self.overlap!r}"
            )
        if not (isinstance(self.scale, int | float) and math.isfinite(self.scale) and self.scale > 0):
            raise ConfigError(f"scale (level-0 px per working px) must be positive, got {self.scale!r}")
        if self.width <= 0 or self.height <= 0:
            raise ConfigError(f"slide size must be positive, got {self.width}x{self.height}")

    # ------------------------------------------------------------ construction
    @classmethod
    def for_slide(
        cls,
        slide: Slide,
        *,
        tile_size: int = SEGMENTER_TILE_SIZE,
        overlap: int = 0,
        mpp: float | None = None,
        level: int | None = None,
        slide_mpp: float | None = None,
    ) -> TileGrid:
        """Build the grid for ``slide`` at a target resolution.

        Parameters
        ----------
        slide : Slide
            The slide to cover.
        tile_size, overlap : int
            See :class:`TileGrid`.
        mpp : float, optional
            Working resolution in microns per pixel. Needs the slide's mpp
            (from its metadata or ``slide_mpp``).
        level : int, optional
            Work at the native resolution of this pyramid level instead.
        slide_mpp : float, optional
            Level-0 microns per pixel to use when the file does not state it.

        Raises
        ------
        ConfigError
            If both ``mpp`` and ``level`` are given, the level does not exist,
            or ``mpp`` is asked for on a slide whose mpp is unknown.
        """
        if mpp is not None and level is not None:
            raise ConfigError("give either mpp or level, not both")
        w, h = slide.dimensions
        if level is not None:
            if not 0 <= level < slide.level_count:
                raise ConfigError(
                    f"level must be in [0, {slide.level_count - 1}] for {slide.path}, got {level}"
                )
            scale = slide.level_downsamples[level]
        elif mpp is not None:
            if not (math.isfinite(mpp) and mpp > 0):
                raise ConfigError(f"mpp must be positive, got {mpp}")
            base = slide_mpp if slide_mpp is not None else slide.mpp_x
            if base is None:
                raise ConfigError(
                    f"{slide.path}: the slide does not state its microns per pixel; "
                    "give its mpp (`slide_mpp`) or work at a pyramid level instead"
                )
            scale = mpp / base
        else:
            scale = 1.0
        return cls(width=w, height=h, tile_size=tile_size, overlap=overlap, scale=float(scale))

    # ----------------------------------------------------------------- shape
    @property
    def stride(self) -> int:
        """Step between tile origins in working pixels (``tile_size - overlap``)."""
        return self.tile_size - self.overlap

    @property
    def working_size(self) -> tuple[int, int]:
        """(width, height) of the slide in working pixels (rounded up)."""
        return (math.ceil(self.width / self.scale - 1e-9), math.ceil(self.height / self.scale - 1e-9))

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of tiles; every working pixel lies in at least one tile."""
        ww, wh = self.working_size
        cols = max(1, math.ceil(max(ww - self.overlap, 1) / self.stride))
        rows = max(1, math.ceil(max(wh - self.overlap, 1) / self.stride))
        return (rows, cols)

    def __len__(self) -> int:
        rows, cols = self.shape
        return rows * cols

    # ----------------------------------------------------------------- tiles
    def tile(self, index: int) -> Tile:
        """Return tile ``index`` (row-major)."""
        rows, cols = self.shape
        if not 0 <= index < rows * cols:
            raise IndexError(f"tile index {index} out of range for a {rows}x{cols} grid")
        row, col = divmod(index, cols)
        x, y = col * self.stride, row * self.stride
        return Tile(index, col, row, x, y, x * self.scale, y * self.scale, self.tile_size * self.scale)

    def tile_at(self, col: int, row: int) -> Tile:
        """Return the tile at lattice position (col, row)."""
        rows, cols = self.shape
        if not (0 <= col < cols and 0 <= row < rows):
            raise IndexError(f"tile ({col}, {row}) outside a {rows}x{cols} grid")
        return self.tile(row * cols + col)

    def __iter__(self) -> Iterator[Tile]:
        for i in range(len(self)):
            yield self.tile(i)

    # ------------------------------------------------------------ transforms
    def to_level0(self, x: float, y: float) -> tuple[float, float]:
        """Map working-resolution (x, y) to level-0 pixels."""
        return (x * self.scale, y * self.scale)

    def from_level0(self, x0: float, y0: float) -> tuple[float, float]:
        """Map level-0 (x, y) to working-resolution pixels."""
        return (x0 / self.scale, y0 / self.scale)

    def tiles_touching(self, x0: float, y0: float, x1: float, y1: float) -> list[Tile]:
        """Tiles whose level-0 box intersects the level-0 box [x0, x1) x [y0, y1)."""
        rows, cols = self.shape
        span = self.tile_size * self.scale
        step = self.stride * self.scale
        c_lo = max(0, math.floor((x0 - span) / step) + 1)
        r_lo = max(0, math.floor((y0 - span) / step) + 1)
        c_hi = min(cols - 1, math.floor((x1 - 1e-9) / step))
        r_hi = min(rows - 1, math.floor((y1 - 1e-9) / step))
        return [self.tile_at(c, r) for r in range(r_lo, r_hi + 1) for c in range(c_lo, c_hi + 1)]
