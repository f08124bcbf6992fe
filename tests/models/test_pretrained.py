"""One weights loader for every network class: Pretrained.load / from_pretrained on the shipped files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from wsikit.errors import ConfigError
from wsikit.models import (
    WEIGHTS,
    ColorizerNet,
    Critic,
    CriticEnsemble,
    UNet,
    WeightsError,
    save_checkpoint,
    weights_path,
)

CLASSES = {
    "unet-v1": UNet,
    "colorizer-v1": ColorizerNet,
    "context-cnn-v1": Critic,
    "infogan-v1": Critic,
    "context-cnn-ensemble-v1": CriticEnsemble,
}


@pytest.mark.parametrize("name", sorted(WEIGHTS))
def test_every_shipped_file_loads_through_its_class(name: str) -> None:
    entry = WEIGHTS[name]
    net = CLASSES[entry.arch].from_pretrained(name)
    assert not net.training
    assert net.weights_meta["arch"] == entry.arch
    assert Path(net.weights_meta["weights"]) == weights_path(name)
    # the loaded tensors are the file's (fp16 on disk, float32 in the network)
    state = torch.load(weights_path(name), map_location="cpu", weights_only=True)["state_dict"]
    prefix = Critic.ALSO_LOADS.get(entry.arch, "")
    key = next(k for k in net.state_dict() if (prefix + k) in state and state[prefix + k].is_floating_point())
    assert torch.equal(net.state_dict()[key], state[prefix + key].float())


def test_unknown_name_lists_the_class_names() -> None:
    with pytest.raises(
        ConfigError, match="unknown weights 'colorizer-tia' for UNet; valid names: unet-nuclei"
    ):
        UNet.from_pretrained("colorizer-tia")


def test_file_of_another_architecture_names_file_and_arch() -> None:
    with pytest.raises(WeightsError, match=r"colorizer-tia\.pt: weights are for architecture 'colorizer-v1'"):
        UNet.load(weights_path("colorizer-tia"))


def test_state_that_does_not_fit(tmp_path: Path) -> None:
    net = UNet.from_pretrained("unet-nuclei")
    bad = tmp_path / "bad.pt"
    config = {**net.config.to_dict(), "base": 8}  # says 8, holds 16
    save_checkpoint(bad, arch=UNet.ARCH, config=config, state=net.state_dict())
    with pytest.raises(WeightsError, match=r"bad\.pt: weights do not fit the stated architecture"):
        UNet.load(bad)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"nothing\.pt: no such weights file"):
        Critic.load(tmp_path / "nothing.pt")
