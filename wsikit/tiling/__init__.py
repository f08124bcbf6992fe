"""Tiling: grid geometry, tissue detection and the prefetching patch stream. Never imports torch at import.

Examples
--------
>>> from wsikit.tiling import TileGrid
>>> TileGrid(width=448, height=224, tile_size=224).shape
(1, 2)
"""

from __future__ import annotations

from wsikit.tiling.grid import NORMALIZER_TILE_SIZE, SEGMENTER_TILE_SIZE, Tile, TileGrid
from wsikit.tiling.overlay import outline_mask
from wsikit.tiling.stream import (
    PatchBatch,
    PatchStream,
    StreamStats,
    band_order,
    read_tile,
    read_tiles,
    select_tiles,
)
from wsikit.tiling.tissue import TissueMask, detect_tissue, pen_mask, tissue_mask

__all__ = [
    "NORMALIZER_TILE_SIZE",
    "SEGMENTER_TILE_SIZE",
    "Tile",
    "TileGrid",
    "TissueMask",
    "detect_tissue",
    "pen_mask",
    "tissue_mask",
    "PatchBatch",
    "PatchStream",
    "StreamStats",
    "read_tile",
    "read_tiles",
    "select_tiles",
    "band_order",
    "outline_mask",
]
