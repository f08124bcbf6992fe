"""The stain-normalization CNN: re-colorize the luminance of a patch in a learned target style.

After Iizuka et al. 2016 ("Let there be color"), as used by the method's paper:

- low-level encoder: 8 conv layers (3x3, BN, ReLU), stride 2 instead of pooling, 224 -> 28 px
  with ``8 * width`` channels (the paper's 28 x 28 x 256 is ``width=32``);
- global branch: 4 conv layers (two with stride 2) + global average pooling + 2 fully connected
  layers -> a ``global_dim`` vector, which also feeds an optional classification head;
- fusion: the global vector is concatenated at every position of the mid-level map (1x1 conv);
- decoder: conv + 2x upsampling back to full size, predicting the two chroma channels (a*, b*).

The output image is Lab(L_input, ab_predicted): the luminance, hence the tissue structure, is the input's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from wsikit.errors import ConfigError
from wsikit.models.registry import Pretrained

__all__ = ["ColorizerConfig", "ColorizerNet", "AB_SCALE"]

AB_SCALE = 110.0
"""a*, b* are predicted in [-1, 1] and scaled by this (H&E chroma stays well inside)."""


@dataclass(frozen=True, kw_only=True)
class ColorizerConfig:
    """Architecture of :class:`ColorizerNet`.

    Parameters
    ----------
    width : int
        Base width; the mid-level map has ``8 * width`` channels (paper: 32 -> 256; default 16 fits a CPU).
    global_dim : int
        Size of the global feature vector (paper: 256); 0 means ``8 * width``.
    n_classes : int
        Classes of the classification head (0: no head, the "MSE only" variant).
    """

    width: int = 16
    global_dim: int = 0
    n_classes: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.width, int) or self.width < 2:
            raise ConfigError(f"width must be an integer >= 2, got {self.width!r}")
        if self.global_dim < 0:
            raise ConfigError(f"global_dim must be >= 0, got {self.global_dim}")
        if self.n_classes < 0 or self.n_classes == 1:
            raise ConfigError(f"n_classes must be 0 (no head) or >= 2, got {self.n_classes}")

    @property
    def mid_channels(self) -> int:
        """Channels of the 28 x 28 mid-level map."""
        return 8 * self.width

    @property
    def global_size(self) -> int:
        """Size of the global feature vector."""
        return self.global_dim or self.mid_channels

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ColorizerNet(nn.Module, Pretrained):
    """Luminance -> chroma network.

    Input: (B, 1, H, W) lightness L / 100 in [0, 1], H and W multiples of 8.
    Output: (ab, logits): ab (B, 2, H, W) in [-1, 1] (times :data:`AB_SCALE` gives a*, b*),
    logits (B, n_classes) or None.

    Examples
    --------
    >>> net = ColorizerNet(ColorizerConfig(width=4, n_classes=3)).eval()
    >>> ab, logits = net(torch.rand(2, 1, 224, 224))
    >>> tuple(ab.shape), tuple(logits.shape)
    ((2, 2, 224, 224), (2, 3))
    """

    ARCH: ClassVar[str] = "colorizer-v1"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ColorizerNet:
        return cls(ColorizerConfig(**config))

    def __init__(self, config: ColorizerConfig | None = None) -> None:
        super().__init__()
        self.config = config or ColorizerConfig()
        w = self.config.width
        mid = self.config.mid_channels
        g = self.config.global_size
        self.low = nn.Sequential(
            _conv(1, w, 2),  # 112
            _conv(w, 2 * w),
            _conv(2 * w, 2 * w, 2),  # 56
            _conv(2 * w, 4 * w),
            _conv(4 * w, 4 * w, 2),  # 28
            _conv(4 * w, mid),
            _conv(mid, mid),
            _conv(mid, mid),
        )
        self.global_conv = nn.Sequential(
            _conv(mid, mid, 2),  # 14
            _conv(mid, mid),
            _conv(mid, mid, 2),  # 7
            _conv(mid, mid),
        )
        self.global_fc = nn.Sequential(
            nn.Linear(mid, 2 * g), nn.ReLU(inplace=True), nn.Linear(2 * g, g), nn.ReLU(inplace=True)
        )
        self.classifier = nn.Linear(g, self.config.n_classes) if self.config.n_classes else None
        self.fusion = nn.Sequential(
            nn.Conv2d(mid + g, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True)
        )
        self.decoder = nn.Sequential(
            _conv(mid, 4 * w),
            nn.Upsample(scale_factor=2, mode="nearest"),  # 56
            _conv(4 * w, 2 * w),
            _conv(2 * w, 2 * w),
            nn.Upsample(scale_factor=2, mode="nearest"),  # 112
            _conv(2 * w, w),
            nn.Conv2d(w, 2, 3, padding=1),
        )

    def forward(self, lightness: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if lightness.ndim != 4 or lightness.shape[1] != 1:
            raise ConfigError(f"input must be (B, 1, H, W) lightness, got {tuple(lightness.shape)}")
        h, w = lightness.shape[-2:]
        if h % 8 or w % 8:
            raise ConfigError(f"input height and width must be multiples of 8, got {h}x{w}")
        mid = self.low(lightness)
        glob = self.global_conv(mid).mean(dim=(2, 3))
        glob = self.global_fc(glob)
        logits = self.classifier(glob) if self.classifier is not None else None
        fused = torch.cat([mid, glob[:, :, None, None].expand(-1, -1, mid.shape[2], mid.shape[3])], dim=1)
        ab = self.decoder(self.fusion(fused))
        ab = F.interpolate(ab, size=(h, w), mode="bilinear", align_corners=False)
        return torch.tanh(ab), logits
