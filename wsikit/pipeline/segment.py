"""``segment_slide``: whole-slide nuclei segmentation into the labels/nuclei image of an OME-Zarr store.

:func:`segment_into_store` is the shared core (also used by ``wsikit run``): tiles are read ahead by a
:class:`~wsikit.tiling.PatchStream`, optionally stain-normalized, segmented in batches, turned into
instances by a worker pool, stitched (:mod:`wsikit.segment.stitch`) and written chunk-aligned. With a
``journal`` file the pending state is saved whenever chunk rows are written, so a killed run resumes
where it stopped and ends with the same labels.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from wsikit._atomic import staged_directory
from wsikit._typing import PathLike
from wsikit.errors import ConfigError
from wsikit.io import open_slide
from wsikit.io.omezarr import IMAGE, OVERVIEW_DOWNSAMPLE, NucleusSource, OmeZarrStore
from wsikit.io.slide import Slide
from wsikit.segment.artefacts import ColourRule, GlassRule, LengthRule, glass_of, optical_density, pixel_axes
from wsikit.segment.infer import Segmenter
from wsikit.segment.stitch import ChunkAssembler, keep_core_instances
from wsikit.segment.targets import InstanceParams, instances_from_probabilities
from wsikit.tiling import PatchStream, Tile, TileGrid, tissue_mask
from wsikit.tiling.tissue import TissueMask

__all__ = [
    "segment_slide",
    "segment_into_store",
    "SegmentationPlan",
    "plan_segmentation",
    "write_slide_overview",
]

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


@dataclass(frozen=True)
class SegmentationPlan:
    """Tiles to segment (row-major, tissue only) and the geometry tying them to level 0."""

    grid: TileGrid
    tiles: list[Tile]
    rows: int
    core: int
    margin: int
    scale: float  # level-0 px per working px


def plan_segmentation(
    slide: Slide,
    tissue: TissueMask,
    *,
    working_mpp: float,
    slide_mpp: float,
    core: int = 512,
    margin: int = 64,
    min_tissue: float = 0.01,
) -> SegmentationPlan:
    """Tiles of ``core + 2 * margin`` working px whose core holds at least ``min_tissue`` tissue."""
    if core <= 0 or margin < 0 or (core + 2 * margin) % 16:
        raise ConfigError(f"core + 2 * margin must be a positive multiple of 16, got {core} + 2 * {margin}")
    w0, h0 = slide.dimensions
    size = core + 2 * margin
    scale = working_mpp / slide_mpp
    grid = TileGrid(width=w0, height=h0, tile_size=size, overlap=2 * margin, scale=scale)
    rows, cols = -(-int(np.ceil(h0 / scale)) // core), -(-int(np.ceil(w0 / scale)) // core)
    tiles = []
    for r in range(rows):
        for c in range(cols):
            y, x = r * core - margin, c * core - margin
            box = (c * core * scale, r * core * scale, (c + 1) * core * scale, (r + 1) * core * scale)
            if tissue.box_fraction(*box) >= min_tissue:
                tiles.append(Tile(r * cols + c, c, r, x, y, x * scale, y * scale, size * scale))
    return SegmentationPlan(grid, tiles, rows, core, margin, scale)


def _tile_nuclei(
    args: tuple[
        npt.NDArray[np.float32],
        Tile,
        int,
        int,
        float,
        tuple[int, int],
        InstanceParams,
        npt.NDArray[np.uint8] | None,
        ColourRule | None,
        GlassRule | None,
        LengthRule | None,
        float,
    ],
) -> tuple[list[tuple[np.ndarray, np.ndarray]], int, int, int, int]:
    """Kept nuclei of one tile in level-0 pixels, and how many were dropped for their size, their colour,
    for lying on glass and for being longer than any nucleus.

    ``raw`` is the tile's (3, H, W) pixels before stain normalization: ``rule`` judges each object's colour
    on them, ``glass`` the glass around it, on the grid of ``mpp`` um/px; ``length`` each object's major axis
    (:mod:`wsikit.segment.artefacts`).
    """
    probs, tile, margin, core, scale, (min_px, max_px), params, raw, rule, glass, length, mpp = args
    labels = instances_from_probabilities(probs, params)
    kept, dropped, artefacts, on_glass, too_long = [], 0, 0, 0, 0
    objects = []
    for rr, cc in keep_core_instances(labels, (margin, margin, margin + core, margin + core)):
        if not min_px <= len(rr) <= max_px:
            dropped += 1
            labels[rr, cc] = 0
            continue
        objects.append((rr, cc))
    reject = np.zeros(len(objects), bool)
    od = optical_density(raw) if raw is not None and objects and (rule or glass) else None
    if rule is not None and od is not None:
        means = np.array([od[:, rr, cc].mean(axis=1) for rr, cc in objects], np.float64)
        reject = rule.rejects_od(means)
        artefacts = int(reject.sum())
        for (rr, cc), bad in zip(objects, reject, strict=True):
            if bad:
                labels[rr, cc] = 0  # gone: not a neighbour that hides glass around the others
    if glass is not None and od is not None:
        ids = np.array([labels[rr[0], cc[0]] for rr, cc in objects])
        lies_on_glass = glass.rejects_glass(glass_of(od, axis=0), labels, ids, mpp) & ~reject
        on_glass = int(lies_on_glass.sum())
        reject = reject | lies_on_glass
    if length is not None and objects:
        sizes = [len(rr) for rr, _ in objects]
        group = np.repeat(np.arange(len(objects)), sizes)
        major, _ = pixel_axes(group, np.concatenate([o[0] for o in objects]),
                              np.concatenate([o[1] for o in objects]), len(objects))  # fmt: skip
        long = length.rejects_major(major, mpp) & ~reject
        too_long = int(long.sum())
        reject = reject | long
    for (rr, cc), bad in zip(objects, reject, strict=True):
        if not bad:
            kept.append(_to_level0(rr + tile.y, cc + tile.x, scale))
    return kept, dropped, artefacts, on_glass, too_long


def segment_into_store(
    slide: Slide,
    store: OmeZarrStore,
    plan: SegmentationPlan,
    segmenter: Segmenter,
    *,
    normalize: Callable[[Any], Any] | None = None,
    batch_size: int = 4,
    workers: int = 2,
    journal: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    micro_batch: int | None = None,
    area_um2: tuple[float, float] | None = None,
    max_pending_mb: float = 256.0,
    colour_rule: ColourRule | None = None,
    glass_rule: GlassRule | None = None,
    length_rule: LengthRule | None = None,
) -> dict[str, Any]:
    """Segment ``plan``'s tiles into ``store``'s ``labels/nuclei`` (which must exist); returns counts and timing.

    ``normalize`` maps a (B, 3, H, W) uint8 batch to a normalized one before the U-Net. With ``journal``,
    a run resumes from the last saved state (tiles done, pending nuclei, next id). ``area_um2`` = (min, max)
    drops instances outside that nuclear area range (debris, and merged blobs no nucleus is as large as).
    ``colour_rule`` drops instances whose raw colour no nucleus has (pen ink, eosin fragments), ``glass_rule``
    those lying on glass (fibres, fragments), ``length_rule`` those longer than any nucleus (fold edges, fibre
    strands; all :mod:`wsikit.segment.artefacts`).
    Label chunks still waiting for later tiles are held in memory up to ``max_pending_mb``; beyond it the
    oldest are merged into the store early (read, overlay, write), so memory does not grow with the slide.
    """
    h0, w0 = store.height, store.width
    tiles = plan.tiles
    start = 0

    def read_spilled(y: int, x: int, h: int, w: int) -> npt.NDArray[np.uint32]:
        return np.asarray(store.read_region("nuclei", x=x, y=y, width=w, height=h), np.uint32)

    asm = ChunkAssembler(h0, w0, store.chunk, read_spilled)
    # counters saved with the journal, so a resumed run reports what one uninterrupted run reports
    counts = {
        "dropped_by_size": 0,
        "dropped_by_colour": 0,
        "dropped_on_glass": 0,
        "dropped_too_long": 0,
        "chunks_spilled": 0,
        "peak_pending_bytes": 0,
    }
    if journal is not None and journal.exists():
        with np.load(journal) as z:
            state = {k: z[k] for k in z.files}
        start = int(state.pop("done"))
        for k in counts:
            if f"count_{k}" in state:
                counts[k] = int(state.pop(f"count_{k}"))
        asm = ChunkAssembler.from_state(state, read_spilled)
        log.info("resuming segmentation at tile %d of %d", start, len(tiles))

    def save_journal(done: int) -> None:
        if journal is None:
            return
        tmp = journal.with_name(journal.name + ".partial.npz")
        saved = {f"count_{k}": np.array(v, np.int64) for k, v in counts.items()}
        np.savez_compressed(tmp, done=np.array(done), **saved, **asm.state())  # type: ignore[arg-type]
        os.replace(tmp, journal)

    def write(y: int, x: int, block: npt.NDArray[np.uint32], merge: bool) -> None:
        if merge:
            stored = store.read_region("nuclei", x=x, y=y, width=block.shape[1], height=block.shape[0])
            block = np.where(block > 0, block, stored)
        store.write_region("nuclei", y, x, block)

    budget = int(max_pending_mb * 2**20)
    done = start
    px_um2 = segmenter.mpp**2
    limits = (
        (0, 2**62) if area_um2 is None else (int(np.ceil(area_um2[0] / px_um2)), int(area_um2[1] / px_um2))
    )
    stream = PatchStream(slide, plan.grid, tiles[start:], batch_size=batch_size)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for batch in stream:
            images = batch.images if normalize is None else normalize(batch.images)
            probs = segmenter.batch_probabilities(images, micro_batch=micro_batch).numpy()
            raw = (
                (batch.images.cpu().numpy() if hasattr(batch.images, "cpu") else np.asarray(batch.images))
                if colour_rule is not None or glass_rule is not None
                else [None] * len(batch)
            )
            jobs = [
                (
                    p,
                    t,
                    plan.margin,
                    plan.core,
                    plan.scale,
                    limits,
                    segmenter.instance_params,
                    r,
                    colour_rule,
                    glass_rule,
                    length_rule,
                    segmenter.mpp,
                )  # fmt: skip
                for p, t, r in zip(probs, batch.tiles, raw, strict=True)
            ]
            for nuclei, n_dropped, n_colour, n_glass, n_long in pool.map(_tile_nuclei, jobs):
                counts["dropped_by_size"] += n_dropped
                counts["dropped_by_colour"] += n_colour
                counts["dropped_on_glass"] += n_glass
                counts["dropped_too_long"] += n_long
                for rr, cc in nuclei:
                    asm.add(rr, cc)
            done += len(batch)
            counts["peak_pending_bytes"] = max(counts["peak_pending_bytes"], asm.pending_bytes)
            for y, x, block, merge in asm.spill(budget):
                write(y, x, block, merge)
                counts["chunks_spilled"] += 1
            # later tiles start at least one tile row below the current one, minus their margin
            next_row = tiles[done].row if done < len(tiles) else plan.rows + 1
            before = asm.flushed_until
            for y, x, block, merge in asm.flush_above(
                int(np.floor((next_row * plan.core - plan.margin) * plan.scale))
            ):
                write(y, x, block, merge)
            if asm.flushed_until > before:  # chunk rows are final: record the state that follows them
                save_journal(done)
            if progress is not None:
                progress(done, len(tiles))
    for y, x, block, merge in asm.flush_above(h0):
        write(y, x, block, merge)
    save_journal(done)
    return {
        "nuclei": asm.next_id - 1,
        "tiles": len(tiles),
        "dropped_by_size": counts["dropped_by_size"],
        "dropped_by_colour": counts["dropped_by_colour"],
        "dropped_on_glass": counts["dropped_on_glass"],
        "dropped_too_long": counts["dropped_too_long"],
        "duplicates_skipped": asm.duplicates,
        "performance": {  # the stream's timings are of this process (a resumed run streams the tiles left)
            "read_wait_share": round(stream.stats.wait_share, 3),
            "stream_seconds": round(stream.stats.total_s, 1),
            "peak_pending_mb": round(counts["peak_pending_bytes"] / 2**20, 1),
            "chunks_spilled": counts["chunks_spilled"],
        },
    }


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
    workers: int = 2,
    overwrite: bool = False,
    tta: bool = False,
    max_pending_mb: float = 256.0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Segment every nucleus of a slide and write ``labels/nuclei`` (uint32, unique ids) of an OME-Zarr store.

    ``tta`` averages the U-Net over the 8 rotations / flips of every tile (8x the compute).
    ``max_pending_mb`` bounds the label chunks held while they wait for later tiles (see
    :func:`segment_into_store`).

    Tiles of ``core + 2 * margin`` px at the segmenter's resolution (0.25 um/px) overlap by ``2 * margin``;
    each nucleus is kept by the tile whose core holds its centroid (see :mod:`wsikit.segment.stitch`).
    Labels are written at the slide's level-0 size, chunk-aligned, then the pyramid is built. The store
    appears only when complete.

    Raises
    ------
    ConfigError
        The slide does not state its mpp and ``slide_mpp`` is not given, or bad tile sizes.
    """
    seg = Segmenter.load(weights, device=device, tta=tta)
    with open_slide(slide_path) as slide:
        base_mpp = slide_mpp if slide_mpp is not None else slide.mpp_x
        if base_mpp is None:
            raise ConfigError(
                f"{slide_path}: the slide does not state its microns per pixel; give `slide_mpp`"
            )
        w0, h0 = slide.dimensions
        plan = plan_segmentation(
            slide,
            tissue_mask(slide),
            working_mpp=seg.mpp,
            slide_mpp=base_mpp,
            core=core,
            margin=margin,
            min_tissue=min_tissue,
        )
        with staged_directory(Path(out), overwrite=overwrite) as stage:
            store = OmeZarrStore.create(
                stage,
                height=h0,
                width=w0,
                chunk=chunk,
                mpp=slide.mpp or (base_mpp, base_mpp),
                image_downsample=OVERVIEW_DOWNSAMPLE,
                overwrite=True,
                name=f"{Path(slide_path).name} nuclei",
            )
            store.create_label("nuclei", dtype=np.uint32)
            store.set_source(
                NucleusSource(
                    slide=Path(slide_path).resolve(),
                    slide_id=Path(slide_path).stem,
                    bounds_offset=(float(slide.bounds_offset[0]), float(slide.bounds_offset[1])),
                    slide_mpp=base_mpp,
                )
            )
            stats = segment_into_store(
                slide,
                store,
                plan,
                seg,
                batch_size=batch_size,
                workers=workers,
                progress=progress,
                max_pending_mb=max_pending_mb,
            )
            store.build_pyramid("nuclei")
            store.set_label_metadata(
                "nuclei", properties={0: {"name": "background"}}, colors={0: (0, 0, 0, 0)}
            )
            write_slide_overview(slide, store, workers=workers)
    return {
        **stats,
        "working_mpp": seg.mpp,
        "slide_mpp": base_mpp,
        "out": str(out),
        "tile_megapixels_level0": round(len(plan.tiles) * (core * plan.scale) ** 2 / 1e6, 2),
    }


_OVERVIEW_BLOCK = 256


def write_slide_overview(slide: Slide, store: OmeZarrStore, *, workers: int = 2) -> None:
    """Write ``slide``'s RGB into ``store``'s image at its :attr:`~OmeZarrStore.image_downsample`, then its pyramid.

    The slide is read from the most detailed level that does not need up-sampling, in blocks of
    256 image pixels (at most 2,048^2 level pixels each, whatever the slide size), area-averaged to the
    image's grid. Glass chunks stay unwritten (the image's fill value is white).
    """
    from PIL import Image

    d = store.image_downsample
    ih, iw = store.image_shape(0)
    c = store.chunk
    level = slide.best_level_for_downsample(d)
    f = d / slide.level_downsamples[level]  # level pixels per image pixel (>= 1)
    b = _OVERVIEW_BLOCK

    def one(origin: tuple[int, int]) -> None:
        y, x = origin
        bh, bw = min(c, ih - y), min(c, iw - x)
        out = np.empty((bh, bw, 3), np.uint8)
        for sy in range(0, bh, b):
            for sx in range(0, bw, b):
                sh, sw = min(b, bh - sy), min(b, bw - sx)
                size = (max(1, round(sw * f)), max(1, round(sh * f)))
                region = slide.read_region(((x + sx) * d, (y + sy) * d), level, size)
                if size != (sw, sh):
                    region = np.asarray(Image.fromarray(region).resize((sw, sh), Image.Resampling.BOX))
                out[sy : sy + sh, sx : sx + sw] = region
        if (out != 255).any():
            store.write_region(IMAGE, y, x, out)

    origins = [(y, x) for y in range(0, ih, c) for x in range(0, iw, c)]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(one, origins))
    store.build_pyramid(IMAGE, workers=workers)
