"""InfoGAN for nucleus crops: a generator G(z, c) and a critic trunk with two heads (D_D and D_Q).

After Hu et al. 2018 ("Unsupervised learning for cell-level visual representation in histopathology
images with generative adversarial networks"), as used by the method's paper:

- G: z (``noise_dim``, default 16) concatenated with a one-hot categorical code c (``n_classes``) ->
  fully connected -> 5x5 map -> three stride-2 transposed convolutions -> 40x40x3 in [-1, 1];
- D trunk: three stride-2 convolutions 40 -> 20 -> 10 -> 5 with LeakyReLU and no batch norm (a WGAN-GP
  critic must not mix samples of a batch);
- D_D: a linear Wasserstein critic on the trunk features;
- D_Q: a two-layer head predicting c (logits), the mutual-information term's posterior.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from wsikit._typing import PathLike
from wsikit.errors import ConfigError, ShapeError
from wsikit.models.registry import Pretrained, WeightsError, load_model

__all__ = [
    "InfoGanConfig",
    "Generator",
    "Critic",
    "CriticEnsemble",
    "CELL_NETWORK_ARCHS",
    "load_cell_network",
]


@dataclass(frozen=True, kw_only=True)
class InfoGanConfig:
    """Architecture of the InfoGAN (both networks).

    Parameters
    ----------
    n_classes : int
        Categories of the code c, the number of clusters (3 default; 5 supported).
    noise_dim : int
        Size of the noise vector z.
    width : int
        Channels of the first critic layer (doubles at each stride).
    size : int
        Side of the crops (40; must be divisible by 8).
    channels : int
        Channels of a crop: 3 (RGB nucleus crop, the method's input) or 7 (the context input of
        :func:`wsikit.classify.context_crops`: nucleus RGB, nucleus mask, surroundings RGB).
    """

    n_classes: int = 3
    noise_dim: int = 16
    width: int = 64
    size: int = 40
    channels: int = 3

    def __post_init__(self) -> None:
        if not isinstance(self.n_classes, int) or self.n_classes < 2:
            raise ConfigError(f"n_classes must be an integer >= 2, got {self.n_classes!r}")
        if self.noise_dim < 1 or self.width < 4:
            raise ConfigError(f"noise_dim must be >= 1 and width >= 4, got {self.noise_dim}, {self.width}")
        if not isinstance(self.channels, int) or self.channels < 1:
            raise ConfigError(f"channels must be a positive integer, got {self.channels!r}")
        if self.size % 8 or self.size < 16:
            raise ConfigError(f"size must be a multiple of 8 and >= 16, got {self.size}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Generator(nn.Module):
    """G(z, c): (B, noise_dim) noise and (B,) integer codes -> (B, channels, size, size) images in [-1, 1]."""

    def __init__(self, config: InfoGanConfig) -> None:
        super().__init__()
        self.config = config
        w, s = config.width, config.size // 8
        self.fc = nn.Sequential(
            nn.Linear(config.noise_dim + config.n_classes, 4 * w * s * s),
            nn.BatchNorm1d(4 * w * s * s),
            nn.ReLU(inplace=True),
        )
        self.net = nn.Sequential(
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1),
            nn.BatchNorm2d(2 * w),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(w, config.channels, 4, 2, 1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if z.ndim != 2 or z.shape[1] != cfg.noise_dim or c.shape != (z.shape[0],):
            raise ShapeError(
                f"z must be (B, {cfg.noise_dim}) and c (B,), got {tuple(z.shape)}, {tuple(c.shape)}"
            )
        onehot = torch.nn.functional.one_hot(c.long(), cfg.n_classes).to(z.dtype)
        h = self.fc(torch.cat([z, onehot], dim=1))
        s = cfg.size // 8
        return self.net(h.view(z.shape[0], 4 * cfg.width, s, s))  # type: ignore[no-any-return]


class Critic(nn.Module, Pretrained):
    """Shared trunk with the Wasserstein head D_D and the code posterior head D_Q.

    ``forward(x)`` returns ``(critic, logits)``: (B,) scores and (B, n_classes) logits of c.
    Input (B, channels, size, size) in [-1, 1].

    Weights: the labelled context CNN's files (``context-cnn-v1``: this network alone) and the InfoGAN's
    (``infogan-v1``: the whole GAN, the critic under ``critic.``) both load with :meth:`load`.
    """

    ARCH: ClassVar[str] = "context-cnn-v1"
    ALSO_LOADS: ClassVar[dict[str, str]] = {"infogan-v1": "critic."}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Critic:
        return cls(InfoGanConfig(**config))

    def __init__(self, config: InfoGanConfig) -> None:
        super().__init__()
        self.config = config
        w, s = config.width, config.size // 8
        self.trunk = nn.Sequential(
            nn.Conv2d(config.channels, w, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(w, 2 * w, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten(),
        )
        feat = 4 * w * s * s
        self.d_head = nn.Linear(feat, 1)
        self.q_head = nn.Sequential(
            nn.Linear(feat, 128), nn.LeakyReLU(0.2, inplace=True), nn.Linear(128, config.n_classes)
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        size, ch = self.config.size, self.config.channels
        if x.ndim != 4 or x.shape[1:] != (ch, size, size):
            raise ShapeError(f"crops must be (B, {ch}, {size}, {size}), got {tuple(x.shape)}")
        return self.trunk(x)  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.d_head(f).squeeze(1), self.q_head(f)


class CriticEnsemble(nn.Module, Pretrained):
    """Critics of one architecture (e.g. context CNNs trained with different seeds) as one network.

    ``forward(x)`` returns ``(critic, logits)`` as :class:`Critic` does: the members' mean critic score, and
    the log of their mean D_Q softmax, so that a softmax of the logits is the mean of the members' softmaxes.

    Examples
    --------
    >>> cfg = InfoGanConfig(width=4, channels=7)
    >>> members = [Critic(cfg), Critic(cfg)]
    >>> net = CriticEnsemble.of(members)
    >>> x = torch.rand(2, 7, 40, 40) * 2 - 1
    >>> mean = (members[0](x)[1].softmax(1) + members[1](x)[1].softmax(1)) / 2
    >>> bool(torch.allclose(net(x)[1].softmax(1), mean, atol=1e-6)), net.config_dict()["members"]
    (True, 2)
    """

    ARCH: ClassVar[str] = "context-cnn-ensemble-v1"

    def __init__(self, config: InfoGanConfig, members: int) -> None:
        super().__init__()
        if not isinstance(members, int) or members < 1:
            raise ConfigError(f"members must be a positive integer, got {members!r}")
        self.config = config
        self.members = nn.ModuleList(Critic(config) for _ in range(members))

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> CriticEnsemble:
        c = dict(config)
        members = c.pop("members", None)
        if members is None:
            raise ConfigError("an ensemble's config must say how many members it has")
        return cls(InfoGanConfig(**c), int(members))

    @classmethod
    def of(cls, critics: list[Critic]) -> CriticEnsemble:
        """An ensemble holding copies of the weights of ``critics`` (all of one config)."""
        if not critics or any(c.config != critics[0].config for c in critics):
            raise ConfigError("an ensemble needs at least one critic, all of the same architecture")
        net = cls(critics[0].config, len(critics))
        for member, critic in zip(net.members, critics, strict=True):
            member.load_state_dict(critic.state_dict())
        return net

    def config_dict(self) -> dict[str, Any]:
        """The config a weights file stores (:meth:`from_config` reads it back)."""
        return {**self.config.to_dict(), "members": len(self.members)}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outs = [m(x) for m in self.members]
        score = torch.stack([o[0] for o in outs]).mean(dim=0)
        log_p = torch.stack([o[1].log_softmax(dim=1) for o in outs])
        return score, torch.logsumexp(log_p, dim=0) - math.log(len(outs))


CELL_NETWORK_ARCHS = (*Critic.accepted_archs(), CriticEnsemble.ARCH)
"""Architecture ids of the files :func:`load_cell_network` reads (a cell-type classifier's weights)."""


def load_cell_network(path: PathLike) -> Critic | CriticEnsemble:
    """The cell-type network in a weights file: a context CNN (``context-cnn-v1``), the critic of an InfoGAN
    (``infogan-v1``) or an ensemble of context CNNs (``context-cnn-ensemble-v1``), with ``weights_meta``.

    Raises
    ------
    WeightsError
        Missing, unreadable, of another architecture, or weights that do not fit.
    """

    def build(config: dict[str, Any]) -> nn.Module:
        return CriticEnsemble.from_config(config) if "members" in config else Critic.from_config(config)

    loaded = load_model(path, arch=CELL_NETWORK_ARCHS, build=build, state_prefix=Critic.ALSO_LOADS)
    if (loaded.arch == CriticEnsemble.ARCH) != isinstance(loaded.model, CriticEnsemble):
        raise WeightsError(f"{path}: the config does not describe a {loaded.arch} network")
    net: Critic | CriticEnsemble = loaded.model  # type: ignore[assignment]
    net.weights_meta = {**loaded.meta, "arch": loaded.arch}
    return net
