"""Tiled whole-slide inference against whole-image inference on a real region that fits in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from wsikit.io.omezarr import OmeZarrStore
from wsikit.pipeline.segment import segment_slide
from wsikit.segment.infer import Segmenter
from wsikit.segment.metrics import overlaps, panoptic_quality


def test_tiled_equals_whole_image(data_dir: Path, tmp_path: Path) -> None:
    # A MoNuSeg test field (40x, 0.25 um/px) as a plain image: 1000 x 1000 px -> 2 x 2 tile cores of 512 px.
    image = np.asarray(
        Image.open(data_dir / "monuseg" / "test" / "TCGA-HC-7209-01A-01-TS1.tif").convert("RGB")
    )
    path = tmp_path / "field.png"
    Image.fromarray(image).save(path)
    out = tmp_path / "nuclei.zarr"
    result = segment_slide(path, out, slide_mpp=0.25, min_tissue=0.0)
    from tests.conftest import assert_opens_in_ome_zarr_readers

    assert_opens_in_ome_zarr_readers(out)  # what napari-ome-zarr and the validator do with `wsikit segment`
    tiled = OmeZarrStore.open(out).read_region("nuclei", x=0, y=0, width=1000, height=1000)
    whole = Segmenter.from_pretrained(window=1024).instances(image)  # one pass over the whole field
    assert result["nuclei"] == len(np.unique(tiled)) - 1 > 100
    # Outside the image the tiles see glass (white) and the whole-image pass replicates the edge, so compare the
    # nuclei away from the image's edge; the tile cores meet at x = 512 and y = 512, in the middle of that area.
    inner = np.zeros(image.shape[:2], bool)
    inner[96:-96, 96:-96] = True
    whole_in = np.where(np.isin(whole, np.unique(whole[inner & (whole > 0)])), whole, 0)
    keep = [i for i in np.unique(tiled[inner & (tiled > 0)])]
    tiled_in = np.where(np.isin(tiled, keep), tiled, 0)
    pq = panoptic_quality(whole_in, tiled_in)
    assert pq["dq"] > 0.97, pq  # the same nuclei, matched at IoU > 0.5
    # none duplicated at tile borders: no whole-image nucleus overlaps two tiled nuclei by more than half
    # (away from the image edge too, where the tiles' glass padding and the replicated edge legitimately split
    # a few nuclei differently)
    _, _, whole_area, _, inter = overlaps(whole_in, tiled_in)
    assert ((inter > 0.5 * whole_area[:, None]).sum(axis=1) <= 1).all()
    dup = (inter > 0).sum(axis=1) > 1
    assert dup.mean() < 0.05


def test_memory_budget_spills_give_the_same_labels(data_dir: Path, tmp_path: Path) -> None:
    # 1000 x 1000 px field, 256 px chunks: a zero budget merges every chunk into the store after each batch
    image = np.asarray(
        Image.open(data_dir / "monuseg" / "test" / "TCGA-2Z-A9J9-01A-01-TS1.tif").convert("RGB")
    )[:700, :900]
    path = tmp_path / "field.png"
    Image.fromarray(image).save(path)
    kwargs = {"slide_mpp": 0.25, "min_tissue": 0.0, "core": 256, "margin": 64, "chunk": 256, "batch_size": 2}
    free = segment_slide(path, tmp_path / "free.zarr", **kwargs)  # type: ignore[arg-type]
    tight = segment_slide(path, tmp_path / "tight.zarr", max_pending_mb=0.0, **kwargs)  # type: ignore[arg-type]
    assert free["performance"]["chunks_spilled"] == 0
    assert tight["performance"]["chunks_spilled"] > 10 and tight["performance"]["peak_pending_mb"] > 0
    a = OmeZarrStore.open(tmp_path / "free.zarr").read_region("nuclei", x=0, y=0, width=900, height=700)
    b = OmeZarrStore.open(tmp_path / "tight.zarr").read_region("nuclei", x=0, y=0, width=900, height=700)
    assert free["nuclei"] == tight["nuclei"] > 100
    np.testing.assert_array_equal(a, b)
