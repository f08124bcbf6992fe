"""The nuclei-segmentation U-Net of the method: 4 down / 4 up stages, 144 px -> 9 x 9 x (16 * base) -> 144 px.

Each stage has two 3x3 convolutions (+ BatchNorm when ``batch_norm``) and ReLU; max-pooling down,
2x2 transposed convolution up, skip connections by concatenation. Three output classes per pixel:
background, nucleus interior, nuclear boundary (the boundary class separates touching nuclei). With
``distance`` (beyond the paper) the head has one more output: the logit of each nucleus pixel's distance to
its nucleus' border, normalized to 1 at the nucleus' deepest pixel (an instance target, as in DIST / HoVer-Net,
whose peaks seed one instance per nucleus).
``base=32`` is the paper's width (512 channels at 9 x 9); the default ``base=16`` trains on a CPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from wsikit.errors import ConfigError
from wsikit.models.registry import Pretrained

__all__ = ["UNetConfig", "UNet", "CLASSES"]

CLASSES = ("background", "interior", "boundary")


@dataclass(frozen=True, kw_only=True)
class UNetConfig:
    """Architecture of :class:`UNet`.

    Parameters
    ----------
    base : int
        Channels of the first stage; stage k has ``base * 2**k``, the bottleneck ``16 * base``.
    n_classes : int
        Output classes (3: background, interior, boundary).
    batch_norm : bool
        BatchNorm after each convolution.
    distance : bool
        One more output channel: the normalized distance map's logit (see the module docstring).
    """

    base: int = 16
    n_classes: int = 3
    batch_norm: bool = True
    distance: bool = False

    @property
    def n_outputs(self) -> int:
        """Output channels: the classes, plus one with ``distance``."""
        return self.n_classes + int(self.distance)

    def __post_init__(self) -> None:
        if not isinstance(self.base, int) or self.base < 1:
            raise ConfigError(f"base must be a positive integer, got {self.base!r}")
        if self.n_classes < 2:
            raise ConfigError(f"n_classes must be >= 2, got {self.n_classes}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _block(cin: int, cout: int, bn: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for c_in in (cin, cout):
        layers.append(nn.Conv2d(c_in, cout, 3, padding=1, bias=not bn))
        if bn:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNet(nn.Module, Pretrained):
    """U-Net mapping (B, 3, H, W) RGB in [0, 1] to (B, n_outputs, H, W) logits; H, W multiples of 16.

    Examples
    --------
    >>> net = UNet(UNetConfig(base=4)).eval()
    >>> net(torch.rand(1, 3, 144, 144)).shape
    torch.Size([1, 3, 144, 144])
    >>> net.bottleneck_shape(144)
    (64, 9, 9)
    """

    ARCH: ClassVar[str] = "unet-v1"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> UNet:
        return cls(UNetConfig(**config))

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or UNetConfig()
        b, bn = self.config.base, self.config.batch_norm
        widths = [b, 2 * b, 4 * b, 8 * b]
        self.down = nn.ModuleList()
        cin = 3
        for w in widths:
            self.down.append(_block(cin, w, bn))
            cin = w
        self.pool = nn.MaxPool2d(2)
        self.bottom = _block(8 * b, 16 * b, bn)
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        cin = 16 * b
        for w in reversed(widths):
            self.up.append(nn.ConvTranspose2d(cin, w, 2, stride=2))
            self.merge.append(_block(2 * w, w, bn))
            cin = w
        self.head = nn.Conv2d(b, self.config.n_outputs, 1)

    def bottleneck_shape(self, size: int) -> tuple[int, int, int]:
        """(channels, height, width) at the bottom for a ``size`` x ``size`` input."""
        return (16 * self.config.base, size // 16, size // 16)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The bottleneck features (B, 16 * base, H / 16, W / 16) of an input batch (the encoder only)."""
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[-1] % 16 or x.shape[-2] % 16:
            raise ConfigError(f"input must be (B, 3, H, W) with H, W multiples of 16, got {tuple(x.shape)}")
        for block in self.down:
            x = self.pool(block(x))
        out: torch.Tensor = self.bottom(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ConfigError(f"input must be (B, 3, H, W), got {tuple(x.shape)}")
        if x.shape[-1] % 16 or x.shape[-2] % 16:
            raise ConfigError(f"height and width must be multiples of 16, got {x.shape[-2]}x{x.shape[-1]}")
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips), strict=True):
            x = merge(torch.cat([up(x), skip], dim=1))
        out: torch.Tensor = self.head(x)
        return out
