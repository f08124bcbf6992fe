"""Slide backend on tifffile: OME-TIFF pyramids and any TIFF OpenSlide declines.

Regions are read lazily, so a tiled TIFF larger than memory is fine: the tiles under a region are read from
the file and decoded by tifffile's codecs on a shared thread pool (levels of one tiled page; 1.7-2.4x
tifffile's Zarr view, whose asynchronous chunk reads cost more than they overlap on small reads), any other
layout through that Zarr view. Grayscale and 16-bit images are converted to RGB uint8 (16-bit scaled by
1/257).
"""

from __future__ import annotations

import functools
import re
import threading
from collections import OrderedDict
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np

from wsikit._threads import cpu_count, run_parallel
from wsikit._typing import RGBImage
from wsikit.errors import SlideOpenError, UnsupportedFormatError
from wsikit.io.slide import Slide

__all__ = ["TiffSlide", "tiff_resolution_mpp", "check_tiff_integrity"]

_MPP_PLAUSIBLE = (0.02, 50.0)

TILE_CACHE_BYTES = 64 << 20
"""Decoded tiles a :class:`TiffSlide` keeps (least recently used first out), per open slide: overlapping reads
(halos, neighbouring patches, viewers) decode each tile once. 0 turns the cache off."""
"""Microns per pixel a microscope can produce; outside it a resolution tag is a placeholder (72 dpi...)."""


def tiff_resolution_mpp(page: Any) -> tuple[float, float] | None:
    """Microns per pixel from a TIFF page's resolution tags, or ``None``.

    Many writers store a placeholder (72 or 300 dpi); such values give
    hundreds of microns per pixel and are rejected rather than reported.
    """
    tags = page.tags
    if "XResolution" not in tags or "ResolutionUnit" not in tags:
        return None
    unit = int(tags["ResolutionUnit"].value)
    per_unit_um = {2: 25400.0, 3: 10000.0}.get(unit)
    if per_unit_um is None:
        return None
    out = []
    for name in ("XResolution", "YResolution"):
        if name not in tags:
            return None
        num, den = tags[name].value
        if num <= 0 or den <= 0:
            return None
        out.append(per_unit_um * den / num)
    lo, hi = _MPP_PLAUSIBLE
    if not all(lo <= v <= hi for v in out):
        return None
    return (out[0], out[1])


def _ome_mpp(ome_xml: str | None) -> tuple[float, float] | None:
    if not ome_xml:
        return None
    px = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', ome_xml)
    py = re.search(r'PhysicalSizeY="([0-9.eE+-]+)"', ome_xml)
    unit = re.search(r'PhysicalSizeXUnit="([^"]+)"', ome_xml)
    if not px:
        return None
    scale = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4}.get(unit.group(1) if unit else "µm")
    if scale is None:
        return None
    x = float(px.group(1)) * scale
    y = float(py.group(1)) * scale if py else x
    return (x, y) if x > 0 and y > 0 else None


def check_tiff_integrity(path: Path) -> bool:
    """Raise :class:`SlideOpenError` if a TIFF's image data lies past the end of the file; return whether it is OME-TIFF.

    A slide cut short by an interrupted copy still has intact headers, so
    readers open it and fail later on one tile; this check catches it at
    open time by comparing every strip/tile extent with the file size. A file
    that passed is not walked again while its size and modification time stay
    the same (slides are reopened by every worker and pipeline stage; a walk
    costs about 0.3 ms per page).
    """
    stat = path.stat()
    return _checked_tiff(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _checked_tiff(path_name: str, size: int, mtime_ns: int) -> bool:
    """:func:`check_tiff_integrity` of one version of a file (failures raise, so they are not cached)."""
    import logging

    import tifffile

    path = Path(path_name)

    class _Collect(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.WARNING)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    tiff_log = logging.getLogger("tifffile")
    collect = _Collect()
    propagate = tiff_log.propagate
    tiff_log.addHandler(collect)
    tiff_log.propagate = False  # its warnings would repeat what we raise below
    try:
        with tifffile.TiffFile(path) as tif:
            pages = list(tif.pages)  # walks the whole directory chain
            bad = [m for m in collect.messages if "offset" in m]
            if not pages or bad:
                detail = bad[0].split(">")[-1].strip() if bad else "no image directory"
                raise SlideOpenError(
                    f"{path}: file is truncated or corrupt ({detail}; the file has {size} bytes)"
                )
            for page in pages:
                offsets = getattr(page, "dataoffsets", ())
                counts = getattr(page, "databytecounts", ())
                if offsets and counts:
                    end = max(o + c for o, c in zip(offsets, counts, strict=False))
                    if end > size:
                        raise SlideOpenError(
                            f"{path}: file is truncated: image data reaches byte {end} "
                            f"but the file has {size} bytes"
                        )
            return bool(tif.is_ome)
    except SlideOpenError:
        raise
    except Exception as exc:  # tifffile raises many types on corrupt headers
        raise SlideOpenError(f"{path}: corrupt TIFF structure: {exc}") from exc
    finally:
        tiff_log.removeHandler(collect)
        tiff_log.propagate = propagate


def _to_rgb_uint8(arr: np.ndarray) -> RGBImage:
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.dtype == np.uint16:
        arr = (arr.astype(np.uint32) * 255 + 32767) // 65535
    elif arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255)
    arr = arr.astype(np.uint8, copy=False)
    c = arr.shape[-1]
    if c == 1:
        return np.ascontiguousarray(np.repeat(arr, 3, axis=-1))
    if c == 2:  # gray + alpha
        return np.ascontiguousarray(np.repeat(arr[..., :1], 3, axis=-1))
    return np.ascontiguousarray(arr[..., :3])


def _directly_decodable(level: Any, page: Any) -> bool:
    """Whether a pyramid level is one tiled 2-D page whose tiles :meth:`TiffSlide._decode_tiles` can decode:
    samples interleaved (or one), no depth, integer pixels."""
    return bool(
        page is not None
        and len(level.pages) == 1
        and getattr(page, "is_tiled", False)
        and page.imagedepth == 1
        and (page.samplesperpixel == 1 or int(page.planarconfig) == 1)
        and level.axes in ("YX", "YXS")
        and np.dtype(page.dtype).kind in "ui"
    )


class TiffSlide(Slide):
    """A (pyramidal or flat) TIFF read through tifffile.

    Parameters
    ----------
    path : pathlib.Path
        A TIFF file; its first series is the image, its levels the pyramid.

    Attributes
    ----------
    tile_cache_bytes : int
        Bytes of decoded tiles kept for later reads (default :data:`TILE_CACHE_BYTES`; 0: none).
    """

    backend = "tifffile"

    def __init__(self, path: Path) -> None:
        import tifffile
        import zarr

        self.path = path
        self._tif: tifffile.TiffFile | None
        try:
            self._tif = tifffile.TiffFile(path)
        except Exception as exc:
            raise SlideOpenError(f"{path}: not a readable TIFF: {exc}") from exc
        if not self._tif.series:
            raise SlideOpenError(f"{path}: TIFF holds no image")
        series = self._tif.series[0]
        axes = series.axes
        dtype = np.dtype(series.dtype)
        if dtype.kind not in "ui":
            raise UnsupportedFormatError(
                f"{path}: pixel type {dtype} is not supported (need integer RGB/gray)"
            )
        if axes not in ("YX", "YXS", "SYX", "CYX") and not axes.endswith(("YX", "YXS")):
            raise UnsupportedFormatError(f"{path}: image axes {axes!r} are not a 2-D RGB or gray image")
        self._axes = axes
        self._levels = []
        self._pages: list[Any] = []  # per level: its tiled page when its tiles can be decoded directly
        self._tiles: list[tuple[int, int]] = []
        dims = []
        for i, lvl in enumerate(series.levels):
            shape = dict(zip(lvl.axes, lvl.shape, strict=True))
            dims.append((int(shape["X"]), int(shape["Y"])))
            page = lvl.pages[0] if lvl.pages else None
            tw, th = (getattr(page, "tilewidth", 0) or 0), (getattr(page, "tilelength", 0) or 0)
            rows = getattr(page, "rowsperstrip", 0) or 0
            # the decoding unit: a tile, or a strip of rows across the image
            self._tiles.append(
                (tw, th) if tw and th else (int(shape["X"]), min(rows or 256, int(shape["Y"])))
            )
            self._levels.append(zarr.open_array(self._tif.aszarr(series=0, level=i), mode="r"))
            self._pages.append(page if _directly_decodable(lvl, page) else None)
        self.level_dimensions = tuple(dims)
        w0 = dims[0][0]
        self.level_downsamples = tuple(w0 / w for w, _ in dims)
        self.mpp = _ome_mpp(self._tif.ome_metadata) or tiff_resolution_mpp(series.pages[0])
        self.objective_power = None
        self.bounds_offset = (0, 0)
        self.vendor = "ome-tiff" if self._tif.is_ome else "tiff"
        self.tile_cache_bytes = TILE_CACHE_BYTES
        self._cache: OrderedDict[tuple[int, int, int], RGBImage] = OrderedDict()
        self._cache_size = 0
        self._cache_lock = threading.Lock()
        self.properties = {"tiff.axes": axes, "tiff.dtype": str(dtype)}

    def _tile_size(self, level: int) -> tuple[int, int]:
        return self._tiles[level]

    def _read(self, level: int, x: int, y: int, w: int, h: int) -> RGBImage:
        tw, th = self._tiles[level]
        if tw * th * 3 * 8 > self.tile_cache_bytes:  # no cache, or tiles (strips) too large to keep
            return self._read_direct(level, x, y, w, h)
        tys = range(y // th, (y + h - 1) // th + 1)
        txs = range(x // tw, (x + w - 1) // tw + 1)
        with self._cache_lock:
            tiles = {(tx, ty): self._cache.get((level, tx, ty)) for ty in tys for tx in txs}
            for tx, ty in tiles:
                if tiles[tx, ty] is not None:
                    self._cache.move_to_end((level, tx, ty))
        missing = [k for k, v in tiles.items() if v is None]
        if missing:  # decode the box of the missing tiles in one call (zarr decodes its chunks concurrently)
            lw, lh = self.level_dimensions[level]
            mx0, my0 = min(k[0] for k in missing), min(k[1] for k in missing)
            mx1, my1 = max(k[0] for k in missing) + 1, max(k[1] for k in missing) + 1
            bx0, by0 = mx0 * tw, my0 * th
            box = self._read_direct(level, bx0, by0, min(mx1 * tw, lw) - bx0, min(my1 * th, lh) - by0)
            with self._cache_lock:
                for tx, ty in missing:
                    tile = box[
                        (ty - my0) * th : (ty - my0 + 1) * th, (tx - mx0) * tw : (tx - mx0 + 1) * tw
                    ].copy()
                    tile.setflags(write=False)
                    tiles[tx, ty] = tile
                    if (level, tx, ty) not in self._cache:
                        self._cache[level, tx, ty] = tile
                        self._cache_size += tile.nbytes
                while self._cache_size > self.tile_cache_bytes and self._cache:
                    _, old = self._cache.popitem(last=False)
                    self._cache_size -= old.nbytes
        out = np.empty((h, w, 3), np.uint8)
        for (tx, ty), got in tiles.items():
            assert got is not None
            bx, by = tx * tw, ty * th
            x0, y0, x1, y1 = max(x, bx), max(y, by), min(x + w, bx + tw), min(y + h, by + th)
            out[y0 - y : y1 - y, x0 - x : x1 - x] = got[y0 - by : y1 - by, x0 - bx : x1 - bx]
        return out

    def _read_direct(self, level: int, x: int, y: int, w: int, h: int) -> RGBImage:
        if self._pages[level] is not None:
            return _to_rgb_uint8(self._decode_tiles(level, x, y, w, h))
        arr = self._levels[level]
        axes = self._axes
        # Index only the trailing spatial axes; leading non-spatial axes take index 0.
        index: list[Any] = []
        for ax in axes:
            if ax == "Y":
                index.append(slice(y, y + h))
            elif ax == "X":
                index.append(slice(x, x + w))
            elif ax == "S" or (ax == "C" and axes.index("C") == len(axes) - 3):
                index.append(slice(None))
            else:
                index.append(0)
        data = np.asarray(arr[tuple(index)])
        if axes.endswith(("SYX", "CYX")):
            data = np.moveaxis(data, 0, -1)
        return _to_rgb_uint8(data)

    def _decode_tiles(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """The (h, w, samples) box of a tiled level: its tiles read under the file lock and decoded on the
        shared pool (on this thread for one tile); tiles with no data are zeros, as in tifffile's Zarr view."""
        assert self._tif is not None
        page = self._pages[level]
        tw, th = self._tiles[level]
        across = -(-self.level_dimensions[level][0] // tw)
        indices = [
            ty * across + tx
            for ty in range(y // th, (y + h - 1) // th + 1)
            for tx in range(x // tw, (x + w - 1) // tw + 1)
        ]
        out = np.zeros((h, w, page.samplesperpixel), dtype=page.dtype)
        decode_args: dict[str, Any] = {"_fullsize": True}
        if page.compression in (6, 7, 34892, 33007):  # JPEG: tables and header shared by the tiles
            decode_args["jpegtables"], decode_args["jpegheader"] = page.jpegtables, page.jpegheader

        def place(data: bytes | None, index: int) -> None:
            if not data:
                return
            tile, (_, _, by, bx, _), _ = page.decode(data, index, **decode_args)
            y0, y1, x0, x1 = max(y, by), min(y + h, by + th), max(x, bx), min(x + w, bx + tw)
            out[y0 - y : y1 - y, x0 - x : x1 - x] = tile.reshape(th, tw, -1)[
                y0 - by : y1 - by, x0 - bx : x1 - bx
            ]

        offsets, counts = page.dataoffsets, page.databytecounts
        segments = cast(
            list[tuple[bytes | None, int]],
            list(
                self._tif.filehandle.read_segments(
                    [offsets[i] for i in indices], [counts[i] for i in indices], indices=indices, sort=True
                )
            ),
        )

        def place_all(part: list[tuple[bytes | None, int]]) -> None:
            for data, index in part:
                place(data, index)

        tasks = min(len(segments), cpu_count())
        run_parallel([partial(place_all, segments[k::tasks]) for k in range(tasks)])
        return out

    def close(self) -> None:
        """Close the TIFF file handle and drop the cached tiles."""
        lock = getattr(self, "_cache_lock", None)
        if lock is not None:
            with lock:
                self._cache.clear()
                self._cache_size = 0
        tif = getattr(self, "_tif", None)
        if tif is not None:
            tif.close()
            self._tif = None
