"""Nuclei segmentation: metrics, 3-class targets and instance extraction (the U-Net is in wsikit.models).

Training, shipped weights and whole-slide stitched inference are not built yet (issue 4).
"""

from __future__ import annotations

from wsikit.segment.metrics import aggregated_jaccard_index, panoptic_quality, pixel_metrics
from wsikit.segment.targets import instances_from_probabilities, three_class_target

__all__ = [
    "aggregated_jaccard_index",
    "panoptic_quality",
    "pixel_metrics",
    "instances_from_probabilities",
    "three_class_target",
]
