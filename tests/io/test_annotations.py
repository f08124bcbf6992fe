"""Annotation readers on the real datasets, and their errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wsikit.errors import SlideOpenError
from wsikit.io.annotations import (
    Polygon,
    rasterize_polygons,
    read_ascii_label_mask,
    read_imagescope_xml,
    read_instance_pngs,
    read_npz_instances,
    read_points_csv,
)


def test_monuseg_xml_rasterizes_every_nucleus(data_dir: Path) -> None:
    ann = read_imagescope_xml(data_dir / "monuseg" / "train" / "TCGA-A7-A13E-01Z-00-DX1.xml")
    assert ann.mpp == pytest.approx(0.2456) and len(ann.polygons) == 314
    labels = rasterize_polygons(ann.polygons, (1000, 1000))
    ids, areas = np.unique(labels[labels > 0], return_counts=True)
    assert len(ids) == 314 and np.median(areas) > 100  # every nucleus left pixels; typical 40x nucleus size


def test_monusac_classes(data_dir: Path) -> None:
    counts: dict[str, int] = {}
    for i in (1, 2, 3):
        for p in read_imagescope_xml(data_dir / "monusac" / f"A9K0_{i}.xml").polygons:
            counts[p.label or "?"] = counts.get(p.label or "?", 0) + 1
    assert counts["Epithelial"] >= 320 and counts["Lymphocyte"] >= 290  # SOURCE.md: 329 / 299 regions


def test_miccai_ascii_mask(data_dir: Path) -> None:
    mask = read_ascii_label_mask(data_dir / "miccai2015" / "image01_mask.txt")
    assert mask.shape == (488, 643) and mask.max() > 100 and mask.min() == 0


def test_dsb_and_nucls(data_dir: Path) -> None:
    folder = sorted((data_dir / "dsb2018" / "stage1_train").iterdir())[0] / "masks"
    labels = read_instance_pngs(folder)
    assert labels.max() == len(list(folder.glob("*.png")))
    inst, types = read_npz_instances(data_dir / "nucls" / "labels" / "train_1.npz")
    assert inst.shape == (260, 288) and types is not None and set(np.unique(types)) <= {0, 1, 2}
    names = {0: "tumor_any", 1: "nonTIL_stromal", 2: "sTIL", 3: "other_nucleus"}
    points = read_points_csv(data_dir / "nucls" / "points" / "train_1.csv", names=names)
    assert points and {p.label for p in points} <= set(names.values())


def test_overlapping_polygons_later_wins() -> None:
    a = Polygon(np.array([[0.0, 0.0], [6.0, 0.0], [6.0, 6.0], [0.0, 6.0]]))
    b = Polygon(np.array([[3.0, 3.0], [9.0, 3.0], [9.0, 9.0], [3.0, 9.0]]))
    labels = rasterize_polygons([a, b], (10, 10))
    assert labels[4, 4] == 2 and labels[1, 1] == 1


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(SlideOpenError, match="no such annotation file"):
        read_imagescope_xml(tmp_path / "none.xml")
    bad = tmp_path / "bad.xml"
    bad.write_text("<Annotations><Region>")
    with pytest.raises(SlideOpenError, match="malformed XML"):
        read_imagescope_xml(bad)
    mask = tmp_path / "m.txt"
    mask.write_text("3 2\n0\n1\n")
    with pytest.raises(SlideOpenError, match="holds 2 labels for a 3x2 mask"):
        read_ascii_label_mask(mask)
    pts = tmp_path / "p.csv"
    pts.write_text("1,2\n")
    with pytest.raises(SlideOpenError, match="must be x,y,class"):
        read_points_csv(pts)
