"""A short real training run of the U-Net on real annotations: the loss falls and resume is exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from wsikit.errors import ConfigError
from wsikit.segment.data import WORKING_MPP, load_dataset, training_samples
from wsikit.segment.train import SegmenterTrainConfig, train_segmenter


@pytest.fixture(scope="module")
def samples(data_dir: Path) -> list:  # type: ignore[type-arg]
    return load_dataset("nucls", data_dir)[:4]


def _cfg(steps: int) -> SegmenterTrainConfig:
    return SegmenterTrainConfig(
        steps=steps,
        batch_size=4,
        crop=64,
        base=4,
        checkpoint_every=5,
        eval_every=5,
        seed=1,
        val_fraction=0.25,
        lr=3e-3,
    )


def test_training_reduces_the_loss(samples: list) -> None:  # type: ignore[type-arg]
    state = train_segmenter(samples, _cfg(30))
    loss = [r["loss"] for r in state.history]
    assert np.mean(loss[-5:]) < np.mean(loss[:3])
    assert len(state.val_names) == 1 and state.validation and 0.0 <= state.validation[-1]["val_dice"] <= 1.0


def test_resume_gives_the_same_model(samples: list, tmp_path: Path) -> None:  # type: ignore[type-arg]
    full = train_segmenter(samples, _cfg(8))
    ckpt = tmp_path / "seg.ckpt"
    train_segmenter(samples, _cfg(5), checkpoint=ckpt)
    resumed = train_segmenter(samples, _cfg(8), checkpoint=ckpt, resume=True)
    for (k, a), (_, b) in zip(
        full.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=k)


def test_datasets_load_at_the_working_resolution(data_dir: Path) -> None:
    monuseg = load_dataset("monuseg", data_dir, split="test")
    assert len(monuseg) == 4 and all(abs(s.source_mpp - 0.25) < 0.01 for s in monuseg)
    train = training_samples(data_dir, ("monuseg", "miccai2015"))
    assert not any("monuseg/test" in s.name for s in train)  # the held-out split never trains
    miccai20x = next(s for s in train if s.name == "miccai2015/image01")
    assert miccai20x.source_mpp == 0.5 and miccai20x.image.shape[0] > 900  # 20x doubled to 0.25 um/px
    assert WORKING_MPP == 0.25
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_dataset("kumar", data_dir)
