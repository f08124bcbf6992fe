"""Slide backend on OpenSlide (svs, ndpi, mrxs, scn, vms, bif, generic tiled TIFF, ...)."""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from wsikit._threads import cpu_count, run_parallel
from wsikit._typing import RGBImage
from wsikit.errors import SlideOpenError, SlideReadError
from wsikit.io.slide import Slide

__all__ = ["OpenSlideSlide", "openslide_format"]


def openslide_format(path: Path) -> str | None:
    """Return OpenSlide's vendor name for ``path``, or ``None`` if OpenSlide cannot read it."""
    import openslide

    try:
        return openslide.OpenSlide.detect_format(str(path))
    except Exception:  # noqa: BLE001 - detection must never raise
        return None


def _float_or_none(value: str | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        out = float(value)
    except ValueError:
        return None
    return out if np.isfinite(out) and out > 0 else None


_TIFFFILE_COMPRESSIONS = (7, 33005)
"""TIFF compressions whose Aperio tiles tifffile may decode: JPEG, and Aperio's JPEG 2000 in RGB (33005; its
YCbCr variant 33003 needs a colour conversion, so it stays with OpenSlide)."""


_SPLIT_READ_PIXELS = 1 << 16
"""OpenSlide reads of at least this many pixels over several tile columns decode their columns in parallel."""
_TIFFFILE_MIN_TILES = 8
"""Smaller slides stay with OpenSlide: there the check at open (up to four tile decodes) costs about what
tifffile saves (open and overview of a 3-tile MoNuSAC crop: 0.017 s with tifffile vs 0.014 s without; of
16 and 30 tiles: 0.029 / 0.050 s vs 0.058 / 0.089 s, since tiles are decoded without tifffile's Zarr view).
It was 100 before that."""


def _aperio_jpeg_reader(slide: OpenSlideSlide) -> Any:
    """A :class:`~wsikit.io._tiff_backend.TiffSlide` on the same Aperio file when tifffile decodes its tiles
    exactly as OpenSlide does, else None.

    OpenSlide decodes one tile at a time and composites it into ARGB; tifffile decodes the tiles of a region
    concurrently (CMU-1's JPEG level 0 in 0.03 s vs 0.15-0.22 s, a TCGA JPEG 2000 level 0 in 0.35 vs 0.98 s;
    pixel-identical). Used only for slides of at least :data:`_TIFFFILE_MIN_TILES` level-0 tiles when every
    level is a tiled page of tifffile's pyramid with OpenSlide's dimensions in a compression of
    :data:`_TIFFFILE_COMPRESSIONS`, no tile is missing (OpenSlide draws missing tiles transparent, tifffile
    black), and the first tile of every level and a middle tile of level 0 decode to the same pixels with
    both; anything else stays with OpenSlide.

    On levels whose downsample is not an integer (TCGA's 4,443 -> 2,221 px: 2.00045) OpenSlide resamples a read
    away from the origin by a fraction of a pixel (it takes level-0 coordinates); tifffile returns that
    level's own pixels at the requested level coordinates, as for every other format.
    """
    from wsikit.io._tiff_backend import TiffSlide

    tw0, th0 = slide._tile_size(0)
    w0, h0 = slide.level_dimensions[0]
    if -(-w0 // tw0) * -(-h0 // th0) < _TIFFFILE_MIN_TILES:  # before parsing the file a second time
        return None
    try:
        fast = TiffSlide(slide.path)
    except Exception:  # noqa: BLE001 - any doubt: OpenSlide alone
        return None
    osr = slide._osr  # the check reads through the slide's own handle (a fresh one costs 5-8 ms)
    try:
        assert fast._tif is not None
        levels = fast._tif.series[0].levels
        ok = fast.level_dimensions == slide.level_dimensions and len(levels) == len(slide.level_dimensions)
        for i, lvl in enumerate(levels if ok else []):
            page: Any = lvl.pages[0]
            if (
                page is None
                or not page.is_tiled
                or int(page.compression) not in _TIFFFILE_COMPRESSIONS
                or min(page.databytecounts) == 0
            ):
                ok = False
                break
            tw, th = fast._tile_size(i)
            lw, lh = slide.level_dimensions[i]
            # the first tile, and at level 0 a middle one (OpenSlide places a read of a level whose downsample
            # is not an integer at a fraction of a pixel from that level's grid, except at the origin)
            for x, y in ((0, 0), (lw // 2 // tw * tw, lh // 2 // th * th))[: 2 if i == 0 else 1]:
                w, h = min(tw, lw - x), min(th, lh - y)
                if not np.array_equal(fast._read_direct(i, x, y, w, h), slide._read_with(osr, i, x, y, w, h)):
                    ok = False
            if not ok:
                break
    except Exception:  # noqa: BLE001
        ok = False
        slide._replace_handle(osr)  # a handle that failed a read once is unusable (see OpenSlideSlide._read)
    if not ok:
        fast.close()
        return None
    return fast


class OpenSlideSlide(Slide):
    """A slide read through OpenSlide.

    Parameters
    ----------
    path : pathlib.Path
        A file OpenSlide recognises.
    tifffile_tiles : bool
        Let tifffile decode the tiles of Aperio JPEG / JPEG 2000 (RGB) files when it gives OpenSlide's pixels
        (checked at open; see :func:`_aperio_jpeg_reader`); ``properties["wsikit.tile-decoder"]`` is then ``"tifffile"``.
        ``open_slide(path, backend="openslide")`` turns it off.
    """

    backend = "openslide"

    def __init__(self, path: Path, *, tifffile_tiles: bool = True) -> None:
        import openslide

        self.path = path
        self._osr: openslide.OpenSlide | None
        try:
            self._osr = openslide.OpenSlide(str(path))
        except openslide.OpenSlideError as exc:
            raise SlideOpenError(f"{path}: OpenSlide cannot open it: {exc}") from exc
        self._handle_lock = threading.Lock()
        self._retired: list[Any] = []
        props = dict(self._osr.properties)
        self.properties = props
        self.vendor = props.get("openslide.vendor")
        self.level_dimensions = tuple((int(w), int(h)) for w, h in self._osr.level_dimensions)
        self.level_downsamples = tuple(float(d) for d in self._osr.level_downsamples)
        mpp_x = _float_or_none(props.get("openslide.mpp-x"))
        mpp_y = _float_or_none(props.get("openslide.mpp-y"))
        self.mpp = (mpp_x, mpp_y if mpp_y is not None else mpp_x) if mpp_x is not None else None
        self.objective_power = _float_or_none(props.get("openslide.objective-power"))
        self.bounds_offset = (
            int(props.get("openslide.bounds-x", 0) or 0),
            int(props.get("openslide.bounds-y", 0) or 0),
        )
        # Aperio JPEG / JPEG 2000 levels: tiles decoded by tifffile (2.5-5x faster), OpenSlide for the rest
        self._tiles_by_tifffile = (
            _aperio_jpeg_reader(self) if tifffile_tiles and self.vendor == "aperio" else None
        )
        if self._tiles_by_tifffile is not None:
            self.properties["wsikit.tile-decoder"] = "tifffile"
        bg = props.get("openslide.background-color")
        self._background = (
            np.array([int(bg[i : i + 2], 16) for i in (0, 2, 4)], dtype=np.float32)
            if bg and len(bg) == 6
            else np.array([255, 255, 255], dtype=np.float32)
        )

    def _tile_size(self, level: int) -> tuple[int, int]:
        p = self.properties
        tw = _float_or_none(p.get(f"openslide.level[{level}].tile-width"))
        th = _float_or_none(p.get(f"openslide.level[{level}].tile-height"))
        return (int(tw), int(th)) if tw and th else (256, 256)

    def _read(self, level: int, x: int, y: int, w: int, h: int) -> RGBImage:
        osr = self._osr
        if osr is None:
            raise SlideReadError(f"{self.path}: slide is closed")
        if self._tiles_by_tifffile is not None:
            fast: RGBImage = self._tiles_by_tifffile._read(level, x, y, w, h)
            return fast  # (on a decoding error, reading around damage uses OpenSlide: _read_isolated)
        try:
            return self._read_in_columns(osr, level, x, y, w, h)
        except Exception:
            # OpenSlide leaves a handle that failed once unusable: give later reads a fresh one. The old
            # handle may still be in use by other reader threads, so it is closed only with the slide.
            self._replace_handle(osr)
            raise

    def _read_in_columns(self, osr: Any, level: int, x: int, y: int, w: int, h: int) -> RGBImage:
        """One read, or for a region of at least :data:`_SPLIT_READ_PIXELS` over several tile columns of a
        level with an integer downsample, reads of column bands (up to two per core) cut at tile borders on
        the shared pool:
        OpenSlide decodes tiles one at a time per call, and its calls release the GIL and may share a handle
        (the same pixels: every band starts on the level's grid)."""
        tw = self._tile_size(level)[0]
        first, last = x // tw, (x + w - 1) // tw
        ds = self.level_downsamples[level]
        parts = min(2 * cpu_count(), last - first + 1)  # more bands than cores: the last ones balance
        if parts < 2 or w * h < _SPLIT_READ_PIXELS or ds != round(ds):
            return self._read_with(osr, level, x, y, w, h)
        inner = {round((x + k * w / parts) / tw) * tw for k in range(1, parts)}  # tile borders nearest to
        cuts = [x, *sorted(c for c in inner if x < c < x + w), x + w]  # equal widths
        bands = [
            partial(self._read_with, osr, level, a, y, b - a, h)
            for a, b in zip(cuts[:-1], cuts[1:], strict=True)
        ]
        return np.concatenate(run_parallel(bands), axis=1)

    def _read_isolated(self, level: int, x: int, y: int, w: int, h: int) -> RGBImage:
        import openslide

        osr = openslide.OpenSlide(str(self.path))
        try:
            return self._read_with(osr, level, x, y, w, h)
        finally:
            osr.close()

    def _replace_handle(self, failed: Any) -> None:
        import openslide

        with self._handle_lock:
            if self._osr is failed:
                self._retired.append(failed)
                self._osr = openslide.OpenSlide(str(self.path))

    def _read_with(self, osr: Any, level: int, x: int, y: int, w: int, h: int) -> RGBImage:
        ds = self.level_downsamples[level]
        loc = (int(round(x * ds)), int(round(y * ds)))
        rgba = np.asarray(osr.read_region(loc, level, (w, h)))
        alpha = rgba[..., 3]
        if alpha.min() == 255:
            return np.ascontiguousarray(rgba[..., :3])
        # OpenSlide returns premultiplied-then-unpremultiplied RGBA; transparent = no data.
        a = alpha[..., None].astype(np.float32) / 255.0
        rgb = rgba[..., :3].astype(np.float32) * a + self._background * (1.0 - a)
        return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)

    def associated_image_names(self) -> list[str]:
        """Names of associated images (label, macro, thumbnail) in the file."""
        return [] if self._osr is None else list(self._osr.associated_images)

    def close(self) -> None:
        """Close the OpenSlide handle (and tifffile's, if it decodes the tiles)."""
        fast = getattr(self, "_tiles_by_tifffile", None)
        if fast is not None:
            fast.close()
            self._tiles_by_tifffile = None
        osr = getattr(self, "_osr", None)
        if osr is not None:
            osr.close()
            self._osr = None
        for old in getattr(self, "_retired", []):
            old.close()
        self._retired = []
