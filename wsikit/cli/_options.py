"""Click options shared by several commands."""

from __future__ import annotations

import click

__all__ = ["min_ssim_option"]

min_ssim_option = click.option(
    "--min-ssim",
    type=click.FloatRange(0.0, 1.0),
    default=0.99,
    show_default=True,
    help="Structure bound of the bounded lightness: luminance SSIM against the source stays >= this.",
)
"""``--min-ssim``: the structure bound of the CNN's bounded lightness (normalize, eval normalizer)."""
