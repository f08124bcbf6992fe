"""Inference precision: names are checked, auto resolves by hardware, and bf16 segments a real MoNuSeg field
like float32 (the accuracy on three sources is in docs/segmentation.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from wsikit.errors import ConfigError
from wsikit.models.precision import cpu_has_native_bf16, resolve_precision


def test_names_and_auto() -> None:
    assert resolve_precision("auto", "cpu") == ("bf16" if cpu_has_native_bf16() else "fp32")
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert resolve_precision("fp32", "cpu") == "fp32"
    with pytest.raises(ConfigError, match="precision"):
        resolve_precision("fp16", "cpu")
    from wsikit.pipeline.run import RunConfig

    with pytest.raises(ConfigError, match="precision"):
        RunConfig(precision="half")
    assert RunConfig(precision="fp32").result_options()["precision"] == "fp32"
    assert RunConfig().result_options()["precision"] == resolve_precision("auto", "cpu")


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bf16")
def test_bf16_segments_a_real_field_like_fp32(data_dir: Path) -> None:
    from wsikit.datasets.nuclei import load_dataset
    from wsikit.segment import Segmenter, aggregated_jaccard_index
    from wsikit.stain import CnnNormalizer

    sample = load_dataset("monuseg", data_dir, split="test")[0]
    image, truth = sample.image[:512, :512], sample.labels[:512, :512]
    results = {}
    for precision in ("fp32", "bf16"):
        styled = np.asarray(CnnNormalizer.from_pretrained(precision=precision).transform(image))
        seg = Segmenter.from_pretrained("nuclei-cnn", precision=precision)
        assert seg.precision == precision
        results[precision] = (styled, seg.probabilities(styled), seg.instances(styled))
    (s32, p32, l32), (s16, p16, l16) = results["fp32"], results["bf16"]
    assert np.abs(s32.astype(int) - s16.astype(int)).mean() < 1.0  # grey levels
    assert np.abs(p32 - p16).mean() < 0.01
    assert abs(aggregated_jaccard_index(truth, l16) - aggregated_jaccard_index(truth, l32)) < 0.02


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bf16")
def test_bf16_classifies_real_nuclei_like_fp32(data_dir: Path) -> None:
    """The cell-type networks under bf16 autocast: real BRCA-M2C nuclei get the fp32 classes, probabilities
    within a few thousandths, and the same bits on 1 and 2 threads (padded batches, as in float32)."""
    from wsikit.classify.crops import standardize_stain
    from wsikit.classify.infer import CellClassifier
    from wsikit.datasets import load_brca_m2c
    from wsikit.segment import Segmenter

    image = load_brca_m2c(data_dir / "brca_m2c", split="val")[0].image[:300, :300]
    labels = Segmenter.from_pretrained().segment(image, mpp=0.5)
    probs = {}
    for precision in ("fp32", "bf16"):
        clf = CellClassifier.from_pretrained(precision=precision)
        assert clf.precision == precision
        crops, _ = clf.crops(standardize_stain(image), labels, mpp=0.5)
        assert len(crops) > 20
        probs[precision] = clf.probabilities(crops, with_prior=False)
    assert np.abs(probs["fp32"] - probs["bf16"]).max() < 0.05
    assert (probs["fp32"].argmax(1) == probs["bf16"].argmax(1)).mean() >= 0.95
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = CellClassifier.from_pretrained(precision="bf16").probabilities(crops, with_prior=False)
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(one, probs["bf16"])
