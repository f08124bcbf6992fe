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


def test_merge_below_joins_a_nucleus_split_by_two_seeds_but_not_touching_nuclei() -> None:
    """A vesicular nucleus (pale centre: two interior peaks, no predicted boundary between them) gets two
    seeds; merge_below makes it one. Two touching nuclei with a predicted boundary between them stay two."""
    from skimage.draw import disk as draw_disk

    from wsikit.segment.targets import InstanceParams

    h, w = 60, 120
    interior, boundary = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    # nucleus A (x 10-50): interior high on two lobes, lower (but no boundary) in its pale centre
    rr, cc = draw_disk((30, 30), 20, shape=(h, w))
    interior[rr, cc] = 0.9
    interior[10:50, 28:33] = 0.55  # pale centre: interior - boundary = 0.25, under the marker threshold 0.3
    boundary[10:50, 28:33] = 0.3
    # nuclei B and C (x 62-118): touching, with a predicted boundary line between them
    for cx in (76, 104):
        rr, cc = draw_disk((30, cx), 14, shape=(h, w))
        interior[rr, cc] = 0.9
    boundary[16:45, 89:91] = 0.9
    interior[16:45, 89:91] = 0.1
    background = np.clip(1 - interior - boundary, 0, 1)
    probs = np.stack([background, interior, boundary])
    base = dict(foreground=0.5, marker=0.3, marker_open=0, min_size=10)
    split = instances_from_probabilities(probs, InstanceParams(**base))
    merged = instances_from_probabilities(probs, InstanceParams(**base, merge_below=0.5))
    assert len(np.unique(split[:, :55])) - 1 == 2  # A cut in two by its seeds
    assert len(np.unique(merged[:, :55])) - 1 == 1  # one nucleus again
    assert len(np.unique(split[:, 60:])) - 1 == len(np.unique(merged[:, 60:])) - 1 == 2  # B and C stay apart
    assert merged.max() == 3 and set(np.unique(merged)) == {0, 1, 2, 3}  # ids consecutive
    with pytest.raises(Exception, match="merge_below"):
        InstanceParams(merge_below=1.0)


def test_object_features_and_filter_on_a_real_field(data_dir: Path) -> None:
    """object_features on a real MoNuSeg field segmented by the shipped path; the fitted filter scores objects
    that overlap an annotated nucleus higher than those that overlap none, and round-trips through metadata."""
    from wsikit.datasets.nuclei import load_dataset
    from wsikit.segment import Segmenter
    from wsikit.segment.metrics import overlaps
    from wsikit.segment.object_filter import FEATURES, ObjectFilter, fit_object_filter, object_features

    sample = load_dataset("monuseg", data_dir, split="test")[0]
    image, truth = sample.image[:400, :400], sample.labels[:400, :400]
    seg = Segmenter.from_pretrained()
    probs = seg.probabilities(image)
    pred = instances_from_probabilities(probs, seg.instance_params)
    ids, feats = object_features(probs, image, pred)
    assert feats.shape == (len(ids), len(FEATURES)) and len(ids) > 30 and np.isfinite(feats).all()
    assert np.allclose(np.exp(feats[:, 0]), np.bincount(pred.ravel())[ids])  # log area in px
    gt_ids, pred_ids, ga, pa, inter = overlaps(truth, pred)
    iou = inter / (ga[:, None] + pa[None, :] - inter)
    best = dict(zip(np.asarray(pred_ids).tolist(), iou.max(axis=0).tolist(), strict=True))
    on_nucleus = np.array([best.get(int(i), 0.0) >= 0.1 for i in ids])
    flt = fit_object_filter(feats, on_nucleus)
    s = flt.scores(feats)
    assert s[on_nucleus].mean() > s[~on_nucleus].mean()
    again = ObjectFilter.from_meta(flt.with_threshold(0.3).to_meta())
    assert again.threshold == 0.3 and np.array_equal(again.keeps(feats), flt.with_threshold(0.3).keeps(feats))
    with pytest.raises(Exception, match="both nuclei and non-nuclei"):
        fit_object_filter(feats, np.ones(len(feats), bool))
