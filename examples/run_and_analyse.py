"""Run the whole pipeline on the bundled sample slide, then analyse the cell table with geopandas.

Usage::

    python examples/run_and_analyse.py [OUT_DIR]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import geopandas

from wsikit.pipeline.run import RunConfig, run_slide
from wsikit.sample import sample_slide_path


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("cmu-1-small-region.wsikit")
    summary = run_slide(sample_slide_path(), out, config=RunConfig(stain="cnn"))
    print(f"{summary['nuclei']} nuclei in {summary['tissue_area_mm2']} mm^2 of tissue")
    print(json.dumps({k: v["density_per_mm2"] for k, v in summary["classes"].items()}, indent=2))
    cells = geopandas.read_parquet(out / "cells.parquet")
    print(cells.groupby("class")[["area_um2", "eccentricity", "hematoxylin_od_mean"]].median().round(2))
    print(f"QuPath: File > Import objects > {out / 'nuclei.geojson'}")


if __name__ == "__main__":
    main()
