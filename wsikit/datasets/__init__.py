"""Readers of public datasets: typed samples with their resolution (um/px).

The one place that knows a public dataset's file layout:

- :mod:`wsikit.datasets.nuclei`: nucleus outlines (MoNuSeg, MoNuSeg 2018 extra, MICCAI 2015, DSB 2018, NuCLS)
  resampled to the segmenter's 0.25 um/px (``load_dataset``, ``training_samples``);
- :mod:`wsikit.datasets.cell_classes`: NuCLS and MoNuSAC nuclei with their classes (``load_nucls_classes``,
  ``load_monusac_classes``);
- :mod:`wsikit.datasets.brca_m2c`: BRCA-M2C cell-type points (``load_brca_m2c``).

(The stain-normalization image sets are read by ``benchmarks/prepare_stain_data.py`` and
:mod:`wsikit.stain.evaluate`.)
"""

from __future__ import annotations

from wsikit.datasets.brca_m2c import (
    BRCA_M2C_CLASSES,
    BRCA_M2C_SPLITS,
    PointSample,
    brca_m2c_mpp,
    load_brca_m2c,
    read_brca_m2c_points,
)
from wsikit.datasets.cell_classes import ClassSample, load_monusac_classes, load_nucls_classes
from wsikit.datasets.nuclei import ALL_DATASETS, DATASETS, Sample, load_dataset, training_samples

__all__ = [
    "ALL_DATASETS",
    "DATASETS",
    "Sample",
    "load_dataset",
    "training_samples",
    "ClassSample",
    "load_nucls_classes",
    "load_monusac_classes",
    "BRCA_M2C_CLASSES",
    "BRCA_M2C_SPLITS",
    "PointSample",
    "brca_m2c_mpp",
    "load_brca_m2c",
    "read_brca_m2c_points",
]
