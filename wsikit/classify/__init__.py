"""Unsupervised nucleus classification: crops, the InfoGAN's training and inference, cluster naming, metrics
and the paper's k-means baselines (the networks are in :mod:`wsikit.models.infogan`)."""

from __future__ import annotations

from wsikit.classify.crops import CROP_MPP, CROP_SIZE, fit_stain_source, nucleus_crops, standardize_stain
from wsikit.classify.infer import CellClassifier, Prediction
from wsikit.classify.metrics import classification_report, hungarian_mapping
from wsikit.classify.naming import CELL_TYPE_COLORS, CELL_TYPES, name_clusters

__all__ = [
    "CROP_MPP",
    "CROP_SIZE",
    "CELL_TYPES",
    "CELL_TYPE_COLORS",
    "CellClassifier",
    "Prediction",
    "classification_report",
    "fit_stain_source",
    "hungarian_mapping",
    "name_clusters",
    "nucleus_crops",
    "standardize_stain",
]
