"""Measurement (issue 14, item 4; chooses nothing): how many of a run's nuclei lie beside pen ink?

For every nucleus of a ``wsikit run`` result, the share of ink-coloured raw pixels among the background pixels
within 4 um of it that are nearer to it than to any other nucleus (the glass rule's ring,
:func:`wsikit.segment.artefacts.glass_ring_share`, with an ink mask instead of the glass one). A pixel is ink
when its mean optical density is above 0.3 and it absorbs red more than 1.2x green or blue at least as much as
green (teal, blue, black ink; hematoxylin absorbs green at least as much as red). Counts per cell type at
ring shares 0.1 / 0.3 / 0.5; ``--panel`` writes the 24 nuclei with the most ink around them (48 px, outlined).

Usage::

    python research/measure_ink_ring.py out/demo/cmu-1-small-region.wsikit examples/data/cmu-1-small-region.svs \
        [--panel /tmp/ink_panel.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> None:
    import geopandas as gpd
    import zarr
    from PIL import Image

    from wsikit.io import open_slide
    from wsikit.segment.artefacts import glass_ring_share, optical_density

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("slide", type=Path)
    ap.add_argument("--panel", type=Path)
    args = ap.parse_args(argv)
    lab = np.asarray(zarr.open(str(args.run / "result.zarr"), mode="r")["labels/nuclei/0"])
    with open_slide(args.slide) as s:
        rgb = np.asarray(s.read_region((0, 0), 0, (lab.shape[1], lab.shape[0])))[..., :3]
        mpp = float(s.mpp_x or 0.5)
    od = optical_density(rgb)
    green = np.maximum(od[..., 1], 1e-3)
    ink = (od.mean(-1) > 0.3) & ((od[..., 0] / green > 1.2) | (od[..., 2] / green > 1.0))
    cells = gpd.read_parquet(args.run / "cells.parquet")
    cells["ink"] = glass_ring_share(None, lab, cells["nucleus_id"].to_numpy(), 4.0 / mpp, glass=ink)
    print(f"ink pixels: {ink.mean():.4f} of the image")
    for name, group in cells.groupby("class"):
        share = group["ink"]
        print(f"{name:<11} {len(share):>5} nuclei; ink ring share >= 0.1 / 0.3 / 0.5: "
              f"{(share >= 0.1).sum()} / {(share >= 0.3).sum()} / {(share >= 0.5).sum()}")  # fmt: skip
    if args.panel:
        tiles = []
        for _, r in cells.sort_values("ink", ascending=False).head(24).iterrows():
            cx, cy = int(r["centroid_x"]), int(r["centroid_y"])
            y0, x0 = max(cy - 24, 0), max(cx - 24, 0)
            t = rgb[y0 : y0 + 48, x0 : x0 + 48].copy()
            m = lab[y0 : y0 + 48, x0 : x0 + 48] == r["nucleus_id"]
            inner = np.pad(m, 1)
            edge = m & ~(inner[2:, 1:-1] & inner[:-2, 1:-1] & inner[1:-1, 2:] & inner[1:-1, :-2])
            t[edge] = (255, 255, 0)
            t = np.pad(t, ((0, 48 - t.shape[0]), (0, 48 - t.shape[1]), (0, 0)), constant_values=255)
            tiles.append(t)
        rows = [np.concatenate(tiles[i : i + 12], 1) for i in range(0, len(tiles) - len(tiles) % 12, 12)]
        Image.fromarray(np.concatenate(rows, 0)).resize(
            (1152, 96 * len(rows)), Image.Resampling.NEAREST
        ).save(args.panel)
        print("wrote", args.panel)


if __name__ == "__main__":
    main()
