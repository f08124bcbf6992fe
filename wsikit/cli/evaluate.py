"""``wsikit eval ...``: measure wsikit's methods on labelled or reference data."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal, cast

import click

from wsikit.cli._options import min_ssim_option, precision_option, reject_unused

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
@min_ssim_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def normalizer(
    ctx: click.Context,
    source: Path,
    target: Path,
    methods: tuple[str, ...],
    cnn_weights: Path | None,
    min_ssim: float,
    as_json: bool,
) -> None:
    """Score stain normalizers: distance to the target style, histogram correlation and Hellinger
    distance (the paper's metrics), luminance SSIM against the source, and speed."""
    from wsikit.stain.evaluate import DEFAULT_METHODS, evaluate_normalizers

    bounded = not methods or "cnn-bounded" in methods
    reject_unused(
        ctx, bounded, "min_ssim", why="it bounds the cnn-bounded method, which is not among --method"
    )
    results, reference = evaluate_normalizers(
        source,
        target,
        methods=methods or DEFAULT_METHODS,
        cnn_weights={"cnn": cnn_weights} if cnn_weights else None,
        min_ssim=min_ssim,
    )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "target_tissue_pixels": reference.n_pixels,
                    "min_ssim": min_ssim,
                    "results": [r.to_dict() for r in results],
                },
                indent=2,
            )
        )
        return
    header = (
        f"{'method':<44} {'Euclid. dE':>10} {'chroma d':>9} {'hist corr':>10} {'Hellinger':>10} "
        f"{'SSIM(L)':>8} {'MP/s':>7}"
    )
    click.echo(header)
    click.echo("-" * len(header))
    for r in results:
        if r.skipped:
            click.echo(f"{r.label:<44} skipped: {r.skipped}")
            continue
        m = r.metrics
        speed = "-" if math.isnan(r.megapixels_per_s) else f"{r.megapixels_per_s:.2f}"
        click.echo(
            f"{r.label:<44} {m['euclidean']:>10.3f} {m['chroma_distance']:>9.3f} {m['hist_correlation']:>10.3f} "
            f"{m['hellinger']:>10.3f} "
            f"{m['ssim_luminance']:>8.4f} {speed:>7}"
        )


@evaluate.command("segmenter")
@click.argument("folders", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--mpp",
    type=float,
    default=0.25,
    show_default=True,
    help="Microns per pixel of the images of a folder without a manifest.json stating it.",
)
@click.option(
    "--weights",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="U-Net weights [default: the shipped ones for --stain: unet-nuclei-cnn after the CNN normalizer, unet-nuclei otherwise].",
)
@click.option(
    "--stain",
    type=click.Choice(["none", "macenko", "cnn"]),
    default="cnn",
    show_default=True,
    help="Stain-normalize the images first (cnn: as `wsikit run` does by default).",
)
@click.option(
    "--stain-target", type=click.Path(path_type=Path), default=None, help="Target image for macenko."
)
@click.option("--tta", is_flag=True, help="Average the U-Net over 8 rotations / flips (8x slower).")
@click.option(
    "--min-nucleus-area",
    type=float,
    default=7.5,
    show_default=True,
    help="Drop objects smaller than this (um^2), as `wsikit run` does; 0 keeps every object.",
)
@click.option(
    "--max-nucleus-area",
    type=float,
    default=400.0,
    show_default=True,
    help="Drop objects larger than this (um^2), as `wsikit run` does.",
)
@click.option(
    "--colour-filter/--no-colour-filter",
    default=True,
    show_default=True,
    help="Drop objects whose raw colour no nucleus has (pen ink, eosin fragments), as `wsikit run` does.",
)
@click.option(
    "--glass-filter/--no-glass-filter",
    default=True,
    show_default=True,
    help="Drop objects lying on glass (fibres, fragments), as `wsikit run` does.",
)
@click.option(
    "--length-filter/--no-length-filter",
    default=True,
    show_default=True,
    help="Drop objects longer than any nucleus (fold edges, fibre strands), as `wsikit run` does.",
)
@precision_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def segmenter(
    folders: tuple[Path, ...],
    mpp: float,
    weights: Path | None,
    stain: str,
    stain_target: Path | None,
    tta: bool,
    min_nucleus_area: float,
    max_nucleus_area: float,
    colour_filter: bool,
    glass_filter: bool,
    length_filter: bool,
    precision: str,
    as_json: bool,
) -> None:
    """Score nuclei segmentation on FOLDERS (each NAME.png + NAME.labels.tif; one folder per source):
    pixel sensitivity, specificity, Dice, Jaccard (the paper's), AJI and Panoptic Quality per image, per
    source and their mean over sources."""
    from wsikit.segment.artefacts import ColourRule, GlassRule, LengthRule
    from wsikit.segment.evaluate import evaluate_segmenter_sources

    result = evaluate_segmenter_sources(
        list(folders),
        mpp=mpp,
        weights=weights,
        stain=stain,  # type: ignore[arg-type]
        stain_target=stain_target,
        tta=tta,
        area_um2=(min_nucleus_area, max_nucleus_area),
        colour_rule=ColourRule() if colour_filter else None,
        glass_rule=GlassRule() if glass_filter else None,
        length_rule=LengthRule() if length_filter else None,
        precision=precision,  # type: ignore[arg-type]
    )
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    keys = ("sensitivity", "specificity", "dice", "jaccard", "aji", "pq")
    click.echo(f"{'image':<40} " + " ".join(f"{k:>11}" for k in keys))
    for src in result["sources"]:
        for row in src["images"]:
            click.echo(f"{row['image'][:40]:<40} " + " ".join(f"{row[k]:>11.3f}" for k in keys))
        name = f"{src['source']} (mean of {len(src['images'])})"
        click.echo(f"{name[:40]:<40} " + " ".join(f"{src['mean'][k]:>11.3f}" for k in keys))
    label = f"mean over {len(result['sources'])} sources"
    click.echo(f"{label:<40} " + " ".join(f"{result['mean'][k]:>11.3f}" for k in keys))


@click.command("export-dataset")
@click.argument("name", type=click.Choice(["monuseg", "monuseg_extra", "miccai2015", "dsb2018", "nucls"]))
@click.option("--data", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--split", default="test", show_default=True, help="monuseg, monuseg_extra: train or test.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True)
def export_dataset_cmd(name: str, data: Path, split: str, out: Path, overwrite: bool) -> None:
    """Write an annotated dataset as NAME.png + NAME.labels.tif at 0.25 um/px (input of `eval segmenter`)."""
    from wsikit.segment.evaluate import export_dataset

    n = export_dataset(name, data, out, split=split, overwrite=overwrite)
    click.echo(f"wrote {n} images to {out}")


@evaluate.command("classifier")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--mpp",
    type=float,
    default=None,
    help="Microns per pixel of the folder's images [default: its manifest.json's, else 0.25].",
)
@click.option(
    "--weights",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Labelled cell-type classifier (from `wsikit train cell-types`) [default: the shipped one].",
)
@click.option(
    "--infogan-weights",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Unsupervised InfoGAN (from `wsikit train classifier`) [default: the shipped infogan-cells].",
)
@click.option(
    "--method",
    "methods",
    multiple=True,
    type=click.Choice(["classifier", "infogan", "kmeans-pixels", "kmeans-cnn", "kmeans-morphology"]),
    help="Methods to run (repeatable) [default: all].",
)
@click.option(
    "--stain",
    type=click.Choice(["cnn", "none"]),
    default="cnn",
    show_default=True,
    help="Segmentation path for folders without NAME.labels.tif (cnn: `wsikit run`'s default).",
)
@click.option(
    "--segmenter-weights",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="U-Net weights to segment with (from `wsikit train segmenter`) [default: the shipped ones for --stain].",
)
@precision_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def classifier(
    folder: Path,
    mpp: float | None,
    weights: Path | None,
    infogan_weights: Path | None,
    methods: tuple[str, ...],
    stain: str,
    segmenter_weights: Path | None,
    precision: str,
    as_json: bool,
) -> None:
    """Score nucleus classification on FOLDER (NAME.png + NAME.points.csv [+ NAME.labels.tif]): the labelled
    classifier, the paper's unsupervised InfoGAN and the k-means baselines side by side (unsupervised ones
    with clusters named by the morphology rule; the Hungarian mapping, an upper bound, in --json)."""
    from wsikit.pipeline.eval_classifier import METHODS, evaluate_classifier

    result = evaluate_classifier(
        folder,
        mpp=mpp,
        weights=weights,
        infogan_weights=infogan_weights,
        methods=methods or METHODS,
        stain=cast(Literal["cnn", "none"], stain),
        precision=precision,  # type: ignore[arg-type]
        segmenter_weights=segmenter_weights,
    )
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    per = ", ".join(f"{k} {v}" for k, v in result["per_class"].items())
    recall = ", ".join(f"{k} {v}" for k, v in result["detection_recall"].items())
    click.echo(
        f"{result['nuclei']} labelled nuclei ({per}); detection recall {recall}; "
        f"{result['unmatched_points']} points outside any nucleus, {result['skipped_points']} of other classes"
    )
    classes = list(result["per_class"])
    head = f"{'method':<18} {'acc':>6} {'bal':>6} {'mF1':>6} " + " ".join(
        f"{c[:5] + ' P/S/F1':>19}" for c in classes
    )
    click.echo(head)
    click.echo("-" * len(head))
    for r in result["results"]:
        rep = r["scores"]
        cells = []
        for c in classes:
            vals = [rep[k][c] for k in ("precision", "sensitivity", "f1")]
            cells.append("/".join("  - " if v is None else f"{v:.2f}" for v in vals).rjust(19))
        nums = " ".join(
            "     -" if rep[k] is None else f"{rep[k]:>6.3f}"
            for k in ("accuracy", "balanced_accuracy", "macro_f1")
        )
        click.echo(f"{r['method']:<18} {nums} " + " ".join(cells))


@click.command("export-classes")
@click.argument("name", type=click.Choice(["nucls", "monusac", "brca_m2c"]))
@click.option("--data", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--split",
    type=click.Choice(["train", "val"]),
    default=None,
    help="brca_m2c: train or val [default: train].",
)
@click.option("--overwrite", is_flag=True)
def export_classes_cmd(name: str, data: Path, out: Path, split: str | None, overwrite: bool) -> None:
    """Write a cell-type-labelled dataset as NAME.png + NAME.points.csv (+ NAME.labels.tif) + manifest.json:
    nucls / monusac at 0.25 um/px with instance labels, brca_m2c at 0.5 um/px as points (input of
    `eval classifier`)."""
    from wsikit.pipeline.eval_classifier import export_classification_dataset

    n = export_classification_dataset(name, data, out, split=split, overwrite=overwrite)
    click.echo(f"wrote {n} images to {out}")
