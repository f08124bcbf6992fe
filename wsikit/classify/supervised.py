"""The supervised context CNN: the InfoGAN's critic network trained with labels alone (arrays in, model out).

It is the reference that tells whether the GAN part of the semi-supervised InfoGAN helps: the same
network (:class:`~wsikit.models.infogan.Critic`: three stride-2 convolutions, no batch norm, D_Q head),
the same 7-channel context crops (:func:`~wsikit.classify.context_crops`) and augmentation, trained by
minimizing the cross-entropy of D_Q's logits against the cell type (AdamW, cosine learning rate,
class-balanced batches). Its D_D head is unused.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from wsikit.classify.crops import (
    CONTEXT_CHANNELS,
    crop_augment,
    scale_jitter,
    scanner_jitter,
    stain_jitter,
    to_tensor,
)
from wsikit.classify.naming import CELL_TYPES
from wsikit.errors import ConfigError, ShapeError
from wsikit.models.infogan import Critic, CriticEnsemble, InfoGanConfig

__all__ = ["CNN_ARCH", "SupervisedTrainConfig", "SupervisedState", "train_context_cnn", "train_context_cnns"]

CNN_ARCH = Critic.ARCH
"""Architecture id of the supervised context CNN's weights (a :class:`Critic` with 7 input channels)."""


@dataclass(frozen=True, kw_only=True)
class SupervisedTrainConfig:
    """Hyper-parameters of :func:`train_context_cnn`; the defaults are the shipped ``cells-context-cnn``'s
    configuration (chosen on BRCA-M2C val, docs/classification.md)."""

    steps: int = 4000
    batch_size: int = 96
    lr: float = 1e-3
    weight_decay: float = 1e-4
    width: int = 32
    jitter: float = 1.0
    scanner: bool = True
    """Random sharpness and field-edge changes (:func:`~wsikit.classify.crops.scanner_jitter`)."""
    scale: float = 0.0
    """Zoom half the crops by up to this factor in either direction (:func:`~wsikit.classify.crops.scale_jitter`;
    0 = off)."""
    balanced: bool = True
    """Batches hold the same number of crops of each class (False: drawn as the training set holds them)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps <= 0 or self.batch_size < len(CELL_TYPES) or self.lr <= 0:
            raise ConfigError(
                f"steps, lr must be positive and batch_size >= {len(CELL_TYPES)}, got {self.steps}, {self.lr}, {self.batch_size}"
            )

    def model_config(self, channels: int = CONTEXT_CHANNELS) -> InfoGanConfig:
        return InfoGanConfig(n_classes=len(CELL_TYPES), width=self.width, channels=channels)


@dataclass
class SupervisedState:
    """A trained context CNN and its loss history."""

    model: Critic
    step: int
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def train_context_cnn(
    crops: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.integer],
    config: SupervisedTrainConfig | None = None,
    *,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
) -> SupervisedState:
    """Train the context CNN on (N, 40, 40, C) context crops (C = 7, or 10 with two surroundings fields) with
    cell-type indices ``labels`` (N,).

    Batches draw the same number of crops of each class by default (the classes are unbalanced: stromal
    nuclei are a quarter of BRCA-M2C's train split).

    Raises
    ------
    ShapeError
        Crops not (N, 40, 40, 4 + 3k) or labels of another length.
    ConfigError
        A class with no crop, or labels outside 0..2.
    """
    cfg = config or SupervisedTrainConfig()
    ch = crops.shape[-1] if crops.ndim == 4 else 0
    mcfg = cfg.model_config(max(ch, 1))
    if crops.ndim != 4 or crops.shape[1:3] != (mcfg.size, mcfg.size) or ch < 7 or (ch - 4) % 3:
        raise ShapeError(
            f"crops must be (N, {mcfg.size}, {mcfg.size}, 4 + 3k) context crops, got {crops.shape}"
        )
    y = np.asarray(labels, np.int64)
    if y.shape != (len(crops),):
        raise ShapeError(f"labels must be ({len(crops)},), got {y.shape}")
    k = len(CELL_TYPES)
    if len(y) and (y.min() < 0 or y.max() >= k):
        raise ConfigError(f"labels must lie in 0..{k - 1}")
    by_class = [np.flatnonzero(y == c) for c in range(k)]
    empty = [CELL_TYPES[c] for c, ix in enumerate(by_class) if not len(ix)]
    if empty:
        raise ConfigError(f"no labelled crop of class {', '.join(empty)}")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = Critic(mcfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    data = to_tensor(crops)
    target = torch.from_numpy(y)
    per = cfg.batch_size // k
    history: list[dict[str, float]] = []
    model.train()
    start = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * (step - 1) / cfg.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        if cfg.balanced:
            sel = torch.from_numpy(np.concatenate([rng.choice(ix, per) for ix in by_class]))
        else:
            sel = torch.from_numpy(rng.integers(0, len(y), per * k))
        x = crop_augment(data[sel], gen)
        if cfg.jitter > 0:
            x = stain_jitter(x, gen, strength=cfg.jitter)
        if cfg.scanner:
            x = scanner_jitter(x, gen)
        if cfg.scale > 0:
            x = scale_jitter(x, gen, max_scale=cfg.scale)
        _, logits = model(x)
        loss = F.cross_entropy(logits, target[sel])
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        row = {
            "step": float(step),
            "loss": float(loss.detach()),
            "accuracy": float((logits.argmax(1) == target[sel]).float().mean()),
            "lr": lr,
        }
        history.append(row)
        if progress is not None:
            progress(step, cfg.steps, row)
    model.eval()
    return SupervisedState(model, cfg.steps, history, time.perf_counter() - start)


def train_context_cnns(
    crops: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.integer],
    config: SupervisedTrainConfig | None = None,
    *,
    members: int = 1,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
) -> tuple[Critic | CriticEnsemble, list[SupervisedState]]:
    """:func:`train_context_cnn` ``members`` times with seeds ``config.seed``, ``config.seed + 1``, ...: the
    network (one :class:`~wsikit.models.infogan.Critic`, or a
    :class:`~wsikit.models.infogan.CriticEnsemble` that averages the members' softmaxes) and each member's
    training state. The first member is exactly what :func:`train_context_cnn` trains with ``config``."""
    cfg = config or SupervisedTrainConfig()
    if not isinstance(members, int) or members < 1:
        raise ConfigError(f"members must be a positive integer, got {members!r}")
    states = []
    for i in range(members):
        member_cfg = dataclasses.replace(cfg, seed=cfg.seed + i)
        member_progress = None
        if progress is not None:  # one count over all members

            def member_progress(step: int, total: int, row: dict[str, float], i: int = i) -> None:
                progress(i * total + step, members * total, row)

        states.append(train_context_cnn(crops, labels, member_cfg, progress=member_progress))
    net: Critic | CriticEnsemble = (
        states[0].model if members == 1 else CriticEnsemble.of([st.model for st in states])
    )
    return net.eval(), states
