"""Cell-type datasets with nucleus outlines: NuCLS and MoNuSAC, as typed samples with their um/px.

(BRCA-M2C, points without outlines, is :mod:`wsikit.datasets.brca_m2c`.)

==========  ===========================================================  ==========================
name        files                                                        resolution
==========  ===========================================================  ==========================
nucls       ``nucls/images/*.png``, ``labels/*.npz`` (instances),         0.2 um/px (its SOURCE.md)
            ``points/*.csv`` (class per nucleus)
monusac     ``monusac/*.svs`` + ImageScope ``*.xml`` (one class per       0.19448 um/px (its SOURCE.md)
            polygon)
==========  ===========================================================  ==========================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from wsikit._typing import PathLike
from wsikit.errors import ConfigError
from wsikit.io.annotations import rasterize_polygons, read_imagescope_xml, read_npz_instances, read_points_csv

__all__ = [
    "ClassSample",
    "NUCLS_MPP",
    "MONUSAC_MPP",
    "NUCLS_NAMES",
    "load_nucls_classes",
    "load_monusac_classes",
]

NUCLS_MPP = 0.2
MONUSAC_MPP = 0.19448
NUCLS_NAMES = {0: "tumor_any", 1: "nonTIL_stromal", 2: "sTIL", 3: "other_nucleus"}
"""NuCLS class ids of its points files -> the dataset's class names."""


@dataclass
class ClassSample:
    """One image with nucleus instances and a class per nucleus (a point inside it, the dataset's name)."""

    name: str
    image: npt.NDArray[np.uint8]
    instances: npt.NDArray[np.uint32]
    points: list[tuple[float, float, str]]
    mpp: float


def load_nucls_classes(data: PathLike) -> list[ClassSample]:
    """NuCLS fields (``data/nucls``): RGB, instance masks and each nucleus's class point."""
    from PIL import Image

    root = Path(data) / "nucls"
    if not (root / "images").is_dir():
        raise ConfigError(f"{root}: NuCLS folder not found (need images/, labels/, points/)")
    out = []
    for png in sorted((root / "images").glob("*.png")):
        inst, _ = read_npz_instances(root / "labels" / f"{png.stem}.npz")
        image = np.asarray(Image.open(png).convert("RGB"))
        pts = [
            (p.x, p.y, p.label)
            for p in read_points_csv(root / "points" / f"{png.stem}.csv", names=NUCLS_NAMES)
        ]
        out.append(ClassSample(f"nucls_{png.stem}", image, inst.astype(np.uint32), pts, NUCLS_MPP))
    return out


def load_monusac_classes(data: PathLike) -> list[ClassSample]:
    """MoNuSAC images (``data/monusac``): RGB, rasterized polygons, and a point inside each (nearest its centroid)."""
    from wsikit.io import open_slide

    root = Path(data) / "monusac"
    if not root.is_dir():
        raise ConfigError(f"{root}: MoNuSAC folder not found")
    out = []
    for svs in sorted(root.glob("*.svs")):
        ann = read_imagescope_xml(svs.with_suffix(".xml"))
        with open_slide(svs) as s:
            w, h = s.dimensions
            image = s.read_region((0, 0), 0, (w, h))
        inst = rasterize_polygons(ann.polygons, (h, w))
        pts = []
        for i, poly in enumerate(ann.polygons, start=1):
            ys, xs = np.nonzero(inst == i)
            if len(ys):  # a pixel inside the polygon nearest to its centroid
                j = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
                pts.append((float(xs[j]), float(ys[j]), str(poly.label)))
        out.append(ClassSample(f"monusac_{svs.stem}", image, inst.astype(np.uint32), pts, MONUSAC_MPP))
    return out
