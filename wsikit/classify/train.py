"""Training loop of the InfoGAN on nucleus crops (arrays in, model out).

Each iteration runs ``n_critic`` critic steps, then one generator step:

- critic (trunk + D_D, Adam lr 1e-4): ``D(G(z, c)) - D(x) + lambda * (||grad D(x_hat)|| - 1)^2`` on random
  interpolates ``x_hat`` (WGAN-GP, Gulrajani et al. 2017, lambda 10);
- generator (Adam lr 1e-4) and D_Q (Adam lr 2e-4): ``-D(G(z, c)) + info_weight * CE(D_Q(G(z, c)), c)``,
  the mutual-information lower bound of InfoGAN (Chen et al. 2016) for a categorical code.

Optionally (``real_info_weight`` > 0, wsikit's addition to the method) D_Q also learns from real crops
without labels at each generator step, by maximizing the mutual information between a crop and its
predicted code, ``H(mean_x p(c|x)) - mean_x H(p(c|x))`` (Krause et al. 2010, "regularized information
maximization"): confident predictions that use every code. This keeps D_Q, which otherwise only sees
generated nuclei, from putting most real nuclei in one cluster while the generator is still imperfect.

Real crops get random 90-degree rotations and flips. c is drawn uniformly. All three networks share one
Adam optimizer with three parameter groups (each step only moves the group whose gradients it computed),
so the shared training checkpoint format resumes the run exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from wsikit.classify.crops import crop_augment, stain_jitter, to_tensor
from wsikit.errors import ConfigError, ShapeError
from wsikit.models.infogan import Critic, Generator, InfoGanConfig
from wsikit.models.training_state import load_training_state, save_training_state

__all__ = [
    "ClassifierTrainConfig",
    "InfoGan",
    "ClassifierState",
    "train_classifier",
    "ARCH",
    "MIN_CROPS",
    "to_tensor",
]

ARCH = "infogan-v1"  # the whole GAN (generator. and critic.); models.Critic loads its critic
MIN_CROPS = 256
"""Fewest crops a training run accepts."""


@dataclass(frozen=True, kw_only=True)
class ClassifierTrainConfig:
    """Hyper-parameters of :func:`train_classifier` (learning rates are the method's)."""

    n_classes: int = 3
    steps: int = 3000
    batch_size: int = 64
    n_critic: int = 5
    gp_weight: float = 10.0
    info_weight: float = 1.0
    real_info_weight: float = 0.0
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    lr_q: float = 2e-4
    width: int = 32
    noise_dim: int = 16
    seed: int = 0
    checkpoint_every: int = 100
    grid_every: int = 500
    channels: int = 3
    label_weight: float = 0.0
    """Weight of the cross-entropy of D_Q's code against the cell type of labelled real crops (0: unsupervised,
    the method as published; > 0: the semi-supervised InfoGAN, whose code k is cell type k)."""
    jitter: float = 0.0
    """Strength of the random brightness / contrast / colour jitter of real crops (0: none)."""

    def __post_init__(self) -> None:
        if self.steps <= 0 or self.batch_size < 2 or self.n_critic < 1:
            raise ConfigError(
                f"steps, batch_size >= 2 and n_critic must be positive, got {self.steps}, {self.batch_size}, {self.n_critic}"
            )
        if self.n_classes < 2:
            raise ConfigError(f"n_classes must be >= 2, got {self.n_classes}")

    def model_config(self) -> InfoGanConfig:
        return InfoGanConfig(
            n_classes=self.n_classes, noise_dim=self.noise_dim, width=self.width, channels=self.channels
        )


class InfoGan(nn.Module):
    """The generator and the two-headed critic as one module (one state dict, one checkpoint)."""

    def __init__(self, config: InfoGanConfig) -> None:
        super().__init__()
        self.config = config
        self.generator = Generator(config)
        self.critic = Critic(config)

    @torch.no_grad()
    def predict(self, crops: torch.Tensor, *, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        """Cluster of each real crop (argmax of D_Q) and its probability; crops (B, 3, S, S) in [-1, 1]."""
        was = self.training
        self.eval()
        probs = []
        for i in range(0, crops.shape[0], batch_size):
            _, logits = self.critic(crops[i : i + batch_size])
            probs.append(logits.softmax(dim=1))
        self.train(was)
        p = torch.cat(probs) if probs else torch.zeros(0, self.config.n_classes)
        conf, cls = p.max(dim=1) if len(p) else (torch.zeros(0), torch.zeros(0, dtype=torch.long))
        return cls, conf

    @torch.no_grad()
    def sample_grid(self, rows: int = 8, *, seed: int = 0) -> npt.NDArray[np.uint8]:
        """A (rows * S, K * S, 3) uint8 grid of generated nuclei: each row one fixed z, each column one class
        (the first three channels: the nucleus crop)."""
        cfg = self.config
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(rows, cfg.noise_dim, generator=g).repeat_interleave(cfg.n_classes, dim=0)
        c = torch.arange(cfg.n_classes).repeat(rows)
        was = self.generator.training
        self.generator.eval()
        img = self.generator(z, c)
        self.generator.train(was)
        s = cfg.size
        arr = ((img[:, :3].clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
        grid: npt.NDArray[np.uint8] = (
            arr.reshape(rows, cfg.n_classes, s, s, 3)
            .transpose(0, 2, 1, 3, 4)
            .reshape(rows * s, cfg.n_classes * s, 3)
        )
        return grid


def _augment(x: torch.Tensor, gen: torch.Generator, jitter: float) -> torch.Tensor:
    out = crop_augment(x, gen)
    return stain_jitter(out, gen, strength=jitter) if jitter > 0 else out


@dataclass
class ClassifierState:
    """A trained InfoGAN and its loss history."""

    model: InfoGan
    step: int
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def _optimizer(model: InfoGan, cfg: ClassifierTrainConfig) -> torch.optim.Adam:
    c = model.critic
    return torch.optim.Adam(
        [
            {"params": list(model.generator.parameters()), "lr": cfg.lr_g},
            {"params": list(c.trunk.parameters()) + list(c.d_head.parameters()), "lr": cfg.lr_d},
            {"params": list(c.q_head.parameters()), "lr": cfg.lr_q},
        ],
        betas=(0.5, 0.9),
    )


def train_classifier(
    crops: npt.NDArray[np.uint8],
    config: ClassifierTrainConfig | None = None,
    *,
    checkpoint: Path | None = None,
    resume: bool = False,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
    on_grid: Callable[[int, npt.NDArray[np.uint8]], None] | None = None,
    labelled: tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]] | None = None,
) -> ClassifierState:
    """Train the InfoGAN on (N, 40, 40, C) uint8 crops. See the module docstring.

    ``labelled`` (crops, cell-type index) with ``config.label_weight`` > 0 trains the semi-supervised
    InfoGAN: at every critic step the trunk and D_Q also minimize the cross-entropy of D_Q's code against
    the cell type of a batch of labelled crops (class-balanced sampling), so code k names cell type k.

    Raises
    ------
    ConfigError
        Fewer than :data:`MIN_CROPS` crops.
    ShapeError
        Crops not of the configured size.
    """
    cfg = config or ClassifierTrainConfig()
    mcfg = cfg.model_config()
    shape = (mcfg.size, mcfg.size, mcfg.channels)
    if crops.ndim != 4 or crops.shape[1:] != shape:
        raise ShapeError(f"crops must be (N, {', '.join(map(str, shape))}), got {crops.shape}")
    if cfg.label_weight > 0:
        if labelled is None or len(labelled[0]) == 0:
            raise ConfigError("label_weight > 0 needs labelled crops")
        if labelled[0].shape[1:] != shape or len(labelled[0]) != len(labelled[1]):
            raise ShapeError(f"labelled crops must be (N, {', '.join(map(str, shape))}) with N labels")
        if labelled[1].min() < 0 or labelled[1].max() >= cfg.n_classes:
            raise ConfigError(f"labels must lie in 0..{cfg.n_classes - 1}")
    if len(crops) < MIN_CROPS:
        raise ConfigError(
            f"too few nuclei to train the classifier: {len(crops)} crops, need at least {MIN_CROPS}"
        )
    data = to_tensor(crops)
    lab_x = to_tensor(labelled[0]) if labelled is not None and cfg.label_weight > 0 else None
    lab_y = torch.from_numpy(np.asarray(labelled[1], np.int64)) if lab_x is not None and labelled else None
    by_class = [np.flatnonzero(lab_y.numpy() == c) for c in range(cfg.n_classes)] if lab_y is not None else []
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = InfoGan(mcfg)
    opt = _optimizer(model, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    step = 0
    history: list[dict[str, float]] = []
    if resume and checkpoint is not None and checkpoint.exists():
        step, extra = load_training_state(
            checkpoint, arch=ARCH, model=model, model_config=mcfg.to_dict(), optimizer=opt, rng=rng
        )
        history = list(extra["history"])
        gen.set_state(extra["augment_rng"])
    G, D = model.generator, model.critic
    d_params = list(D.trunk.parameters()) + list(D.d_head.parameters())
    b, k = cfg.batch_size, cfg.n_classes
    model.train()
    label_ce = torch.zeros(())
    start = time.perf_counter()
    while step < cfg.steps:
        for _ in range(cfg.n_critic):
            real = _augment(data[torch.from_numpy(rng.integers(0, len(data), b))], gen, cfg.jitter)
            z = torch.randn(b, cfg.noise_dim, generator=gen)
            c = torch.randint(0, k, (b,), generator=gen)
            with torch.no_grad():
                fake = G(z, c)
            alpha = torch.rand(b, 1, 1, 1, generator=gen)
            mix = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
            d_mix, _ = D(mix)
            (grad,) = torch.autograd.grad(d_mix.sum(), mix, create_graph=True)
            gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
            d_real, _ = D(real)
            d_fake, _ = D(fake)
            wdist = d_real.mean() - d_fake.mean()
            loss_d = -wdist + cfg.gp_weight * gp
            if lab_x is not None and lab_y is not None:
                pick = np.concatenate([rng.choice(ix, b // k) for ix in by_class if len(ix)])
                sel = torch.from_numpy(pick)
                _, lab_logits = D(_augment(lab_x[sel], gen, cfg.jitter))
                label_ce = F.cross_entropy(lab_logits, lab_y[sel])
                loss_d = loss_d + cfg.label_weight * label_ce
            opt.zero_grad(set_to_none=True)
            loss_d.backward()
            opt.step()
        z = torch.randn(b, cfg.noise_dim, generator=gen)
        c = torch.randint(0, k, (b,), generator=gen)
        d_fake, logits = D(G(z, c))
        info = F.cross_entropy(logits, c)
        loss_g = -d_fake.mean() + cfg.info_weight * info
        real_mi = torch.zeros(())
        if cfg.real_info_weight > 0:
            real = _augment(data[torch.from_numpy(rng.integers(0, len(data), b))], gen, cfg.jitter)
            p = D.q_head(D.features(real)).softmax(dim=1)
            marginal = p.mean(dim=0)
            h_marginal = -(marginal * marginal.clamp_min(1e-8).log()).sum()
            h_cond = -(p * p.clamp_min(1e-8).log()).sum(dim=1).mean()
            real_mi = h_marginal - h_cond
            loss_g = loss_g - cfg.real_info_weight * real_mi
        opt.zero_grad(set_to_none=True)
        loss_g.backward()
        for p in d_params:  # the critic does not learn from the generator's step
            p.grad = None
        opt.step()
        step += 1
        row = {
            "step": float(step),
            "wasserstein": float(wdist.detach()),
            "gp": float(gp.detach()),
            "info_ce": float(info.detach()),
            "q_accuracy": float((logits.argmax(1) == c).float().mean()),
            "real_mi": float(real_mi.detach()),
        }
        if lab_x is not None:
            row["label_ce"] = float(label_ce.detach())
        history.append(row)
        if progress is not None:
            progress(step, cfg.steps, row)
        if on_grid is not None and (step % cfg.grid_every == 0 or step == cfg.steps):
            on_grid(step, model.sample_grid())
        if checkpoint is not None and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            save_training_state(
                checkpoint,
                arch=ARCH,
                model=model,
                model_config=mcfg.to_dict(),
                optimizer=opt,
                step=step,
                rng=rng,
                extra={"train_config": asdict(cfg), "history": history, "augment_rng": gen.get_state()},
            )
    model.eval()
    return ClassifierState(model=model, step=step, history=history, seconds=time.perf_counter() - start)
