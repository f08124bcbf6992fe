"""``train_segmenter``: load the annotated datasets and train the nuclei U-Net; write weights."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path

from wsikit import __version__
from wsikit._typing import PathLike
from wsikit.models.registry import save_checkpoint
from wsikit.pipeline._atomic import check_output_parent
from wsikit.segment.data import DATASETS, WORKING_MPP, training_samples
from wsikit.segment.train import ARCH, SegmenterTrainConfig
from wsikit.segment.train import train_segmenter as _train

__all__ = ["train_segmenter"]

log = logging.getLogger(__name__)


def train_segmenter(
    data: PathLike,
    out: PathLike,
    *,
    datasets: tuple[str, ...] = DATASETS,
    config: SegmenterTrainConfig | None = None,
    resume: bool = False,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
    command: str | None = None,
) -> tuple[Path, dict[str, object]]:
    """Train on the training splits of ``datasets`` under ``data`` (e.g. ../shared/data) and write ``out``.

    A checkpoint ``OUT.ckpt`` is kept during training (``resume`` continues from it); the weights file is
    written at the end, with the validation Dice history and the command in its metadata.
    """
    cfg = config or SegmenterTrainConfig()
    out_path = Path(out)
    check_output_parent(out_path)
    samples = training_samples(data, datasets)
    log.info("%d training images, %d nuclei", len(samples), sum(int(s.labels.max()) for s in samples))
    ckpt = out_path.with_name(out_path.name + ".ckpt")
    state = _train(samples, cfg, checkpoint=ckpt, resume=resume, progress=progress)
    last = state.history[-50:]
    summary: dict[str, object] = {
        "steps": state.step,
        "loss_last": sum(r["loss"] for r in last) / max(len(last), 1),
        "val_dice": state.validation[-1]["val_dice"] if state.validation else None,
        "seconds": round(state.seconds, 1),
    }
    meta = {
        "mpp": WORKING_MPP,
        "classes": ["background", "interior", "boundary"],
        "datasets": list(datasets),
        "train_images": len(samples) - len(state.val_names),
        "val_images": state.val_names,
        "validation": state.validation,
        "train_config": cfg.__dict__,
        "summary": summary,
        "wsikit_version": __version__,
        "date": dt.date.today().isoformat(),
        "command": command or "",
    }
    save_checkpoint(
        out_path, arch=ARCH, config=state.model.config.to_dict(), state=state.model.state_dict(), meta=meta
    )
    ckpt.unlink(missing_ok=True)
    return out_path, summary
