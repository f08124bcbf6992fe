"""Nuclei as polygons with measurements: exact pixel-edge polygons, per-nucleus measurements, and the chunked
vectorizer that reads a whole-slide label image window by window."""

from __future__ import annotations

from wsikit.vectorize.chunked import NucleusBatch, iter_nucleus_batches, vectorize_chunk
from wsikit.vectorize.measure import MEASUREMENT_UNITS, measure_nuclei
from wsikit.vectorize.polygons import label_polygons, mask_polygon

__all__ = [
    "MEASUREMENT_UNITS",
    "NucleusBatch",
    "iter_nucleus_batches",
    "label_polygons",
    "mask_polygon",
    "measure_nuclei",
    "vectorize_chunk",
]
