"""``wsikit tiles``: export tissue patches as image files with a CSV index."""

from __future__ import annotations

from pathlib import Path

import click

from wsikit.cli._progress import is_quiet, progress_bar
from wsikit.pipeline import export_tiles

__all__ = ["tiles"]


@click.command()
@click.argument("slide", type=click.Path(path_type=Path))
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--size", type=int, default=224, show_default=True, help="Tile side in pixels at the working resolution."
)
@click.option("--mpp", type=float, default=None, help="Working resolution in um/px [default: native].")
@click.option("--level", type=int, default=None, help="Work at this pyramid level's native resolution.")
@click.option(
    "--overlap", type=int, default=0, show_default=True, help="Pixels shared by neighbouring tiles."
)
@click.option(
    "--min-tissue", type=float, default=0.5, show_default=True, help="Minimum tissue fraction per tile."
)
@click.option("--slide-mpp", type=float, default=None, help="Level-0 um/px for slides that do not state it.")
@click.option("--format", "image_format", type=click.Choice(["png", "jpg"]), default="png", show_default=True)
@click.option("--max-tiles", type=int, default=None, help="Stop after this many tiles.")
@click.option("--workers", type=int, default=None, help="Reader/writer threads [default: CPU cores].")
@click.option("--overwrite", is_flag=True, help="Replace OUTDIR if it exists and is not empty.")
@click.pass_context
def tiles(
    ctx: click.Context,
    slide: Path,
    outdir: Path,
    size: int,
    mpp: float | None,
    level: int | None,
    overlap: int,
    min_tissue: float,
    slide_mpp: float | None,
    image_format: str,
    max_tiles: int | None,
    workers: int | None,
    overwrite: bool,
) -> None:
    """Write the tissue tiles of SLIDE to OUTDIR as images plus tiles.csv."""
    quiet = is_quiet(ctx)
    with progress_bar("tiles", enabled=not quiet) as update:
        result = export_tiles(
            slide,
            outdir,
            size=size,
            mpp=mpp,
            level=level,
            overlap=overlap,
            min_tissue=min_tissue,
            slide_mpp=slide_mpp,
            image_format=image_format,
            max_tiles=max_tiles,
            workers=workers,
            overwrite=overwrite,
            progress=update,
        )
    if not quiet:
        mpp_text = "native" if result.mpp is None else f"{result.mpp:.4g} um/px"
        click.echo(
            f"wrote {result.n_tiles} of {result.n_grid_tiles} tiles ({result.tile_size} px, {mpp_text}) "
            f"to {result.outdir}"
        )
