"""Reinhard color transfer (mean and standard deviation per Lab channel), batched in torch.

Reinhard E. et al., "Color transfer between images", IEEE CG&A 2001.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wsikit.stain.base import MIN_TISSUE_PIXELS, StainNormalizer, tissue_weight
from wsikit.stain.color import lab_to_rgb, rgb_to_lab

__all__ = ["ReinhardNormalizer", "LabStats"]


@dataclass(frozen=True)
class LabStats:
    """Mean and standard deviation of L, a, b over tissue pixels, each (3,)."""

    mean: torch.Tensor
    std: torch.Tensor

    def to(self, device: torch.device) -> LabStats:
        return LabStats(self.mean.to(device), self.std.to(device))


class ReinhardNormalizer(StainNormalizer[LabStats]):
    """Reinhard normalization on (B, 3, H, W) batches; statistics from tissue pixels only.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> target = rng.integers(60, 200, (64, 64, 3), dtype=np.uint8)
    >>> norm = ReinhardNormalizer().fit(target)
    >>> norm.transform(target[::-1].copy()).shape
    (64, 64, 3)
    """

    name = "reinhard"

    def _fit_stats(self, rgb: torch.Tensor) -> LabStats | None:
        lab = rgb_to_lab(rgb).permute(0, 2, 3, 1).reshape(-1, 3)
        keep = tissue_weight(rgb).reshape(-1) >= 0.5
        lab = lab[keep]
        if lab.shape[0] < MIN_TISSUE_PIXELS:
            return None
        std = lab.std(dim=0)
        if (std < 1e-3).any():
            return None
        return LabStats(lab.mean(dim=0), std)

    def _apply(self, rgb: torch.Tensor, source: LabStats) -> torch.Tensor:
        target = self.target
        assert target is not None
        lab = rgb_to_lab(rgb)
        scale = (target.std / source.std).view(1, 3, 1, 1)
        lab = (lab - source.mean.view(1, 3, 1, 1)) * scale + target.mean.view(1, 3, 1, 1)
        return lab_to_rgb(lab)

    def _stats_to(self, stats: LabStats, device: torch.device) -> LabStats:
        return stats.to(device)
