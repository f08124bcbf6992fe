"""``wsikit info``: slide geometry, metadata and tissue summary."""

from __future__ import annotations

import json
from pathlib import Path

import click

from wsikit.pipeline import describe_slide

__all__ = ["info"]


@click.command()
@click.argument("slide", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of a table.")
@click.option(
    "--thumbnail",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a PNG overview with the detected tissue outlined in green.",
)
@click.option("--thumbnail-size", type=click.IntRange(min=16), default=1024, show_default=True)
def info(slide: Path, as_json: bool, thumbnail: Path | None, thumbnail_size: int) -> None:
    """Show levels, resolution, vendor and tissue of SLIDE."""
    report = describe_slide(slide, thumbnail=thumbnail, thumbnail_size=thumbnail_size)
    data = report.to_dict()
    if report.tissue_fraction == 0:
        click.echo(f"wsikit: warning: {slide}: no tissue detected", err=True)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    mpp = data["mpp"]
    rows = [
        ("file", data["path"]),
        (
            "backend / vendor",
            f"{data['backend']}"
            + (f" (tiles decoded by {data['tile_decoder']})" if data.get("tile_decoder") else "")
            + f" / {data['vendor'] or '-'}",
        ),
        ("size (level 0)", "{} x {} px".format(*data["level_dimensions"][0])),
        ("mpp (x, y)", "unknown" if mpp is None else f"{mpp[0]:.4g}, {mpp[1]:.4g} um/px"),
        ("objective", "-" if data["objective_power"] is None else f"{data['objective_power']:g}x"),
        ("bounds offset", "{}, {}".format(*data["bounds_offset"])),
        (
            "tissue",
            f"{100 * data['tissue_fraction']:.1f}% of the slide"
            + ("" if data["tissue_area_mm2"] is None else f", {data['tissue_area_mm2']:.2f} mm^2"),
        ),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")
    click.echo(f"{'levels':<{width}}  level  width x height   downsample")
    for i, ((w, h), ds) in enumerate(zip(data["level_dimensions"], data["level_downsamples"], strict=True)):
        click.echo(f"{'':<{width}}  {i:>5}  {w:>6} x {h:<7}  {ds:>9.3f}")
    if report.thumbnail:
        click.echo(f"{'thumbnail':<{width}}  {report.thumbnail}")
