"""A streaming GeoParquet writer (GeoParquet 1.1, WKB geometry) for the per-nucleus table.

Rows are written as Parquet row groups, one per :meth:`GeoParquetWriter.write` call, so memory stays
bounded by a batch; :func:`geopandas.read_parquet` reads the result.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import Polygon

from wsikit._typing import PathLike
from wsikit.errors import StoreError

__all__ = ["GeoParquetWriter"]


class GeoParquetWriter:
    """Write rows of (geometry + columns) to a GeoParquet file, batch by batch.

    ``columns`` fixes the non-geometry columns and their types (``"string"``, ``"int64"``,
    ``"float64"``). Geometries are shifted by ``-offset`` like the GeoJSON export. The file appears at
    ``path`` only when :meth:`close` succeeds.

    Examples
    --------
    >>> import tempfile, os, shapely, geopandas
    >>> f = os.path.join(tempfile.mkdtemp(), "t.parquet")
    >>> with GeoParquetWriter(f, columns={"area": "float64"}) as w:
    ...     w.write([shapely.box(0, 0, 2, 2)], {"area": np.array([4.0])})
    >>> geopandas.read_parquet(f).area.tolist()
    [4.0]
    """

    def __init__(
        self, path: PathLike, *, columns: Mapping[str, str], offset: tuple[float, float] = (0.0, 0.0)
    ) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise StoreError(f"{self.path}: output directory {self.path.parent} does not exist")
        types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64()}
        self.columns = dict(columns)
        self.schema = pa.schema(
            [pa.field(k, types[t]) for k, t in self.columns.items()] + [pa.field("geometry", pa.binary())]
        )
        self.offset = offset
        self._bounds = [np.inf, np.inf, -np.inf, -np.inf]
        self._tmp = self.path.with_name(f".{self.path.name}.partial")
        self._writer = pq.ParquetWriter(self._tmp, self.schema, compression="zstd")
        self.count = 0
        self._closed = False

    def write(
        self, geometries: Sequence[Polygon], values: Mapping[str, Sequence[Any] | npt.NDArray[Any]]
    ) -> None:
        """Append rows: one geometry and one value per column each."""
        import pyarrow as pa

        n = len(geometries)
        if n == 0:
            return
        geoms = np.asarray(geometries, dtype=object)
        if self.offset != (0.0, 0.0):
            geoms = shapely.transform(geoms, lambda xy: xy - np.asarray(self.offset))
        geoms = shapely.set_precision(geoms, 0.01)
        b = shapely.total_bounds(geoms)
        self._bounds = [
            min(self._bounds[0], b[0]),
            min(self._bounds[1], b[1]),
            max(self._bounds[2], b[2]),
            max(self._bounds[3], b[3]),
        ]
        arrays = []
        for k in self.columns:
            col = values[k]
            if len(col) != n:
                raise ValueError(f"column {k!r} has {len(col)} values for {n} geometries")
            arrays.append(pa.array(col, type=self.schema.field(k).type))
        arrays.append(pa.array(shapely.to_wkb(geoms), type=pa.binary()))
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.count += n

    def close(self) -> Path:
        """Write the GeoParquet metadata and move the file into place."""
        import pyarrow.parquet as pq

        if self._closed:
            return self.path
        geo = {
            "version": "1.1.0",
            "primary_column": "geometry",
            "columns": {
                "geometry": {
                    "encoding": "WKB",
                    "geometry_types": ["Polygon"],
                    "crs": None,  # level-0 pixel coordinates, not a geographic CRS
                    **({"bbox": [round(float(v), 2) for v in self._bounds]} if self.count else {}),
                }
            },
        }
        self._writer.add_key_value_metadata({"geo": json.dumps(geo)})
        self._writer.close()
        if self.count == 0:  # pyarrow writes no row group: keep a valid 0-row table with the schema
            table = self.schema.empty_table().replace_schema_metadata({"geo": json.dumps(geo)})
            pq.write_table(table, self._tmp)
        self._tmp.replace(self.path)
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Drop the partial file."""
        if not self._closed:
            self._writer.close()
            self._tmp.unlink(missing_ok=True)
            self._closed = True

    def __enter__(self) -> GeoParquetWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
