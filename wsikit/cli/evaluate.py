"""``wsikit eval ...``: measure wsikit's methods on labelled or reference data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

__all__ = ["evaluate"]


@click.group("eval")
def evaluate() -> None:
    """Evaluate wsikit's methods."""


@evaluate.command("normalizer")
@click.option(
    "--source", required=True, type=click.Path(path_type=Path), help="Folder of images to normalize."
)
@click.option(
    "--target", required=True, type=click.Path(path_type=Path), help="Folder of target-style images."
)
@click.option("--method", "methods", multiple=True, help="Methods to run (repeatable) [default: all].")
@click.option(
    "--cnn-weights",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Weights for the 'cnn' row instead of the shipped style.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def normalizer(
    source: Path, target: Path, methods: tuple[str, ...], cnn_weights: Path | None, as_json: bool
) -> None:
    """Score stain normalizers: distance to the target style, histogram correlation and Hellinger
    distance (the paper's metrics), luminance SSIM against the source, and speed."""
    from wsikit.pipeline.eval_normalizer import DEFAULT_METHODS, evaluate_normalizers

    results, reference = evaluate_normalizers(
        source,
        target,
        methods=methods or DEFAULT_METHODS,
        cnn_weights={"cnn": cnn_weights} if cnn_weights else None,
    )
    if as_json:
        click.echo(
            json.dumps(
                {"target_tissue_pixels": reference.n_pixels, "results": [r.to_dict() for r in results]},
                indent=2,
            )
        )
        return
    header = (
        f"{'method':<40} {'Euclid. dE':>10} {'chroma d':>9} {'hist corr':>10} {'Hellinger':>10} "
        f"{'SSIM(L)':>8} {'MP/s':>7}"
    )
    click.echo(header)
    click.echo("-" * len(header))
    for r in results:
        if r.skipped:
            click.echo(f"{r.label:<40} skipped: {r.skipped}")
            continue
        m = r.metrics
        speed = "-" if math.isnan(r.megapixels_per_s) else f"{r.megapixels_per_s:.2f}"
        click.echo(
            f"{r.label:<40} {m['euclidean']:>10.3f} {m['chroma_distance']:>9.3f} {m['hist_correlation']:>10.3f} "
            f"{m['hellinger']:>10.3f} "
            f"{m['ssim_luminance']:>8.4f} {speed:>7}"
        )
