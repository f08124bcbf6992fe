"""``wsikit run``: slides end to end; ``wsikit stats``: one CSV of many runs' summaries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from wsikit.cli._options import precision_option
from wsikit.cli._progress import is_quiet, resolve_device, stage_progress

__all__ = ["run_cmd", "stats"]


def _table(results: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    from wsikit.classify.naming import CELL_TYPES

    t = Table(title="wsikit run")
    for col in ("slide", "nuclei", *CELL_TYPES, "L/E", "status"):
        t.add_column(col, justify="left" if col in ("slide", "status") else "right")
    for r in results:
        if r["ok"]:
            counts = [str(r["classes"][c]["count"]) for c in CELL_TYPES]
            ratio = r.get("lymphocyte_to_epithelial_ratio")
            status = "unchanged" if r.get("skipped") else "done"
            t.add_row(
                Path(r["slide"]).name,
                str(r["nuclei"]),
                *counts,
                "-" if ratio is None else f"{ratio:.2f}",
                status,
            )
        else:
            t.add_row(Path(r["slide"]).name, "-", *["-"] * len(CELL_TYPES), "-", "[red]failed[/red]")
    Console().print(t)


@click.command("run")
@click.argument("slides", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--manifest",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="CSV with a 'slide' column (optional 'out', 'mpp'), one slide per row.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder (one slide) or parent folder of SLIDE_NAME.wsikit folders (several) "
    "[default: SLIDE_NAME.wsikit beside each slide].",
)
@click.option(
    "--stain",
    type=click.Choice(["cnn", "macenko", "reinhard", "none"]),
    default="cnn",
    show_default=True,
    help="Stain normalization before segmentation. The CNN path segments unseen sources best (held-out "
    "breast images of three sources: Dice 0.795 vs 0.643 with `none`); `none` is slightly ahead only on "
    "the 4 MoNuSeg test images (docs/segmentation.md).",
)
@click.option(
    "--stain-target",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Target image for macenko/reinhard [default: the bundled sample slide].",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Threads for post-processing (watershed, vectorization, classification).",
)
@click.option(
    "--mpp", type=float, default=None, help="Level-0 microns per pixel for slides that do not state it."
)
@click.option(
    "--segmenter-weights",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="U-Net weights [default: the shipped ones for --stain: unet-nuclei-cnn after the CNN normalizer, unet-nuclei otherwise].",
)
@click.option(
    "--classifier-weights",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Cell-type classifier weights: from `wsikit train cell-types` or the paper's unsupervised InfoGAN "
    "(`wsikit train classifier`) [default: the shipped cells-context-cnn].",
)
@click.option(
    "--chunk",
    type=click.IntRange(min=16),
    default=1024,
    show_default=True,
    help="Chunk side of the OME-Zarr labels (also the unit of resume).",
)
@click.option(
    "--save-normalized",
    is_flag=True,
    help="Also write the stain-normalized image pyramid into result.zarr (level-0 resolution).",
)
@click.option(
    "--min-nucleus-area",
    type=float,
    default=7.5,
    show_default=True,
    help="Drop segmented objects smaller than this (um^2): most of them are fragments, not nuclei "
    "(see docs/segmentation.md); 3 keeps nearly every object.",
)
@click.option(
    "--max-nucleus-area",
    type=float,
    default=400.0,
    show_default=True,
    help="Drop segmented objects larger than this (um^2): merged blobs, not nuclei.",
)
@click.option(
    "--tta",
    is_flag=True,
    help="Segment with test-time augmentation (8 rotations / flips: 8x the U-Net time).",
)
@click.option(
    "--colour-filter/--no-colour-filter",
    default=True,
    show_default=True,
    help="Drop segmented objects whose colour no hematoxylin-stained nucleus has (pen ink, eosin "
    "fragments; judged on the raw pixels; docs/segmentation.md).",
)
@click.option(
    "--glass-filter/--no-glass-filter",
    default=True,
    show_default=True,
    help="Drop segmented objects lying on glass: more than 80% of a 4 um ring around them is glass (fibres, "
    "tissue fragments; docs/segmentation.md).",
)
@click.option(
    "--length-filter/--no-length-filter",
    default=True,
    show_default=True,
    help="Drop segmented objects longer than any nucleus: a major axis over 25 um (edges of folded or torn "
    "tissue, fibre strands; docs/segmentation.md).",
)
@click.option(
    "--chroma-downsample",
    type=click.Choice(["1", "2", "4"]),
    default="2",
    show_default=True,
    help="The CNN normalizer predicts chroma at 1/N resolution (lightness stays full): 2 is as accurate "
    "as 1 for segmentation at a quarter of the normalizer network's cost (docs/segmentation.md).",
)
@precision_option
@click.option(
    "--max-damaged",
    type=click.FloatRange(0, 100),
    default=5.0,
    show_default=True,
    help="Percent of the tissue that unreadable (corrupt) tiles may cover: they are skipped, read as glass "
    "and listed in summary.json and the report; past this share the slide fails.",
)
@click.option("--overwrite", is_flag=True, help="Redo finished runs.")
@click.option(
    "--scheduler", default=None, metavar="tcp://HOST:PORT", help="Run the slides on this Dask cluster."
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Slides run in parallel in a local process pool (without --scheduler).",
)
@click.pass_context
def run_cmd(
    ctx: click.Context,
    slides: tuple[Path, ...],
    manifest: Path | None,
    out: Path | None,
    stain: str,
    stain_target: Path | None,
    device: str,
    batch_size: int,
    workers: int,
    mpp: float | None,
    segmenter_weights: Path | None,
    classifier_weights: Path | None,
    chunk: int,
    save_normalized: bool,
    min_nucleus_area: float,
    max_nucleus_area: float,
    tta: bool,
    colour_filter: bool,
    glass_filter: bool,
    length_filter: bool,
    chroma_downsample: str,
    precision: str,
    max_damaged: float,
    overwrite: bool,
    scheduler: str | None,
    jobs: int,
) -> None:
    """Run the whole pipeline on SLIDES: nuclei, cell types, maps, statistics and a report per slide."""
    from wsikit.errors import ConfigError
    from wsikit.pipeline.cohort import SlideJob, read_manifest, run_cohort
    from wsikit.pipeline.run import RunConfig, run_slide

    items = [SlideJob(s) for s in slides] + (read_manifest(manifest) if manifest else [])
    if not items:
        raise click.UsageError("give at least one SLIDE or --manifest")
    cfg = RunConfig(
        stain=stain,
        device=resolve_device(device),
        batch_size=batch_size,
        workers=workers,
        slide_mpp=mpp,
        stain_target=str(stain_target) if stain_target else None,
        segmenter_weights=str(segmenter_weights) if segmenter_weights else None,
        classifier_weights=str(classifier_weights) if classifier_weights else None,
        chunk=chunk,
        save_normalized=save_normalized,
        min_nucleus_um2=min_nucleus_area,
        max_nucleus_um2=max_nucleus_area,
        tta=tta,
        max_damaged=max_damaged / 100.0,
        colour_filter=colour_filter,
        glass_filter=glass_filter,
        length_filter=length_filter,
        chroma_downsample=int(chroma_downsample),
        precision=precision,
    )
    quiet = is_quiet(ctx)
    if len(items) == 1 and scheduler is None:
        job = items[0]
        target = out or job.out
        with stage_progress(enabled=not quiet) as update:
            if job.mpp is not None:
                from dataclasses import replace

                cfg = replace(cfg, slide_mpp=job.mpp)
            summary = run_slide(job.slide, target, config=cfg, overwrite=overwrite, progress=update)
        if summary["nuclei"] == 0:
            click.echo(
                f"wsikit: warning: {job.slide}: no nuclei found (no tissue?); wrote a valid empty result",
                err=True,
            )
        results = [{"slide": str(job.slide), "ok": True, **summary}]
    else:
        if out is not None:
            if out.exists() and not out.is_dir():
                raise ConfigError(f"{out}: with several slides --out must be a folder, and this is a file")
            if not out.parent.is_dir():
                raise ConfigError(f"{out}: its parent folder {out.parent} does not exist")
            out.mkdir(exist_ok=True)
            items = [SlideJob(j.slide, j.out or out / (j.slide.stem + ".wsikit"), j.mpp) for j in items]
        results = run_cohort(items, config=cfg, overwrite=overwrite, scheduler=scheduler, parallel=jobs)
    if not quiet:
        _table(results)
        for r in results:
            if r["ok"]:
                click.echo(f"report: {Path(r['out']) / 'report.html'}")
    failed = [r for r in results if not r["ok"]]
    if failed:
        for r in failed:
            click.echo(f"wsikit: error: {r['error']}", err=True)
        ctx.exit(1)


@click.command("stats")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="CSV file to write."
)
@click.pass_context
def stats(ctx: click.Context, results: tuple[Path, ...], out: Path) -> None:
    """Merge the summaries of several `wsikit run` results into one CSV (one row per slide)."""
    from wsikit.pipeline.cohort import merge_summaries

    n = merge_summaries(list(results), out)
    if not is_quiet(ctx):
        click.echo(f"wrote {n} slides to {out}")
