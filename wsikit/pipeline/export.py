"""``export_nuclei``: nucleus polygons + measurements of a segmentation result -> GeoJSON and GeoParquet.

The result is an OME-Zarr store written by ``wsikit segment`` / ``wsikit run`` (or a run folder holding
``result.zarr``). Labels are read chunk by chunk (:mod:`wsikit.vectorize.chunked`); intensities are
measured on the source slide recorded in the store (or ``slide=``). Both files are streamed and appear
only when complete.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from wsikit._atomic import check_output_parent
from wsikit._typing import PathLike
from wsikit.classify.naming import CELL_TYPE_COLORS, CELL_TYPES
from wsikit.errors import ConfigError, StoreError
from wsikit.io import open_slide
from wsikit.io.geojson import GeoJsonWriter, nucleus_uuid
from wsikit.io.geoparquet import GeoParquetWriter
from wsikit.io.omezarr import CLASS_PROBABILITY, OmeZarrStore
from wsikit.io.result import RunFolder
from wsikit.io.slide import Slide
from wsikit.vectorize.chunked import NucleusBatch, vectorize_chunk
from wsikit.vectorize.measure import MEASUREMENT_UNITS

__all__ = [
    "export_nuclei",
    "open_result",
    "measurement_columns",
    "NucleusTableWriter",
    "CLASS_PROBABILITY",
    "iter_store_batches",
    "store_chunk_vectorizer",
]

log = logging.getLogger(__name__)

"""Root array of a result store: classifier probability per nucleus id (index 0 unused)."""


def open_result(result: PathLike) -> OmeZarrStore:
    """Open a result store (``X.zarr`` or a run folder holding ``result.zarr``) that has ``labels/nuclei``.

    Raises
    ------
    StoreError
        Not a wsikit store, or a store without nucleus labels.
    """
    p = Path(result)
    if p.is_dir() and RunFolder(p).store.is_dir():
        p = RunFolder(p).store
    store = OmeZarrStore.open(p)
    if "nuclei" not in store.label_names:
        raise StoreError(f"{p}: the store has no labels/nuclei (run `wsikit segment` or `wsikit run` first)")
    return store


def measurement_columns(has_mpp: bool) -> dict[str, str]:
    """Output column name -> measurement name: lengths get ``_um``/``_px``, areas ``_um2``/``_px2``."""
    out = {}
    for k, unit in MEASUREMENT_UNITS.items():
        if unit == "um^2":
            out[f"{k}_{'um2' if has_mpp else 'px2'}"] = k
        elif unit == "um":
            out[f"{k}_{'um' if has_mpp else 'px'}"] = k
        else:
            out[k] = k
    return out


class NucleusTableWriter:
    """Write nucleus batches to GeoJSON and/or GeoParquet with one schema (shared by export and run)."""

    def __init__(
        self,
        *,
        slide_id: str,
        has_mpp: bool,
        mpp: float | None,
        offset: tuple[float, float],
        geojson: Path | None,
        parquet: Path | None,
        cells_um: float | None = None,
        with_classes: bool = False,
        image_size: tuple[int, int] | None = None,
    ) -> None:
        if cells_um is not None and cells_um <= 0:
            raise ConfigError(f"`cells_um` expansion must be positive microns, got {cells_um}")
        self.slide_id = slide_id
        self.meas = measurement_columns(has_mpp)
        self.mpp = mpp
        self.cells_px = None if cells_um is None else cells_um / (mpp or 1.0)
        self.with_classes = with_classes
        self.image_size = image_size
        self.count = 0
        self._stack = ExitStack()
        self.geojson = self._stack.enter_context(GeoJsonWriter(geojson, offset=offset)) if geojson else None
        cols = {"id": "string", "nucleus_id": "int64", "centroid_x": "float64", "centroid_y": "float64"}
        cols.update({k: "float64" for k in self.meas})
        if with_classes:
            cols.update({"class": "string", "class_probability": "float64"})
        self.parquet = (
            self._stack.enter_context(GeoParquetWriter(parquet, columns=cols, offset=offset))
            if parquet
            else None
        )
        self.offset = offset

    def write(self, batch: NucleusBatch) -> None:
        n = len(batch)
        if n == 0:
            return
        uuids = [nucleus_uuid(self.slide_id, int(i)) for i in batch.ids]
        cx = batch.columns["centroid_x"] - self.offset[0]
        cy = batch.columns["centroid_y"] - self.offset[1]
        classes = batch.extra.get("class")
        probs = batch.extra.get("class_probability")
        if self.with_classes and (classes is None or probs is None):
            raise ConfigError("class columns requested but the batch has no classes")
        cells = None
        if self.cells_px is not None:
            cells = _cell_boundaries(batch, self.cells_px, self.image_size)
        if self.geojson is not None:
            for j in range(n):
                meas = {"centroid_x": float(cx[j]), "centroid_y": float(cy[j])}
                meas.update({k: float(batch.columns[m][j]) for k, m in self.meas.items()})
                cls = None
                if classes is not None and probs is not None:
                    name = CELL_TYPES[int(classes[j])]  # one spelling in GeoJSON, Parquet and OME-Zarr
                    cls = (name, CELL_TYPE_COLORS[name])
                    meas["class_probability"] = float(probs[j])
                if cells is not None:
                    self.geojson.write(
                        uuids[j],
                        cells[j],
                        object_type="cell",
                        nucleus=batch.polygons[j],
                        classification=cls,
                        measurements=meas,
                    )
                else:
                    self.geojson.write(uuids[j], batch.polygons[j], classification=cls, measurements=meas)
        if self.parquet is not None:
            values: dict[str, Any] = {
                "id": uuids,
                "nucleus_id": batch.ids,
                "centroid_x": cx,
                "centroid_y": cy,
            }
            values.update({k: batch.columns[m] for k, m in self.meas.items()})
            if classes is not None and probs is not None:
                values["class"] = [CELL_TYPES[int(c)] for c in classes]
                values["class_probability"] = probs.astype(np.float64)
            self.parquet.write(batch.polygons, values)
        self.count += n

    def close(self) -> None:
        self._stack.close()

    def abort(self) -> None:
        for w in (self.geojson, self.parquet):
            if w is not None:
                w.abort()
        self._stack.close()


def _cell_boundaries(
    batch: NucleusBatch, expansion_px: float, image_size: tuple[int, int] | None = None
) -> list[Any]:
    """Nuclei grown by ``expansion_px``, clipped where two cells meet (Voronoi split of the overlap) and
    to the image (``image_size`` = level-0 (width, height))."""
    import shapely

    polys = np.asarray(batch.polygons, dtype=object)
    grown = shapely.buffer(polys, expansion_px, quad_segs=4)
    tree = shapely.STRtree(grown)
    out = []
    cents = shapely.centroid(polys)
    for j, g in enumerate(grown):
        cand = [k for k in tree.query(g) if k != j]
        cell = g
        for k in cand:
            # keep the half-plane closer to this nucleus' centroid than to the neighbour's
            a, b = np.array(cents[j].coords[0]), np.array(cents[k].coords[0])
            mid, d = (a + b) / 2, b - a
            if not np.any(d):
                continue
            normal = np.array([-d[1], d[0]]) * 1e4 / np.linalg.norm(d)
            far = -d / np.linalg.norm(d) * 1e4
            half = shapely.Polygon([mid + normal, mid - normal, mid - normal + far, mid + normal + far])
            cell = cell.intersection(half)
        if image_size is not None:
            cell = cell.intersection(shapely.box(0, 0, image_size[0], image_size[1]))
        cell = cell.union(polys[j]) if not cell.is_empty else polys[j]
        if cell.geom_type == "GeometryCollection":
            parts = [p for p in cell.geoms if p.geom_type == "Polygon"]
            cell = shapely.MultiPolygon(parts) if len(parts) > 1 else (parts[0] if parts else polys[j])
        out.append(shapely.geometry.polygon.orient(cell, sign=1.0) if cell.geom_type == "Polygon" else cell)
    return out


def store_chunk_vectorizer(
    store: OmeZarrStore,
    slide: Slide | None,
    *,
    simplify: float = 0.0,
    halo_um: float = 32.0,
    on_window: Callable[..., dict[str, npt.NDArray[np.generic]]] | None = None,
) -> Callable[[int, int], NucleusBatch]:
    """``vectorize(y0, x0)``: the nuclei owned by one chunk of ``store``'s ``labels/nuclei`` (intensities from
    ``slide``; none without it)."""
    mpp = store.mpp[0] if store.mpp else None
    halo = int(np.ceil(halo_um / (mpp or 0.5)))

    def read_labels(y: int, x: int, h: int, w: int) -> npt.NDArray[np.generic]:
        out: npt.NDArray[np.generic] = store.read_region("nuclei", x=x, y=y, width=w, height=h)
        return out

    read_image = None
    if slide is not None:

        def read_image(y: int, x: int, h: int, w: int) -> npt.NDArray[np.generic]:
            return slide.read_region((x, y), 0, (w, h))

    def vectorize(y0: int, x0: int) -> NucleusBatch:
        return vectorize_chunk(
            read_labels,
            read_image,
            y0,
            x0,
            chunk=store.chunk,
            height=store.height,
            width=store.width,
            halo=halo,
            mpp=mpp,
            simplify=simplify,
            on_window=on_window,
        )

    return vectorize


def iter_store_batches(
    store: OmeZarrStore,
    slide: Slide | None,
    *,
    simplify: float = 0.0,
    halo_um: float = 32.0,
    on_window: Callable[..., dict[str, npt.NDArray[np.generic]]] | None = None,
) -> Iterator[NucleusBatch]:
    """Nucleus batches of a store's ``labels/nuclei``, chunk by chunk in row-major order."""
    vectorize = store_chunk_vectorizer(store, slide, simplify=simplify, halo_um=halo_um, on_window=on_window)
    for y, x, _, _ in store.chunk_grid():
        yield vectorize(y, x)


def export_nuclei(
    result: PathLike,
    *,
    geojson: PathLike | None = None,
    parquet: PathLike | None = None,
    slide: PathLike | None = None,
    cells_um: float | None = None,
    simplify: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write the nuclei of ``result`` as QuPath GeoJSON (``.geojson`` / ``.geojson.gz``) and/or GeoParquet.

    Raises
    ------
    ConfigError
        Neither output given.
    StoreError
        No nucleus labels, or an output directory that does not exist.
    """
    if geojson is None and parquet is None:
        raise ConfigError("give at least one output: `geojson` and/or `parquet`")
    for out in (geojson, parquet):
        if out is not None:
            check_output_parent(Path(out))
    store = open_result(result)
    source = store.source()
    slide_path = Path(slide) if slide is not None else source.slide
    offset = source.bounds_offset
    has_classes = "cell_types" in store.label_names and source.has_classes
    mpp = store.mpp[0] if store.mpp else None
    slide_id = source.slide_id or (slide_path.stem if slide_path else store.path.stem)
    with ExitStack() as stack:
        src = None
        if slide_path is not None:
            if not slide_path.exists():
                log.warning("%s: source slide not found; intensity measurements are NaN", slide_path)
            else:
                src = stack.enter_context(open_slide(slide_path))
        on_window = _stored_classes(store) if has_classes else None
        writer = NucleusTableWriter(
            slide_id=slide_id,
            has_mpp=mpp is not None,
            mpp=mpp,
            offset=(offset[0], offset[1]),
            geojson=Path(geojson) if geojson else None,
            parquet=Path(parquet) if parquet else None,
            cells_um=cells_um,
            with_classes=bool(has_classes),
            image_size=(store.width, store.height),
        )
        total = len(store.chunk_grid())
        try:
            for i, batch in enumerate(iter_store_batches(store, src, simplify=simplify, on_window=on_window)):
                writer.write(batch)
                if progress is not None:
                    progress(i + 1, total)
        except BaseException:
            writer.abort()
            raise
        writer.close()
    return {
        "nuclei": writer.count,
        "geojson": str(geojson) if geojson else None,
        "parquet": str(parquet) if parquet else None,
        "offset": list(offset),
        "slide": str(slide_path),
    }


def _stored_classes(store: OmeZarrStore) -> Callable[..., dict[str, npt.NDArray[np.generic]]]:
    """Per-nucleus class (majority of labels/cell_types over its pixels) and stored probability."""
    probs = store.nucleus_values(CLASS_PROBABILITY)

    def on_window(win: Any) -> dict[str, npt.NDArray[np.generic]]:
        types = store.read_region(
            "cell_types", x=win.x, y=win.y, width=win.labels.shape[1], height=win.labels.shape[0]
        )
        k = len(CELL_TYPES) + 1
        counts = np.bincount(
            win.labels.ravel() * k + types.ravel().astype(np.int64), minlength=(win.labels.max() + 1) * k
        )
        counts = counts.reshape(-1, k)[win.local_ids, 1:]
        classes = counts.argmax(axis=1).astype(np.int64)  # majority class over the nucleus' pixels
        p = probs[win.ids] if probs is not None else np.full(len(win.ids), np.nan)
        return {"class": classes, "class_probability": p.astype(np.float64)}

    return on_window
