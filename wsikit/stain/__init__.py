"""Stain normalization: Macenko (SVD) and Reinhard baselines and the paper's colorization CNN.

All normalizers take (B, 3, H, W) uint8 tensors (or numpy HWC arrays) on any device.
"""

from __future__ import annotations

from wsikit.stain.base import StainFitError, StainNormalizer, tissue_weight
from wsikit.stain.cnn import CnnNormalizer
from wsikit.stain.factory import METHODS, make_normalizer
from wsikit.stain.macenko import MacenkoNormalizer, StainStats, macenko_stain_matrix
from wsikit.stain.reinhard import LabStats, ReinhardNormalizer

__all__ = [
    "make_normalizer",
    "METHODS",
    "CnnNormalizer",
    "StainNormalizer",
    "StainFitError",
    "tissue_weight",
    "MacenkoNormalizer",
    "StainStats",
    "macenko_stain_matrix",
    "ReinhardNormalizer",
    "LabStats",
]
