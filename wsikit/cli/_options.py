"""Click options shared by several commands."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["min_ssim_option", "weights_out_option", "precision_option", "reject_unused"]

weights_out_option = click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Weights file to write."
)
"""``--out``: the weights file a ``wsikit train`` command writes."""

min_ssim_option = click.option(
    "--min-ssim",
    type=click.FloatRange(0.0, 1.0),
    default=0.99,
    show_default=True,
    help="Structure bound of the bounded lightness: luminance SSIM against the source stays >= this.",
)
"""``--min-ssim``: the structure bound of the CNN's bounded lightness (normalize, eval normalizer)."""


precision_option = click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16"]),
    default="auto",
    show_default=True,
    help="Arithmetic of the networks (stain CNN, U-Net, cell-type classifier): auto is bf16 on CUDA and on "
    "CPUs with native bf16 (AVX512-BF16 / AMX: faster there, as accurate on validation), float32 elsewhere.",
)
"""``--precision``: inference arithmetic of the networks (:mod:`wsikit.models.precision`)."""


def reject_unused(ctx: click.Context, used: bool, *params: str, why: str) -> None:
    """Refuse options the user typed that the chosen method would silently ignore.

    ``params`` are the options' parameter names (``"min_ssim"``); an option left at its default passes.
    """
    if used:
        return
    given = [p for p in params if ctx.get_parameter_source(p) is click.core.ParameterSource.COMMANDLINE]
    if given:
        flags = ", ".join("--" + p.replace("_", "-") for p in given)
        raise click.UsageError(f"{flags} {'has' if len(given) == 1 else 'have'} no effect here: {why}", ctx)
