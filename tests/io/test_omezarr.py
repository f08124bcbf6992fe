"""OME-Zarr store: NGFF 0.5 metadata (validated by ome-zarr-models and read by ome-zarr-py), chunk-aligned
writes, multi-process writers, pyramids, empty chunks, reopen/extend/resume and errors."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest

from wsikit.errors import OutputExistsError, ShapeError, StoreError
from wsikit.io.omezarr import IMAGE, OmeZarrStore


def _store(tmp_path: Path, **kw: object) -> OmeZarrStore:
    params: dict[str, object] = {"height": 300, "width": 520, "chunk": 128, "mpp": (0.25, 0.26)}
    params.update(kw)
    return OmeZarrStore.create(tmp_path / "r.zarr", **params)  # type: ignore[arg-type]


def test_metadata_validates_against_ngff_05(tmp_path: Path) -> None:
    import zarr
    from ome_zarr_models.v05.image import Image
    from ome_zarr_models.v05.image_label import ImageLabel

    store = _store(tmp_path)
    store.create_label(
        "nuclei", colors={1: (255, 0, 0, 255), 2: (0, 255, 0)}, properties={1: {"area": 10}, 2: {"area": 12}}
    )
    store.create_label("cell_types", dtype=np.uint8, properties={1: {"name": "epithelial"}})
    group = zarr.open_group(str(store.path), mode="r")
    image = Image.from_zarr(group)
    ms = image.attributes.ome.multiscales[0]
    assert [d.path for d in ms.datasets] == ["0", "1", "2", "3"]
    assert ms.datasets[1].coordinateTransformations[0].scale == [
        1.0,
        0.52,
        0.5,
    ]  # (c, y, x) with mpp (x=0.25, y=0.26)
    label = ImageLabel.from_zarr(group["labels/nuclei"])
    colors = label.attributes.ome.image_label.colors
    assert [(c.label_value, tuple(c.rgba)) for c in colors] == [(1, (255, 0, 0, 255)), (2, (0, 255, 0, 255))]
    assert group["labels"].attrs["ome"]["labels"] == ["nuclei", "cell_types"]
    assert group["labels/cell_types/0"].dtype == np.uint8
    assert group["labels/nuclei/2"].shape == group["2"].shape[1:]


def test_ome_zarr_py_reads_image_and_labels(tmp_path: Path) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    store = _store(tmp_path)
    store.create_label("nuclei")
    rgb = np.random.default_rng(0).integers(0, 255, (300, 520, 3), dtype=np.uint8)
    store.write_region(IMAGE, 0, 0, rgb)
    store.build_pyramid(IMAGE)
    nodes = list(Reader(parse_url(str(store.path)))())
    image = nodes[0]
    assert [tuple(d.shape) for d in image.data] == [(3, 300, 520), (3, 150, 260), (3, 75, 130), (3, 38, 65)]
    np.testing.assert_array_equal(np.asarray(image.data[0]), np.moveaxis(rgb, -1, 0))
    assert any(str(n.zarr.path).endswith("labels/nuclei") for n in nodes)


def test_region_writes_must_own_whole_chunks(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.create_label("nuclei")
    block = np.ones((128, 128), np.uint32)
    store.write_region("nuclei", 128, 256, block)
    store.write_region("nuclei", 256, 512, np.ones((44, 8), np.uint32))  # edge chunk reaching the array end
    with pytest.raises(ShapeError, match="not aligned to 128-px chunks"):
        store.write_region("nuclei", 64, 0, block)
    with pytest.raises(ShapeError, match="not aligned"):
        store.write_region("nuclei", 0, 0, np.ones((100, 128), np.uint32))
    with pytest.raises(ShapeError, match="outside"):
        store.write_region("nuclei", 256, 0, block)
    with pytest.raises(ShapeError, match="does not fit"):
        store.write_region("nuclei", 0, 0, np.ones((128, 128), np.float64))


def test_empty_chunks_are_not_written(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.create_label("nuclei")
    store.write_region("nuclei", 0, 0, np.zeros((128, 128), np.uint32))
    store.write_region("nuclei", 0, 128, np.full((128, 128), 7, np.uint32))
    assert store.written_chunks("nuclei") == {(0, 1)}
    store.write_region(IMAGE, 0, 0, np.full((128, 128, 3), 255, np.uint8))  # glass = fill value
    assert store.written_chunks(IMAGE) == set()


def _write_chunk(args: tuple[str, int, int, int]) -> None:
    path, y, x, value = args
    store = OmeZarrStore.open(path, mode="r+")
    h, w = min(128, store.height - y), min(128, store.width - x)
    store.write_region("nuclei", y, x, np.full((h, w), value, np.uint32))


def test_concurrent_writers_in_processes(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.create_label("nuclei")
    jobs = [(str(store.path), y, x, 1 + i) for i, (y, x, _, _) in enumerate(store.chunk_grid())]
    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(_write_chunk, jobs)
    data = store.read_region("nuclei", x=0, y=0, width=520, height=300)
    for _, y, x, value in jobs:
        assert (data[y : y + 128, x : x + 128] == value).all()
    assert len(store.written_chunks("nuclei")) == len(jobs) == 15


def test_pyramid_levels(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.create_label("nuclei")
    rgb = np.zeros((300, 520, 3), np.uint8)
    rgb[:, :, 0] = np.arange(520)[None, :] % 256
    store.write_region(IMAGE, 0, 0, rgb)
    labels = (np.arange(300 * 520).reshape(300, 520) // 1000).astype(np.uint32) + 1
    store.write_region("nuclei", 0, 0, labels)
    store.build_pyramid(IMAGE)
    store.build_pyramid("nuclei")
    lvl1 = store.read_region(IMAGE, x=0, y=0, width=260, height=150, level=1)
    expected = (
        rgb[0::2, 0::2, 0].astype(int) + rgb[0::2, 1::2, 0] + rgb[1::2, 0::2, 0] + rgb[1::2, 1::2, 0] + 2
    ) // 4
    np.testing.assert_array_equal(lvl1[0], expected)
    lab2 = store.read_region("nuclei", x=0, y=0, width=130, height=75, level=2)
    np.testing.assert_array_equal(lab2, labels[2::4, 2::4])  # the centre pixel of each 4 x 4 block
    assert set(np.unique(lab2)) <= set(np.unique(labels))  # nearest keeps valid ids


def test_reopen_extend_and_resume(tmp_path: Path) -> None:
    store = _store(tmp_path, mpp=None)
    store.create_label("nuclei")
    store.write_region("nuclei", 0, 0, np.ones((128, 128), np.uint32))
    reopened = OmeZarrStore.open(store.path, mode="r+")
    assert reopened.label_names == ["nuclei"] and reopened.mpp is None and reopened.levels == 4
    reopened.create_label("cell_types", dtype=np.uint8, colors={1: (0, 0, 255, 255)})
    done = reopened.written_chunks("nuclei")
    todo = [b for b in reopened.chunk_grid() if (b[0] // 128, b[1] // 128) not in done]
    assert len(todo) == 14
    reopened.set_label_metadata("cell_types", properties={1: {"name": "lymphocyte"}})
    meta = OmeZarrStore.open(store.path).label_metadata("cell_types")
    assert meta["properties"] == [{"label-value": 1, "name": "lymphocyte"}]
    assert meta["colors"][0]["rgba"] == [0, 0, 255, 255]


def test_errors(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with pytest.raises(OutputExistsError, match="already exists"):
        _store(tmp_path)
    _store(tmp_path, overwrite=True)
    with pytest.raises(StoreError, match="no such OME-Zarr store"):
        OmeZarrStore.open(tmp_path / "missing.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(StoreError, match="not"):
        OmeZarrStore.open(tmp_path / "plain")
    with pytest.raises(StoreError, match="parent directory"):
        OmeZarrStore.create(tmp_path / "no" / "such" / "r.zarr", height=10, width=10)
    with pytest.raises(ShapeError, match="positive"):
        OmeZarrStore.create(tmp_path / "z.zarr", height=0, width=10)
    ro = OmeZarrStore.open(store.path)
    with pytest.raises(StoreError, match="read-only"):
        ro.create_label("nuclei")
    with pytest.raises(StoreError, match="no label 'nuclei'"):
        ro.read_region("nuclei", x=0, y=0, width=1, height=1)
    rw = OmeZarrStore.open(store.path, mode="r+")
    rw.create_label("nuclei")
    with pytest.raises(StoreError, match="exists already"):
        rw.create_label("nuclei")
    with pytest.raises(ShapeError, match="integer"):
        rw.create_label("probs", dtype=np.float32)
    with pytest.raises(ShapeError, match="same label values"):
        rw.set_label_metadata("nuclei", colors={1: (1, 2, 3)}, properties={2: {"a": 1}})
    with pytest.raises(ShapeError, match="power of two"):
        OmeZarrStore.create(tmp_path / "l.zarr", height=10, width=10, image_downsample=3)


def test_overview_store_is_valid_ome_zarr_and_aligned(tmp_path: Path) -> None:
    """An overview image (1/8) beside full-resolution labels: every declared array exists, both readers open it."""
    import zarr
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models.v05.image import Image

    path = tmp_path / "ov.zarr"
    store = OmeZarrStore.create(path, height=300, width=500, chunk=64, mpp=(0.25, 0.25), image_downsample=8)
    assert store.image_shape(0) == (38, 63) and not store.has_image and store.image_downsample == 8
    store.create_label("nuclei")
    store.write_region(IMAGE, 0, 0, np.zeros((38, 63, 3), np.uint8))
    with pytest.raises(ShapeError, match="outside"):
        store.write_region(IMAGE, 0, 0, np.zeros((40, 63, 3), np.uint8))
    store.build_pyramid(IMAGE)
    Image.from_zarr(zarr.open_group(str(path), mode="r"))  # raises on a declared array that is missing
    nodes = list(Reader(parse_url(str(path)))())
    assert nodes[0].data[0].shape == (3, 38, 63)
    labels = [n for n in nodes if n.metadata.get("name") == "nuclei"]
    assert labels and labels[0].data[0].shape == (300, 500)
    # the same physical grid: image level k is 8 * 2^k label pixels, labels level k is 2^k
    img_scale = nodes[0].metadata["coordinateTransformations"][0][0]["scale"]
    lab_scale = labels[0].metadata["coordinateTransformations"][0][0]["scale"]
    assert img_scale == [1.0, 2.0, 2.0] and lab_scale == [0.25, 0.25]


def test_label_pyramid_stays_centred_on_the_image(tmp_path: Path) -> None:
    """Centre sampling keeps a nucleus where it is at every level, within the half pixel of an even block (the
    top-left pixel of each 2x2 block, level after level, would
    move it (2^k - 1) / 2 level-0 pixels up and left at level k)."""
    store = OmeZarrStore.create(tmp_path / "p.zarr", height=256, width=256, chunk=64, levels=4)
    store.create_label("nuclei")
    yy, xx = np.mgrid[:256, :256]
    lab = np.zeros((256, 256), np.uint32)
    for i, (cy, cx) in enumerate([(40.3, 50.7), (121.0, 170.2), (200.6, 77.1)], start=1):
        lab[(yy + 0.5 - cy) ** 2 + (xx + 0.5 - cx) ** 2 < 14**2] = i
    store.write_region("nuclei", 0, 0, lab)
    store.build_pyramid("nuclei")
    for k in (1, 2, 3):
        level = store.read_region("nuclei", x=0, y=0, width=256 >> k, height=256 >> k, level=k)
        for i in (1, 2, 3):
            ys, xs = np.nonzero(level == i)
            y0, x0 = np.nonzero(lab == i)
            assert abs((ys.mean() + 0.5) * 2**k - (y0.mean() + 0.5)) < 1.5
            assert abs((xs.mean() + 0.5) * 2**k - (x0.mean() + 0.5)) < 1.5


def test_nucleus_values_round_trip_and_bad_names(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.create_label("nuclei")
    assert store.nucleus_values("nucleus_class_probability") is None
    probs = np.array([np.nan, 0.9, 0.75, 0.6])
    store.write_nucleus_values("nucleus_class_probability", probs)
    store.write_nucleus_values("nucleus_class_probability", probs[:3])  # replaced, not appended
    again = OmeZarrStore.open(tmp_path / "r.zarr")
    np.testing.assert_array_equal(again.nucleus_values("nucleus_class_probability"), probs[:3])
    assert again.label_names == ["nuclei"]  # viewers' label list untouched
    for bad in ("labels", "0", "a/b", ""):
        with pytest.raises(ShapeError, match="plain, non-numeric name"):
            store.write_nucleus_values(bad, probs)
    with pytest.raises(ShapeError, match="1-D"):
        store.write_nucleus_values("x", probs.reshape(2, 2))


def test_nucleus_source_round_trip_and_defaults(tmp_path: Path) -> None:
    import dataclasses

    from wsikit.io.omezarr import NucleusSource

    store = _store(tmp_path)
    assert store.source() == NucleusSource()  # a store that never recorded one reads as the defaults
    src = NucleusSource(slide=tmp_path / "s.svs", slide_id="s", bounds_offset=(12.0, 7.0), slide_mpp=0.25)
    store.set_source(src)
    store.set_source(dataclasses.replace(store.source(), has_classes=True, cell_types=("a", "b")))
    got = OmeZarrStore.open(tmp_path / "r.zarr").source()
    assert got == dataclasses.replace(src, has_classes=True, cell_types=("a", "b"))
    assert OmeZarrStore.open(tmp_path / "r.zarr").attributes["height"] == 300  # the store's own keys kept
