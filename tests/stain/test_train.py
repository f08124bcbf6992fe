"""A short real training run of the colorization CNN: the loss falls, resume is exact, weights round-trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wsikit.errors import ConfigError, ShapeError
from wsikit.models.registry import WeightsError, load_checkpoint, save_checkpoint
from wsikit.stain.cnn import CnnNormalizer
from wsikit.stain.train import ARCH, ColorizerTrainConfig, train_colorizer


@pytest.fixture(scope="module")
def pool(data_dir: Path) -> list[np.ndarray]:
    return [
        np.asarray(Image.open(data_dir / "nucls" / "images" / f"train_{i}.png").convert("RGB"))
        for i in (1, 2, 3)
    ]


def _cfg(steps: int) -> ColorizerTrainConfig:
    return ColorizerTrainConfig(steps=steps, batch_size=8, crop=64, width=4, checkpoint_every=5, seed=3)


def test_training_reduces_the_chroma_loss(pool: list[np.ndarray]) -> None:
    state = train_colorizer(pool, [0, 1, 2], _cfg(40))
    mse = [row["mse"] for row in state.history]
    assert np.mean(mse[-8:]) < 0.5 * np.mean(mse[:4])
    assert all(np.isfinite(row["ce"]) for row in state.history)
    assert state.model.config.n_classes == 3


def test_resume_gives_the_same_model(pool: list[np.ndarray], tmp_path: Path) -> None:
    full = train_colorizer(pool, [0, 1, 2], _cfg(10))
    ckpt = tmp_path / "run.ckpt"
    train_colorizer(pool, [0, 1, 2], _cfg(5), checkpoint=ckpt)  # "killed" after step 5
    resumed = train_colorizer(pool, [0, 1, 2], _cfg(10), checkpoint=ckpt, resume=True)
    assert resumed.step == 10
    for (k, a), (_, b) in zip(
        full.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=k)


def test_weights_round_trip_and_errors(pool: list[np.ndarray], tmp_path: Path) -> None:
    state = train_colorizer(pool, None, _cfg(3))
    path = tmp_path / "w.pt"
    save_checkpoint(
        path,
        arch=ARCH,
        config=state.model.config.to_dict(),
        state=state.model.state_dict(),
        meta={"style": "test"},
    )
    norm = CnnNormalizer.from_weights(path)
    out = norm.transform(pool[0])
    assert out.shape == pool[0].shape and out.dtype == np.uint8
    assert norm.meta["style"] == "test"
    other = tmp_path / "other.pt"
    save_checkpoint(other, arch="unet-v1", config={}, state={})
    with pytest.raises(WeightsError, match="architecture 'unet-v1', expected 'colorizer-v1'"):
        CnnNormalizer.from_weights(other)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a readable weights file"):
        load_checkpoint(junk, arch=ARCH)
    with pytest.raises(WeightsError, match="no such weights file"):
        CnnNormalizer.from_weights(tmp_path / "missing.pt")


def test_bad_training_inputs(pool: list[np.ndarray]) -> None:
    with pytest.raises(ConfigError, match="style pool is empty"):
        train_colorizer([], None, _cfg(1))
    with pytest.raises(ShapeError, match=r"\(H, W, 3\) uint8"):
        train_colorizer([pool[0][..., 0]], None, _cfg(1))
    with pytest.raises(ConfigError, match="2 labels for 3 images"):
        train_colorizer(pool, [0, 1], _cfg(1))
    with pytest.raises(ConfigError, match="crop must be a positive multiple of 8"):
        ColorizerTrainConfig(crop=100)
