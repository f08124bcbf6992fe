"""A short real training run of the U-Net on real annotations: the loss falls and resume is exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from wsikit.datasets.nuclei import WORKING_MPP, load_dataset, training_samples
from wsikit.errors import ConfigError
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


def test_augmented_weighted_cosine_training_and_fine_tuning(samples: list) -> None:  # type: ignore[type-arg]
    from dataclasses import replace

    cfg = replace(_cfg(30), touch_weight=10.0, blur=0.5, hed_jitter=0.4, gray=0.2, lr_schedule="cosine")
    state = train_segmenter(samples, cfg)
    loss = [r["loss"] for r in state.history]
    assert np.mean(loss[-5:]) < np.mean(loss[:3])
    # fine-tuning starts from the given network: with lr 0 it stays exactly that network
    tuned = train_segmenter(samples, replace(_cfg(2), lr=0.0, base=8), init=state.model)
    assert tuned.model.config == state.model.config
    for (k, a), (_, b) in zip(
        state.model.state_dict().items(), tuned.model.state_dict().items(), strict=True
    ):
        if a.is_floating_point() and "running" not in k:
            torch.testing.assert_close(a, b, msg=k)


def test_augmentations_keep_images_valid(samples: list) -> None:  # type: ignore[type-arg]
    from wsikit.segment.train import _Crops, _hed_jitter

    od = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(_hed_jitter(od, np.random.default_rng(0), 0.0), od, atol=1e-5, rtol=1e-5)
    cfg = SegmenterTrainConfig(crop=64, touch_weight=10.0, blur=1.0, hed_jitter=0.5, gray=0.5)
    x, y, w, _ = _Crops(samples, cfg).batch(np.random.default_rng(0), 8)
    assert x.shape == (8, 3, 64, 64) and y.shape == w.shape == (8, 64, 64)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and float(w.min()) >= 1.0
    gray = (x[:, 0] == x[:, 1]).flatten(1).all(1) & (x[:, 1] == x[:, 2]).flatten(1).all(1)
    assert 0 < int(gray.sum()) < 8  # some crops went gray, not all
    with pytest.raises(ConfigError, match="lr_schedule"):
        SegmenterTrainConfig(lr_schedule="step")
    with pytest.raises(ConfigError, match="hed_jitter"):
        SegmenterTrainConfig(hed_jitter=1.5)


def test_cnn_stain_crops_come_from_the_restyled_images(samples: list) -> None:  # type: ignore[type-arg]
    """cnn_stain = 1 cuts every crop from the restyled image, 0 from the original; the shipped CNN restyles."""
    from dataclasses import replace

    from wsikit.segment.train import _Crops
    from wsikit.stain.cnn import CnnNormalizer

    base = SegmenterTrainConfig(crop=64)
    black = _Crops(samples, replace(base, cnn_stain=1.0), lambda im: np.zeros_like(im))
    x, _, _, _ = black.batch(np.random.default_rng(0), 4)
    # black in optical density is far beyond any tissue: the per-channel jitter keeps it nearly black
    assert float(x.max()) < 0.05
    x0, _, _, _ = _Crops(samples, base, lambda im: np.zeros_like(im)).batch(np.random.default_rng(0), 4)
    assert float(x0.mean()) > 0.3  # not used at cnn_stain 0
    with pytest.raises(ConfigError, match="restyle"):
        _Crops(samples, replace(base, cnn_stain=0.5))
    with pytest.raises(ConfigError, match="cnn_stain"):
        SegmenterTrainConfig(cnn_stain=1.5)
    norm = CnnNormalizer.from_pretrained()
    state = train_segmenter(
        samples[:2], replace(_cfg(3), cnn_stain=0.5), restyle=lambda im: np.asarray(norm.transform(im))
    )
    assert state.step == 3


def test_touching_weight_map_marks_only_the_gaps(data_dir: Path) -> None:
    from scipy import ndimage as ndi

    from wsikit.segment.targets import touching_weight_map

    labels = load_dataset("monuseg", data_dir)[0].labels[:300, :300]
    w = touching_weight_map(labels, w0=10.0, sigma=4.0)
    assert w.shape == labels.shape and float(w.min()) == 1.0 and 8.0 < float(w.max()) <= 11.0
    # far from every nucleus (> 3 sigma + a few px) the weight is exactly 1
    far = ndi.distance_transform_edt(labels == 0) > 16
    assert far.any() and np.all(w[far] == 1.0)
    # a lone nucleus gives no extra weight anywhere
    lone = (labels == labels[labels > 0][0]).astype(np.int32)
    assert float(touching_weight_map(lone).max()) == 1.0


def test_train_segmenter_cli_records_the_cnn_stain(data_dir: Path, tmp_path: Path) -> None:
    """`wsikit train segmenter --cnn-stain P` trains and stores the share and the normalizer it imitated."""
    from wsikit.cli.main import run
    from wsikit.models.registry import load_checkpoint
    from wsikit.segment.train import ARCH

    out = tmp_path / "unet.pt"
    args = ["-q", "train", "segmenter", "--data", str(data_dir), "--dataset", "nucls", "--out", str(out)]
    code = run(args + ["--steps", "2", "--batch-size", "2", "--base", "2", "--cnn-stain", "0.5"])
    assert code == 0
    meta = load_checkpoint(out, arch=ARCH)["meta"]
    assert meta["train_config"]["cnn_stain"] == 0.5
    assert meta["cnn_stain_normalizer"]["weights"] == "colorizer-tia.pt"
    assert len(meta["cnn_stain_normalizer"]["sha256"]) == 64


def test_distance_output_trains_and_seeds_instances(samples: list, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[type-arg]
    """`--distance-weight` fine-tunes the shipped 3-class U-Net into a 4-output one: its class outputs start
    as the shipped ones, the distance loss falls, the Segmenter returns 4 channels and the threshold choice
    tries both seed rules."""
    from dataclasses import replace

    from wsikit.cli.main import run
    from wsikit.models.registry import load_checkpoint
    from wsikit.segment import Segmenter
    from wsikit.segment.train import ARCH, _init_from

    shipped = Segmenter.from_pretrained("nuclei").model
    grown = _init_from(shipped, distance=True).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(grown(x)[:, :3], shipped(x))
    assert grown(x).shape == (1, 4, 64, 64)

    state = train_segmenter(samples, replace(_cfg(30), distance_weight=1.0))
    dist = [r["distance_loss"] for r in state.history]
    assert np.mean(dist[-5:]) < np.mean(dist[:3])

    out = tmp_path / "unet-distance.pt"
    args = ["-q", "train", "segmenter", "--data", str(data_dir), "--dataset", "nucls", "--out", str(out)]
    assert run(args + ["--steps", "2", "--batch-size", "2", "--base", "2", "--distance-weight", "1"]) == 0
    meta = load_checkpoint(out, arch=ARCH)["meta"]
    assert meta["outputs"][-1] == "distance" and meta["train_config"]["distance_weight"] == 1.0
    seg = Segmenter.from_weights(out)
    probs = seg.probabilities(samples[0].image[:100, :120])
    assert seg.channels == 4 and probs.shape == (4, 100, 120)
    assert 0.0 <= probs[3].min() and probs[3].max() <= 1.0
    np.testing.assert_allclose(probs[:3].sum(axis=0), 1.0, atol=1e-5)


def test_distance_seeds_split_touching_nuclei() -> None:
    """Seeds from the distance map split two touching discs that share one interior blob; 3-channel
    probabilities with seeds='distance' are refused."""
    from wsikit.errors import ShapeError
    from wsikit.segment.targets import InstanceParams, distance_target, instances_from_probabilities

    yy, xx = np.mgrid[:40, :60]
    lab = np.zeros((40, 60), np.int32)
    lab[(yy - 20) ** 2 + (xx - 20) ** 2 <= 100] = 1
    lab[((yy - 20) ** 2 + (xx - 36) ** 2 <= 100) & (lab == 0)] = 2
    fg = (lab > 0).astype(np.float32)
    probs = np.stack([1 - fg, fg, np.zeros_like(fg), distance_target(lab)])  # no boundary predicted
    merged = instances_from_probabilities(probs, InstanceParams(marker=0.5, seeds="classes", marker_open=0))
    split = instances_from_probabilities(probs, InstanceParams(marker=0.5, seeds="distance", marker_open=0))
    assert merged.max() == 1 and split.max() == 2
    assert np.array_equal(split > 0, lab > 0)
    with pytest.raises(ShapeError, match="distance"):
        instances_from_probabilities(probs[:3], InstanceParams(seeds="distance"))
    # the threshold choice tries both seed rules when the distance channel is there, and picks distance here
    from wsikit.segment.tune import tune_instance_params

    small = {"foreground": (0.5,), "marker": (0.5,), "marker_open": (0,), "min_size": (10,)}
    best, table = tune_instance_params([(probs, lab)], small)
    assert {row["seeds"] for row in table} == {"classes", "distance"} and best.seeds == "distance"
    _, table3 = tune_instance_params([(probs[:3], lab)], small)
    assert [row["seeds"] for row in table3] == ["classes"]
