"""``export_tiles``: tissue patches of a slide as image files plus a CSV index (``wsikit tiles``)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsikit import __version__
from wsikit._atomic import staged_directory
from wsikit._typing import PathLike
from wsikit.errors import ConfigError, NoTissueError
from wsikit.io import open_slide
from wsikit.tiling import NORMALIZER_TILE_SIZE, PatchStream, TileGrid, select_tiles, tissue_mask

__all__ = ["TileExport", "export_tiles", "INDEX_NAME"]

INDEX_NAME = "tiles.csv"
INDEX_COLUMNS = ("file", "index", "col", "row", "x0", "y0", "size0", "tissue_fraction")


@dataclass(frozen=True, kw_only=True)
class TileExport:
    """Summary of a finished tile export."""

    outdir: Path
    n_tiles: int
    n_grid_tiles: int
    tile_size: int
    scale: float
    mpp: float | None


def export_tiles(
    slide_path: PathLike,
    outdir: PathLike,
    *,
    size: int = NORMALIZER_TILE_SIZE,
    mpp: float | None = None,
    level: int | None = None,
    overlap: int = 0,
    min_tissue: float = 0.5,
    slide_mpp: float | None = None,
    image_format: str = "png",
    max_tiles: int | None = None,
    batch_size: int = 32,
    workers: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> TileExport:
    """Write the tissue tiles of a slide as image files plus ``tiles.csv`` and ``manifest.json``.

    The directory appears only when the export is complete: tiles are written
    to a hidden sibling that is renamed at the end, and removed on failure.

    Parameters
    ----------
    slide_path : str or os.PathLike
        The slide.
    outdir : str or os.PathLike
        Output directory (must not exist or be empty, unless ``overwrite``).
    size, overlap : int
        Tile side and overlap in working pixels.
    mpp : float, optional
        Working resolution; default the native resolution (or ``level``'s).
    level : int, optional
        Work at this pyramid level's native resolution.
    min_tissue : float
        Minimum tissue fraction of a tile (0 exports every tile of the grid).
    slide_mpp : float, optional
        Level-0 mpp for slides that do not state it.
    image_format : {"png", "jpg"}
        File format of the tiles.
    max_tiles : int, optional
        Stop after this many tiles (previews).
    batch_size, workers : int
        Patch stream settings.
    overwrite : bool
        Replace an existing non-empty ``outdir``.
    progress : callable(done, total), optional
        Called after each batch.

    Returns
    -------
    TileExport

    Raises
    ------
    NoTissueError
        No tile reaches ``min_tissue`` (nothing is written).
    OutputExistsError
        ``outdir`` exists, is not empty, and ``overwrite`` is False.

    Examples
    --------
    >>> import tempfile, os
    >>> from wsikit.sample import sample_slide_path
    >>> out = os.path.join(tempfile.mkdtemp(), "tiles")
    >>> result = export_tiles(sample_slide_path(), out, size=256, mpp=2.0, min_tissue=0.5)
    >>> result.n_tiles > 0 and os.path.exists(os.path.join(out, "tiles.csv"))
    True
    """
    from PIL import Image

    fmt = image_format.lower()
    if fmt not in ("png", "jpg", "jpeg"):
        raise ConfigError(f"image_format must be png or jpg, got {image_format!r}")
    ext = "jpg" if fmt in ("jpg", "jpeg") else "png"
    if max_tiles is not None and max_tiles <= 0:
        raise ConfigError(f"max_tiles must be positive, got {max_tiles}")
    out = Path(outdir)
    with open_slide(slide_path) as slide:
        grid = TileGrid.for_slide(
            slide, tile_size=size, overlap=overlap, mpp=mpp, level=level, slide_mpp=slide_mpp
        )
        tissue = tissue_mask(slide)
        tiles = select_tiles(grid, tissue, min_tissue=min_tissue, order="row")
        if not tiles:
            found = (
                "no tissue was detected"
                if tissue.fraction == 0
                else (
                    f"no tile reaches {min_tissue:g} tissue (tissue covers {100 * tissue.fraction:.1f}% of the slide)"
                )
            )
            raise NoTissueError(
                f"{slide_path}: {found}; nothing to export (lower `min_tissue` to export anyway)"
            )
        if max_tiles is not None:
            tiles = tiles[:max_tiles]
        base_mpp = slide_mpp if slide_mpp is not None else slide.mpp_x
        stem = Path(slide_path).stem
        with staged_directory(out, overwrite=overwrite) as stage:
            rows: list[list[object]] = []
            stream = PatchStream(slide, grid, tiles, batch_size=batch_size, workers=workers, as_tensor=False)
            done = 0
            with ThreadPoolExecutor(workers) as writers:
                for batch in stream:
                    names = [f"{stem}_x{int(round(t.x0))}_y{int(round(t.y0))}.{ext}" for t in batch.tiles]
                    images = np.ascontiguousarray(batch.images.transpose(0, 2, 3, 1))
                    list(
                        writers.map(
                            lambda item: (
                                Image.fromarray(item[1]).save(stage / item[0], quality=95)
                                if ext == "jpg"
                                else Image.fromarray(item[1]).save(stage / item[0], compress_level=1)
                            ),
                            zip(names, images, strict=True),
                        )
                    )
                    for name, t in zip(names, batch.tiles, strict=True):
                        rows.append(
                            [
                                name,
                                t.index,
                                t.col,
                                t.row,
                                round(t.x0, 3),
                                round(t.y0, 3),
                                round(t.size0, 3),
                                round(tissue.box_fraction(*t.bounds0), 4),
                            ]
                        )
                    done += len(batch)
                    if progress is not None:
                        progress(done, len(tiles))
            with open(stage / INDEX_NAME, "w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(INDEX_COLUMNS)
                writer.writerows(rows)
            manifest = {
                "wsikit_version": __version__,
                "slide": str(Path(slide_path).resolve()),
                "tile_size": size,
                "overlap": overlap,
                "scale_level0_per_px": grid.scale,
                "mpp": None if base_mpp is None else base_mpp * grid.scale,
                "min_tissue": min_tissue,
                "n_tiles": len(rows),
                "n_grid_tiles": len(grid),
                "format": ext,
            }
            (stage / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        return TileExport(
            outdir=out,
            n_tiles=len(rows),
            n_grid_tiles=len(grid),
            tile_size=size,
            scale=grid.scale,
            mpp=manifest["mpp"],  # type: ignore[arg-type]
        )
