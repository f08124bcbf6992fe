"""torch nn.Modules of the paper's methods and a typed registry of the weights shipped with wsikit."""

from __future__ import annotations

from wsikit.models.colorizer import ColorizerConfig, ColorizerNet
from wsikit.models.registry import WEIGHTS, WeightsEntry, load_checkpoint, save_checkpoint, weights_path

__all__ = [
    "ColorizerConfig",
    "ColorizerNet",
    "WEIGHTS",
    "WeightsEntry",
    "load_checkpoint",
    "save_checkpoint",
    "weights_path",
]
