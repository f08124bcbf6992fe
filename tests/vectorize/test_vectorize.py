"""Polygons, measurements and the chunked vectorizer on real annotated nuclei (MoNuSAC) and exact shapes."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from skimage.draw import disk, ellipse

from wsikit.errors import ShapeError
from wsikit.io.annotations import rasterize_polygons, read_imagescope_xml
from wsikit.vectorize.chunked import iter_nucleus_batches
from wsikit.vectorize.measure import measure_nuclei
from wsikit.vectorize.polygons import label_polygons, mask_polygon


@pytest.fixture(scope="module")
def monusac_labels(data_dir):
    """Instance labels of MoNuSAC A9K0_1 (321 annotated nuclei, several touching) and the slide path."""
    from wsikit.io import open_slide

    svs = data_dir / "monusac" / "A9K0_1.svs"
    with open_slide(svs) as s:
        w, h = s.dimensions
        image = s.read_region((0, 0), 0, (w, h))
    labels = rasterize_polygons(read_imagescope_xml(svs.with_suffix(".xml")).polygons, (h, w))
    return image, labels


def test_polygon_area_is_pixel_count_and_valid(monusac_labels):
    _, labels = monusac_labels
    ids, polys = label_polygons(labels)
    present = np.unique(labels)
    assert ids.tolist() == present[present > 0].tolist()
    assert all(p.is_valid and p.geom_type in ("Polygon", "MultiPolygon") for p in polys)
    counts = np.bincount(labels.ravel())[ids]
    areas = np.array([p.area for p in polys])
    # every pixel is kept: a nucleus cut in two by an overlapping annotation is a MultiPolygon
    assert (areas == counts).all()
    assert any(p.geom_type == "MultiPolygon" for p in polys)
    # centroids in the polygons' pixel-edge convention: pixel (0, 0) is centred at (0.5, 0.5)
    from wsikit.vectorize.measure import measure_nuclei

    m = measure_nuclei(np.full((*labels.shape, 3), 128, np.uint8), labels, ids=ids)
    cx = np.array([p.centroid.x for p in polys])
    cy = np.array([p.centroid.y for p in polys])
    assert np.abs(m["centroid_x"] - cx).max() < 1e-6 and np.abs(m["centroid_y"] - cy).max() < 1e-6


def test_polygon_follows_pixel_edges_with_holes_and_corner_contacts():
    m = np.zeros((9, 9), bool)
    m[1:8, 1:8] = True
    m[4, 4] = False  # a hole
    p = mask_polygon(m)
    assert p.area == m.sum() and len(p.interiors) == 1
    diag = np.zeros((4, 4), bool)
    diag[0, 0] = diag[1, 1] = True  # pixels touching only at a corner
    q = mask_polygon(diag)
    assert q.is_valid and q.geom_type == "MultiPolygon" and q.area == 2.0


def test_direct_outline_equals_the_union_of_pixel_boxes():
    """Row- or column-convex masks get their outline written directly; it must be the union of their pixels'
    boxes (the general path), counter-clockwise, with no collinear vertex; simplifying gives the same result
    whichever path made the outline."""
    from wsikit.vectorize.polygons import _direct_ring, _runs, _union_of_runs

    rng = np.random.default_rng(1)
    direct = 0
    for k in range(300):
        m = np.zeros((40, 40), bool)
        rr, cc = ellipse(20, 20, *rng.uniform(1, 18, 2), shape=m.shape, rotation=rng.uniform(0, 3))
        m[rr, cc] = True
        if k % 3 == 1:
            m &= rng.random(m.shape) > 0.05  # notches, holes, corner contacts
        if k % 3 == 2:
            m[:, int(rng.integers(5, 35))] = False  # a cut: two pieces or a notch
        if not m.any():
            continue
        runs = _runs(m)
        ring = _direct_ring(runs, m)
        ref = _union_of_runs(*runs, 2.0, 3.0)
        got = mask_polygon(m, offset=(2.0, 3.0))
        assert got.is_valid and shapely.equals(got, ref) and got.area == m.sum()
        assert shapely.get_num_coordinates(got) == shapely.get_num_coordinates(ref)
        if ring is not None:
            direct += 1
            assert got.exterior.is_ccw
            simple = mask_polygon(m, offset=(2.0, 3.0), simplify=0.7, max_area_change=1.0)
            ref_simple = shapely.simplify(shapely.normalize(ref), 0.7, preserve_topology=True)
            assert shapely.equals_exact(shapely.normalize(simple), shapely.normalize(ref_simple), 0)
    assert 100 < direct < 290  # both paths exercised


def test_simplify_keeps_area_within_two_percent(monusac_labels):
    _, labels = monusac_labels
    _, exact = label_polygons(labels)
    _, simple = label_polygons(labels, simplify=1.0)
    change = np.array([abs(a.area - b.area) / a.area for a, b in zip(exact, simple, strict=True)])
    assert change.max() <= 0.02
    import shapely

    assert shapely.get_num_coordinates(simple).sum() < shapely.get_num_coordinates(exact).sum()
    assert all(p.is_valid for p in simple)


@pytest.mark.parametrize(("chunk", "halo"), [(64, 4), (100, 16), (333, 2)])
def test_chunked_vectorizer_merges_nuclei_across_chunk_borders(monusac_labels, chunk, halo):
    image, labels = monusac_labels
    h, w = labels.shape
    _, whole = label_polygons(labels)
    batches = list(
        iter_nucleus_batches(
            lambda y, x, hh, ww: labels[y : y + hh, x : x + ww],
            lambda y, x, hh, ww: image[y : y + hh, x : x + ww],
            height=h,
            width=w,
            chunk=chunk,
            halo=halo,
            mpp=0.19448,
        )
    )
    ids = np.concatenate([b.ids for b in batches])
    assert len(ids) == len(set(ids.tolist())) == len(whole)  # each nucleus exactly once
    got = {int(i): p for b in batches for i, p in zip(b.ids, b.polygons, strict=True)}
    present = np.unique(labels)
    for nid, ref in zip(present[present > 0], whole, strict=True):
        assert got[int(nid)].equals(ref)
    # nuclei straddling a chunk border exist at this chunk size, and were merged whole
    straddling = [p for p in whole if int(p.bounds[0]) // chunk != int(p.bounds[2] - 1) // chunk]
    assert straddling
    # measurements are those of the whole-image computation
    ref = measure_nuclei(image, labels, mpp=0.19448)
    order = np.argsort(ids)
    area = np.concatenate([b.columns["area"] for b in batches])[order]
    np.testing.assert_allclose(area, ref["area"])
    cx = np.concatenate([b.columns["centroid_x"] for b in batches])[order]
    np.testing.assert_allclose(cx, ref["centroid_x"])
    hem = np.concatenate([b.columns["hematoxylin_od_mean"] for b in batches])[order]
    np.testing.assert_allclose(hem, ref["hematoxylin_od_mean"])


def test_measurements_of_known_shapes():
    lab = np.zeros((200, 200), np.int32)
    rr, cc = disk((50, 50), 20)
    lab[rr, cc] = 1
    rr, cc = ellipse(140, 120, 10, 40)  # semi-axes 10 (rows) and 40 (columns)
    lab[rr, cc] = 2
    image = np.full((200, 200, 3), 240, np.uint8)
    image[lab == 1] = (60, 40, 120)  # dark purple: hematoxylin
    image[lab == 2] = (230, 140, 190)  # pink: eosin
    m = measure_nuclei(image, lab, mpp=0.5)
    assert m["area"][0] == pytest.approx(np.pi * 20**2 * 0.25, rel=0.02)
    assert m["major_axis"][1] == pytest.approx(80 * 0.5, rel=0.03)
    assert m["minor_axis"][1] == pytest.approx(20 * 0.5, rel=0.06)
    assert m["eccentricity"][0] < 0.1 and m["eccentricity"][1] == pytest.approx(
        np.sqrt(1 - (10 / 40) ** 2), abs=0.01
    )
    assert m["circularity"][0] > 0.85 > m["circularity"][1]
    assert m["solidity"][0] > 0.95
    assert m["hematoxylin_od_mean"][0] > m["hematoxylin_od_mean"][1]
    assert m["eosin_od_mean"][1] > 0 and m["red_mean"][1] == 230 and m["red_std"][1] == 0
    # without mpp: pixel units
    assert measure_nuclei(image, lab)["area"][0] == pytest.approx(m["area"][0] * 4)


def test_moment_measurements_equal_regionprops(monusac_labels):
    """Centroids, axes and eccentricity are computed for all nuclei at once: they must equal regionprops'."""
    from skimage.measure import regionprops_table

    _, labels = monusac_labels
    m = measure_nuclei(np.full((*labels.shape, 3), 128, np.uint8), labels, mpp=0.25)
    ref = regionprops_table(
        labels,
        properties=(
            "label",
            "centroid",
            "axis_major_length",
            "axis_minor_length",
            "eccentricity",
            "solidity",
        ),
    )
    assert m["label"].tolist() == ref["label"].tolist() and len(ref["label"]) > 300
    np.testing.assert_allclose(m["centroid_x"], ref["centroid-1"] + 0.5, atol=1e-9)
    np.testing.assert_allclose(m["centroid_y"], ref["centroid-0"] + 0.5, atol=1e-9)
    np.testing.assert_allclose(m["major_axis"], ref["axis_major_length"] * 0.25, atol=1e-9)
    np.testing.assert_allclose(m["minor_axis"], ref["axis_minor_length"] * 0.25, atol=1e-9)
    np.testing.assert_allclose(m["eccentricity"], ref["eccentricity"], atol=1e-9)
    np.testing.assert_allclose(m["solidity"], ref["solidity"], atol=1e-12)


def test_measure_rejects_mismatched_shapes():
    with pytest.raises(ShapeError, match="same size"):
        measure_nuclei(np.zeros((5, 5, 3), np.uint8), np.zeros((4, 5), np.int32))
    with pytest.raises(ShapeError, match="not present"):
        label_polygons(np.zeros((4, 4), np.int32), np.array([3]))
    assert shapely.is_empty(mask_polygon(np.zeros((3, 3), bool)))


def test_solidity_equals_regionprops_on_ragged_shapes():
    """The all-at-once convex hulls must count the same pixels as regionprops' per-region hull, also for
    shapes with holes, several pieces, single pixels, single rows and columns, and shapes on the border."""
    from skimage.measure import regionprops_table

    rng = np.random.default_rng(3)
    size = 300
    lab = np.zeros((size, size), np.int32)
    yy, xx = np.ogrid[:size, :size]
    for nid in range(1, 181):
        y, x = rng.integers(0, size, 2)
        ry, rx = rng.integers(0, 16, 2)
        inside = ((yy - y) / (ry + 0.5)) ** 2 + ((xx - x) / (rx + 0.5)) ** 2 <= 1
        lab[inside & (rng.random((size, size)) > 0.2 * (nid % 3))] = nid  # ragged: holes and pieces
    ids = np.unique(lab)[1:]
    assert len(ids) > 150
    ref = regionprops_table(lab, properties=("label", "solidity"))
    image = np.full((size, size, 3), 128, np.uint8)
    np.testing.assert_allclose(measure_nuclei(image, lab)["solidity"], ref["solidity"], atol=1e-12)
    some = ids[::4][::-1]
    expected = dict(zip(ref["label"].tolist(), ref["solidity"], strict=True))
    np.testing.assert_allclose(
        measure_nuclei(image, lab, ids=some)["solidity"], [expected[int(i)] for i in some], atol=1e-12
    )
