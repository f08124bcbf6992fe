"""Training loop of the 3-class nuclei U-Net on annotated samples (arrays in, model out).

Each step draws random 144 px crops (probability proportional to image area), 90-degree rotations and
flips, and a stain augmentation (each optical-density channel scaled and shifted at random, so the
network sees other H&E stainings), optionally a stronger jitter of the hematoxylin and eosin amounts
(``hed_jitter``, Ruifrok-Johnston vectors), grayscale (``gray``) and Gaussian blur (``blur``: share of the
batch). With ``cnn_stain`` a share of the crops is cut from the image as a stain normalizer restyles it
(``restyle``, e.g. the shipped CNN: what ``wsikit run --stain cnn`` feeds the U-Net). Loss:
cross-entropy with a doubled weight on the boundary class, optionally times a U-Net weight map that stresses
the gaps between touching nuclei (``touch_weight``, ``touch_sigma``), plus a soft Dice loss on the nucleus
(interior + boundary) foreground, plus, with ``distance_weight`` > 0, that weight times a binary cross-entropy
of a fourth output against each nucleus' normalized distance map (:func:`~wsikit.segment.targets.distance_target`;
fine-tuning a 3-class network adds the output, its class outputs kept). Adam, lr 1e-4 (the method's), constant or cosine-decayed to 1%. A
5% validation split (by image, fixed by the seed) is scored with pixel Dice every ``eval_every`` steps.
Checkpoints every ``checkpoint_every`` steps; ``resume`` continues bit-for-bit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from wsikit.datasets.nuclei import Sample
from wsikit.errors import ConfigError
from wsikit.models.training_state import load_training_state, save_training_state
from wsikit.models.unet import UNet, UNetConfig
from wsikit.segment.targets import distance_target, three_class_target, touching_weight_map

__all__ = ["SegmenterTrainConfig", "SegmenterState", "train_segmenter", "ARCH"]

ARCH = UNet.ARCH


@dataclass(frozen=True, kw_only=True)
class SegmenterTrainConfig:
    """Hyper-parameters of :func:`train_segmenter`."""

    steps: int = 3000
    batch_size: int = 16
    crop: int = 144
    lr: float = 1e-4
    base: int = 16
    boundary_weight: float = 2.0
    touch_weight: float = 0.0
    touch_sigma: float = 4.0
    lr_schedule: str = "constant"
    blur: float = 0.0
    hed_jitter: float = 0.0
    gray: float = 0.0
    cnn_stain: float = 0.0
    distance_weight: float = 0.0
    val_fraction: float = 0.05
    seed: int = 0
    checkpoint_every: int = 100
    eval_every: int = 250

    def __post_init__(self) -> None:
        if self.steps <= 0 or self.batch_size <= 0:
            raise ConfigError(f"steps and batch_size must be positive, got {self.steps}, {self.batch_size}")
        if self.crop <= 0 or self.crop % 16:
            raise ConfigError(f"crop must be a positive multiple of 16, got {self.crop}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ConfigError(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if self.touch_weight < 0 or self.touch_sigma <= 0:
            raise ConfigError("touch_weight >= 0 and touch_sigma > 0 are required")
        if not (0.0 <= self.blur <= 1.0 and 0.0 <= self.gray <= 1.0 and 0.0 <= self.hed_jitter < 1.0):
            raise ConfigError("blur and gray must be in [0, 1], hed_jitter in [0, 1)")
        if not 0.0 <= self.cnn_stain <= 1.0:
            raise ConfigError(f"cnn_stain must be in [0, 1], got {self.cnn_stain}")
        if self.distance_weight < 0:
            raise ConfigError(f"distance_weight must be >= 0, got {self.distance_weight}")
        if not 0.0 <= self.val_fraction < 0.5:
            raise ConfigError(f"val_fraction must be in [0, 0.5), got {self.val_fraction}")


@dataclass
class SegmenterState:
    """A trained model, its loss history and validation scores."""

    model: UNet
    step: int
    history: list[dict[str, float]] = field(default_factory=list)
    validation: list[dict[str, float]] = field(default_factory=list)
    val_names: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _pad_to(img: npt.NDArray[Any], size: int, value: int) -> npt.NDArray[Any]:
    ph, pw = max(0, size - img.shape[0]), max(0, size - img.shape[1])
    if not ph and not pw:
        return img
    pad = [(0, ph), (0, pw)] + [(0, 0)] * (img.ndim - 2)
    return np.pad(img, pad, mode="constant", constant_values=value)


class _Crops:
    """Random augmented training crops: images, 3-class targets, per-pixel loss weights and (with
    ``distance_weight``) normalized distance maps."""

    def __init__(
        self,
        samples: Sequence[Sample],
        cfg: SegmenterTrainConfig,
        restyle: Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.uint8]] | None = None,
    ) -> None:
        if not samples:
            raise ConfigError("no training samples")
        if cfg.cnn_stain > 0 and restyle is None:
            raise ConfigError("cnn_stain > 0 needs a restyle function (the stain normalizer to imitate)")
        crop = cfg.crop
        self.images = [_pad_to(s.image, crop, 255) for s in samples]
        self.cnn_stain = cfg.cnn_stain
        self.restyled = (
            [_pad_to(np.asarray(restyle(s.image), np.uint8), crop, 255) for s in samples]
            if restyle is not None and cfg.cnn_stain > 0
            else None
        )
        self.targets = [_pad_to(three_class_target(s.labels), crop, 0) for s in samples]
        self.weights = [
            _pad_to(touching_weight_map(s.labels, w0=cfg.touch_weight, sigma=cfg.touch_sigma), crop, 1)
            if cfg.touch_weight > 0
            else None
            for s in samples
        ]
        self.distances = (
            [_pad_to(distance_target(s.labels), crop, 0) for s in samples]
            if cfg.distance_weight > 0
            else None
        )
        areas = np.array([t.size for t in self.targets], float)
        self.p = areas / areas.sum()
        self.crop = crop
        self.blur = cfg.blur
        self.hed_jitter = cfg.hed_jitter
        self.gray = cfg.gray

    def batch(
        self, rng: np.random.Generator, n: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Images (n, 3, c, c) in [0, 1], class targets, loss weights and distance targets (or None)."""
        c = self.crop
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        ws: list[np.ndarray] = []
        ds: list[np.ndarray] = []
        for i in rng.choice(len(self.images), size=n, p=self.p):
            img, tgt, wmap = self.images[i], self.targets[i], self.weights[i]
            if self.restyled is not None and rng.random() < self.cnn_stain:
                img = self.restyled[i]
            y = int(rng.integers(0, img.shape[0] - c + 1))
            x = int(rng.integers(0, img.shape[1] - c + 1))
            a, b = img[y : y + c, x : x + c], tgt[y : y + c, x : x + c]
            w = wmap[y : y + c, x : x + c] if wmap is not None else np.ones((c, c), np.float32)
            views = [a, b, w]
            if self.distances is not None:
                views.append(self.distances[i][y : y + c, x : x + c])
            k = int(rng.integers(0, 4))
            views = [np.rot90(v, k) for v in views]
            if rng.random() < 0.5:
                views = [v[:, ::-1] for v in views]
            for out, v in zip((xs, ys, ws, ds), views, strict=False):
                out.append(np.ascontiguousarray(v))
        images = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float()
        # stain augmentation in optical density: per-channel scale and shift
        od = -torch.log((images + 1.0) / 256.0)
        scale = torch.from_numpy(rng.uniform(0.85, 1.15, (n, 3, 1, 1))).float()
        shift = torch.from_numpy(rng.uniform(-0.05, 0.05, (n, 3, 1, 1))).float()
        od = (od * scale + shift).clamp(min=0)
        if self.hed_jitter > 0:
            od = _hed_jitter(od, rng, self.hed_jitter)
        images = (256.0 * torch.exp(-od) - 1.0).clamp(0, 255) / 255.0
        if self.gray > 0:
            to_gray = torch.from_numpy(rng.random(n) < self.gray)
            luma = (images * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
            images = torch.where(to_gray.view(n, 1, 1, 1), luma.expand_as(images), images)
        if self.blur > 0:
            images = _random_blur(images, rng, self.blur)
        dist = torch.from_numpy(np.stack(ds)) if self.distances is not None else None
        return images, torch.from_numpy(np.stack(ys)).long(), torch.from_numpy(np.stack(ws)), dist


# Ruifrok & Johnston stain vectors (rows: hematoxylin, eosin, residual) in optical density
_HED_FROM_RGB = torch.linalg.inv(
    torch.tensor([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=torch.float32)
)
_RGB_FROM_HED = torch.linalg.inv(_HED_FROM_RGB)


def _hed_jitter(od: torch.Tensor, rng: np.random.Generator, strength: float) -> torch.Tensor:
    """Scale each crop's hematoxylin and eosin amounts by U(1 - s, 1 + s) and shift them by U(-s/10, s/10)."""
    n = od.shape[0]
    hed = torch.einsum("bchw,cd->bdhw", od, _HED_FROM_RGB)
    scale = torch.from_numpy(rng.uniform(1 - strength, 1 + strength, (n, 3, 1, 1))).float()
    shift = torch.from_numpy(rng.uniform(-strength / 10, strength / 10, (n, 3, 1, 1))).float()
    scale[:, 2], shift[:, 2] = 1.0, 0.0
    hed = hed * scale + shift
    return torch.einsum("bdhw,dc->bchw", hed, _RGB_FROM_HED).clamp(min=0)


def _random_blur(images: torch.Tensor, rng: np.random.Generator, p: float) -> torch.Tensor:
    """Gaussian blur (sigma 0.5-1.5 px) on a random ``p`` share of the batch: scanners differ in focus."""
    out = images.clone()
    r = 4
    grid = torch.arange(-r, r + 1, dtype=torch.float32)
    for j in np.flatnonzero(rng.random(images.shape[0]) < p):
        sigma = float(rng.uniform(0.5, 1.5))
        k = torch.exp(-(grid**2) / (2 * sigma**2))
        k = (k / k.sum()).view(1, 1, 1, -1).repeat(3, 1, 1, 1)
        x = F.pad(images[j : j + 1], (r, r, r, r), mode="reflect")
        x = F.conv2d(x, k, groups=3)
        out[j] = F.conv2d(x, k.transpose(2, 3), groups=3)[0]
    return out


def _init_from(init: UNet, *, distance: bool) -> UNet:
    """A copy of ``init`` for fine-tuning; with ``distance`` and a 3-class ``init``, the head gains the
    distance output (its class outputs copied, the new one freshly initialized)."""
    from dataclasses import replace

    model = UNet(replace(init.config, distance=distance))
    state = init.state_dict()
    if distance and not init.config.distance:
        head = model.head
        n = init.config.n_outputs
        with torch.no_grad():
            head.weight[:n] = state.pop("head.weight")
            head.bias[:n] = state.pop("head.bias")  # type: ignore[index]
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or set(missing) != {"head.weight", "head.bias"}:
            raise ConfigError(
                f"init weights do not fit the U-Net: missing {missing}, unexpected {unexpected}"
            )
    else:
        model.load_state_dict(state)
    return model


def _dice(pred_fg: torch.Tensor, true_fg: torch.Tensor) -> float:
    inter = float((pred_fg & true_fg).sum())
    total = float(pred_fg.sum() + true_fg.sum())
    return 2 * inter / total if total else 1.0


@torch.no_grad()
def _validate(model: UNet, samples: Sequence[Sample]) -> float:
    model.eval()
    scores = []
    for s in samples:
        h, w = s.labels.shape
        ph, pw = (-h) % 16, (-w) % 16
        x = torch.from_numpy(np.array(s.image)).permute(2, 0, 1)[None].float() / 255.0
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        pred = model(x)[:, :3].argmax(dim=1)[0, :h, :w]
        scores.append(_dice(pred > 0, torch.from_numpy(s.labels.astype(np.int64)) > 0))
    model.train()
    return float(np.mean(scores)) if scores else math.nan


def _validation_split(names: list[str], fraction: float, order: npt.NDArray[np.intp]) -> list[bool]:
    """Which images are held out for validation: ``fraction`` of each dataset (the part of the name before
    ``/``), at least one of any dataset with two or more images, taken in ``order`` (a random permutation).

    Stratified since 2026-11-30: a plain 5% of the pooled images was all DSB 2018 tiles (the most numerous,
    and unlike H&E tissue), so the instance thresholds were chosen on them. One dataset alone gives the same
    split as before.
    """
    if len(names) < 2 or fraction <= 0:
        return [False] * len(names)
    groups: dict[str, list[int]] = {}
    for i in order.tolist():
        groups.setdefault(names[i].split("/", 1)[0] if "/" in names[i] else "", []).append(i)
    held = [False] * len(names)
    for members in groups.values():
        k = int(round(fraction * len(members)))
        k = max(k, 1) if len(members) >= 2 else 0
        for i in members[:k]:
            held[i] = True
    return held


def train_segmenter(
    samples: Sequence[Sample],
    config: SegmenterTrainConfig | None = None,
    *,
    checkpoint: Path | None = None,
    resume: bool = False,
    init: UNet | None = None,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
    restyle: Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.uint8]] | None = None,
) -> SegmenterState:
    """Train the U-Net on ``samples`` (at the working resolution). See the module docstring.

    ``init`` starts from a trained network (fine-tuning) instead of random weights; its width wins over
    ``config.base``; a 3-class ``init`` gains the distance output (new weights) when ``config.distance_weight``
    > 0. ``restyle`` maps an (H, W, 3) image to its stain-normalized version; it is applied once
    per training image and needed when ``config.cnn_stain > 0``.
    """
    cfg = config or SegmenterTrainConfig()
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(samples))
    is_val = _validation_split([s.name for s in samples], cfg.val_fraction, order)
    val = [samples[i] for i in order if is_val[i]]
    train = [samples[i] for i in order if not is_val[i]]
    crops = _Crops(train, cfg, restyle)
    torch.manual_seed(cfg.seed)
    want_distance = cfg.distance_weight > 0
    model = UNet(UNetConfig(base=cfg.base, distance=want_distance))
    if init is not None:
        model = _init_from(init, distance=want_distance or init.config.distance)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    weights = torch.tensor([1.0, 1.0, cfg.boundary_weight])
    step = 0
    history: list[dict[str, float]] = []
    validation: list[dict[str, float]] = []
    if resume and checkpoint is not None and checkpoint.exists():
        step, extra = load_training_state(
            checkpoint, arch=ARCH, model=model, model_config=model.config.to_dict(), optimizer=opt, rng=rng
        )
        history, validation = list(extra["history"]), list(extra["validation"])
    model.train()
    start = time.perf_counter()
    while step < cfg.steps:
        if cfg.lr_schedule == "cosine":
            for group in opt.param_groups:
                group["lr"] = cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * step / cfg.steps)))
        x, y, wmap, dist = crops.batch(rng, cfg.batch_size)
        out = model(x)
        logits = out[:, :3]
        ce_px = F.cross_entropy(logits, y, reduction="none") * weights[y] * wmap
        ce = ce_px.sum() / (weights[y] * wmap).sum()
        probs = logits.softmax(dim=1)
        fg_pred = probs[:, 1] + probs[:, 2]
        fg_true = (y > 0).float()
        soft_dice = 1 - (2 * (fg_pred * fg_true).sum() + 1) / (fg_pred.sum() + fg_true.sum() + 1)
        loss = ce + soft_dice
        dist_loss = torch.zeros(())
        if dist is not None:
            dist_loss = F.binary_cross_entropy_with_logits(out[:, 3], dist)
            loss = loss + cfg.distance_weight * dist_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        row = {
            "step": float(step),
            "loss": float(loss.detach()),
            "ce": float(ce.detach()),
            "dice_loss": float(soft_dice.detach()),
            **({"distance_loss": float(dist_loss.detach())} if dist is not None else {}),
        }
        history.append(row)
        if val and (step % cfg.eval_every == 0 or step == cfg.steps):
            validation.append({"step": float(step), "val_dice": _validate(model, val)})
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
                extra={"train_config": asdict(cfg), "history": history, "validation": validation},
            )
    model.eval()
    return SegmenterState(
        model, step, history, validation, [s.name for s in val], time.perf_counter() - start
    )
