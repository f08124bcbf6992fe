"""The BRCA-M2C reader and its export to a labelled folder, on the real dataset and damaged copies."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from wsikit.datasets import brca_m2c_mpp, load_brca_m2c, read_brca_m2c_points
from wsikit.errors import ConfigError


def test_val_split_is_read_with_its_patients_classes_and_resolution(data_dir):
    val = load_brca_m2c(data_dir, "val")
    assert len(val) == 10 and len({s.patient for s in val}) == 10
    labels = np.concatenate([s.label for s in val])
    assert {c: int((labels == c).sum()) for c in ("lymphocyte", "tumor", "stromal")} == {
        "lymphocyte": 1358,
        "tumor": 733,
        "stromal": 1042,
    }
    for s in val:
        assert 0.49 < s.mpp < 0.51 and s.image.dtype == np.uint8 and s.image.ndim == 3
        assert (s.x >= 0).all() and (s.x < s.image.shape[1]).all() and (s.y < s.image.shape[0]).all()
    # the dataset splits by slide: two val patients also have a train slide; training leaves them out
    train = load_brca_m2c(data_dir / "brca_m2c", "train")
    shared = {s.patient for s in train} & {s.patient for s in val}
    assert shared == {"TCGA-A7-A0DB", "TCGA-A7-A13G"}
    disjoint = load_brca_m2c(data_dir, "train", exclude_patients_of=("val",))
    assert len(disjoint) == len(train) - 2 and not {s.patient for s in disjoint} & {s.patient for s in val}


def _copy(data_dir, tmp_path, n=2):
    src = data_dir / "brca_m2c"
    root = tmp_path / "brca_m2c"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    names = (src / "val.txt").read_text().split()[:n]
    for name in names:
        shutil.copy(src / "images" / name, root / "images" / name)
        stem = name[: -len(".png")]
        shutil.copy(src / "labels" / f"{stem}_gt_class_coords.txt", root / "labels")
    (root / "val.txt").write_text("\n".join(names) + "\n")
    return root, names


def test_bad_points_files_name_the_file_and_line(data_dir, tmp_path):
    root, names = _copy(data_dir, tmp_path)
    lab = root / "labels" / f"{names[0][:-4]}_gt_class_coords.txt"
    lines = lab.read_text().splitlines()
    lab.write_text("\n".join([lines[0], "10 12 7", *lines[2:]]) + "\n")
    with pytest.raises(ConfigError, match=rf"{lab.name}: line 2: unknown class id 7; valid: 1 lymphocyte"):
        load_brca_m2c(tmp_path, "val")
    lab.write_text("10 99999 1\n")
    with pytest.raises(ConfigError, match=r"line 1: point \(x=99999, y=10\) lies outside"):
        read_brca_m2c_points(lab, shape=(500, 500))
    lab.write_text("10 twelve 1\n")
    with pytest.raises(ConfigError, match="line 1 must be 'Y X CLASS' numbers"):
        read_brca_m2c_points(lab, shape=(500, 500))
    (root / "val.txt").write_text("\n")
    with pytest.raises(ConfigError, match="the val split lists no image"):
        load_brca_m2c(tmp_path, "val")
    with pytest.raises(ConfigError, match="unknown BRCA-M2C split 'dev'; valid: train, val, test"):
        load_brca_m2c(tmp_path, "dev")
    with pytest.raises(ConfigError, match=r"test.txt: no such split list"):
        load_brca_m2c(tmp_path, "test")
    with pytest.raises(ConfigError, match="not a BRCA-M2C image name"):
        brca_m2c_mpp("slide_1", 500)


def test_export_classes_cli_writes_a_labelled_folder_or_nothing(data_dir, tmp_path, capsys):
    from wsikit.cli.main import run

    root, names = _copy(data_dir, tmp_path, n=3)
    out = tmp_path / "val"
    assert (
        run(["export-classes", "brca_m2c", "--data", str(tmp_path), "--split", "val", "--out", str(out)]) == 0
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["mpp"] == 0.5 and len(manifest["patients"]) == 3
    assert manifest["classes"] == {"tumor": "epithelial", "lymphocyte": "lymphocyte", "stromal": "fibroblast"}
    assert sorted(p.name for p in out.glob("*.png")) == sorted(names)
    n_points = sum(len(p.read_text().splitlines()) - 1 for p in out.glob("*.points.csv"))
    assert n_points == sum(manifest["points"].values())
    # a damaged points file: one line naming it, exit 1, no output folder
    lab = root / "labels" / f"{names[1][:-4]}_gt_class_coords.txt"
    lab.write_text("5 5 4\n")
    capsys.readouterr()
    bad = tmp_path / "bad"
    assert (
        run(["export-classes", "brca_m2c", "--data", str(tmp_path), "--split", "val", "--out", str(bad)]) == 1
    )
    err = capsys.readouterr().err.strip()
    assert lab.name in err and "unknown class id 4" in err and err.count("\n") == 0
    assert not bad.exists()
    assert run(["export-classes", "nucls", "--data", str(data_dir), "--split", "val", "--out", str(bad)]) == 1
    assert "nucls has no splits" in capsys.readouterr().err
