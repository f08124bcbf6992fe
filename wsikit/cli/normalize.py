"""``wsikit normalize``: stain-normalize an image or a slide."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, cast

import click

from wsikit.cli._options import min_ssim_option, reject_unused
from wsikit.cli._progress import is_quiet, progress_bar, resolve_device

__all__ = ["normalize"]


@click.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Output: an image (.png/.tif/.jpg) or an OME-Zarr pyramid (e.g. out.zarr).",
)
@click.option("--method", type=click.Choice(["cnn", "macenko", "reinhard"]), default="cnn", show_default=True)
@click.option(
    "--target", type=click.Path(path_type=Path), default=None, help="Target-style image (macenko, reinhard)."
)
@click.option(
    "--weights",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="CNN weights from `wsikit train normalizer` [default: the shipped style].",
)
@click.option(
    "--lightness",
    type=click.Choice(["keep", "match", "bounded"]),
    default="keep",
    show_default=True,
    help="CNN only: keep the source's lightness (the paper), match the style's, or move toward it while "
    "luminance SSIM stays >= --min-ssim.",
)
@min_ssim_option
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or auto.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@click.pass_context
def normalize(
    ctx: click.Context,
    source: Path,
    out: Path,
    method: str,
    target: Path | None,
    weights: Path | None,
    lightness: str,
    min_ssim: float,
    device: str,
    overwrite: bool,
) -> None:
    """Stain-normalize SOURCE (image or slide) to a target style."""
    from wsikit.pipeline.normalize import normalize as run_normalize

    reject_unused(ctx, method == "cnn", "lightness", "weights", why=f"--method {method} is not the CNN")
    reject_unused(ctx, lightness == "bounded", "min_ssim", why="it bounds --lightness bounded only")
    device = resolve_device(device)
    quiet = is_quiet(ctx)
    with progress_bar("normalize", enabled=not quiet) as update:
        path = run_normalize(
            source,
            out,
            method=cast(Literal["cnn", "macenko", "reinhard"], method),
            target=target,
            weights=weights,
            device=device,
            overwrite=overwrite,
            lightness=cast(Literal["keep", "match", "bounded"], lightness),
            min_ssim=min_ssim,
            progress=update,
        )
    if not quiet:
        click.echo(f"wrote {path}")
