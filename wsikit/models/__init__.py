"""torch nn.Modules of the paper's methods and a typed registry of the weights shipped with wsikit.

Every network class loads its weights the same way (:class:`~wsikit.models.registry.Pretrained`)::

    from wsikit.models import UNet, ColorizerNet, Critic
    unet = UNet.from_pretrained("unet-nuclei-cnn")        # shipped weights by name (sha256 checked)
    net = ColorizerNet.load("my-normalizer.pt")            # a file from `wsikit train normalizer`
    unet.weights_meta["instances"]                         # what the file says about the network
"""

from __future__ import annotations

from wsikit.models.colorizer import ColorizerConfig, ColorizerNet
from wsikit.models.infogan import Critic, CriticEnsemble, Generator, InfoGanConfig, load_cell_network
from wsikit.models.registry import (
    WEIGHTS,
    LoadedModel,
    Pretrained,
    WeightsEntry,
    WeightsError,
    load_checkpoint,
    load_model,
    save_checkpoint,
    weights_path,
)
from wsikit.models.unet import UNet, UNetConfig

__all__ = [
    "ColorizerConfig",
    "ColorizerNet",
    "Critic",
    "CriticEnsemble",
    "load_cell_network",
    "Generator",
    "InfoGanConfig",
    "UNet",
    "UNetConfig",
    "Pretrained",
    "LoadedModel",
    "WEIGHTS",
    "WeightsEntry",
    "WeightsError",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
    "weights_path",
]
