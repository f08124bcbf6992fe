"""Prepare the folders of the stain-normalization training and evaluation (deterministic).

- style pool  (`pool/`):   TIAToolbox's stain-normalization target image (1000 x 1000 px, 40x, BSD-3-Clause)
                           cut into 16 blocks of 250 px; the 8 blocks of a checkerboard's white squares.
- target      (`target/`): the 8 other blocks: the same style, pixels never seen in training.
- source      (`source/`): the 8 MoNuSeg 40x images (1000 x 1000 px) from 8 TCGA tissue-source sites.

Usage::

    python benchmarks/prepare_stain_data.py OUTDIR [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

BLOCK = 250


def prepare(out: Path, data: Path) -> None:
    target_image = np.asarray(Image.open(data / "stain" / "tiatoolbox" / "target_image.png").convert("RGB"))
    for sub in ("pool", "target", "source"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
        (out / sub).mkdir(parents=True)
    for r in range(4):
        for c in range(4):
            block = target_image[r * BLOCK : (r + 1) * BLOCK, c * BLOCK : (c + 1) * BLOCK]
            sub = "pool" if (r + c) % 2 == 0 else "target"
            Image.fromarray(block).save(out / sub / f"tia_r{r}c{c}.png")
    import tifffile

    for path in sorted((data / "monuseg").glob("*/*.tif")):
        Image.fromarray(tifffile.imread(path)[..., :3]).save(out / "source" / f"{path.stem}.png")
    print(f"wrote {out}/pool (8), {out}/target (8), {out}/source ({len(list((out / 'source').iterdir()))})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()
    prepare(args.out, args.data)


if __name__ == "__main__":
    main()
