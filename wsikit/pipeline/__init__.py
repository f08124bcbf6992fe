"""Whole-slide jobs built from io, tiling and the methods: they open files and write results."""

from __future__ import annotations

from wsikit.pipeline.info import SlideReport, describe_slide
from wsikit.pipeline.tiles import TileExport, export_tiles

__all__ = ["SlideReport", "describe_slide", "TileExport", "export_tiles"]
