"""Nuclei segmentation: 3-class and distance-map targets, training, inference, instance extraction, threshold tuning, metrics.

The U-Net itself is in :mod:`wsikit.models.unet`; whole-slide stitched inference in :mod:`wsikit.pipeline.segment`.
"""

from __future__ import annotations

from wsikit.segment.metrics import aggregated_jaccard_index, panoptic_quality, pixel_metrics
from wsikit.segment.targets import (
    InstanceParams,
    distance_target,
    instances_from_probabilities,
    three_class_target,
)

__all__ = [
    "Segmenter",
    "ColourRule",
    "GlassRule",
    "LengthRule",
    "aggregated_jaccard_index",
    "panoptic_quality",
    "pixel_metrics",
    "InstanceParams",
    "instances_from_probabilities",
    "three_class_target",
    "distance_target",
]


def __getattr__(name: str) -> object:
    # torch is imported only when the network is asked for
    if name == "Segmenter":
        from wsikit.segment.infer import Segmenter

        return Segmenter
    if name in ("ColourRule", "GlassRule", "LengthRule"):
        from wsikit.segment import artefacts

        return getattr(artefacts, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
