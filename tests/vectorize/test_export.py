"""``wsikit export``: QuPath-rule GeoJSON + GeoParquet from a real label store, streaming, bad input."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import uuid

import numpy as np
import pytest
import shapely

from wsikit.cli.main import run
from wsikit.errors import SlideOpenError, StoreError
from wsikit.io.annotations import rasterize_polygons, read_imagescope_xml
from wsikit.io.geojson import read_qupath_geojson
from wsikit.io.omezarr import OmeZarrStore
from wsikit.pipeline.export import export_nuclei


def _store(path, labels, *, slide=None, mpp=0.19448, offset=(0, 0), chunk=256):
    h, w = labels.shape
    store = OmeZarrStore.create(path, height=h, width=w, chunk=chunk, mpp=(mpp, mpp), image_downsample=8)
    store.create_label("nuclei", dtype=np.uint32)
    for y, x, hh, ww in store.chunk_grid():
        store.write_region("nuclei", y, x, labels[y : y + hh, x : x + ww])
    store.update_attributes(slide=str(slide) if slide else None, slide_id="case", bounds_offset=list(offset))
    return store


@pytest.fixture(scope="module")
def monusac(data_dir, tmp_path_factory):
    svs = data_dir / "monusac" / "A9K0_1.svs"
    from wsikit.io import open_slide

    with open_slide(svs) as s:
        w, h = s.dimensions
    labels = rasterize_polygons(read_imagescope_xml(svs.with_suffix(".xml")).polygons, (h, w))
    root = tmp_path_factory.mktemp("export")
    _store(root / "seg.zarr", labels, slide=svs)
    return root / "seg.zarr", labels, svs


def test_geojson_follows_qupath_rules_and_matches_geopandas(monusac, tmp_path):
    import geopandas

    store, labels, _ = monusac
    gj, pq = tmp_path / "n.geojson", tmp_path / "n.parquet"
    assert run(["-q", "export", str(store), "--geojson", str(gj), "--parquet", str(pq)]) == 0
    doc = json.loads(gj.read_text())
    assert doc["type"] == "FeatureCollection" and "objectType" not in doc
    objs = list(read_qupath_geojson(gj))  # the strict QuPath-rule reader
    n_ids = len(np.unique(labels)) - 1
    assert len(objs) == n_ids
    assert all(o.object_type == "detection" and o.geometry.is_valid for o in objs)
    assert len({o.id for o in objs}) == n_ids
    f0 = doc["features"][0]
    assert set(f0["properties"]) == {"objectType", "measurements"}
    ring = f0["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1]
    text = gj.read_text()
    assert ".00]" in text and "e-" not in text.split('"properties"')[0]  # 2 decimals, no exponents
    table = geopandas.read_parquet(pq)
    assert len(table) == n_ids and table.geometry.is_valid.all()
    assert set(objs[0].measurements) == set(table.columns) - {"id", "nucleus_id", "geometry"}  # same columns
    by_id = {o.id: o for o in objs}
    for _, row in table.head(50).iterrows():
        o = by_id[row["id"]]
        assert shapely.equals_exact(
            shapely.normalize(o.geometry), shapely.normalize(row.geometry), tolerance=0.005
        )
        assert o.measurements["area_um2"] == pytest.approx(row["area_um2"], rel=1e-4)
        assert o.measurements["hematoxylin_od_mean"] == pytest.approx(row["hematoxylin_od_mean"], rel=1e-3)
    # geopandas reads the GeoJSON to the same polygons too
    gdf = geopandas.read_file(gj).set_crs(None, allow_override=True)
    assert len(gdf) == n_ids
    assert np.isclose(gdf.geometry.area.sum(), table.geometry.area.sum())
    # ids are stable UUIDs: the same export twice gives the same file
    gj2 = tmp_path / "again.geojson"
    assert run(["-q", "export", str(store), "--geojson", str(gj2)]) == 0
    assert gj2.read_bytes() == gj.read_bytes()


def test_offset_cells_and_gzip(monusac, tmp_path):
    _, labels, svs = monusac
    store = _store(tmp_path / "off.zarr", labels, slide=svs, offset=(100, 50))
    gz = tmp_path / "c.geojson.gz"
    export_nuclei(store.path, geojson=gz, cells_um=2.0)
    with gzip.open(gz, "rt") as fh:
        doc = json.load(fh)
    f = doc["features"][0]
    assert f["properties"]["objectType"] == "cell" and "nucleusGeometry" in f
    objs = list(read_qupath_geojson(gz))
    ys, xs = np.nonzero(labels)
    minx = min(o.nucleus.bounds[0] for o in objs if o.nucleus is not None)
    assert minx == pytest.approx(xs.min() - 100)
    assert all(o.geometry.contains(o.nucleus.buffer(-0.01)) for o in objs[:50] if o.nucleus is not None)


def test_empty_labels_give_valid_empty_outputs(tmp_path):
    import geopandas

    store = _store(tmp_path / "empty.zarr", np.zeros((300, 200), np.uint32))
    out = export_nuclei(store.path, geojson=tmp_path / "e.geojson", parquet=tmp_path / "e.parquet")
    assert out["nuclei"] == 0
    assert json.loads((tmp_path / "e.geojson").read_text()) == {"type": "FeatureCollection", "features": []}
    assert len(geopandas.read_parquet(tmp_path / "e.parquet")) == 0


def test_bad_inputs(tmp_path, capsys):
    bare = OmeZarrStore.create(tmp_path / "bare.zarr", height=64, width=64, chunk=64, image_downsample=8)
    with pytest.raises(StoreError, match="no labels/nuclei"):
        export_nuclei(bare.path, geojson=tmp_path / "x.geojson")
    assert run(["export", str(tmp_path / "bare.zarr"), "--geojson", str(tmp_path / "x.geojson")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bare.zarr" in err and "no labels/nuclei" in err
    store = _store(tmp_path / "ok.zarr", np.zeros((64, 64), np.uint32))
    assert run(["export", str(store.path), "--geojson", str(tmp_path / "missing" / "x.geojson")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert run(["export", str(tmp_path / "nope.zarr"), "--parquet", str(tmp_path / "x.parquet")]) == 1
    assert "no such" in capsys.readouterr().err
    assert run(["export", str(store.path)]) == 1
    assert "--geojson" in capsys.readouterr().err
    assert not list(tmp_path.glob("x.*"))


def test_strict_reader_applies_qupath_rules(tmp_path):
    ok = {
        "type": "Feature",
        "id": str(uuid.uuid4()),
        "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [4, 4], [0, 0]]]},
        "properties": {"objectType": "annotation", "classification": {"name": "Tumor", "color": [200, 0, 0]}},
    }
    p = tmp_path / "qupath.geojson"
    p.write_text(json.dumps([ok]))  # a bare list of Features, as QuPath exports it
    (o,) = read_qupath_geojson(p)
    assert o.object_type == "annotation" and o.classification == "Tumor" and o.color == (200, 0, 0)
    cases = {
        "no [r, g, b] color": {**ok, "properties": {"classification": {"name": "Tumor"}}},
        "not a UUID": {**ok, "id": "nucleus-1"},
        "not closed": {
            **ok,
            "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [4, 4], [0, 1]]]},
        },
        "not a number": {**ok, "properties": {"measurements": {"area": "big"}}},
        "is not a number ('NaN')": {**ok, "properties": {"measurements": {"area": "NaN"}}},  # QuPath 0.4
    }
    for problem, feature in cases.items():
        p.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
        with pytest.raises(SlideOpenError, match=re.escape(problem)):
            list(read_qupath_geojson(p))


def test_writer_leaves_nan_out_keeps_parts_and_stays_valid_after_rounding(tmp_path):
    import shapely

    from wsikit.io.geojson import GeoJsonWriter, nucleus_uuid

    two = shapely.MultiPolygon([shapely.box(0, 0, 3, 3), shapely.box(5, 5, 7, 6)])
    # a hole 0.004 px wide: it collapses on QuPath's 0.01 px grid
    sliver = shapely.Polygon([(0, 0), (9, 0), (9, 9), (0, 9)], [[(2, 2), (2.004, 2), (2.004, 7), (2, 7)]])
    p = tmp_path / "w.geojson"
    with GeoJsonWriter(p) as w:
        w.write(nucleus_uuid("s", 1), two, measurements={"area_px2": 11.0, "red_mean": float("nan")})
        w.write(nucleus_uuid("s", 2), sliver, measurements={"area_px2": 81.0, "x": float("inf")})
    a, b = read_qupath_geojson(p)
    assert a.geometry.geom_type == "MultiPolygon" and a.geometry.area == 11.0
    assert a.measurements == {"area_px2": 11.0} and b.measurements == {"area_px2": 81.0}
    assert b.geometry.is_valid and len(b.geometry.interiors) == 0


@pytest.mark.slow
def test_writer_streams_without_growing_memory(tmp_path):
    """Peak memory of writing 20k vs 200k polygons (a child process each): the same within 10 MB."""
    code = """
import sys, shapely
from wsikit.io.geojson import GeoJsonWriter, nucleus_uuid
n = int(sys.argv[1])
base = shapely.Polygon([(0, 0), (7, 0), (9, 5), (4, 9), (0, 6)])
with GeoJsonWriter(sys.argv[2]) as w:
    for i in range(n):
        w.write(nucleus_uuid("s", i), shapely.affinity.translate(base, i % 1000 * 10, i // 1000 * 10),
                measurements={"area_um2": 40.5, "eccentricity": 0.5})
# VmHWM is this process's own peak (ru_maxrss survives execve: it would report pytest's peak)
print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")))
"""
    peaks = []
    for n in (20_000, 200_000):
        out = subprocess.run(
            [sys.executable, "-c", code, str(n), str(tmp_path / f"{n}.geojson")],
            capture_output=True,
            text=True,
            check=True,
        )
        peaks.append(int(out.stdout.strip()) / 1024)
    assert peaks[1] - peaks[0] < 10, peaks
    assert sum(1 for _ in read_qupath_geojson(tmp_path / "200000.geojson")) == 200_000
