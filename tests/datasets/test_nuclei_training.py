"""The segmenter's training samples: monuseg_extra as training data, images held out by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsikit.datasets.nuclei import training_samples
from wsikit.errors import ConfigError


def test_held_out_images_are_left_out_and_typos_fail(data_dir: Path) -> None:
    every = training_samples(data_dir, ("monuseg_extra",))
    kept = training_samples(data_dir, ("monuseg_extra",), exclude=("TCGA-A7-A13F", "TCGA-E2-A14V"))
    assert len(every) == 26 and len(kept) == 24
    assert not any("TCGA-A7-A13F" in s.name or "TCGA-E2-A14V" in s.name for s in kept)
    assert all(abs(s.source_mpp - 0.25) < 0.01 and s.labels.max() > 0 for s in kept)
    with pytest.raises(ConfigError, match="TCGA-XX-0000.*matches no training image"):
        training_samples(data_dir, ("monuseg_extra",), exclude=("TCGA-XX-0000",))
