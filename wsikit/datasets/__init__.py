"""Readers of public datasets: typed samples with their resolution (um/px).

The one place that knows a public dataset's file layout. Today: BRCA-M2C (cell-type points); the other
datasets' readers still live in :mod:`wsikit.segment.data` and :mod:`wsikit.pipeline.eval_classifier` and move
here in the architecture step (issue 17).
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

__all__ = [
    "BRCA_M2C_CLASSES",
    "BRCA_M2C_SPLITS",
    "PointSample",
    "brca_m2c_mpp",
    "load_brca_m2c",
    "read_brca_m2c_points",
]
