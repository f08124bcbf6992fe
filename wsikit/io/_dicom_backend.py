"""Slide backend for DICOM whole-slide images (VL Whole Slide Microscopy Image Storage).

Accepts one instance file or a folder holding the instances of a series
(one instance per pyramid level). Frames are located once by scanning the
encapsulated pixel data's item headers and then read with ``os.pread``, so
only the frames a region touches are read and decoded, from any thread.

Files written by some tools omit ``DimensionOrganizationType`` and per-frame
positions; DICOM's default is then row-major order (TILED_FULL). When that
is not stated the frame order is checked against the padding of edge frames
(see :func:`_infer_frame_order`), because such files exist with column-major
frames in the wild.
"""

from __future__ import annotations

import os
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wsikit._logging import get_logger
from wsikit._typing import RGBImage
from wsikit.errors import SlideOpenError, UnsupportedFormatError
from wsikit.io.slide import Slide

__all__ = ["DicomSlide", "is_dicom_file"]

log = get_logger(__name__)

WSM_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"
_JPEG = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.70"}
_JPEG2K = {
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
}
_NATIVE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
_NON_PYRAMID_TYPES = {"LABEL", "OVERVIEW", "THUMBNAIL"}
_REQUIRED = ("TotalPixelMatrixColumns", "TotalPixelMatrixRows", "Columns", "Rows", "SeriesInstanceUID")


@contextmanager
def _lenient_pydicom() -> Iterator[None]:
    """Silence pydicom's value-length validation (real WSI files often exceed VR limits)."""
    import pydicom.config

    settings = pydicom.config.settings
    mode = settings.reading_validation_mode
    settings.reading_validation_mode = pydicom.config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        settings.reading_validation_mode = mode


def is_dicom_file(path: Path) -> bool:
    """True when ``path`` starts with a DICOM Part 10 preamble (``DICM`` at byte 128)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


@dataclass
class _Level:
    path: Path
    width: int
    height: int
    frame_w: int
    frame_h: int
    n_cols: int
    n_rows: int
    transfer_syntax: str
    samples: int
    frame_offsets: list[tuple[int, int]]  # (file offset, length) per stored frame
    grid: dict[tuple[int, int], int]  # (col, row) -> stored frame index
    fd: int = -1


def _pixel_spacing_mpp(ds: Any) -> tuple[float, float] | None:
    try:
        spacing = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
        row_mm, col_mm = float(spacing[0]), float(spacing[1])
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return None
    if row_mm > 0 and col_mm > 0:
        return (col_mm * 1000.0, row_mm * 1000.0)
    return None


def _imaged_volume_mpp(ds: Any) -> tuple[float, float] | None:
    """mpp from ImagedVolumeWidth/Height, only when both axes agree (else the values are placeholders)."""
    try:
        mx = float(ds.ImagedVolumeWidth) * 1000.0 / int(ds.TotalPixelMatrixColumns)
        my = float(ds.ImagedVolumeHeight) * 1000.0 / int(ds.TotalPixelMatrixRows)
    except (AttributeError, TypeError, ValueError, ZeroDivisionError):
        return None
    if mx <= 0 or my <= 0 or abs(mx - my) / mx > 0.02:
        return None
    return (mx, my)


def _scan_fragments(fh: Any, value_offset: int) -> tuple[list[tuple[int, int]], list[int]]:
    """Return [(offset, length)] of each fragment and the Basic Offset Table of encapsulated pixel data."""
    fh.seek(value_offset)
    fragments: list[tuple[int, int]] = []
    bot: list[int] = []
    first = True
    while True:
        head = fh.read(8)
        if len(head) < 8:
            raise SlideOpenError(f"{fh.name}: pixel data ends early (truncated file)")
        group, elem, length = struct.unpack("<HHI", head)
        if (group, elem) == (0xFFFE, 0xE0DD):
            break
        if (group, elem) != (0xFFFE, 0xE000):
            raise SlideOpenError(
                f"{fh.name}: malformed encapsulated pixel data (item tag {group:04X},{elem:04X})"
            )
        pos = fh.tell()
        if first:
            if length:
                bot = list(struct.unpack(f"<{length // 4}I", fh.read(length)))
            first = False
        else:
            fragments.append((pos, length))
            fh.seek(pos + length)
    return fragments, bot


def _decode(level: _Level, data: bytes) -> np.ndarray:
    import imagecodecs

    ts = level.transfer_syntax
    if ts in _JPEG:
        arr = imagecodecs.jpeg8_decode(data)
    elif ts in _JPEG2K:
        arr = imagecodecs.jpeg2k_decode(data)
    elif ts in _NATIVE:
        arr = np.frombuffer(data, dtype=np.uint8).reshape(level.frame_h, level.frame_w, level.samples)
    else:  # pragma: no cover - rejected at open
        raise UnsupportedFormatError(f"{level.path}: transfer syntax {ts} not supported")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    return arr[..., :3]


def _infer_frame_order(level: _Level, read: Any) -> str:
    """Decide between row-major and column-major frame order from edge-frame padding.

    Edge frames are padded past the total pixel matrix with a constant value.
    In the right order, the padded strips of the frames on the right column and
    bottom row are uniform; in the wrong order they hold tissue or glass texture.
    Returns ``"row"`` unless column-major fits clearly better.
    """
    pad_x = level.n_cols * level.frame_w - level.width
    pad_y = level.n_rows * level.frame_h - level.height
    if pad_x == 0 and pad_y == 0:
        return "row"

    def score(order: str) -> float:
        hits, total = 0, 0
        for col in range(level.n_cols):
            for row in range(level.n_rows):
                on_right = pad_x and col == level.n_cols - 1
                on_bottom = pad_y and row == level.n_rows - 1
                if not (on_right or on_bottom):
                    continue
                idx = row * level.n_cols + col if order == "row" else col * level.n_rows + row
                frame = read(idx).astype(np.int16)
                strips = []
                if on_right:
                    strips.append(frame[:, level.frame_w - pad_x :])
                if on_bottom:
                    strips.append(frame[level.frame_h - pad_y :, :])
                flat = np.concatenate([s.reshape(-1, 3) for s in strips])
                hits += int(np.percentile(np.abs(flat - np.median(flat, axis=0)), 99) <= 8)
                total += 1
        return hits / max(total, 1)

    row_score, col_score = score("row"), score("col")
    if col_score > row_score:
        log.warning(
            "%s: frames are stored column-major without saying so; reading them column-major "
            "(edge padding fits %.0f%% vs %.0f%% row-major)",
            level.path,
            100 * col_score,
            100 * row_score,
        )
        return "col"
    return "row"


class DicomSlide(Slide):
    """A DICOM WSI series (one file per level, or a single file).

    Parameters
    ----------
    path : pathlib.Path
        A ``.dcm`` instance or a folder of instances of one series.
    """

    backend = "dicom"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._levels: list[_Level] = []
        try:
            with _lenient_pydicom():
                self._open(path)
        except BaseException:
            self.close()
            raise

    def _open(self, path: Path) -> None:
        import pydicom

        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        headers = []
        for f in files:
            if not is_dicom_file(f):
                continue
            try:
                ds = pydicom.dcmread(f, defer_size="64 KB")
            except Exception as exc:
                raise SlideOpenError(f"{f}: corrupt DICOM header: {exc}") from exc
            sop_class = str(getattr(ds, "SOPClassUID", "") or ds.file_meta.get("MediaStorageSOPClassUID", ""))
            if sop_class != WSM_SOP_CLASS:
                continue
            missing = [k for k in _REQUIRED if k not in ds]
            if missing or ds.get_item("PixelData", keep_deferred=True) is None:
                what = ", ".join(missing) if missing else "PixelData"
                raise SlideOpenError(f"{f}: truncated or corrupt DICOM WSI instance ({what} missing)")
            image_type = [str(t).upper() for t in getattr(ds, "ImageType", [])]
            if len(image_type) > 2 and image_type[2] in _NON_PYRAMID_TYPES:
                continue
            headers.append((f, ds))
        if not headers:
            raise UnsupportedFormatError(f"{path}: no DICOM whole-slide image (VL WSI) instance found")
        series_uid = str(headers[0][1].SeriesInstanceUID)
        headers = [(f, ds) for f, ds in headers if str(ds.SeriesInstanceUID) == series_uid]
        headers.sort(key=lambda item: -int(item[1].TotalPixelMatrixColumns))
        seen: set[int] = set()
        for f, ds in headers:
            width = int(ds.TotalPixelMatrixColumns)
            if width in seen:  # concatenations/duplicates of a level: keep the first
                continue
            seen.add(width)
            self._open_level(f, ds)
        base = headers[0][1]
        self.level_dimensions = tuple((lv.width, lv.height) for lv in self._levels)
        w0 = self._levels[0].width
        self.level_downsamples = tuple(w0 / lv.width for lv in self._levels)
        self.mpp = _pixel_spacing_mpp(base) or _imaged_volume_mpp(base)
        try:
            self.objective_power = float(base.OpticalPathSequence[0].ObjectiveLensPower) or None
        except (AttributeError, IndexError, TypeError, ValueError):
            self.objective_power = None
        self.bounds_offset = (0, 0)
        self.vendor = str(getattr(base, "Manufacturer", "") or "dicom")
        self.properties = {
            "dicom.series-instance-uid": series_uid,
            "dicom.transfer-syntax": self._levels[0].transfer_syntax,
            "dicom.frame-size": f"{self._levels[0].frame_w}x{self._levels[0].frame_h}",
        }

    def _open_level(self, f: Path, ds: Any) -> _Level:
        ts = str(ds.file_meta.TransferSyntaxUID)
        if ts not in _JPEG | _JPEG2K | _NATIVE:
            raise UnsupportedFormatError(f"{f}: DICOM transfer syntax {ts} is not supported")
        n_frames = int(getattr(ds, "NumberOfFrames", 1))
        fw, fh_ = int(ds.Columns), int(ds.Rows)
        width, height = int(ds.TotalPixelMatrixColumns), int(ds.TotalPixelMatrixRows)
        n_cols, n_rows = -(-width // fw), -(-height // fh_)
        samples = int(getattr(ds, "SamplesPerPixel", 3))
        raw = ds.get_item("PixelData", keep_deferred=True)
        if raw is None:
            raise SlideOpenError(f"{f}: DICOM instance has no pixel data")
        value_offset = int(raw.value_tell)
        size = f.stat().st_size
        if ts in _NATIVE:
            nbytes = fw * fh_ * samples
            offsets = [(value_offset + i * nbytes, nbytes) for i in range(n_frames)]
            if value_offset + n_frames * nbytes > size:
                raise SlideOpenError(f"{f}: file is truncated: pixel data needs {n_frames * nbytes} bytes")
        else:
            with open(f, "rb") as fh:
                fragments, bot = _scan_fragments(fh, value_offset)
            if len(fragments) == n_frames:
                offsets = fragments
            elif bot and len(bot) == n_frames:
                first = fragments[0][0] - 8
                starts = [first + b for b in bot] + [fragments[-1][0] + fragments[-1][1]]
                offsets = []
                for i in range(n_frames):
                    parts = [fr for fr in fragments if starts[i] <= fr[0] - 8 < starts[i + 1]]
                    offsets.append((parts[0][0], sum(p[1] for p in parts) + 8 * (len(parts) - 1)))
            else:
                raise UnsupportedFormatError(
                    f"{f}: {len(fragments)} pixel-data fragments for {n_frames} frames and no offset table"
                )
        level = _Level(f, width, height, fw, fh_, n_cols, n_rows, ts, samples, offsets, {})
        level.fd = os.open(f, os.O_RDONLY)
        self._levels.append(level)  # registered first so close() releases it on any error below
        level.grid = self._frame_grid(level, ds, n_frames)
        return level

    def _frame_grid(self, level: _Level, ds: Any, n_frames: int) -> dict[tuple[int, int], int]:
        per_frame = getattr(ds, "PerFrameFunctionalGroupsSequence", None)
        organization = str(getattr(ds, "DimensionOrganizationType", "")).upper()
        if per_frame is not None and organization != "TILED_FULL":
            grid = {}
            for i, item in enumerate(per_frame):
                pos = item.PlanePositionSlideSequence[0]
                col = (int(pos.ColumnPositionInTotalImagePixelMatrix) - 1) // level.frame_w
                row = (int(pos.RowPositionInTotalImagePixelMatrix) - 1) // level.frame_h
                grid[(col, row)] = i
            return grid
        if n_frames != level.n_cols * level.n_rows:
            raise UnsupportedFormatError(
                f"{level.path}: {n_frames} frames do not tile a {level.n_cols}x{level.n_rows} grid "
                "and the file gives no frame positions"
            )
        order = "row"
        if organization != "TILED_FULL":
            order = _infer_frame_order(level, lambda idx: self._frame(level, idx))
        if order == "row":
            return {(c, r): r * level.n_cols + c for r in range(level.n_rows) for c in range(level.n_cols)}
        return {(c, r): c * level.n_rows + r for r in range(level.n_rows) for c in range(level.n_cols)}

    def _frame(self, level: _Level, index: int) -> np.ndarray:
        offset, length = level.frame_offsets[index]
        data = os.pread(level.fd, length, offset)
        if len(data) < length:
            raise SlideOpenError(f"{level.path}: frame {index} is cut short (truncated file)")
        return _decode(level, data)

    def _read(self, level_index: int, x: int, y: int, w: int, h: int) -> RGBImage:
        level = self._levels[level_index]
        out = np.empty((h, w, 3), dtype=np.uint8)
        out[...] = 255
        c0, c1 = x // level.frame_w, (x + w - 1) // level.frame_w
        r0, r1 = y // level.frame_h, (y + h - 1) // level.frame_h
        for row in range(r0, r1 + 1):
            for col in range(c0, c1 + 1):
                idx = level.grid.get((col, row))
                if idx is None:  # sparse tiling: no frame stored here
                    continue
                frame = self._frame(level, idx)
                fx, fy = col * level.frame_w, row * level.frame_h
                sx0, sy0 = max(x, fx), max(y, fy)
                sx1 = min(x + w, fx + level.frame_w, level.width)
                sy1 = min(y + h, fy + level.frame_h, level.height)
                out[sy0 - y : sy1 - y, sx0 - x : sx1 - x] = frame[sy0 - fy : sy1 - fy, sx0 - fx : sx1 - fx]
        return out

    def close(self) -> None:
        """Close the per-level file descriptors."""
        for level in getattr(self, "_levels", []):
            if level.fd >= 0:
                os.close(level.fd)
                level.fd = -1
