"""The U-Net's shape contract and the target/instance round trip on real annotations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from wsikit.errors import ConfigError
from wsikit.io.annotations import rasterize_polygons, read_imagescope_xml
from wsikit.models.unet import UNet, UNetConfig
from wsikit.segment.metrics import aggregated_jaccard_index, panoptic_quality
from wsikit.segment.targets import instances_from_probabilities, three_class_target


def test_unet_goes_down_to_9x9x512_at_paper_width() -> None:
    net = UNet(UNetConfig(base=32)).eval()
    assert net.bottleneck_shape(144) == (512, 9, 9)
    feats: dict[str, tuple[int, ...]] = {}

    def keep_shape(module: torch.nn.Module, inputs: object, output: torch.Tensor) -> None:
        feats["bottom"] = tuple(output.shape)

    net.bottom.register_forward_hook(keep_shape)
    with torch.no_grad():
        out = net(torch.rand(1, 3, 144, 144))
    assert feats["bottom"] == (1, 512, 9, 9) and out.shape == (1, 3, 144, 144)


def test_unet_rejects_bad_inputs() -> None:
    net = UNet(UNetConfig(base=2))
    with pytest.raises(ConfigError, match="multiples of 16"):
        net(torch.rand(1, 3, 100, 100))
    with pytest.raises(ConfigError, match=r"\(B, 3, H, W\)"):
        net(torch.rand(1, 1, 144, 144))
    with pytest.raises(ConfigError, match="base"):
        UNetConfig(base=0)


def test_perfect_probabilities_give_back_the_instances(data_dir: Path) -> None:
    ann = read_imagescope_xml(data_dir / "monuseg" / "train" / "TCGA-AR-A1AK-01Z-00-DX1.xml")
    labels = rasterize_polygons(ann.polygons, (1000, 1000))[:400, :400]
    target = three_class_target(labels)
    probs = np.stack([(target == k).astype(np.float32) for k in range(3)])
    inst = instances_from_probabilities(probs)
    assert aggregated_jaccard_index(labels, inst) > 0.9
    assert panoptic_quality(labels, inst)["dq"] > 0.95
