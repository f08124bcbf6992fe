"""``wsikit run`` end to end on a real slide region: outputs, DONE no-op, resume after SIGKILL, a real Dask
LocalCluster, and every bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SAMPLE, assert_opens_in_ome_zarr_readers, write_pyramid_tiff
from wsikit.cli.main import run
from wsikit.io.geojson import read_qupath_geojson
from wsikit.io.omezarr import OmeZarrStore
from wsikit.pipeline.run import OUTPUT_FILES, RunConfig, run_slide

pytestmark = pytest.mark.slow  # whole-slide runs, a SIGKILL resume and a Dask cluster: minutes

CFG = RunConfig(stain="none", workers=2, chunk=256)  # the fixture's options; every comparison uses the same


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Path:
    """A 900 x 1400 px region of the CMU-1 sample slide (0.499 um/px) as a pyramidal TIFF."""
    from wsikit.io import open_slide

    root = tmp_path_factory.mktemp("run")
    with open_slide(SAMPLE) as s:
        img = s.read_region((700, 900), 0, (900, 1400))
    return write_pyramid_tiff(root / "region.tiff", img, levels=2, tile=256, mpp=0.499)


@pytest.fixture(scope="module")
def reference(region, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "region.wsikit"
    run_slide(region, out, config=CFG)
    return out


def _same_outputs(a: Path, b: Path) -> None:
    import pyarrow.parquet as pq

    fa = json.loads((a / "nuclei.geojson").read_text())["features"]
    fb = json.loads((b / "nuclei.geojson").read_text())["features"]
    diff = [(x["id"], x["properties"], y["properties"]) for x, y in zip(fa, fb, strict=True) if x != y]
    assert not diff, f"{len(diff)} features differ, first: {diff[0]}"
    assert (a / "nuclei.geojson").read_bytes() == (b / "nuclei.geojson").read_bytes()
    assert (
        pq.read_table(a / "cells.parquet").to_pandas().equals(pq.read_table(b / "cells.parquet").to_pandas())
    )
    sa, sb = OmeZarrStore.open(a / "result.zarr"), OmeZarrStore.open(b / "result.zarr")
    for name in ("nuclei", "cell_types"):
        assert np.array_equal(sa.array(name)[:], sb.array(name)[:])
    ja, jb = json.loads((a / "summary.json").read_text()), json.loads((b / "summary.json").read_text())
    for key in ("seconds", "performance"):  # timings and memory only: every count must be identical
        ja.pop(key), jb.pop(key)
    assert ja == jb


def test_outputs_are_complete_and_consistent(reference):
    out = reference
    for name in (*OUTPUT_FILES, "result.zarr", "DONE", "density_lymphocyte.png"):
        assert (out / name).exists(), name
    assert not (out / ".work").exists()
    summary = json.loads((out / "summary.json").read_text())
    n = summary["nuclei"]
    assert n > 300
    assert sum(c["count"] for c in summary["classes"].values()) == n
    assert summary["tissue_area_mm2"] > 0 and summary["nuclei_per_mm2"] > 0
    stages = {"tissue", "segment", "classify", "neighbourhood", "labels", "export", "report", "total"}
    assert set(summary["seconds"]) >= stages
    from wsikit.classify.infer import DEFAULT_CLASSIFIER

    assert summary["models"]["classifier"]["weights"] == f"{DEFAULT_CLASSIFIER}.pt"
    # every cell type is found on the CMU-1 region (breast: tumour nests, stroma, lymphocytes)
    assert all(c["count"] >= 0.05 * n for c in summary["classes"].values()), summary["classes"]
    # the label store: nuclei and cell types with the same levels, names and colors
    store = OmeZarrStore.open(out / "result.zarr")
    assert store.label_names == ["nuclei", "cell_types"]
    meta = store.label_metadata("cell_types")
    assert {p["name"] for p in meta["properties"]} == {"background", "epithelial", "lymphocyte", "fibroblast"}
    nuclei = store.array("nuclei")[:]
    assert len(np.unique(nuclei)) - 1 == n
    types = store.array("cell_types")[:]
    assert ((types > 0) == (nuclei > 0)).all()
    # exports: the same nuclei, classified, QuPath-importable
    objs = list(read_qupath_geojson(out / "nuclei.geojson"))
    assert len(objs) == n and all(o.classification and o.color for o in objs)
    import geopandas

    table = geopandas.read_parquet(out / "cells.parquet")
    assert len(table) == n and set(table["class"]) <= {"epithelial", "lymphocyte", "fibroblast"}
    assert table["class_probability"].between(0, 1).all()
    # objects of a colour no H&E stain gives (ink) are counted as the summary says
    odd = summary["non_he_colour_objects"]["count"]
    assert odd == int((table["green_mean"] >= table["red_mean"]).sum())
    html = (out / "report.html").read_text()
    assert "data:image/jpeg;base64," in html  # self-contained: images inline, nothing fetched
    assert 'src="http' not in html and "<link" not in html and "<script" not in html
    assert 'href="cell_types.png"' in html and (out / "report.html").stat().st_size < 1.5e6
    seg = summary["segmentation"]  # what segmentation dropped, and why, is in the report
    assert (
        f"{seg['dropped_on_glass']} lying on glass; {seg['dropped_too_long']} longer than any nucleus" in html
    )
    from PIL import Image

    assert Image.open(out / "cell_types.png").size == (900, 1400)  # full resolution (up to 4,096 px)
    assert summary["damaged_regions"]["count"] == 0


def test_result_store_opens_in_ome_zarr_readers_aligned_with_the_slide(reference):
    path = reference / "result.zarr"
    assert_opens_in_ome_zarr_readers(path, ("nuclei", "cell_types"))
    store = OmeZarrStore.open(path)
    assert store.image_downsample == 8 and store.image_shape(0) == (175, 113)
    # the overview lies under the labels: nuclei (hematoxylin) are darker than the rest of the tissue
    image = store.read_region(
        "image", x=0, y=0, width=store.image_shape(0)[1], height=store.image_shape(0)[0]
    ).mean(axis=0)
    nuclei = store.array("nuclei", 3)[:] > 0  # labels level 3 = 1/8, the overview's level 0
    tissue = image < 220
    assert nuclei.shape == image.shape
    assert image[nuclei & tissue].mean() < image[~nuclei & tissue].mean() - 10


def test_geojson_parquet_and_ome_zarr_agree(reference):
    """Centroids, areas and class names of every nucleus, read back with QuPath's rules (FORMATS.md)."""
    import geopandas
    import shapely
    from scipy import ndimage as ndi

    objs = {o.id: o for o in read_qupath_geojson(reference / "nuclei.geojson")}  # strict: no "NaN" strings
    table = geopandas.read_parquet(reference / "cells.parquet").set_index("id")
    assert set(objs) == set(table.index)
    store = OmeZarrStore.open(reference / "result.zarr")
    labels = store.array("nuclei")[:]
    types = store.array("cell_types")[:]
    names = {p["label-value"]: p["name"] for p in store.label_metadata("cell_types")["properties"]}
    ids = table["nucleus_id"].to_numpy()
    count = ndi.sum_labels(np.ones_like(labels), labels, ids)
    cy, cx = np.array(ndi.center_of_mass(np.ones_like(labels), labels, ids)).T + 0.5  # pixel-edge convention
    type_of = ndi.maximum(types, labels, ids)
    mpp = json.loads((reference / "summary.json").read_text())["mpp"]
    multi = 0
    for j, (fid, row) in enumerate(table.iterrows()):
        o = objs[fid]
        g = o.geometry
        multi += g.geom_type == "MultiPolygon"
        for x, y in (
            (o.measurements["centroid_x"], o.measurements["centroid_y"]),
            (row.centroid_x, row.centroid_y),
        ):
            assert abs(x - g.centroid.x) < 0.01 and abs(y - g.centroid.y) < 0.01, fid
            assert abs(x - cx[j]) < 0.01 and abs(y - cy[j]) < 0.01, fid
        assert g.area == pytest.approx(count[j], abs=1e-6) and row.geometry.area == pytest.approx(count[j])
        assert row.area_um2 == pytest.approx(count[j] * mpp**2, rel=1e-6)
        assert o.classification == row["class"] == names[int(type_of[j])], fid
        assert all(np.isfinite(v) for v in o.measurements.values())
    assert shapely.is_valid(table.geometry.to_numpy()).all()


def test_rerun_is_a_noop_and_other_options_refuse(region, reference, capsys):
    t = time.perf_counter()
    again = run_slide(region, reference, config=CFG)
    assert again["skipped"] and time.perf_counter() - t < 10
    assert (
        run(["-q", "run", str(region), "--out", str(reference), "--stain", "reinhard", "--chunk", "256"]) == 1
    )
    err = capsys.readouterr().err.strip()
    assert "other inputs, models or options" in err and "--overwrite" in err and err.count("\n") == 0
    # test-time augmentation changes the labels, so it is part of the fingerprint too
    assert RunConfig(tta=True).result_options()["tta"] is True
    assert (
        run(["-q", "run", str(region), "--out", str(reference), "--stain", "none", "--chunk", "256", "--tta"])
        == 1
    )
    assert "other inputs, models or options" in capsys.readouterr().err


def test_resume_after_sigkill_gives_identical_outputs(region, reference, tmp_path):
    out = tmp_path / "killed.wsikit"
    cmd = [
        sys.executable,
        "-m",
        "wsikit.cli",
        "-q",
        "run",
        str(region),
        "--out",
        str(out),
        "--stain",
        "none",
        "--chunk",
        "256",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = out / ".work" / "segment.journal.npz"
    deadline = time.time() + 120
    while not journal.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "DONE").exists() and not (out / "nuclei.geojson").exists()
    done_tiles = int(np.load(journal)["done"])
    assert done_tiles > 0 and not (out / ".work" / "segment.done").exists()
    res = subprocess.run([*cmd[:3], "-v", *cmd[4:]], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert f"resuming segmentation at tile {done_tiles}" in res.stderr
    _same_outputs(reference, out)


@pytest.mark.parametrize(
    "stage, marker",
    [("classify", ".work/parts/*.parquet"), ("labels", ".work/result.zarr/labels/cell_types")],
)
def test_resume_after_sigkill_in_later_stages(region, reference, tmp_path, stage, marker):
    """kill -9 once the stage has begun writing; the rerun's outputs and summary (timings aside) are identical."""
    out = tmp_path / f"killed-{stage}.wsikit"
    cmd = [sys.executable, "-m", "wsikit.cli", "-q", "run", str(region), "--out", str(out)]
    cmd += ["--stain", "none", "--chunk", "256"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list(out.glob(marker)) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, f"the run finished before it could be killed in {stage}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "DONE").exists() and (out / ".work" / "segment.done").exists()
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    _same_outputs(reference, out)


def test_damaged_tiles_are_skipped_and_reported(region, tmp_path, capsys):
    """Corrupt JPEG and JPEG 2000 tiles of a generic TIFF (tifffile): the slide completes, the damage is listed;
    OpenSlide, forced, reads the same JPEG file around the same two tiles."""
    import tifffile

    from wsikit.io import open_slide

    with open_slide(region) as s:
        img = s.read_region((0, 0), 0, s.dimensions)
    for comp, backend in (("jpeg", "tifffile"), ("jpeg2000", "tifffile")):
        path = write_pyramid_tiff(
            tmp_path / f"{comp}.tiff", img, levels=2, tile=256, mpp=0.499, compression=comp
        )
        with tifffile.TiffFile(path) as t:
            offsets, counts = t.pages[0].dataoffsets, t.pages[0].databytecounts
        with open(path, "r+b") as fh:  # tiles (1, 1) and (2, 1) of level 0: their coded data overwritten
            for i in (5, 9):
                fh.seek(offsets[i] + 2)
                fh.write(b"\x00" * (counts[i] - 2))
        with open_slide(path) as s:
            assert s.backend == backend
        if comp == "jpeg":
            with open_slide(path, backend="openslide") as s:
                damage = s.skip_damaged()
                pixels = s.read_region((0, 0), 0, s.dimensions)
                assert sorted((d.x, d.y) for d in damage.regions) == [(256, 256), (256, 512)]
                assert (pixels[256 + 8 : 512 - 8, 256 + 8 : 512 - 8] == 255).all()
        out = tmp_path / f"{comp}.wsikit"
        args = ["-q", "run", str(path), "--out", str(out), "--stain", "none", "--chunk", "256"]
        # two 256 px tiles are 14% of this small region's tissue: past the default 5%, one clear line
        assert run(args) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "2 unreadable regions cover" in err[0] and f"{comp}.tiff" in err[0], err
        assert not (out / "DONE").exists() and (out / ".work" / "segment.done").exists()  # finished work kept
        assert run([*args, "--max-damaged", "20"]) == 0
        summary = json.loads((out / "summary.json").read_text())
        dmg = summary["damaged_regions"]
        assert dmg["count"] == 2 and dmg["boxes_level0"] == [[256, 256, 256, 256], [256, 512, 256, 256]]
        assert 0.1 < dmg["share_of_tissue"] < 0.2 and summary["nuclei"] > 300
        assert "2</b> unreadable (corrupt) regions" in (out / "report.html").read_text()
        # nothing was segmented on the damaged tiles: they were read as glass
        labels = OmeZarrStore.open(out / "result.zarr").array("nuclei")[:]
        assert not labels[256 + 8 : 512 - 8, 256 + 8 : 512 - 8].any()
        assert_opens_in_ome_zarr_readers(out / "result.zarr", ("nuclei", "cell_types"))


def test_several_slides_create_the_out_folder(generated, tmp_path):
    import shutil

    out = tmp_path / "cohort"  # does not exist yet
    slides = [shutil.copy(generated["blank_png"], tmp_path / f"{name}.png") for name in ("a", "b")]
    assert run(["-q", "run", *map(str, slides), "--mpp", "0.5", "--out", str(out), "--chunk", "256"]) == 0
    assert (out / "a.wsikit" / "DONE").exists() and (out / "b.wsikit" / "DONE").exists()


def test_dask_cluster_equals_single_process_and_isolates_failures(region, reference, tmp_path):
    from distributed import LocalCluster

    from wsikit.pipeline.cohort import SlideJob, run_cohort

    bad = tmp_path / "broken.svs"
    bad.write_bytes(b"not a slide at all")
    jobs = [SlideJob(region, tmp_path / "dask.wsikit"), SlideJob(bad, tmp_path / "broken.wsikit")]
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        results = run_cohort(jobs, config=CFG, scheduler=cluster.scheduler_address)
    assert [r["ok"] for r in results] == [True, False]
    assert "broken.svs" in results[1]["error"]
    _same_outputs(reference, tmp_path / "dask.wsikit")
    assert not (tmp_path / "broken.wsikit" / "DONE").exists()
    # a study table from the results
    assert (
        run(["-q", "stats", str(reference), str(tmp_path / "dask.wsikit"), "--out", str(tmp_path / "s.csv")])
        == 0
    )
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("slide_id,mpp,tissue_area_mm2,nuclei")


def _no_finished_output(out: Path) -> None:
    assert not (out / "DONE").exists()
    for name in OUTPUT_FILES:
        assert not (out / name).exists()


def test_bad_inputs_fail_with_one_line(tmp_path, capsys, generated):
    def fails(args: list[str], *fragments: str) -> None:
        assert run(args) == 1
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0, err
        for f in fragments:
            assert f in err, err

    fails(["run", str(tmp_path / "missing.svs")], "missing.svs", "no such")
    notslide = tmp_path / "notes.svs"
    notslide.write_text("hello")
    fails(["run", str(notslide)], "notes.svs")
    _no_finished_output(tmp_path / "notes.wsikit")
    data = SAMPLE.read_bytes()
    trunc = tmp_path / "trunc.svs"
    trunc.write_bytes(data[: len(data) // 2])
    fails(["run", str(trunc)], "trunc.svs")
    _no_finished_output(tmp_path / "trunc.wsikit")
    # no mpp: --mpp is required, said clearly
    fails(["run", str(generated["plain_png"]), "--out", str(tmp_path / "p.wsikit")], "--mpp")
    # unwritable output
    fails(["run", str(SAMPLE), "--out", str(tmp_path / "no" / "such" / "dir")], "does not exist")
    afile = tmp_path / "a_file"
    afile.write_text("x")
    fails(["run", str(SAMPLE), "--out", str(afile / "x.wsikit")], "is not a directory")  # runs as root too
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if not os.access(ro, os.W_OK):  # root ignores permissions
            fails(["run", str(SAMPLE), "--out", str(ro / "x.wsikit")], "no write permission")
    finally:
        ro.chmod(0o700)


def test_slide_without_tissue_gives_a_valid_empty_result(generated, tmp_path, capsys):
    out = tmp_path / "blank.wsikit"
    args = ["-q", "run", str(generated["blank_png"]), "--mpp", "0.5", "--out", str(out), "--chunk", "256"]
    assert run([*args, "--stain", "reinhard", "--save-normalized"]) == 0
    assert "no nuclei" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["nuclei"] == 0 and (out / "DONE").exists()
    assert json.loads((out / "nuclei.geojson").read_text())["features"] == []
    store = OmeZarrStore.open(out / "result.zarr")
    assert store.has_image  # --save-normalized: the normalized image pyramid beside the labels
    image = store.read_region("image", x=0, y=0, width=500, height=400)
    assert image.shape == (3, 400, 500) and (image == 247).all()  # glass is left as it is
    assert run([*args, "--stain", "none", "--save-normalized", "--overwrite"]) == 1
    assert "needs a stain method" in capsys.readouterr().err


def test_two_runs_on_one_output_refuse(region, tmp_path):
    from wsikit.errors import OutputExistsError
    from wsikit.pipeline._run_state import RunLock

    out = tmp_path / "locked.wsikit"
    out.mkdir()
    with RunLock(out), pytest.raises(OutputExistsError, match="another wsikit run is writing"):
        run_slide(region, out, config=CFG)


def test_export_of_a_run_result_carries_the_classes(reference, tmp_path):
    out = tmp_path / "again.geojson"
    assert run(["-q", "export", str(reference), "--geojson", str(out)]) == 0
    cells = tmp_path / "cells.geojson"
    assert run(["-q", "export", str(reference), "--geojson", str(cells), "--cells", "5"]) == 0
    objs = list(read_qupath_geojson(cells))  # strict: every geometry valid after rounding to 0.01 px
    bounds = np.array([o.geometry.bounds for o in objs])
    assert bounds[:, :2].min() >= 0 and bounds[:, 2].max() <= 900 and bounds[:, 3].max() <= 1400
    ours = {o.id: o for o in read_qupath_geojson(out)}
    theirs = {o.id: o for o in read_qupath_geojson(reference / "nuclei.geojson")}
    assert ours.keys() == theirs.keys()
    for k, o in theirs.items():
        assert ours[k].classification == o.classification
        assert ours[k].measurements["class_probability"] == pytest.approx(
            o.measurements["class_probability"], abs=1e-4
        )
