"""Training loop of the colorization normalizer on a pool of images of one stain style.

Takes arrays, not paths (the pipeline layer loads the pool). Each step draws
random 224 px crops (shift), random flips and 90-degree rotations, and a
random lightness curve on the *input* only (gamma, contrast, offset), so the
network sees the luminance of differently stained sources while it always
learns the target style's chroma. Loss: MSE on a*, b* plus the classification
loss of the global branch, weighted so that it is ``class_share`` of the total
(the paper's 1/30 .. 1/300); ``class_share=0`` or no labels trains the
"MSE only" variant. Optimizer: Adadelta (lr 1.0, rho 0.9, eps 1e-6), no L2.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from wsikit.errors import ConfigError, ShapeError
from wsikit.models.colorizer import AB_SCALE, ColorizerConfig, ColorizerNet
from wsikit.models.training_state import load_training_state, save_training_state
from wsikit.stain.color import rgb_to_lab

__all__ = ["ColorizerTrainConfig", "TrainState", "train_colorizer", "ARCH"]

ARCH = ColorizerNet.ARCH


@dataclass(frozen=True, kw_only=True)
class ColorizerTrainConfig:
    """Hyper-parameters of :func:`train_colorizer` (defaults: the paper's, sized for a CPU)."""

    steps: int = 600
    batch_size: int = 64
    crop: int = 224
    lr: float = 1.0
    rho: float = 0.9
    eps: float = 1e-6
    class_share: float = 0.01
    width: int = 16
    seed: int = 0
    checkpoint_every: int = 50

    def __post_init__(self) -> None:
        if self.steps <= 0 or self.batch_size <= 0:
            raise ConfigError(f"steps and batch_size must be positive, got {self.steps}, {self.batch_size}")
        if self.crop <= 0 or self.crop % 8:
            raise ConfigError(f"crop must be a positive multiple of 8, got {self.crop}")
        if not 0.0 <= self.class_share < 1.0:
            raise ConfigError(f"class_share must be in [0, 1), got {self.class_share}")


@dataclass
class TrainState:
    """What a run produced: the model and its loss history (one row per step)."""

    model: ColorizerNet
    step: int
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


class _Pool:
    """The style pool as Lab tensors, sampled with probability proportional to area."""

    def __init__(self, images: Sequence[np.ndarray], labels: Sequence[int] | None, crop: int) -> None:
        if not images:
            raise ConfigError("the style pool is empty")
        self.lab: list[torch.Tensor] = []
        for i, img in enumerate(images):
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ShapeError(f"pool image {i} must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
            if min(img.shape[:2]) < crop:
                pad_h, pad_w = max(0, crop - img.shape[0]), max(0, crop - img.shape[1])
                img = np.pad(img, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
            t = torch.from_numpy(np.array(img, copy=True)).permute(2, 0, 1)[None]  # read-only input: a copy
            self.lab.append(rgb_to_lab(t)[0])
        areas = np.array([lab.shape[1] * lab.shape[2] for lab in self.lab], float)
        self.p = areas / areas.sum()
        self.labels = list(labels) if labels is not None else None
        self.crop = crop

    def batch(self, rng: np.random.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c = self.crop
        idx = rng.choice(len(self.lab), size=n, p=self.p)
        crops = []
        for i in idx:
            lab = self.lab[i]
            y = int(rng.integers(0, lab.shape[1] - c + 1))
            x = int(rng.integers(0, lab.shape[2] - c + 1))
            patch = lab[:, y : y + c, x : x + c]
            k = int(rng.integers(0, 4))
            if k:
                patch = torch.rot90(patch, k, dims=(1, 2))
            if rng.random() < 0.5:
                patch = torch.flip(patch, dims=(2,))
            crops.append(patch)
        lab = torch.stack(crops)
        light = lab[:, :1] / 100.0
        # Lightness augmentation of the input: what other stainings do to the luminance.
        gamma = torch.from_numpy(np.exp(rng.uniform(-0.25, 0.25, (n, 1, 1, 1)))).float()
        contrast = torch.from_numpy(rng.uniform(0.85, 1.15, (n, 1, 1, 1))).float()
        offset = torch.from_numpy(rng.uniform(-0.06, 0.06, (n, 1, 1, 1))).float()
        light_in = ((light.clamp(0, 1) ** gamma - 0.5) * contrast + 0.5 + offset).clamp(0, 1)
        target_ab = lab[:, 1:] / AB_SCALE
        labels = torch.tensor([self.labels[i] for i in idx]) if self.labels is not None else torch.zeros(0)
        return light_in, target_ab, labels


def train_colorizer(
    images: Sequence[np.ndarray],
    labels: Sequence[int] | None = None,
    config: ColorizerTrainConfig | None = None,
    *,
    checkpoint: Path | None = None,
    resume: bool = False,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
) -> TrainState:
    """Train a :class:`ColorizerNet` to colorize luminance in the style of ``images``.

    Parameters
    ----------
    images : sequence of numpy.ndarray
        The style pool, (H, W, 3) uint8 RGB each (smaller than the crop: reflect-padded).
    labels : sequence of int, optional
        A class per image (tissue class, site, or image id) for the classification head.
    config : ColorizerTrainConfig, optional
        Hyper-parameters.
    checkpoint : pathlib.Path, optional
        Saved every ``config.checkpoint_every`` steps and at the end.
    resume : bool
        Continue from ``checkpoint`` when it exists (same results as an uninterrupted run).
    progress : callable(step, steps, losses), optional
        Called after every step.

    Returns
    -------
    TrainState
    """
    cfg = config or ColorizerTrainConfig()
    use_head = labels is not None and cfg.class_share > 0
    n_classes = 0
    if use_head:
        assert labels is not None
        if len(labels) != len(images):
            raise ConfigError(f"{len(labels)} labels for {len(images)} images")
        n_classes = max(2, int(max(labels)) + 1)
    pool = _Pool(images, labels if use_head else None, cfg.crop)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = ColorizerNet(ColorizerConfig(width=cfg.width, n_classes=n_classes))
    opt = torch.optim.Adadelta(model.parameters(), lr=cfg.lr, rho=cfg.rho, eps=cfg.eps, weight_decay=0.0)
    step = 0
    history: list[dict[str, float]] = []
    if resume and checkpoint is not None and checkpoint.exists():
        step, extra = load_training_state(
            checkpoint, arch=ARCH, model=model, model_config=model.config.to_dict(), optimizer=opt, rng=rng
        )
        history = list(extra["history"])
    model.train()
    start = time.perf_counter()
    while step < cfg.steps:
        light, target_ab, y = pool.batch(rng, cfg.batch_size)
        ab, logits = model(light)
        mse = F.mse_loss(ab, target_ab)
        loss = mse
        ce_value = math.nan
        if use_head and logits is not None:
            ce = F.cross_entropy(logits, y)
            ce_value = float(ce.detach())
            # weight so that the classification term is class_share of the total loss
            weight = cfg.class_share / (1 - cfg.class_share) * mse.detach() / ce.detach().clamp(min=1e-8)
            loss = mse + weight * ce
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        step += 1
        row = {"step": float(step), "mse": float(mse.detach()), "ce": ce_value, "loss": float(loss.detach())}
        history.append(row)
        if progress is not None:
            progress(step, cfg.steps, row)
        if checkpoint is not None and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            save_training_state(
                checkpoint,
                arch=ARCH,
                model=model,
                model_config=model.config.to_dict(),
                optimizer=opt,
                step=step,
                rng=rng,
                extra={"train_config": asdict(cfg), "history": history},
            )
    model.eval()
    return TrainState(model=model, step=step, history=history, seconds=time.perf_counter() - start)


def training_summary(state: TrainState, window: int = 20) -> dict[str, Any]:
    """Mean losses over the first and last ``window`` steps (for logs and weights metadata)."""
    h = state.history
    first, last = h[:window], h[-window:]

    def mean(rows: list[dict[str, float]], key: str) -> float:
        vals = [r[key] for r in rows if not math.isnan(r[key])]
        return float(np.mean(vals)) if vals else math.nan

    return {
        "steps": state.step,
        "mse_first": mean(first, "mse"),
        "mse_last": mean(last, "mse"),
        "ce_last": mean(last, "ce"),
        "seconds": round(state.seconds, 1),
    }
