"""``train_normalizer``: load a style pool from folders or slides and train the colorization CNN."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from wsikit._atomic import check_output_parent
from wsikit._typing import PathLike
from wsikit.errors import ConfigError, SlideOpenError
from wsikit.io import open_slide
from wsikit.models.registry import save_checkpoint
from wsikit.models.training_state import training_provenance
from wsikit.stain.cnn import style_statistics
from wsikit.stain.train import ARCH, ColorizerTrainConfig, TrainState, train_colorizer, training_summary
from wsikit.tiling import TileGrid, select_tiles, tissue_mask

__all__ = ["load_style_pool", "train_normalizer", "IMAGE_SUFFIXES"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".svs", ".ndpi", ".mrxs", ".scn", ".dcm"}
_MAX_SLIDE_REGIONS = 64


def _slide_regions(path: Path, size: int = 1024) -> list[np.ndarray]:
    """Tissue regions of a slide at level 0 (up to 64, evenly spread), or the whole image if small."""
    with open_slide(path) as slide:
        w, h = slide.dimensions
        if w * h <= 4096 * 4096:
            return [slide.read_region((0, 0), 0, (w, h))]
        grid = TileGrid.for_slide(slide, tile_size=size)
        tiles = select_tiles(grid, tissue_mask(slide), min_tissue=0.5, order="row")
        step = max(1, len(tiles) // _MAX_SLIDE_REGIONS)
        return [
            slide.read_region((int(t.x0), int(t.y0)), 0, (size, size))
            for t in tiles[::step][:_MAX_SLIDE_REGIONS]
        ]


def load_style_pool(
    sources: Sequence[PathLike], *, class_by: Literal["image", "folder", "none"] = "image"
) -> tuple[list[np.ndarray], list[int] | None, list[str]]:
    """Images of one stain style from folders (recursively) and/or slide files.

    Returns
    -------
    images : list of (H, W, 3) uint8
    labels : list of int or None
        Class of each image: its file (``image``), its parent folder (``folder``), or None.
    names : list of str
        Source of each image.
    """
    files: list[Path] = []
    for src in sources:
        p = Path(src)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ConfigError(f"{p}: no images in this folder")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise SlideOpenError(f"{p}: no such file or folder")
    images: list[np.ndarray] = []
    keys: list[str] = []
    names: list[str] = []
    for f in files:
        for i, region in enumerate(_slide_regions(f)):
            images.append(region)
            keys.append(str(f) if class_by == "image" else str(f.parent))
            names.append(f"{f}#{i}")
    if class_by == "none":
        return images, None, names
    index = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    labels = [index[k] for k in keys]
    return images, (labels if len(index) >= 2 else None), names


def train_normalizer(
    style: Sequence[PathLike],
    out: PathLike,
    *,
    config: ColorizerTrainConfig | None = None,
    class_by: Literal["image", "folder", "none"] = "image",
    resume: bool = False,
    style_name: str | None = None,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
    command: str | None = None,
) -> tuple[Path, dict[str, object]]:
    """Train the colorization normalizer on a style pool and write the weights to ``out``.

    A checkpoint ``OUT.ckpt`` is written during training; with ``resume`` a
    stopped run continues from it. The weights file is written only at the end.

    Returns
    -------
    (path, summary)
    """
    cfg = config or ColorizerTrainConfig()
    out_path = Path(out)
    check_output_parent(out_path)
    images, labels, names = load_style_pool(style, class_by=class_by)
    if class_by != "none" and labels is None:
        log.warning("the style pool has a single group: training without the classification head")
    log.info(
        "style pool: %d images, %.1f megapixels",
        len(images),
        sum(i.shape[0] * i.shape[1] for i in images) / 1e6,
    )
    ckpt = out_path.with_name(out_path.name + ".ckpt")
    state: TrainState = train_colorizer(
        images, labels, cfg, checkpoint=ckpt, resume=resume, progress=progress
    )
    summary = training_summary(state)
    meta = {
        "style": style_name or Path(str(style[0])).name,
        "style_stats": style_statistics(images),
        "pool": [str(s) for s in style],
        "pool_images": len(images),
        "classes": 0 if labels is None else max(labels) + 1,
        "class_by": class_by,
        **training_provenance(cfg, summary, command),
    }
    save_checkpoint(
        out_path, arch=ARCH, config=state.model.config.to_dict(), state=state.model.state_dict(), meta=meta
    )
    ckpt.unlink(missing_ok=True)
    return out_path, summary
