"""The wsikit CLI end to end: output, files written, and one-line errors with non-zero exits."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsikit import __version__
from wsikit.cli.main import run

WSIKIT = [sys.executable, "-m", "wsikit.cli"]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["--version"], capsys)
    assert code == 0 and out.strip() == f"wsikit {__version__}"


def test_console_script_runs_in_a_subprocess(sample_slide: Path) -> None:
    exe = Path(sys.executable).with_name("wsikit")
    cmd = [str(exe)] if exe.exists() else WSIKIT
    proc = subprocess.run(
        [*cmd, "info", str(sample_slide), "--json"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["mpp"] == [0.499, 0.499]


def test_info_text_and_json(sample_slide: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["info", str(sample_slide)], capsys)
    assert code == 0
    assert (
        "openslide (tiles decoded by tifffile) / aperio" in out
        and "2220 x 2967 px" in out
        and "0.499, 0.499 um/px" in out
        and "20x" in out
    )
    code, out, _ = _run(["info", str(sample_slide), "--json"], capsys)
    data = json.loads(out)
    assert data["level_count"] == 1 and data["vendor"] == "aperio" and data["objective_power"] == 20.0
    assert data["backend"] == "openslide" and data["tile_decoder"] == "tifffile"
    assert 0.25 < data["tissue_fraction"] < 0.45 and data["tissue_area_mm2"] > 0.3


def test_info_unknown_mpp_is_null(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["info", str(data_dir / "slides" / "tcga-cr-7395-01a-01-ts1.svs"), "--json"], capsys)
    data = json.loads(out)
    assert code == 0 and data["mpp"] is None and data["tissue_area_mm2"] is None and data["level_count"] == 2


def test_info_thumbnail(sample_slide: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    thumb = tmp_path / "thumb.png"
    code, out, _ = _run(
        ["info", str(sample_slide), "--thumbnail", str(thumb), "--thumbnail-size", "400"], capsys
    )
    assert code == 0 and str(thumb) in out
    image = np.asarray(Image.open(thumb))
    assert max(image.shape[:2]) <= 400
    outline = (image[..., 0] == 0) & (image[..., 1] == 160) & (image[..., 2] == 0)
    assert outline.sum() > 100  # the tissue outline is drawn


def test_tiles_writes_images_and_index(
    sample_slide: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "tiles"
    code, out, _ = _run(["tiles", str(sample_slide), str(out_dir), "--size", "224", "--mpp", "1.0"], capsys)
    assert code == 0 and "tiles (224 px, 1 um/px)" in out
    with open(out_dir / "tiles.csv") as fh:
        rows = list(csv.DictReader(fh))
    pngs = sorted(p.name for p in out_dir.glob("*.png"))
    assert len(rows) == len(pngs) > 5
    assert sorted(r["file"] for r in rows) == pngs
    assert all(float(r["tissue_fraction"]) >= 0.5 for r in rows)
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["n_tiles"] == len(rows) and manifest["tile_size"] == 224
    first = np.asarray(Image.open(out_dir / rows[0]["file"]))
    assert first.shape == (224, 224, 3)
    # the tile equals the region it claims, read again through the library
    from wsikit.io import open_slide
    from wsikit.tiling import TileGrid, read_tile

    with open_slide(sample_slide) as slide:
        grid = TileGrid.for_slide(slide, tile_size=224, mpp=1.0)
        np.testing.assert_array_equal(first, read_tile(slide, grid, grid.tile(int(rows[0]["index"]))))


def test_tiles_jpg_overlap_and_limit(
    sample_slide: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "t"
    code, _, _ = _run(
        [
            "-q",
            "tiles",
            str(sample_slide),
            str(out_dir),
            "--size",
            "144",
            "--overlap",
            "16",
            "--format",
            "jpg",
            "--max-tiles",
            "7",
        ],
        capsys,
    )
    assert code == 0 and len(list(out_dir.glob("*.jpg"))) == 7


def test_tiles_refuses_non_empty_outdir(
    sample_slide: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "t"
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("mine")
    code, _, err = _run(["tiles", str(sample_slide), str(out_dir), "--max-tiles", "2"], capsys)
    assert code == 1 and "already exists and is not empty" in err and (out_dir / "keep.txt").exists()
    code, _, _ = _run(
        ["-q", "tiles", str(sample_slide), str(out_dir), "--max-tiles", "2", "--overwrite"], capsys
    )
    assert code == 0 and not (out_dir / "keep.txt").exists()


# ---------------------------------------------------------------- bad input
def _bad_inputs(tmp_path: Path, sample_slide: Path) -> dict[str, tuple[Path, str]]:
    text = tmp_path / "renamed.svs"
    text.write_text("just text\n")
    truncated = tmp_path / "truncated.svs"
    truncated.write_bytes(sample_slide.read_bytes()[:1_000_000])
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((300, 300, 3), 250, np.uint8)).save(blank)
    empty = tmp_path / "empty.svs"
    empty.touch()
    return {
        "missing": (tmp_path / "missing.svs", "no such file"),
        "directory": (tmp_path, "is a directory"),
        "text renamed .svs": (text, "not a valid .svs slide"),
        "truncated svs": (truncated, "truncated or corrupt"),
        "empty file": (empty, "file is empty"),
    }


@pytest.mark.parametrize("case", ["missing", "directory", "text renamed .svs", "truncated svs", "empty file"])
@pytest.mark.parametrize("command", ["info", "tiles"])
def test_bad_slides_give_one_line_and_no_output(
    case: str, command: str, tmp_path: Path, sample_slide: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, words = _bad_inputs(tmp_path, sample_slide)[case]
    out_dir = tmp_path / "out"
    argv = ["info", str(path)] if command == "info" else ["tiles", str(path), str(out_dir)]
    code, out, err = _run(argv, capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(path) in lines[0] and words in lines[0]
    assert not out_dir.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.partial")]


def test_image_without_tissue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((300, 300, 3), 250, np.uint8)).save(blank)
    # info answers (0% tissue) and warns on stderr
    code, out, err = _run(["info", str(blank), "--json"], capsys)
    assert code == 0 and json.loads(out)["tissue_fraction"] == 0.0
    assert err.strip() == f"wsikit: warning: {blank}: no tissue detected"
    # tiles refuses: one line, non-zero, no output directory
    out_dir = tmp_path / "tiles"
    code, out, err = _run(["tiles", str(blank), str(out_dir)], capsys)
    assert code == 1 and not out_dir.exists()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(blank) in lines[0] and "no tissue was detected" in lines[0]
    # asking for every tile exports them all
    code, out, _ = _run(["tiles", str(blank), str(out_dir), "--min-tissue", "0"], capsys)
    assert code == 0 and "wrote 4 of 4 tiles" in out


@pytest.mark.parametrize(
    ("option", "words"),
    [
        (["--size", "0"], "tile_size must be a positive integer"),
        (["--size", "-224"], "tile_size must be a positive integer"),
        (["--overlap", "300"], "overlap must be"),
        (["--mpp", "-1"], "mpp must be positive"),
        (["--min-tissue", "2"], "min_tissue must be in [0, 1]"),
        (["--size", "abc"], "'abc' is not a valid integer"),
    ],
)
def test_bad_options(
    option: list[str], words: str, sample_slide: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "out"
    code, _, err = _run(["tiles", str(sample_slide), str(out_dir), *option], capsys)
    assert code in (1, 2)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], err
    assert not out_dir.exists()


def test_mpp_needed_but_unknown(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    slide = data_dir / "slides" / "tcga-cr-7395-01a-01-ts1.svs"
    code, _, err = _run(["tiles", str(slide), str(tmp_path / "o"), "--mpp", "0.5"], capsys)
    assert code == 1 and "does not state its microns per pixel" in err and str(slide) in err
    code, out, _ = _run(
        [
            "-q",
            "tiles",
            str(slide),
            str(tmp_path / "o"),
            "--mpp",
            "2",
            "--slide-mpp",
            "0.5",
            "--max-tiles",
            "3",
        ],
        capsys,
    )
    assert code == 0 and len(list((tmp_path / "o").glob("*.png"))) == 3


def test_missing_output_parent(
    sample_slide: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "no" / "such" / "dir"
    code, _, err = _run(["tiles", str(sample_slide), str(target)], capsys)
    assert code == 1 and "does not exist" in err and len(err.strip().splitlines()) == 1


def test_interrupted_export_leaves_no_output(
    sample_slide: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wsikit.pipeline import tiles as tiles_module

    calls = {"n": 0}

    def boom(done: int, total: int) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    out_dir = tmp_path / "o"
    with pytest.raises(KeyboardInterrupt):
        tiles_module.export_tiles(sample_slide, out_dir, size=128, progress=boom, batch_size=4)
    assert not out_dir.exists() and os.listdir(tmp_path) == []


def test_dicom_and_plain_image_through_the_cli(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(["info", str(data_dir / "slides" / "small_dicom.dcm"), "--json"], capsys)
    assert code == 0 and json.loads(out)["backend"] == "dicom"
    png = tmp_path / "field.png"
    shutil.copy(data_dir / "nucls" / "images" / "train_1.png", png)
    code, out, _ = _run(
        ["-q", "tiles", str(png), str(tmp_path / "t"), "--size", "144", "--min-tissue", "0"], capsys
    )
    assert code == 0 and len(list((tmp_path / "t").glob("*.png"))) == 4
