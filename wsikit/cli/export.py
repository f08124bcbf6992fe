"""``wsikit export``: nuclei of a result as QuPath GeoJSON and a GeoParquet table."""

from __future__ import annotations

from pathlib import Path

import click

from wsikit.cli._progress import is_quiet, progress_bar

__all__ = ["export"]


@click.command()
@click.argument("result", type=click.Path(path_type=Path))
@click.option(
    "--geojson",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="QuPath GeoJSON to write (.geojson or .geojson.gz).",
)
@click.option(
    "--parquet",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="GeoParquet cell table to write.",
)
@click.option(
    "--cells",
    "cells_um",
    type=float,
    default=None,
    metavar="EXPANSION_UM",
    help="Export cells: nuclei grown by this many microns (objectType cell + nucleusGeometry).",
)
@click.option(
    "--simplify",
    type=float,
    default=0.0,
    show_default=True,
    help="Douglas-Peucker tolerance in pixels (kept only where the area changes by <= 2%).",
)
@click.option(
    "--slide",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Source slide for intensity measurements [default: the one recorded in RESULT].",
)
@click.pass_context
def export(
    ctx: click.Context,
    result: Path,
    geojson: Path | None,
    parquet: Path | None,
    cells_um: float | None,
    simplify: float,
    slide: Path | None,
) -> None:
    """Vectorize the nuclei of RESULT (an OME-Zarr store from `wsikit segment`, or a `wsikit run` folder)."""
    from wsikit.pipeline.export import export_nuclei

    quiet = is_quiet(ctx)
    with progress_bar("vectorize", enabled=not quiet) as update:
        out = export_nuclei(
            result,
            geojson=geojson,
            parquet=parquet,
            slide=slide,
            cells_um=cells_um,
            simplify=simplify,
            progress=update,
        )
    if out["nuclei"] == 0:
        click.echo(f"wsikit: warning: {result}: no nuclei; wrote empty outputs", err=True)
    if not quiet:
        click.echo(f"wrote {out['nuclei']} nuclei to " + ", ".join(str(p) for p in (geojson, parquet) if p))
