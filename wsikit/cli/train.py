"""``wsikit train ...``: train the models shipped with wsikit on your own data."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal, cast

import click

from wsikit.cli._options import weights_out_option
from wsikit.cli._progress import command_line, is_quiet, progress_bar

__all__ = ["train"]


@click.group()
def train() -> None:
    """Train wsikit's models."""


@train.command("normalizer")
@click.option(
    "--style",
    "style",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Folder or slide/image of the target style (repeatable).",
)
@weights_out_option
@click.option("--steps", type=click.IntRange(min=1), default=600, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option(
    "--crop", type=click.IntRange(min=8), default=224, show_default=True, help="Training patch size."
)
@click.option(
    "--width",
    type=click.IntRange(min=2),
    default=16,
    show_default=True,
    help="Base width (mid-level map has 8x channels; the paper's is 32).",
)
@click.option(
    "--class-by",
    type=click.Choice(["image", "folder", "none"]),
    default="image",
    show_default=True,
    help="Labels of the classification head: each image, each folder, or no head.",
)
@click.option(
    "--class-share",
    type=float,
    default=0.01,
    show_default=True,
    help="Share of the classification loss in the total (0 = MSE only).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--name", "style_name", default=None, help="Style name stored in the weights.")
@click.option("--resume", is_flag=True, help="Continue from OUT.ckpt if a previous run stopped.")
@click.pass_context
def normalizer(
    ctx: click.Context,
    style: tuple[Path, ...],
    out: Path,
    steps: int,
    batch_size: int,
    crop: int,
    width: int,
    class_by: str,
    class_share: float,
    seed: int,
    style_name: str | None,
    resume: bool,
) -> None:
    """Train the colorization stain normalizer on a pool of images of one style."""
    from wsikit.stain.train import ColorizerTrainConfig
    from wsikit.stain.train_normalizer import train_normalizer

    cfg = ColorizerTrainConfig(
        steps=steps, batch_size=batch_size, crop=crop, width=width, class_share=class_share, seed=seed
    )
    quiet = is_quiet(ctx)

    command = command_line()
    last = {"mse": math.nan}
    with progress_bar("training", enabled=not quiet) as update:

        def on_step(step: int, total: int, row: dict[str, float]) -> None:
            last.update(row)
            update(step, total)

        path, summary = train_normalizer(
            style,
            out,
            config=cfg,
            class_by=cast(Literal["image", "folder", "none"], class_by),
            resume=resume,
            style_name=style_name,
            progress=on_step,
            command=command,
        )
    if not quiet:
        click.echo(
            f"wrote {path}: {summary['steps']} steps, chroma MSE {summary['mse_first']:.4f} -> "
            f"{summary['mse_last']:.4f} in {summary['seconds']:.0f} s"
        )


@train.command("segmenter")
@click.option(
    "--data",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder holding the datasets (monuseg/, miccai2015/, dsb2018/, nucls/).",
)
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    type=click.Choice(["monuseg", "miccai2015", "dsb2018", "nucls", "monuseg_extra"]),
    help="Datasets to train on (repeatable) [default: monuseg, miccai2015, dsb2018, nucls].",
)
@click.option(
    "--exclude",
    multiple=True,
    help="Hold out the training images whose name contains this text (repeatable; e.g. TCGA-A7-A13F).",
)
@weights_out_option
@click.option("--steps", type=click.IntRange(min=1), default=3000, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option(
    "--base",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="U-Net base width (the paper's is 32: 512 channels at 9x9).",
)
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option(
    "--lr-schedule", type=click.Choice(["constant", "cosine"]), default="constant", show_default=True
)
@click.option(
    "--touch-weight",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Extra loss weight on the gaps between touching nuclei (U-Net weight map w0; 0 = off).",
)
@click.option(
    "--blur", type=click.FloatRange(0, 1), default=0.0, show_default=True, help="Share of crops blurred."
)
@click.option(
    "--hed-jitter",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Scale hematoxylin and eosin by U(1-s, 1+s) per crop (0 = off).",
)
@click.option(
    "--gray", type=click.FloatRange(0, 1), default=0.0, show_default=True, help="Share of crops in grayscale."
)
@click.option(
    "--cnn-stain",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of crops cut from the image as the shipped CNN normalizer restyles it (what `wsikit run "
    "--stain cnn` feeds the U-Net).",
)
@click.option(
    "--distance-weight",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Also train a fourth output, each nucleus' normalized distance map, with this loss weight "
    "(0 = the paper's 3-class U-Net); its peaks can seed the instances.",
)
@click.option(
    "--init",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Fine-tune these weights instead of starting from random ones.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from OUT.ckpt if a previous run stopped.")
@click.pass_context
def segmenter(
    ctx: click.Context,
    data: Path,
    datasets: tuple[str, ...],
    exclude: tuple[str, ...],
    out: Path,
    steps: int,
    batch_size: int,
    base: int,
    lr: float,
    lr_schedule: str,
    touch_weight: float,
    blur: float,
    hed_jitter: float,
    gray: float,
    cnn_stain: float,
    distance_weight: float,
    init: Path | None,
    seed: int,
    resume: bool,
) -> None:
    """Train the 3-class nuclei U-Net (background / interior / boundary) at 0.25 um/px, optionally with a
    distance-map output (--distance-weight)."""
    from wsikit.datasets.nuclei import DATASETS
    from wsikit.pipeline.train_segmenter import train_segmenter
    from wsikit.segment.train import SegmenterTrainConfig

    cfg = SegmenterTrainConfig(
        steps=steps,
        batch_size=batch_size,
        base=base,
        lr=lr,
        lr_schedule=lr_schedule,
        touch_weight=touch_weight,
        blur=blur,
        hed_jitter=hed_jitter,
        gray=gray,
        cnn_stain=cnn_stain,
        distance_weight=distance_weight,
        seed=seed,
    )
    quiet = is_quiet(ctx)
    with progress_bar("training", enabled=not quiet) as update:
        path, summary = train_segmenter(
            data,
            out,
            datasets=datasets or DATASETS,
            exclude=exclude,
            config=cfg,
            resume=resume,
            init=init,
            progress=lambda step, total, row: update(step, total),
            command=command_line(),
        )
    if not quiet:
        click.echo(f"wrote {path}: {summary['steps']} steps, validation Dice {summary['val_dice']}")


@train.command("thresholds")
@click.argument("weights", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--data",
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Folder holding the datasets the weights were trained on.",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of updating WEIGHTS."
)
@click.pass_context
def thresholds(ctx: click.Context, weights: Path, data: Path, out: Path | None) -> None:
    """Pick a segmenter's instance thresholds on its validation images (training does this at the end)."""
    from wsikit.pipeline.train_segmenter import tune_segmenter

    path, entries = tune_segmenter(weights, data, out, command=command_line())
    if not is_quiet(ctx):
        top = entries["instances_tuning"]["top"][0]
        click.echo(
            f"wrote {path}: {entries['instances']} (validation Dice {top['dice']:.3f}, AJI {top['aji']:.3f} "
            f"on {len(entries['instances_tuning']['images'])} images)"
        )


@train.command("crops")
@click.option(
    "--data",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder holding the datasets (monuseg/, miccai2015/, dsb2018/).",
)
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Crops file (.npz)."
)
@click.option(
    "--context",
    is_flag=True,
    help="Labelled 7-channel context crops of BRCA-M2C (nuclei segmented as `wsikit run` does, matched to "
    "its points) plus an unlabelled pool, for `wsikit train cell-types`.",
)
@click.option(
    "--split",
    type=click.Choice(["train", "val"]),
    default="train",
    show_default=True,
    help="BRCA-M2C split of the labelled crops (with --context).",
)
@click.option(
    "--context-mpp",
    "context_mpp",
    type=click.FloatRange(min=0.5),
    multiple=True,
    help="Resolution (um/px) of a surroundings field of 40 px (repeatable; with --context) [default: 1.6].",
)
@click.pass_context
def crops(
    ctx: click.Context, data: Path, out: Path, context: bool, split: str, context_mpp: tuple[float, ...]
) -> None:
    """Cut 40x40 nucleus crops (0.5 um/px): of every annotated nucleus of the unlabelled training datasets
    (the unsupervised InfoGAN's input), or with --context the labelled classifiers' input."""
    from wsikit.pipeline.train_cell_types import gather_context_crops

    if context_mpp and not context:
        raise click.UsageError("--context-mpp applies with --context")
    from wsikit.pipeline.train_classifier import gather_crops, save_crops

    with progress_bar("crops", enabled=not is_quiet(ctx)) as update:
        gathered = (
            gather_context_crops(data, split=split, progress=update)
            if context
            else gather_crops(data, progress=update)
        )
    save_crops(out, gathered)
    if not is_quiet(ctx):
        extra = f" + {len(gathered['unlabelled'])} unlabelled" if context else ""
        click.echo(f"wrote {len(gathered['crops'])} crops{extra} to {out}")


@train.command("cell-types")
@click.option(
    "--crops",
    "crops_paths",
    required=True,
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Context-crops file from `wsikit train crops --context` (repeatable: the files' crops are pooled).",
)
@weights_out_option
@click.option(
    "--model",
    type=click.Choice(["cnn", "infogan"]),
    required=True,
    help="cnn: the supervised context CNN; infogan: the semi-supervised InfoGAN (GAN on every nucleus, "
    "D_Q's code also trained on the labels).",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=4000,
    show_default=True,
    help="Training steps (the shipped cnn: 4000; the shipped semi-supervised InfoGAN: 2000 generator steps).",
)
@click.option(
    "--label-weight",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Weight of the labelled cross-entropy in the critic's loss (infogan only).",
)
@click.option(
    "--scanner-jitter/--no-scanner-jitter",
    default=None,
    help="cnn: also randomize sharpness and field edges of the crops (robustness to other scanners). "
    "[default: on for cnn, as the shipped weights; off for infogan]",
)
@click.option(
    "--tta/--no-tta",
    default=False,
    show_default=True,
    help="Predict with the average over 8 rotations and flips of each crop by default (stored in the weights; "
    "8x the classify stage's model time).",
)
@click.option(
    "--members",
    type=click.IntRange(min=1),
    default=None,
    help="cnn: train this many CNNs (seeds SEED, SEED+1, ...) and write them as one ensemble that averages "
    "their softmaxes (this many times the classify stage's model time). [default: 2 for cnn, as the shipped "
    "weights; 1 for infogan]",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.pass_context
def cell_types(
    ctx: click.Context,
    crops_paths: tuple[Path, ...],
    out: Path,
    model: str,
    steps: int,
    label_weight: float,
    scanner_jitter: bool | None,
    tta: bool,
    members: int | None,
    seed: int,
) -> None:
    """Train a labelled cell-type classifier (epithelial / lymphocyte / fibroblast) on context crops."""
    from wsikit.pipeline.train_cell_types import (
        load_context_crops,
        pool_context_crops,
        train_cell_type_classifier,
    )

    data = pool_context_crops([load_context_crops(p) for p in crops_paths])
    with progress_bar("training", enabled=not is_quiet(ctx)) as update:
        path, summary = train_cell_type_classifier(
            data,
            out,
            model=cast(Literal["cnn", "infogan"], model),
            steps=steps,
            seed=seed,
            label_weight=label_weight,
            tta=tta,
            scanner=scanner_jitter,
            members=members,
            progress=lambda step, total, row: update(step, total),
            command=command_line(),
        )
    if not is_quiet(ctx):
        click.echo(f"wrote {path}: " + ", ".join(f"{k} {v}" for k, v in summary.items()))


@train.command("neighbourhood")
@click.option(
    "--data",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder holding brca_m2c/.",
)
@click.option(
    "--weights",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Context-CNN weights (`wsikit train cell-types --model cnn`) the stage refines.",
)
@weights_out_option
@click.option(
    "--split",
    "splits",
    type=click.Choice(["train", "val"]),
    multiple=True,
    help="BRCA-M2C splits whose fields train the stage (repeatable) [default: train].",
)
@click.option("--folds", type=click.IntRange(min=2), default=4, show_default=True, help="Patient folds.")
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=4000,
    show_default=True,
    help="Training steps of each fold's CNN.",
)
@click.option(
    "--scanner-jitter/--no-scanner-jitter",
    default=True,
    show_default=True,
    help="Each fold's CNN trained with scanner jitter, as the shipped default.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-images", type=click.IntRange(min=1), default=None, hidden=True)
@click.pass_context
def neighbourhood(
    ctx: click.Context,
    data: Path,
    weights: Path,
    out: Path,
    splits: tuple[str, ...],
    folds: int,
    steps: int,
    scanner_jitter: bool,
    seed: int,
    max_images: int | None,
) -> None:
    """Fit a context CNN's neighbourhood stage on out-of-fold predictions (one CNN per patient fold) and write
    the weights with it: what `wsikit run`'s neighbourhood stage applies."""
    from wsikit.pipeline.train_neighbourhood import (
        gather_field_nuclei,
        load_context_cnn,
        train_neighbourhood_stage,
    )

    load_context_cnn(weights)  # a wrong file fails now, not after the fields are segmented
    quiet = is_quiet(ctx)
    with progress_bar("fields", enabled=not quiet) as update:
        fields = gather_field_nuclei(
            data, splits=splits or ("train",), max_images=max_images, progress=update
        )
    with progress_bar("folds", enabled=not quiet) as update:
        path, summary = train_neighbourhood_stage(
            fields,
            weights,
            out,
            folds=folds,
            steps=steps,
            scanner=scanner_jitter,
            seed=seed,
            progress=update,
            command=command_line(),
        )
    if not quiet:
        click.echo(f"wrote {path}: " + ", ".join(f"{k} {v}" for k, v in summary.items()))


@train.command("classifier")
@click.option(
    "--crops",
    "crops_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Crops file from `wsikit train crops`, or a data folder to gather them from.",
)
@weights_out_option
@click.option(
    "--classes",
    type=click.IntRange(min=2),
    default=3,
    show_default=True,
    help="Clusters K: 3 (the cell types), or more to over-cluster (each named a cell type by the rule).",
)
@click.option("--steps", type=click.IntRange(min=1), default=3000, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=2), default=64, show_default=True)
@click.option("--n-critic", type=click.IntRange(min=1), default=5, show_default=True)
@click.option(
    "--real-info-weight",
    type=float,
    default=0.0,
    show_default=True,
    help="Weight of the mutual-information term on real crops (wsikit's addition; 0: the method as "
    "published; the shipped infogan-cells used 0.5).",
)
@click.option(
    "--grid-every",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Write a PNG grid of generated nuclei every N steps.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from OUT.ckpt if a previous run stopped.")
@click.pass_context
def classifier(
    ctx: click.Context,
    crops_path: Path,
    out: Path,
    classes: int,
    steps: int,
    batch_size: int,
    n_critic: int,
    real_info_weight: float,
    grid_every: int,
    seed: int,
    resume: bool,
) -> None:
    """Train the InfoGAN nucleus classifier (WGAN-GP critic + mutual-information head) without labels."""
    from wsikit.classify.train import ClassifierTrainConfig
    from wsikit.pipeline.train_classifier import gather_crops, load_crops, train_classifier

    quiet = is_quiet(ctx)
    data = gather_crops(crops_path) if crops_path.is_dir() else load_crops(crops_path)
    cfg = ClassifierTrainConfig(
        n_classes=classes,
        steps=steps,
        batch_size=batch_size,
        n_critic=n_critic,
        real_info_weight=real_info_weight,
        grid_every=grid_every,
        seed=seed,
    )
    with progress_bar("training", enabled=not quiet) as update:
        path, summary = train_classifier(
            data,
            out,
            config=cfg,
            resume=resume,
            progress=lambda step, total, row: update(step, total),
            command=command_line(),
        )
    if not quiet:
        click.echo(
            f"wrote {path}: {summary['steps']} steps on {summary['crops']} crops; clusters "
            + ", ".join(f"{c['cluster']}={c['name']} ({c['nuclei']})" for c in summary["clusters"])
        )
