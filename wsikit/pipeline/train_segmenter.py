"""``train_segmenter``: load the annotated datasets and train the nuclei U-Net; write weights."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from wsikit._atomic import check_output_parent
from wsikit._typing import PathLike
from wsikit.datasets.nuclei import DATASETS, WORKING_MPP, Sample, training_samples
from wsikit.errors import ConfigError
from wsikit.models.registry import save_checkpoint
from wsikit.models.training_state import training_provenance
from wsikit.models.unet import CLASSES
from wsikit.segment.infer import Segmenter
from wsikit.segment.train import ARCH, SegmenterTrainConfig
from wsikit.segment.train import train_segmenter as _train
from wsikit.segment.tune import tune_instance_params

__all__ = ["train_segmenter", "tune_segmenter"]

log = logging.getLogger(__name__)


def train_segmenter(
    data: PathLike,
    out: PathLike,
    *,
    datasets: tuple[str, ...] = DATASETS,
    exclude: tuple[str, ...] = (),
    config: SegmenterTrainConfig | None = None,
    resume: bool = False,
    init: PathLike | None = None,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
    command: str | None = None,
) -> tuple[Path, dict[str, object]]:
    """Train on the training splits of ``datasets`` under ``data`` (e.g. ../shared/data) and write ``out``;
    images whose name contains an entry of ``exclude`` are held out (kept for validation).

    A checkpoint ``OUT.ckpt`` is kept during training (``resume`` continues from it); the weights file is
    written at the end, with the validation Dice history and the command in its metadata. ``init`` fine-tunes
    a weights file written by this function (its metadata is kept under ``init`` in the new file's).
    """
    cfg = config or SegmenterTrainConfig()
    out_path = Path(out)
    check_output_parent(out_path)
    samples = training_samples(data, datasets, exclude=exclude)
    log.info("%d training images, %d nuclei", len(samples), sum(int(s.labels.max()) for s in samples))
    ckpt = out_path.with_name(out_path.name + ".ckpt")
    start_from = None
    init_meta: dict[str, object] | None = None
    if init is not None:
        previous = Segmenter.from_weights(init)
        start_from, init_meta = previous.model, previous.meta
    restyle, restyle_meta = _restyle(cfg)
    state = _train(
        samples, cfg, checkpoint=ckpt, resume=resume, init=start_from, progress=progress, restyle=restyle
    )
    val_samples = [s for s in samples if s.name in set(state.val_names)]
    last = state.history[-50:]
    summary: dict[str, object] = {
        "steps": state.step,
        "loss_last": sum(r["loss"] for r in last) / max(len(last), 1),
        "val_dice": state.validation[-1]["val_dice"] if state.validation else None,
        "seconds": round(state.seconds, 1),
    }
    meta = {
        "mpp": WORKING_MPP,
        "classes": list(CLASSES),
        "outputs": [*CLASSES, *(["distance"] if state.model.config.distance else [])],
        "datasets": list(datasets),
        "train_images": len(samples) - len(state.val_names),
        "val_images": state.val_names,
        "validation": state.validation,
        **training_provenance(cfg, summary, command),
    }
    if init_meta is not None:
        meta["init"] = init_meta
    if restyle_meta is not None:
        meta["cnn_stain_normalizer"] = restyle_meta
    if val_samples:
        run_stain = _run_stain() if restyle is not None else None
        meta.update(_tuned_instances(Segmenter(state.model), val_samples, run_stain))
    save_checkpoint(
        out_path, arch=ARCH, config=state.model.config.to_dict(), state=state.model.state_dict(), meta=meta
    )
    ckpt.unlink(missing_ok=True)
    return out_path, summary


Restyle = Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.uint8]]


def _cnn_restyle(**options: Any) -> tuple[Restyle, Path]:
    """The shipped CNN normalizer with ``options`` as an (H, W, 3) uint8 -> uint8 function, and its weights."""
    from wsikit.stain.cnn import CnnNormalizer
    from wsikit.stain.factory import make_normalizer

    norm = cast(CnnNormalizer, make_normalizer("cnn", **options))

    def restyle(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        return np.asarray(norm.transform(image), np.uint8)

    return restyle, Path(norm.meta["weights"])


def _restyle(cfg: SegmenterTrainConfig) -> tuple[Restyle | None, dict[str, str] | None]:
    """The shipped CNN normalizer that restyles training images when ``cfg.cnn_stain > 0``: at full chroma
    resolution, as the shipped ``unet-nuclei-cnn`` was trained (before ``wsikit run`` predicted chroma at 1/2)."""
    if cfg.cnn_stain <= 0:
        return None, None
    from wsikit.io.fingerprint import fingerprint_file

    restyle, path = _cnn_restyle()
    return restyle, {"weights": path.name, "sha256": fingerprint_file(path)}


def _run_stain() -> Restyle:
    """The CNN normalizer exactly as ``wsikit run --stain cnn`` applies it by default (chroma resolution and
    precision included): what a network trained for that path sees when its thresholds are used."""
    from wsikit.pipeline.run import RunConfig

    defaults = RunConfig()
    restyle, _ = _cnn_restyle(chroma_downsample=defaults.chroma_downsample, precision=defaults.precision)
    return restyle


def _tuned_instances(
    segmenter: Segmenter,
    samples: list[Sample],
    stain: Restyle | None = None,
) -> dict[str, Any]:
    """Metadata entries with the instance thresholds chosen on ``samples`` (the validation images), seen
    through ``stain`` (the run's CNN normalizer for networks trained for it; until 2026-11-30 they were
    scored un-normalized, unlike any image they would segment)."""
    pairs = [
        (segmenter.probabilities(s.image if stain is None else stain(s.image)), s.labels) for s in samples
    ]
    best, table = tune_instance_params(pairs)
    log.info("instance thresholds %s: validation Dice %.3f AJI %.3f", best, table[0]["dice"], table[0]["aji"])
    return {
        "instances": asdict(best),
        "instances_tuning": {
            "images": [s.name for s in samples],
            "stain": "none" if stain is None else "cnn (wsikit run's default path)",
            "top": table[:5],
            "settings": len(table),
        },
    }


def tune_segmenter(
    weights: PathLike, data: PathLike, out: PathLike | None = None, *, command: str | None = None
) -> tuple[Path, dict[str, Any]]:
    """Choose the instance thresholds of trained ``weights`` on their own validation images; write ``out``.

    The validation images are the ones named in the weights' metadata (never trained on), loaded again from
    ``data``. ``out`` defaults to rewriting ``weights`` in place. Returns the path and the new entries.
    """
    from wsikit.models.registry import load_checkpoint
    from wsikit.segment.train import ARCH

    src = Path(weights)
    dest = Path(out) if out is not None else src
    check_output_parent(dest)
    data_ = load_checkpoint(src, arch=ARCH)
    meta = dict(data_["meta"])
    names = set(meta.get("val_images") or [])
    if not names:
        raise ConfigError(f"{src}: the weights name no validation images to tune on")
    datasets = tuple(d for d in meta.get("datasets") or DATASETS if any(n.startswith(d + "/") for n in names))
    samples = [s for s in training_samples(data, datasets) if s.name in names]
    if len(samples) != len(names):
        missing = sorted(names - {s.name for s in samples})
        raise ConfigError(f"{data}: validation images of {src} not found: {', '.join(missing[:3])}")
    stain = _run_stain() if meta.get("cnn_stain_normalizer") else None
    entries = _tuned_instances(Segmenter.from_weights(src), samples, stain)
    meta.update(entries)
    if command:
        meta["tune_command"] = command
    save_checkpoint(dest, arch=ARCH, config=data_["config"], state=data_["state_dict"], meta=meta)
    return dest, entries
