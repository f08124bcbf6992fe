"""PatchStream: batches, order, padding, resolution, read-ahead bound and overlap with a slow consumer."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from wsikit.errors import ConfigError
from wsikit.io import Slide, open_slide
from wsikit.io._image_backend import ImageSlide
from wsikit.tiling import PatchStream, TileGrid, read_tile, read_tiles, select_tiles, tissue_mask


def test_batches_are_uint8_tensors_in_tile_order(sample_slide: Path) -> None:
    with open_slide(sample_slide) as slide:
        grid = TileGrid.for_slide(slide, tile_size=224, mpp=1.0)
        tiles = select_tiles(grid, tissue_mask(slide), min_tissue=0.25)
        stream = PatchStream(slide, grid, tiles, batch_size=5, workers=2)
        batches = list(stream)
        assert len(batches) == len(stream) == -(-len(tiles) // 5)
        seen = [t.index for b in batches for t in b.tiles]
        assert seen == [t.index for t in tiles]
        first = batches[0]
        assert isinstance(first.images, torch.Tensor)
        assert first.images.shape == (5, 3, 224, 224) and first.images.dtype == torch.uint8
        # identical to a plain sequential read
        for i, tile in enumerate(first.tiles):
            np.testing.assert_array_equal(
                first.images[i].numpy().transpose(1, 2, 0), read_tile(slide, grid, tile)
            )
        assert stream.stats.tiles == len(tiles) and stream.stats.batches == len(batches)


@pytest.mark.parametrize("overlap", [0, 20])
def test_grouped_reads_equal_single_reads(sample_slide: Path, overlap: int) -> None:
    with open_slide(sample_slide) as slide:
        grid = TileGrid.for_slide(slide, tile_size=144, overlap=overlap)  # native: runs are read in one call
        tiles = select_tiles(grid, tissue_mask(slide), min_tissue=0.2)[:40] + [grid.tile(len(grid) - 1)]
        grouped = read_tiles(slide, grid, tiles)
        for i, tile in enumerate(tiles):
            np.testing.assert_array_equal(grouped[i].transpose(1, 2, 0), read_tile(slide, grid, tile))


def test_numpy_output_and_edge_padding() -> None:
    pixels = np.full((100, 150, 3), 40, np.uint8)
    slide = ImageSlide.from_array(pixels)
    grid = TileGrid(width=150, height=100, tile_size=64)
    batches = list(PatchStream(slide, grid, batch_size=3, as_tensor=False))
    images = np.concatenate([b.images for b in batches])
    assert images.shape == (len(grid), 3, 64, 64)
    last = images[-1].transpose(1, 2, 0)  # tile at x=128, y=64: 22 x 36 px of image, rest glass
    assert (last[:36, :22] == 40).all() and (last[36:] == 255).all() and (last[:, 22:] == 255).all()


def test_reads_from_the_best_level_at_target_resolution(data_dir: Path) -> None:
    with open_slide(data_dir / "slides" / "tcga-cr-7395-01a-01-ts1.svs") as slide:
        grid = TileGrid.for_slide(slide, tile_size=144, level=1)
        tile = grid.tile_at(3, 3)
        from_level1 = read_tile(slide, grid, tile).astype(np.float32)
        # This scanner's level 1 is registered to level 0 only within ~2 level-0 px: allow that shift.
        errors = []
        for dx in range(-3, 4):
            for dy in range(-3, 4):
                hi = slide.read_region((int(tile.x0) + dx, int(tile.y0) + dy), 0, (288, 288)).astype(
                    np.float32
                )
                from_level0 = hi.reshape(144, 2, 144, 2, 3).mean(axis=(1, 3))
                errors.append(np.abs(from_level1 - from_level0).mean())
        assert min(errors) < 8
        # a resolution between levels: read from level 1 (no up-sampling) and shrink
        grid3 = TileGrid(width=slide.dimensions[0], height=slide.dimensions[1], tile_size=144, scale=3.0)
        assert slide.best_level_for_downsample(grid3.scale) == 1
        assert read_tile(slide, grid3, grid3.tile(0)).shape == (144, 144, 3)


class _CountingSlide(ImageSlide):
    """An in-memory slide that counts the pixels it reads and can be slowed down."""

    def __init__(self, pixels: np.ndarray, delay: float = 0.0) -> None:
        base = ImageSlide.from_array(pixels)
        self.__dict__.update(base.__dict__)
        self.delay = delay
        self.reads = 0
        self._lock = threading.Lock()

    def _read(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        with self._lock:
            self.reads += w * h
        if self.delay:
            time.sleep(self.delay)
        return super()._read(level, x, y, w, h)


def test_read_ahead_is_bounded_by_prefetch() -> None:
    slide = _CountingSlide(np.full((640, 640, 3), 128, np.uint8))
    grid = TileGrid(width=640, height=640, tile_size=32)  # 400 tiles
    stream = PatchStream(slide, grid, batch_size=8, prefetch=2, workers=2)
    it = iter(stream)
    next(it)
    time.sleep(0.3)  # let the readers run as far ahead as they may
    # delivered 1 batch; at most prefetch + 1 more batches may have been read
    assert slide.reads <= 8 * (1 + 2 + 1) * 32 * 32
    consumed = 1
    for _ in it:
        consumed += 1
    assert consumed == 50 and slide.reads == 400 * 32 * 32


def test_slow_consumer_never_waits_on_reads() -> None:
    slide = _CountingSlide(np.full((512, 512, 3), 128, np.uint8), delay=0.002)
    grid = TileGrid(width=512, height=512, tile_size=64)  # 64 tiles, 16 batches
    stream = PatchStream(slide, grid, batch_size=4, prefetch=2, workers=2)
    waits = []
    it = iter(stream)
    for _ in it:
        before = stream.stats.wait_s
        time.sleep(0.05)  # the model: much slower than reading 4 tiles on 2 threads (~4 ms)
        waits.append(before)
    # after the first batch, the consumer spends (almost) no time waiting
    waited_after_first = stream.stats.wait_s - waits[0]
    assert waited_after_first < 0.05 * stream.stats.total_s


def test_empty_tile_list_yields_nothing(sample_slide: Path) -> None:
    with open_slide(sample_slide) as slide:
        grid = TileGrid.for_slide(slide)
        assert list(PatchStream(slide, grid, [])) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"batch_size": 0}, "batch_size"), ({"prefetch": 0}, "prefetch"), ({"workers": 0}, "workers")],
)
def test_invalid_stream_options(sample_slide: Path, kwargs: dict[str, int], message: str) -> None:
    with open_slide(sample_slide) as slide:
        grid = TileGrid.for_slide(slide)
        with pytest.raises(ConfigError, match=message):
            PatchStream(slide, grid, **kwargs)


def test_select_tiles_thresholds(sample_slide: Path) -> None:
    with open_slide(sample_slide) as slide:
        grid = TileGrid.for_slide(slide, tile_size=224)
        tm = tissue_mask(slide)
        loose, strict = select_tiles(grid, tm, min_tissue=0.01), select_tiles(grid, tm, min_tissue=0.9)
        assert 0 < len(strict) < len(loose) < len(grid)
        assert len(select_tiles(grid, tm, min_tissue=0.0)) == len(grid)
        assert len(select_tiles(grid)) == len(grid)
        rows = select_tiles(grid, tm, order="row")
        assert [t.index for t in rows] == sorted(t.index for t in rows)
        assert sorted(t.index for t in select_tiles(grid, tm)) == [t.index for t in rows]
        with pytest.raises(ConfigError, match="min_tissue"):
            select_tiles(grid, tm, min_tissue=1.5)
        with pytest.raises(ConfigError, match="order"):
            select_tiles(grid, tm, order="zigzag")  # type: ignore[arg-type]


def test_slide_subclass_check() -> None:
    assert issubclass(ImageSlide, Slide)
