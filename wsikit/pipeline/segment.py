"""``segment_slide``: whole-slide nuclei segmentation into the labels/nuclei image of an OME-Zarr store."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from wsikit._typing import PathLike
from wsikit.errors import ConfigError
from wsikit.io import open_slide
from wsikit.io.omezarr import OmeZarrStore
from wsikit.pipeline._atomic import staged_directory
from wsikit.segment.infer import Segmenter
from wsikit.segment.stitch import ChunkAssembler, keep_core_instances
from wsikit.segment.targets import instances_from_probabilities
from wsikit.tiling import PatchStream, Tile, TileGrid, tissue_mask

__all__ = ["segment_slide"]

log = logging.getLogger(__name__)


def _to_level0(rows: np.ndarray, cols: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Map working-resolution pixels to level-0 pixels (scale = level-0 px per working px)."""
    if scale <= 1.0:
        r0 = np.floor(rows * scale).astype(np.intp)
        c0 = np.floor(cols * scale).astype(np.intp)
        pairs = np.unique(r0 * (1 << 31) + c0)
        return pairs // (1 << 31), pairs % (1 << 31)
    k = int(np.ceil(scale))
    dy, dx = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    r0 = (np.floor(rows * scale)[:, None] + dy.ravel()[None]).ravel().astype(np.intp)
    c0 = (np.floor(cols * scale)[:, None] + dx.ravel()[None]).ravel().astype(np.intp)
    return r0, c0


def segment_slide(
    slide_path: PathLike,
    out: PathLike,
    *,
    weights: PathLike | None = None,
    device: str = "cpu",
    batch_size: int = 4,
    core: int = 512,
    margin: int = 64,
    chunk: int = 1024,
    slide_mpp: float | None = None,
    min_tissue: float = 0.01,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Segment every nucleus of a slide and write ``labels/nuclei`` (uint32, unique ids) of an OME-Zarr store.

    Tiles of ``core + 2 * margin`` px at the segmenter's resolution (0.25 um/px) overlap by ``2 * margin``;
    each nucleus is kept by the tile whose core holds its centroid (see :mod:`wsikit.segment.stitch`).
    Labels are written at the slide's level-0 size, chunk-aligned, then the pyramid is built. The store
    appears only when complete.

    Raises
    ------
    ConfigError
        The slide does not state its mpp and ``slide_mpp`` is not given, or bad tile sizes.
    """
    if core <= 0 or margin < 0 or (core + 2 * margin) % 16:
        raise ConfigError(f"core + 2 * margin must be a positive multiple of 16, got {core} + 2 * {margin}")
    seg = (
        Segmenter.from_weights(weights, device=device)
        if weights
        else Segmenter.from_pretrained(device=device)
    )
    size = core + 2 * margin
    with open_slide(slide_path) as slide:
        base_mpp = slide_mpp if slide_mpp is not None else slide.mpp_x
        if base_mpp is None:
            raise ConfigError(
                f"{slide_path}: the slide does not state its microns per pixel; give --slide-mpp"
            )
        w0, h0 = slide.dimensions
        scale = seg.mpp / base_mpp  # level-0 px per working px
        grid = TileGrid(width=w0, height=h0, tile_size=size, overlap=2 * margin, scale=scale)
        rows, cols = -(-int(np.ceil(h0 / scale)) // core), -(-int(np.ceil(w0 / scale)) // core)
        tissue = tissue_mask(slide)
        tiles = []
        for r in range(rows):
            for c in range(cols):
                y, x = r * core - margin, c * core - margin
                core_box = (
                    c * core * scale,
                    r * core * scale,
                    (c + 1) * core * scale,
                    (r + 1) * core * scale,
                )
                if tissue.box_fraction(*core_box) >= min_tissue:
                    tiles.append(Tile(r * cols + c, c, r, x, y, x * scale, y * scale, size * scale))
        with staged_directory(Path(out), overwrite=overwrite) as stage:
            store = OmeZarrStore.create(
                stage,
                height=h0,
                width=w0,
                chunk=chunk,
                mpp=slide.mpp or (base_mpp, base_mpp),
                with_image=False,
                overwrite=True,
                name=f"{Path(slide_path).name} nuclei",
            )
            store.create_label("nuclei", dtype=np.uint32)
            store.update_attributes(
                slide=str(Path(slide_path).resolve()),
                slide_id=Path(slide_path).stem,
                bounds_offset=list(slide.bounds_offset),
                slide_mpp=base_mpp,
            )
            assembler = ChunkAssembler(h0, w0, chunk)
            done = 0
            stream = PatchStream(slide, grid, tiles, batch_size=batch_size)
            for batch in stream:
                probs = seg.batch_probabilities(batch.images).numpy()
                for p, tile in zip(probs, batch.tiles, strict=True):
                    labels = instances_from_probabilities(p)
                    for rr, cc in keep_core_instances(labels, (margin, margin, margin + core, margin + core)):
                        assembler.add(*_to_level0(rr + tile.y, cc + tile.x, scale))
                done += len(batch)
                if progress is not None:
                    progress(done, len(tiles))
                # later tiles start at least one tile row below the current one, minus their margin
                next_row = tiles[done].row if done < len(tiles) else rows + 1
                for y, x, block in assembler.flush_above(int(np.floor((next_row * core - margin) * scale))):
                    store.write_region("nuclei", y, x, block)
            for y, x, block in assembler.flush_above(h0):
                store.write_region("nuclei", y, x, block)
            store.build_pyramid("nuclei")
            count = assembler.next_id - 1
            store.set_label_metadata(
                "nuclei", properties={0: {"name": "background"}}, colors={0: (0, 0, 0, 0)}
            )
    return {
        "nuclei": count,
        "tiles": len(tiles),
        "working_mpp": seg.mpp,
        "slide_mpp": base_mpp,
        "out": str(out),
        "tile_megapixels_level0": round(len(tiles) * (core * scale) ** 2 / 1e6, 2),
        "read_wait_share": round(stream.stats.wait_share, 3),
        "stream_seconds": round(stream.stats.total_s, 1),
    }
