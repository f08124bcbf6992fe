"""Build a large pyramidal JPEG TIFF from the real H&E images in ../shared/data.

The slide is a mosaic of 1024 px blocks, each one of the MoNuSeg 40x images
(1000 px, resized to 1024) in one of eight orientations, laid inside an
elliptical tissue region on white glass, so tissue detection has glass to
reject. Levels at downsamples 1, 4, 16 and 64 are written as one
generic-tiled TIFF that OpenSlide opens. Memory stays at a few blocks: tiles are
produced by a generator.

Usage::

    python benchmarks/make_slide.py OUT.tiff --size 40960 [--data ../shared/data] [--quality 80]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np

BLOCK = 1024
TILE = 512
MPP = 0.25
FACTORS = (1, 4, 16, 64)


def _sources(data: Path) -> list[np.ndarray]:
    import tifffile
    from PIL import Image

    paths = sorted((data / "monuseg").glob("*/*.tif"))
    if not paths:
        sys.exit(f"no MoNuSeg images under {data / 'monuseg'}")
    out = []
    for p in paths:
        img = tifffile.imread(p)[..., :3]
        out.append(np.asarray(Image.fromarray(img).resize((BLOCK, BLOCK), Image.Resampling.BICUBIC)))
    return out


class Mosaic:
    """Procedural slide: block (row, col) = source k in orientation o, inside an ellipse of tissue."""

    def __init__(self, data: Path, size: int, seed: int = 0) -> None:
        self.size = size
        self.sources = _sources(data)
        rng = np.random.default_rng(seed)
        n = size // BLOCK
        self.choice = rng.integers(0, len(self.sources), (n, n))
        self.orient = rng.integers(0, 8, (n, n))
        yy, xx = (np.mgrid[0:n, 0:n] + 0.5) / n - 0.5
        self.inside = (xx / 0.48) ** 2 + (yy / 0.42) ** 2 <= 1.0

    @lru_cache(maxsize=256)  # noqa: B019 - one instance per run
    def block(self, row: int, col: int, factor: int) -> np.ndarray:
        from PIL import Image

        side = BLOCK // factor
        n = self.inside.shape[0]
        if row >= n or col >= n or not self.inside[row, col]:
            return np.full((side, side, 3), 243, np.uint8)
        img = self.sources[self.choice[row, col]]
        o = int(self.orient[row, col])
        img = np.rot90(img, o % 4)
        if o >= 4:
            img = img[:, ::-1]
        if factor > 1:
            img = np.asarray(Image.fromarray(np.ascontiguousarray(img)).reduce(factor))
        return np.ascontiguousarray(img)

    def tiles(self, factor: int) -> Iterator[np.ndarray]:
        """Row-major TILE x TILE tiles of the level with this downsample factor."""
        side = self.size // factor
        bs = BLOCK // factor
        for ty in range(0, side, TILE):
            for tx in range(0, side, TILE):
                tile = np.empty((TILE, TILE, 3), np.uint8)
                for y in range(ty, ty + TILE, bs if bs < TILE else TILE):
                    for x in range(tx, tx + TILE, bs if bs < TILE else TILE):
                        blk = self.block(y // bs, x // bs, factor)
                        oy, ox = y % bs, x % bs
                        h, w = min(TILE - (y - ty), bs - oy), min(TILE - (x - tx), bs - ox)
                        tile[y - ty : y - ty + h, x - tx : x - tx + w] = blk[oy : oy + h, ox : ox + w]
                yield tile


def build(out: Path, size: int, data: Path, quality: int = 80) -> Path:
    """Write the pyramidal TIFF and return its path."""
    import tifffile

    if size % BLOCK:
        raise SystemExit(f"--size must be a multiple of {BLOCK}")
    mosaic = Mosaic(data, size)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    t0 = time.perf_counter()
    with tifffile.TiffWriter(tmp, bigtiff=True) as tif:
        for i, factor in enumerate(FACTORS):
            side = size // factor
            if side < TILE:
                break
            mosaic.block.cache_clear()
            tif.write(
                mosaic.tiles(factor),
                shape=(side, side, 3),
                dtype=np.uint8,
                tile=(TILE, TILE),
                photometric="rgb",
                compression="jpeg",
                compressionargs={"level": quality},
                subfiletype=0 if i == 0 else 1,
                resolution=(1e4 / (MPP * factor), 1e4 / (MPP * factor)),
                resolutionunit="CENTIMETER",
                description=f"wsikit benchmark mosaic of MoNuSeg images; level downsample {factor}",
            )
    tmp.rename(out)
    print(
        f"built {out} ({size} x {size} px, {out.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.0f} s"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, default=40960)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--quality", type=int, default=80)
    args = parser.parse_args()
    build(args.out, args.size, args.data, args.quality)


if __name__ == "__main__":
    main()
