"""Write a slide's tissue mask as an OME-Zarr label image with a pyramid, chunk by chunk.

Shows the store API later stages use for nucleus and cell-type labels.
Run: python examples/tissue_to_omezarr.py OUT.zarr [SLIDE]
"""

from __future__ import annotations

import sys

import numpy as np
from PIL import Image

from wsikit.io import open_slide
from wsikit.io.omezarr import OmeZarrStore
from wsikit.sample import sample_slide_path
from wsikit.tiling import tissue_mask


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else "tissue.zarr"
    path = sys.argv[2] if len(sys.argv) > 2 else sample_slide_path()
    with open_slide(path) as slide:
        w, h = slide.dimensions
        tm = tissue_mask(slide)
        store = OmeZarrStore.create(
            out, height=h, width=w, chunk=512, mpp=slide.mpp, with_image=False, overwrite=True
        )
        store.create_label(
            "tissue", dtype=np.uint8, colors={1: (0, 160, 0, 128)}, properties={1: {"name": "tissue"}}
        )
        for y, x, bh, bw in store.chunk_grid():  # each chunk is written by exactly one writer
            # nearest-neighbour lookup of the low-resolution mask at level-0 pixel centres
            ys = ((np.arange(y, y + bh) + 0.5) / tm.downsample).astype(int).clip(0, tm.mask.shape[0] - 1)
            xs = ((np.arange(x, x + bw) + 0.5) / tm.downsample).astype(int).clip(0, tm.mask.shape[1] - 1)
            store.write_region("tissue", y, x, tm.mask[np.ix_(ys, xs)].astype(np.uint8))
        store.build_pyramid("tissue")
    low = store.read_region("tissue", 0, 0, h, w, level=store.levels - 1)
    Image.fromarray(low * 255).save(f"{out}.preview.png")
    print(
        f"wrote {out} ({store.levels} levels, {len(store.written_chunks('tissue'))} non-empty chunks at level 0)"
    )


if __name__ == "__main__":
    main()
