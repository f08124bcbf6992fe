"""Stitching: ground-truth nuclei cut into overlapping tiles come back whole, once, with unique ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wsikit.io.annotations import rasterize_polygons, read_imagescope_xml
from wsikit.segment.metrics import panoptic_quality
from wsikit.segment.stitch import ChunkAssembler, keep_core_instances


@pytest.mark.parametrize("budget", [None, 0, 3 * 256 * 256 * 4])
def test_tiled_instances_reassemble_exactly(data_dir: Path, budget: int | None) -> None:
    """With a memory budget (0: spill everything after every tile; 3 chunks), the merges give the same."""
    ann = read_imagescope_xml(data_dir / "monuseg" / "test" / "TCGA-2Z-A9J9-01A-01-TS1.xml")
    gt = rasterize_polygons(ann.polygons, (1000, 1000))
    core, margin, chunk = 192, 48, 256
    h, w = gt.shape
    padded = np.pad(gt, margin + core)
    assembler = ChunkAssembler(h, w, chunk)
    written = np.zeros_like(gt)
    rows, cols = -(-h // core), -(-w // core)
    spills = 0

    def write(yb: int, xb: int, block: np.ndarray, merge: bool) -> None:
        view = written[yb : yb + block.shape[0], xb : xb + block.shape[1]]
        view[:] = np.where(block > 0, block, view) if merge else block

    for r in range(rows):
        for c in range(cols):
            y, x = r * core - margin, c * core - margin
            tile = padded[
                y + margin + core : y + margin + core + core + 2 * margin,
                x + margin + core : x + margin + core + core + 2 * margin,
            ]
            # relabel as a segmenter would: ids local to the tile
            _, local = np.unique(tile, return_inverse=True)
            local = local.reshape(tile.shape).astype(np.uint32)
            for rr, cc in keep_core_instances(local, (margin, margin, margin + core, margin + core)):
                assembler.add(rr + y, cc + x)
            if budget is not None:
                for item in assembler.spill(budget):
                    write(*item)
                    spills += 1
                assert assembler.pending_bytes <= budget
        for item in assembler.flush_above((r + 1) * core - margin):
            write(*item)
    for item in assembler.flush_above(h):
        write(*item)
    assert (spills > 0) == (budget is not None)
    pq = panoptic_quality(gt, written)
    assert pq["fn"] == 0 and pq["fp"] == 0 and pq["sq"] == 1.0  # every nucleus once, whole
    assert assembler.next_id - 1 == len(np.unique(gt)) - 1
    ids = np.unique(written[written > 0])
    assert len(ids) == assembler.next_id - 1  # unique ids, each a single nucleus


def test_keep_core_instances_by_centroid() -> None:
    lab = np.zeros((20, 20), np.uint32)
    lab[2:6, 2:6] = 1  # centroid (3.5, 3.5): outside a core starting at 5
    lab[8:12, 8:12] = 2
    kept = keep_core_instances(lab, (5, 5, 15, 15))
    assert len(kept) == 1 and kept[0][0].min() == 8


def test_overlapping_detections_keep_the_first_and_skip_duplicates() -> None:
    """The same nucleus found by two tiles is written once; a partly overlapping neighbour does not cut the
    earlier nucleus down to a sliver; the counts survive a journal round trip."""
    from wsikit.segment.stitch import ChunkAssembler

    def disc(cy: int, cx: int, r: int) -> tuple[np.ndarray, np.ndarray]:
        yy, xx = np.mgrid[cy - r : cy + r + 1, cx - r : cx + r + 1]
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        return yy[inside].astype(np.intp), xx[inside].astype(np.intp)

    asm = ChunkAssembler(64, 64, 32)
    first = disc(30, 30, 6)  # crosses all four chunks
    assert asm.add(*first) == 1
    assert asm.add(*disc(31, 30, 6)) == 0  # shifted by one pixel: the same nucleus again
    assert asm.add(*disc(30, 40, 6)) == 2  # a neighbour overlapping a little
    assert asm.duplicates == 1 and asm.next_id == 3
    restored = ChunkAssembler.from_state(asm.state())
    assert restored.duplicates == 1 and restored.next_id == 3
    out = np.zeros((64, 64), np.uint32)
    for y, x, block, _ in asm.flush_above(64):
        out[y : y + block.shape[0], x : x + block.shape[1]] = block
    assert (out == 1).sum() == len(first[0])  # the first nucleus is whole
    assert 0 < (out == 2).sum() < len(disc(30, 40, 6)[0])  # the neighbour gave up the shared pixels


def test_duplicates_are_found_in_spilled_chunks_too() -> None:
    """After a chunk was spilled to the writer, a duplicate reaching it is still recognized (the assembler
    reads the written pixels back), so the labels do not depend on the memory budget."""
    from wsikit.segment.stitch import ChunkAssembler

    written = np.zeros((64, 64), np.uint32)

    def read(y: int, x: int, h: int, w: int) -> np.ndarray:
        return written[y : y + h, x : x + w]

    yy, xx = np.mgrid[24:37, 24:37]
    rows, cols = yy.ravel().astype(np.intp), xx.ravel().astype(np.intp)
    asm = ChunkAssembler(64, 64, 32, read)
    assert asm.add(rows, cols) == 1
    for y, x, block, merge in asm.spill(0):  # everything goes to the writer
        assert merge
        written[y : y + block.shape[0], x : x + block.shape[1]] = np.where(
            block > 0, block, written[y : y + block.shape[0], x : x + block.shape[1]]
        )
    assert asm.pending_bytes == 0
    assert asm.add(rows + 1, cols) == 0 and asm.duplicates == 1  # seen through read_spilled
    blind = ChunkAssembler.from_state(asm.state())  # no reader: it cannot see the written nucleus
    assert blind.add(rows + 1, cols) == 2
