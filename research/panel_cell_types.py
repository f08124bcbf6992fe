"""Figure: nuclei of each cell type on a `wsikit run` output, outlined, for a person to judge.

Rows per class: the 12 most confident nuclei, then 12 drawn at random (seed 0) from all nuclei of that
class, so the panel shows typical calls and not only the easiest ones. Each tile is 24 um of the slide at
full resolution around the nucleus, outlined in the class colour.

With ``--overlay X Y W H OUT``, also a full-resolution region of the slide (shown at 2x) with every nucleus
outlined in its class colour.

Usage::

    python research/panel_cell_types.py RUN_OUTPUT SLIDE --out docs/img/cell_types_cmu1.jpg \
        [--overlay 700 1500 700 500 docs/img/cell_types_cmu1_overlay.jpg]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage as ndi

from wsikit.classify import CELL_TYPE_COLORS, CELL_TYPES
from wsikit.io import open_slide
from wsikit.io.omezarr import OmeZarrStore


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("slide", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--overlay", nargs=5, default=None, metavar=("X", "Y", "W", "H", "OUT"))
    args = ap.parse_args()
    import pyarrow.parquet as pq

    t = pq.read_table(args.run / "cells.parquet").to_pandas()
    store = OmeZarrStore.open(args.run / "result.zarr")
    tile, label_w = 96, 150
    rows = []
    with open_slide(args.slide) as slide:
        mpp = slide.mpp[0] or 0.5
        side = int(round(24 / mpp))
        w0, h0 = slide.dimensions
        rng = np.random.default_rng(0)
        for name in CELL_TYPES:
            sel = t[t["class"] == name]
            best = sel.sort_values("class_probability", ascending=False, kind="stable").head(args.n)
            rand = sel.iloc[rng.choice(len(sel), min(args.n, len(sel)), replace=False)] if len(sel) else sel
            for kind, part in (("most confident", best), ("random", rand)):
                row = Image.new("RGB", (label_w + args.n * tile, tile), "white")
                ImageDraw.Draw(row).text((4, tile // 2 - 12), f"{name}\n{kind} ({len(sel)})", fill=(0, 0, 0))
                for k, (_, r) in enumerate(part.iterrows()):
                    x, y = int(r["centroid_x"]) - side // 2, int(r["centroid_y"]) - side // 2
                    img = slide.read_region((x, y), 0, (side, side)).copy()
                    lab = np.zeros((side, side), np.int64)
                    xa, ya, xb, yb = max(x, 0), max(y, 0), min(x + side, w0), min(y + side, h0)
                    lab[ya - y : yb - y, xa - x : xb - x] = store.read_region(
                        "nuclei", x=xa, y=ya, width=xb - xa, height=yb - ya
                    )
                    m = lab == int(r["nucleus_id"])
                    img[ndi.binary_dilation(m, iterations=2) & ~ndi.binary_dilation(m)] = CELL_TYPE_COLORS[
                        name
                    ]
                    row.paste(
                        Image.fromarray(img).resize((tile, tile), Image.Resampling.LANCZOS),
                        (label_w + k * tile, 0),
                    )
                rows.append(row)
    panel = Image.new("RGB", (rows[0].width, sum(r.height + 4 for r in rows)), "white")
    for i, r in enumerate(rows):
        panel.paste(r, (0, i * (tile + 4)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    panel.save(args.out, quality=88)
    print(f"wrote {args.out} ({panel.width}x{panel.height})")
    if args.overlay:
        x, y, w, h = (int(v) for v in args.overlay[:4])
        with open_slide(args.slide) as slide:
            img = slide.read_region((x, y), 0, (w, h)).copy()
        types = store.read_region("cell_types", x=x, y=y, width=w, height=h)
        nuc = store.read_region("nuclei", x=x, y=y, width=w, height=h)
        edge = (ndi.grey_dilation(nuc, size=3) != nuc) | (ndi.grey_erosion(nuc, size=3) != nuc)
        for i, name in enumerate(CELL_TYPES, start=1):
            img[edge & (ndi.grey_dilation(types, size=3) == i)] = CELL_TYPE_COLORS[name]
        big = Image.fromarray(img).resize((2 * w, 2 * h), Image.Resampling.NEAREST)
        big.save(args.overlay[4], quality=88)
        print(f"wrote {args.overlay[4]} ({big.width}x{big.height})")


if __name__ == "__main__":
    main()
