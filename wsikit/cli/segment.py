"""``wsikit segment``: whole-slide nuclei segmentation into OME-Zarr."""

from __future__ import annotations

from pathlib import Path

import click

from wsikit.cli._progress import is_quiet, progress_bar, resolve_device

__all__ = ["segment"]


@click.command()
@click.argument("slide", type=click.Path(path_type=Path))
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="OME-Zarr store to write."
)
@click.option(
    "--weights",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="U-Net weights [default: the shipped ones].",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--slide-mpp", type=float, default=None, help="Level-0 um/px for slides that do not state it.")
@click.option("--tta", is_flag=True, help="Average the U-Net over 8 rotations / flips (8x slower).")
@click.option(
    "--max-pending-mb",
    type=click.FloatRange(min=0),
    default=256.0,
    show_default=True,
    help="Memory for label chunks waiting on later tiles; beyond it they are merged into OUT early.",
)
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@click.pass_context
def segment(
    ctx: click.Context,
    slide: Path,
    out: Path,
    weights: Path | None,
    device: str,
    batch_size: int,
    slide_mpp: float | None,
    tta: bool,
    max_pending_mb: float,
    overwrite: bool,
) -> None:
    """Segment the nuclei of SLIDE into OUT (labels/nuclei: uint32 instance ids, unique across the slide)."""
    from wsikit.pipeline.segment import segment_slide

    device = resolve_device(device)
    quiet = is_quiet(ctx)
    with progress_bar("segment", enabled=not quiet) as update:
        result = segment_slide(
            slide,
            out,
            weights=weights,
            device=device,
            batch_size=batch_size,
            slide_mpp=slide_mpp,
            overwrite=overwrite,
            tta=tta,
            max_pending_mb=max_pending_mb,
            progress=update,
        )
    if result["tiles"] == 0:
        click.echo(f"wsikit: warning: {slide}: no tissue detected; the result holds 0 nuclei", err=True)
    if not quiet:
        click.echo(
            f"wrote {result['nuclei']} nuclei ({result['tiles']} tiles at {result['working_mpp']} um/px) to {out}"
        )
