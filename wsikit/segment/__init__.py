"""Nuclei segmentation: metrics now; the U-Net, its training and whole-slide inference follow."""

from __future__ import annotations

from wsikit.segment.metrics import aggregated_jaccard_index, panoptic_quality, pixel_metrics

__all__ = ["aggregated_jaccard_index", "panoptic_quality", "pixel_metrics"]
