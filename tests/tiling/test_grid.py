"""TileGrid geometry: coverage, edges, transforms, construction from slides, validation."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from wsikit.errors import ConfigError
from wsikit.io import open_slide
from wsikit.tiling import NORMALIZER_TILE_SIZE, SEGMENTER_TILE_SIZE, TileGrid


def test_defaults_match_the_paper() -> None:
    assert (NORMALIZER_TILE_SIZE, SEGMENTER_TILE_SIZE) == (224, 144)
    assert TileGrid(width=10, height=10).tile_size == 144


@pytest.mark.parametrize(
    ("width", "height", "size", "overlap", "scale"),
    [
        (1000, 700, 224, 0, 1.0),
        (1001, 333, 144, 16, 1.0),
        (5000, 3000, 224, 32, 2.5),
        (100, 100, 224, 0, 1.0),
        (7, 3, 4, 3, 0.5),
    ],
)
def test_tiles_cover_every_pixel_and_edges_are_kept(
    width: int, height: int, size: int, overlap: int, scale: float
) -> None:
    grid = TileGrid(width=width, height=height, tile_size=size, overlap=overlap, scale=scale)
    ww, wh = grid.working_size
    covered = np.zeros((wh, ww), bool)
    for tile in grid:
        covered[tile.y : tile.y + size, tile.x : tile.x + size] = True
        assert tile.x0 == pytest.approx(tile.x * scale) and tile.size0 == pytest.approx(size * scale)
    assert covered.all()
    rows, cols = grid.shape
    assert len(grid) == rows * cols
    last = grid.tile(len(grid) - 1)
    assert (
        last.x + size >= ww and last.y + size >= wh
    )  # edge tiles reach past the edge (padded), never dropped
    # no superfluous tiles: dropping the last column or row would leave pixels uncovered
    assert (cols - 1) * grid.stride + size < ww + size and (cols - 2) * grid.stride + size < ww or cols == 1


def test_neighbours_overlap_by_the_requested_amount() -> None:
    grid = TileGrid(width=2000, height=2000, tile_size=224, overlap=32)
    a, b = grid.tile_at(0, 0), grid.tile_at(1, 0)
    assert a.x + 224 - b.x == 32
    assert grid.tile_at(0, 1).y == 192


def test_transforms_round_trip() -> None:
    grid = TileGrid(width=4000, height=3000, tile_size=144, scale=1.96)
    for x, y in itertools.product([0.0, 13.5, 1999.0], [0.0, 7.25, 1500.0]):
        assert grid.from_level0(*grid.to_level0(x, y)) == pytest.approx((x, y))


def test_tiles_touching_matches_brute_force() -> None:
    grid = TileGrid(width=3000, height=2000, tile_size=144, overlap=20, scale=1.5)
    box = (700.0, 333.0, 1200.0, 901.0)
    brute = [
        t.index
        for t in grid
        if t.x0 < box[2] and t.x0 + t.size0 > box[0] and t.y0 < box[3] and t.y0 + t.size0 > box[1]
    ]
    assert [t.index for t in grid.tiles_touching(*box)] == brute


def test_for_slide_with_mpp_and_level(sample_slide: Path, data_dir: Path) -> None:
    with open_slide(sample_slide) as slide:
        grid = TileGrid.for_slide(slide, tile_size=224, mpp=0.998)
        assert grid.scale == pytest.approx(2.0)
        assert TileGrid.for_slide(slide).scale == 1.0
    with open_slide(data_dir / "slides" / "tcga-cr-7395-01a-01-ts1.svs") as slide:
        assert TileGrid.for_slide(slide, level=1).scale == pytest.approx(slide.level_downsamples[1])
        with pytest.raises(ConfigError, match="does not state its microns per pixel"):
            TileGrid.for_slide(slide, mpp=0.5)
        assert TileGrid.for_slide(slide, mpp=0.5, slide_mpp=0.25).scale == pytest.approx(2.0)
        with pytest.raises(ConfigError, match="level must be in"):
            TileGrid.for_slide(slide, level=5)
        with pytest.raises(ConfigError, match="either mpp or level"):
            TileGrid.for_slide(slide, level=1, mpp=1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tile_size": 0}, "tile_size must be a positive integer"),
        ({"tile_size": -224}, "tile_size must be a positive integer"),
        ({"overlap": 224}, "overlap must be an integer"),
        ({"overlap": -1}, "overlap must be an integer"),
        ({"scale": 0.0}, "scale"),
        ({"scale": float("nan")}, "scale"),
    ],
)
def test_invalid_grids(kwargs: dict[str, float], message: str) -> None:
    params = {"width": 100, "height": 100, "tile_size": 224, **kwargs}
    with pytest.raises(ConfigError, match=message):
        TileGrid(**params)  # type: ignore[arg-type]


def test_index_errors() -> None:
    grid = TileGrid(width=100, height=100, tile_size=50)
    with pytest.raises(IndexError):
        grid.tile(4)
    with pytest.raises(IndexError):
        grid.tile_at(2, 0)
