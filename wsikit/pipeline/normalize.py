"""``normalize``: stain-normalize an image (to an image file) or a slide (to an OME-Zarr pyramid)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from wsikit._atomic import staged_directory, staged_file
from wsikit._typing import PathLike
from wsikit.errors import ConfigError, OutputExistsError
from wsikit.io import open_slide
from wsikit.io.omezarr import IMAGE, OmeZarrStore
from wsikit.stain.cnn import CnnNormalizer
from wsikit.stain.factory import METHODS, make_normalizer
from wsikit.tiling import PatchStream, TileGrid

__all__ = ["make_normalizer", "normalize", "normalize_into_store", "METHODS", "IMAGE_OUTPUTS"]

log = logging.getLogger(__name__)

IMAGE_OUTPUTS = {".png", ".tif", ".tiff", ".jpg", ".jpeg"}
_CHUNK = 1024


def normalize(
    src: PathLike,
    out: PathLike,
    *,
    method: Literal["cnn", "macenko", "reinhard"] = "cnn",
    target: PathLike | None = None,
    weights: PathLike | None = None,
    device: str = "cpu",
    batch_size: int = 4,
    overwrite: bool = False,
    lightness: Literal["keep", "match", "bounded"] = "keep",
    min_ssim: float = 0.99,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Normalize ``src`` to a style and write it to ``out`` (``lightness``: the CNN's, see
    :class:`~wsikit.stain.cnn.CnnNormalizer`).

    ``out`` ending in .png/.tif/.jpg writes an image (the whole image is
    normalized at once: for images that fit in memory). Any other ``out`` (e.g.
    ``slide.zarr``) writes an OME-Zarr pyramid: the slide is processed in
    1024 px chunks at level 0 (chunk-aligned writes), with Macenko/Reinhard
    source statistics fitted once on the slide's overview, so all chunks agree.
    Chunks equal to white (fill value) are not stored.
    """
    out_path = Path(out)
    norm = make_normalizer(
        method, target=target, weights=weights, device=device, lightness=lightness, min_ssim=min_ssim
    )
    if out_path.suffix.lower() in IMAGE_OUTPUTS:
        if out_path.exists() and not overwrite:
            raise OutputExistsError(f"{out_path}: already exists (use `overwrite` to replace it)")
        from PIL import Image

        with open_slide(src) as slide:
            w, h = slide.dimensions
            if w * h > 8192 * 8192:
                raise ConfigError(
                    f"{src}: {w}x{h} px is too large for an image output; write a .zarr instead"
                )
            pixels = slide.read_region((0, 0), 0, (w, h))
        result = norm.transform(pixels)
        with staged_file(out_path) as tmp:
            Image.fromarray(result).save(tmp, format=Image.registered_extensions()[out_path.suffix.lower()])
        return out_path
    with open_slide(src) as slide, staged_directory(out_path, overwrite=overwrite) as stage:
        w, h = slide.dimensions
        source_stats = None
        if not isinstance(norm, CnnNormalizer):
            overview, _ = slide.read_overview(2048)
            source_stats = norm.fit_source(overview)
        store = OmeZarrStore.create(
            stage,
            height=h,
            width=w,
            chunk=_CHUNK,
            mpp=slide.mpp,
            overwrite=True,
            name=f"{Path(src).name} normalized ({method})",
        )
        normalize_into_store(
            slide,
            store,
            lambda images: (
                norm.transform(images, source=source_stats)
                if source_stats is not None
                else norm.transform(images)
            ),
            batch_size=batch_size,
            progress=progress,
        )
    return out_path


def normalize_into_store(
    slide: Any,
    store: OmeZarrStore,
    normalize_batch: Callable[[Any], Any],
    *,
    batch_size: int = 4,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Normalize every level-0 chunk of ``slide`` into ``store``'s image (which must exist), then its pyramid.

    ``normalize_batch`` maps a (B, 3, C, C) uint8 batch of chunks to normalized ones. Glass chunks are
    copied through the normalizer too (which leaves glass as it is), so the image is never left blank.
    """
    h, w, c = store.height, store.width, store.chunk
    grid = TileGrid(width=w, height=h, tile_size=c, scale=1.0)
    tiles = list(grid)
    done = 0
    for batch in PatchStream(slide, grid, tiles, batch_size=batch_size):
        images = normalize_batch(batch.images)
        for img, tile in zip(images, batch.tiles, strict=True):
            y, x = tile.y, tile.x
            bh, bw = min(c, h - y), min(c, w - x)
            store.write_region(IMAGE, y, x, np.asarray(img[:, :bh, :bw].cpu().numpy()))
        done += len(batch)
        if progress is not None:
            progress(done, len(tiles))
    store.build_pyramid(IMAGE)
