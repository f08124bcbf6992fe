"""QuPath-importable GeoJSON: a streaming writer and a strict reader that applies QuPath's import rules.

The rules (from QuPath's PathIO / GsonTools / QuPathTypeAdapters, see docs and FORMATS.md):
a FeatureCollection (or a bare list of Features); the object type is read only from
``properties.objectType`` ("detection" or "cell" for nuclei, "annotation" otherwise); a cell's nucleus
is the Feature-level member ``nucleusGeometry``; ``properties.classification`` needs a ``name`` and a
``color`` [r, g, b]; ``properties.measurements`` maps names to numbers (QuPath 0.4 casts every value to
a number, so one string such as "NaN" fails the whole import: NaN and infinite values are left out);
``id`` is a UUID; coordinates are level-0 pixels of the image as QuPath opened it (OpenSlide bounds
subtracted) on QuPath's 0.01 px grid, closed rings of a Polygon (one part) or MultiPolygon (several),
valid after rounding.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, shape

from wsikit._typing import PathLike
from wsikit.errors import SlideOpenError, StoreError

__all__ = [
    "GeoJsonWriter",
    "QuPathObject",
    "read_qupath_geojson",
    "nucleus_uuid",
    "polygon_json",
    "on_qupath_grid",
]

GRID = 0.01
"""QuPath's coordinate precision (px): wsikit writes 2 decimals."""

_NAMESPACE = uuid.UUID("5b0f0c39-5e1c-4a67-9a31-8f1f0d7e2b11")


def nucleus_uuid(slide_id: str, nucleus_id: int) -> str:
    """A stable UUID for nucleus ``nucleus_id`` of slide ``slide_id`` (the same run gives the same ids)."""
    return str(uuid.uuid5(_NAMESPACE, f"{slide_id}:{int(nucleus_id)}"))


def _ring(coords: np.ndarray, dx: float, dy: float) -> str:
    xy = np.round(coords[:, :2] - (dx, dy), 2)
    xy = xy + 0.0  # no "-0.0"
    return "[" + ",".join(f"[{x:.2f},{y:.2f}]" for x, y in xy) + "]"


def on_qupath_grid(
    geom: Polygon | MultiPolygon, *, offset: tuple[float, float] = (0.0, 0.0)
) -> Polygon | MultiPolygon:
    """``geom`` with ``offset`` (x, y) subtracted, snapped to the 0.01 px grid and made valid there.

    A hole or a part thinner than the grid collapses in the rounding; snapping with GEOS
    (:func:`shapely.set_precision`) removes it, so the written polygon is the valid one QuPath reads.
    Returns an empty polygon when nothing is left.

    Examples
    --------
    >>> from shapely.geometry import Polygon
    >>> sliver = Polygon([(0, 0), (4, 0), (4, 4), (0, 4)], [[(1, 1), (1.004, 1), (1.004, 3), (1, 3)]])
    >>> len(on_qupath_grid(sliver).interiors)
    0
    """
    if offset != (0.0, 0.0):
        geom = shapely.transform(geom, lambda xy: xy - np.asarray(offset, dtype=np.float64))
    xy = shapely.get_coordinates(geom)
    if np.array_equal(xy, np.round(xy)) and geom.is_valid:
        return geom  # pixel-edge polygons: whole pixels are on the grid already
    snapped = shapely.set_precision(geom, GRID)
    if snapped.geom_type not in ("Polygon", "MultiPolygon"):
        parts = [g for g in getattr(snapped, "geoms", []) if g.geom_type == "Polygon" and not g.is_empty]
        snapped = MultiPolygon(parts) if len(parts) > 1 else (parts[0] if parts else Polygon())
    if snapped.geom_type == "Polygon":
        return shapely.geometry.polygon.orient(snapped, sign=1.0)
    return MultiPolygon([shapely.geometry.polygon.orient(g, sign=1.0) for g in snapped.geoms])


def _polygon_rings(poly: Polygon) -> str:
    rings = [_ring(np.asarray(poly.exterior.coords), 0.0, 0.0)]
    rings += [_ring(np.asarray(r.coords), 0.0, 0.0) for r in poly.interiors]
    return "[" + ",".join(rings) + "]"


def polygon_json(geom: Polygon | MultiPolygon, *, offset: tuple[float, float] = (0.0, 0.0)) -> str:
    """A GeoJSON Polygon (one part) or MultiPolygon (several): ``offset`` (x, y) subtracted, on the 0.01 px
    grid (2 decimals), closed rings, valid after rounding (see :func:`on_qupath_grid`).

    Raises
    ------
    ValueError
        Nothing is left of ``geom`` on the grid.
    """
    g = on_qupath_grid(geom, offset=offset)
    if g.is_empty:
        raise ValueError("the polygon is empty on QuPath's 0.01 px grid")
    if g.geom_type == "Polygon":
        return '{"type":"Polygon","coordinates":' + _polygon_rings(g) + "}"
    parts = sorted(g.geoms, key=lambda p: -p.area)  # the largest part first
    return '{"type":"MultiPolygon","coordinates":[' + ",".join(_polygon_rings(p) for p in parts) + "]}"


def _finite_measurements(measurements: Mapping[str, float]) -> dict[str, float]:
    """Measurements as QuPath 0.4 imports them: numbers only (NaN and infinities left out), 4 decimals."""
    out = {}
    for k, v in measurements.items():
        f = float(v)
        if math.isfinite(f):
            out[k] = round(f, 4)
    return out


class GeoJsonWriter:
    """Write nuclei as a FeatureCollection, one Feature at a time (memory does not grow with the count).

    The file is written under a temporary name and moved to ``path`` by :meth:`close` (or the end of a
    ``with`` block without error); ``.gz`` paths are gzip-compressed.

    Examples
    --------
    >>> import tempfile, os, shapely
    >>> d = tempfile.mkdtemp()
    >>> with GeoJsonWriter(os.path.join(d, "n.geojson")) as w:
    ...     w.write(nucleus_uuid("s", 1), shapely.box(0, 0, 4, 3), measurements={"area_px2": 12.0})
    >>> [o.measurements for o in read_qupath_geojson(os.path.join(d, "n.geojson"))]
    [{'area_px2': 12.0}]
    """

    def __init__(self, path: PathLike, *, offset: tuple[float, float] = (0.0, 0.0)) -> None:
        self.path = Path(path)
        parent = self.path.parent
        if not parent.is_dir():
            raise StoreError(f"{self.path}: output directory {parent} does not exist")
        self.offset = offset
        self._tmp = self.path.with_name(f".{self.path.name}.partial")
        raw: IO[bytes] = open(self._tmp, "wb")
        self._fh: IO[str]
        if self.path.suffix == ".gz":
            self._fh = io.TextIOWrapper(gzip.GzipFile(fileobj=raw, mode="wb", mtime=0), encoding="utf-8")
            self._raw: IO[bytes] | None = raw
        else:
            self._fh = io.TextIOWrapper(raw, encoding="utf-8")
            self._raw = None
        self._fh.write('{"type":"FeatureCollection","features":[\n')
        self.count = 0
        self._closed = False

    def write(
        self,
        feature_id: str,
        geometry: Polygon | MultiPolygon,
        *,
        object_type: str = "detection",
        nucleus: Polygon | MultiPolygon | None = None,
        classification: tuple[str, Sequence[int]] | None = None,
        measurements: Mapping[str, float] | None = None,
    ) -> None:
        """Append one Feature. ``geometry`` is the nucleus (detection) or the cell boundary (cell).

        NaN and infinite measurements are left out (QuPath 0.4 fails the whole import on one).
        """
        if geometry.is_empty or geometry.geom_type not in ("Polygon", "MultiPolygon"):
            raise ValueError(
                f"feature {feature_id}: geometry must be a non-empty Polygon or MultiPolygon, "
                f"got {geometry.geom_type}"
            )
        props: dict[str, Any] = {"objectType": object_type}
        if classification is not None:
            name, color = classification
            props["classification"] = {"name": name, "color": [int(c) for c in color]}
        if measurements:
            props["measurements"] = _finite_measurements(measurements)
        parts = [
            '{"type":"Feature","id":',
            json.dumps(feature_id),
            ',"geometry":',
            polygon_json(geometry, offset=self.offset),
        ]
        if nucleus is not None:
            parts += [',"nucleusGeometry":', polygon_json(nucleus, offset=self.offset)]
        parts += [',"properties":', json.dumps(props, separators=(",", ":")), "}"]
        self._fh.write(("," if self.count else "") + "".join(parts) + "\n")
        self.count += 1

    def close(self) -> Path:
        """Finish the FeatureCollection and move the file into place."""
        if not self._closed:
            self._fh.write("]}\n")
            self._fh.close()
            if self._raw is not None:
                self._raw.close()
            self._tmp.replace(self.path)
            self._closed = True
        return self.path

    def abort(self) -> None:
        """Drop the partial file."""
        if not self._closed:
            self._fh.close()
            if self._raw is not None:
                self._raw.close()
            self._tmp.unlink(missing_ok=True)
            self._closed = True

    def __enter__(self) -> GeoJsonWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


@dataclass
class QuPathObject:
    """One object as QuPath would import it."""

    id: str
    object_type: str
    geometry: Polygon | MultiPolygon
    nucleus: Polygon | MultiPolygon | None = None
    classification: str | None = None
    color: tuple[int, int, int] | None = None
    measurements: dict[str, float] = field(default_factory=dict)


def _fail(path: Path, problem: str) -> SlideOpenError:
    return SlideOpenError(f"{path}: {problem}")


def _polygon(path: Path, where: str, geom: Any) -> Polygon | MultiPolygon:
    kind = geom.get("type") if isinstance(geom, dict) else None
    if kind not in ("Polygon", "MultiPolygon"):
        raise _fail(
            path,
            f"{where}: geometry must be a Polygon or MultiPolygon, got {kind if kind else geom!r}",
        )
    coords = geom.get("coordinates", [])
    for poly_rings in coords if kind == "MultiPolygon" else [coords]:
        for ring in poly_rings:
            if len(ring) < 4 or ring[0] != ring[-1]:
                raise _fail(path, f"{where}: polygon ring is not closed")
    poly = shape(geom)
    if poly.is_empty or not poly.is_valid:
        raise _fail(path, f"{where}: invalid or empty polygon")
    if kind == "MultiPolygon":
        return poly
    return shapely.geometry.polygon.orient(poly, sign=1.0)


def read_qupath_geojson(path: PathLike) -> Iterator[QuPathObject]:
    """Read a GeoJSON file the way QuPath's importer does, strictly: every rule breach raises.

    Reads FeatureCollections and bare Feature lists, ``.gz`` too. Used to check wsikit's exports and
    to import QuPath-exported annotations as ground truth.

    Raises
    ------
    SlideOpenError
        Missing or unparsable file, or a Feature QuPath would reject or misread (a classification without
        a color, a non-UUID id, an unclosed ring, a non-numeric measurement).
    """
    p = Path(path)
    if not p.is_file():
        raise _fail(p, "no such GeoJSON file")
    try:
        opener = gzip.open if p.suffix == ".gz" else open
        with opener(p, "rt", encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError, EOFError) as exc:
        raise _fail(p, f"not a readable GeoJSON file ({type(exc).__name__}: {exc})") from exc
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        features = doc.get("features", [])
    elif isinstance(doc, list):
        features = doc
    else:
        raise _fail(p, "top level must be a FeatureCollection or a list of Features")
    for i, f in enumerate(features):
        where = f"feature {i}"
        if not isinstance(f, dict) or f.get("type") != "Feature":
            raise _fail(p, f"{where}: not a Feature")
        props = f.get("properties") or {}
        try:
            fid = str(uuid.UUID(str(f.get("id"))))
        except ValueError:
            raise _fail(p, f"{where}: id {f.get('id')!r} is not a UUID (QuPath would replace it)") from None
        otype = props.get("objectType", props.get("type", "annotation"))
        geom = _polygon(p, where, f.get("geometry"))
        nucleus = (
            _polygon(p, where + " nucleusGeometry", f["nucleusGeometry"]) if "nucleusGeometry" in f else None
        )
        name = color = None
        if "classification" in props:
            cls = props["classification"]
            if not isinstance(cls, dict) or "name" not in cls:
                raise _fail(p, f"{where}: classification must be an object with a name")
            if "color" not in cls or not isinstance(cls["color"], list) or len(cls["color"]) != 3:
                raise _fail(p, f"{where}: classification {cls.get('name')!r} has no [r, g, b] color")
            name, color = str(cls["name"]), (int(cls["color"][0]), int(cls["color"][1]), int(cls["color"][2]))
        meas: dict[str, float] = {}
        for k, v in (props.get("measurements") or {}).items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                meas[k] = float(v)
            else:  # QuPath 0.4 casts each value to a number: one string ("NaN" too) fails the import
                raise _fail(p, f"{where}: measurement {k!r} is not a number ({v!r})")
        yield QuPathObject(fid, str(otype), geom, nucleus, name, color, meas)
