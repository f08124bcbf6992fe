"""The :class:`Slide` interface shared by every reader backend.

A slide is a pyramid of RGB levels. Coordinates follow OpenSlide's
convention: ``location`` is always in level-0 pixels, ``size`` is in pixels of
the requested level. Regions that extend past the image are padded with
white (glass), so callers never need to special-case edge tiles.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from wsikit._typing import IntPair, RGBImage
from wsikit.errors import ConfigError, SlideReadError
from wsikit.io.damage import DamagedRegion, DamageLog

__all__ = ["Slide", "SlideInfo", "BACKGROUND_RGB"]

BACKGROUND_RGB: tuple[int, int, int] = (255, 255, 255)
"""Fill value for pixels outside the image (bright-field glass)."""


def _background(h: int, w: int) -> RGBImage:
    """An (h, w, 3) image of :data:`BACKGROUND_RGB` (white: one memset; a broadcast of the colour costs about
    100x more per pixel)."""
    if len(set(BACKGROUND_RGB)) == 1:
        return np.full((h, w, 3), BACKGROUND_RGB[0], dtype=np.uint8)
    out = np.empty((h, w, 3), dtype=np.uint8)
    out[...] = np.asarray(BACKGROUND_RGB, dtype=np.uint8)
    return out


@dataclass(frozen=True, kw_only=True)
class SlideInfo:
    """A JSON-friendly summary of a slide's geometry and metadata."""

    path: str
    backend: str
    vendor: str | None
    level_count: int
    level_dimensions: list[IntPair]
    level_downsamples: list[float]
    mpp: tuple[float, float] | None
    objective_power: float | None
    bounds_offset: IntPair
    tile_decoder: str | None = None
    """Who decodes the tiles when not the backend itself (``tifffile`` for large Aperio JPEG / JPEG 2000 slides
    opened with OpenSlide), else None."""

    def to_dict(self) -> dict[str, Any]:
        """Return the summary as plain Python types (for JSON)."""
        return {
            "path": self.path,
            "backend": self.backend,
            "vendor": self.vendor,
            "level_count": self.level_count,
            "level_dimensions": [list(d) for d in self.level_dimensions],
            "level_downsamples": list(self.level_downsamples),
            "mpp": list(self.mpp) if self.mpp is not None else None,
            "objective_power": self.objective_power,
            "bounds_offset": list(self.bounds_offset),
            "tile_decoder": self.tile_decoder,
        }


class Slide(ABC):
    """A multi-resolution RGB slide opened by one of wsikit's backends.

    Use :func:`wsikit.io.open_slide` rather than instantiating a backend.
    Instances are safe to share between reader threads: backends either
    release the GIL in thread-safe C code (OpenSlide) or lock their file
    handle (tifffile, pydicom).

    Attributes
    ----------
    path : pathlib.Path
        The file (or DICOM folder) the slide was opened from.
    backend : str
        ``"openslide"``, ``"tifffile"``, ``"dicom"`` or ``"image"``.
    vendor : str or None
        Scanner format as reported by the backend (e.g. ``"aperio"``).
    level_dimensions : tuple of (int, int)
        (width, height) of each level, level 0 first.
    level_downsamples : tuple of float
        Downsample factor of each level relative to level 0.
    mpp : (float, float) or None
        Microns per pixel (x, y) at level 0; ``None`` when the file does not
        state it (never a guessed value).
    objective_power : float or None
        Scanner objective magnification, when stated.
    bounds_offset : (int, int)
        OpenSlide's ``bounds-x``/``bounds-y``: where the non-empty region of
        the slide starts. Viewers such as QuPath crop to it by default.
    properties : Mapping[str, str]
        Raw metadata key/values from the backend.
    """

    path: Path
    backend: str
    vendor: str | None
    level_dimensions: tuple[IntPair, ...]
    level_downsamples: tuple[float, ...]
    mpp: tuple[float, float] | None
    objective_power: float | None
    bounds_offset: IntPair
    properties: Mapping[str, str]
    damage: DamageLog | None = None
    """Where unreadable regions are recorded; None (the default) makes them raise (see :meth:`skip_damaged`)."""

    def skip_damaged(self, damage: DamageLog | None = None) -> DamageLog:
        """Read unreadable (corrupt) tiles as glass instead of raising, recording each in ``damage``.

        A read that fails is retried block by block on the slide's own tile grid (256 px where the
        backend does not state one); blocks that still fail are painted white (no tissue is found in
        them) and recorded once each, in level-0 pixels. Returns the log.

        Examples
        --------
        >>> from wsikit.io import open_slide
        >>> from wsikit.sample import sample_slide_path
        >>> with open_slide(sample_slide_path()) as slide:
        ...     damage = slide.skip_damaged()
        ...     _ = slide.read_region((0, 0), 0, (64, 64))
        >>> len(damage)
        0
        """
        self.damage = damage if damage is not None else DamageLog()
        return self.damage

    def _tile_size(self, level: int) -> IntPair:
        """(width, height) of the encoded tiles of ``level`` (256 x 256 when the backend does not say)."""
        return (256, 256)

    def _read_isolated(self, level: int, x: int, y: int, w: int, h: int) -> RGBImage:
        """Read an in-bounds box so that a decoding failure affects no other read (backends with state override)."""
        return self._read(level, x, y, w, h)

    # ------------------------------------------------------------------ geometry
    @property
    def level_count(self) -> int:
        """Number of pyramid levels."""
        return len(self.level_dimensions)

    @property
    def dimensions(self) -> IntPair:
        """(width, height) of level 0."""
        return self.level_dimensions[0]

    @property
    def mpp_x(self) -> float | None:
        """Microns per pixel along x at level 0, or ``None`` when unknown."""
        return None if self.mpp is None else self.mpp[0]

    def best_level_for_downsample(self, downsample: float) -> int:
        """Return the most detailed level whose downsample is <= ``downsample``.

        Reading from that level and resizing down never up-samples.

        Parameters
        ----------
        downsample : float
            Wanted downsample relative to level 0 (>= 1 for shrinking).

        Returns
        -------
        int
            A level index, 0 when ``downsample`` is below every level's.
        """
        best = 0
        for i, ds in enumerate(self.level_downsamples):
            if ds <= downsample * (1 + 1e-6):
                best = i
        return best

    def info(self) -> SlideInfo:
        """Summarize this slide's geometry and metadata."""
        return SlideInfo(
            path=str(self.path),
            backend=self.backend,
            vendor=self.vendor,
            level_count=self.level_count,
            level_dimensions=list(self.level_dimensions),
            level_downsamples=list(self.level_downsamples),
            mpp=self.mpp,
            objective_power=self.objective_power,
            bounds_offset=self.bounds_offset,
            tile_decoder=getattr(self, "properties", {}).get("wsikit.tile-decoder"),
        )

    # ------------------------------------------------------------------- pixels
    def read_region(self, location: IntPair, level: int, size: IntPair) -> RGBImage:
        """Read an RGB region.

        Parameters
        ----------
        location : (int, int)
            Top-left (x, y) in level-0 pixels. May be negative or past the edge.
        level : int
            Pyramid level to read from.
        size : (int, int)
            (width, height) in pixels of ``level``.

        Returns
        -------
        numpy.ndarray
            (height, width, 3) uint8 RGB; pixels outside the image are white.

        Raises
        ------
        ConfigError
            If ``level`` does not exist or ``size`` is not positive.
        SlideReadError
            If the backend fails to decode the pixels (corrupt or truncated file).

        Examples
        --------
        >>> from wsikit.io import open_slide
        >>> from wsikit.sample import sample_slide_path
        >>> with open_slide(sample_slide_path()) as slide:
        ...     slide.read_region((0, 0), 0, (64, 32)).shape
        (32, 64, 3)
        """
        if not 0 <= level < self.level_count:
            raise ConfigError(f"level must be in [0, {self.level_count - 1}] for {self.path}, got {level}")
        w, h = int(size[0]), int(size[1])
        if w <= 0 or h <= 0:
            raise ConfigError(f"size must be positive (width, height), got {tuple(size)}")
        ds = self.level_downsamples[level]
        lw, lh = self.level_dimensions[level]
        # Level coordinates of the requested box.
        lx = int(math.floor(location[0] / ds))
        ly = int(math.floor(location[1] / ds))
        x0, y0 = max(lx, 0), max(ly, 0)
        x1, y1 = min(lx + w, lw), min(ly + h, lh)
        if x0 == lx and y0 == ly and x1 == lx + w and y1 == ly + h:
            return self._read_checked(level, lx, ly, w, h)
        out = _background(h, w)
        if x1 > x0 and y1 > y0:
            out[y0 - ly : y1 - ly, x0 - lx : x1 - lx] = self._read_checked(level, x0, y0, x1 - x0, y1 - y0)
        return out

    def _read_checked(self, level: int, x: int, y: int, w: int, h: int) -> RGBImage:
        try:
            arr = self._read(level, x, y, w, h)
        except Exception as exc:  # backends raise many types; name the file once here
            if self.damage is not None:
                return self._read_around_damage(level, x, y, w, h)
            if isinstance(exc, SlideReadError):
                raise
            raise SlideReadError(
                f"{self.path}: cannot read {w}x{h} px at ({x}, {y}) of level {level}: {exc}"
            ) from exc
        if arr.shape != (h, w, 3) or arr.dtype != np.uint8:
            raise SlideReadError(
                f"{self.path}: backend returned {arr.shape} {arr.dtype} for a {w}x{h} RGB read"
            )
        return arr

    def _read_around_damage(self, level: int, x: int, y: int, w: int, h: int) -> RGBImage:
        """Read a box block by block on the tile grid; unreadable blocks become glass and are recorded."""
        assert self.damage is not None
        out = np.empty((h, w, 3), dtype=np.uint8)
        tw, th = self._tile_size(level)
        ds = self.level_downsamples[level]
        for by in range(y - y % th, y + h, th):
            for bx in range(x - x % tw, x + w, tw):
                x0, y0 = max(bx, x), max(by, y)
                x1, y1 = min(bx + tw, x + w), min(by + th, y + h)
                try:
                    block = self._read_isolated(level, x0, y0, x1 - x0, y1 - y0)
                    if block.shape != (y1 - y0, x1 - x0, 3) or block.dtype != np.uint8:
                        raise SlideReadError(f"backend returned {block.shape} {block.dtype}")
                except Exception as exc:  # noqa: BLE001 - any decoder failure marks the block damaged
                    # the whole encoded tile, in level-0 pixels
                    lw, lh = self.level_dimensions[level]
                    self.damage.add(
                        DamagedRegion(
                            x=int(math.floor(bx * ds)),
                            y=int(math.floor(by * ds)),
                            width=int(math.ceil(min(tw, lw - bx) * ds)),
                            height=int(math.ceil(min(th, lh - by) * ds)),
                            level=level,
                            error=str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__,
                        )
                    )
                    block = _background(y1 - y0, x1 - x0)
                out[y0 - y : y1 - y, x0 - x : x1 - x] = block
        return out

    @abstractmethod
    def _read(self, level: int, x: int, y: int, w: int, h: int) -> RGBImage:
        """Read an in-bounds box given in ``level`` pixel coordinates."""

    def read_overview(self, max_size: int = 2048, *, pixel_um: float | None = None) -> tuple[RGBImage, float]:
        """Read the whole slide downsampled so its longest side is at most ``max_size``.

        The slide is read in horizontal strips from the smallest sufficient
        level and block-averaged by an integer factor, so memory stays bounded
        by ``max_size`` whatever the slide size, and the returned downsample is
        exact (an overview pixel covers exactly ``downsample`` level-0 pixels).

        Parameters
        ----------
        max_size : int
            Longest side of the result in pixels.
        pixel_um : float, optional
            Also downsample small high-resolution images (crops, tiles) towards pixels of this size: by the
            largest integer factor whose pixels stay at or below it, when the slide's mpp is known. Only
            makes the overview coarser than ``max_size`` alone would.

        Returns
        -------
        image : numpy.ndarray
            (h, w, 3) uint8 RGB overview.
        downsample : float
            Level-0 pixels per overview pixel.

        Examples
        --------
        >>> from wsikit.io import open_slide
        >>> from wsikit.sample import sample_slide_path
        >>> with open_slide(sample_slide_path()) as slide:
        ...     image, ds = slide.read_overview(512)
        >>> image.shape, ds
        ((495, 370, 3), 6.0)
        """
        if max_size <= 0:
            raise ConfigError(f"max_size must be positive, got {max_size}")
        if pixel_um is not None and not pixel_um > 0:
            raise ConfigError(f"pixel_um must be positive, got {pixel_um}")
        w0, h0 = self.dimensions
        by_size = max(w0, h0) / max_size
        by_pixel = math.floor(pixel_um / self.mpp[0]) if pixel_um and self.mpp else 1
        level = self.best_level_for_downsample(max(by_size, by_pixel, 1.0))
        lw, lh = self.level_dimensions[level]
        ds_level = self.level_downsamples[level]
        factor = max(1, math.ceil(max(lw, lh) / max_size), math.floor(by_pixel / ds_level))
        out_w, out_h = math.ceil(lw / factor), math.ceil(lh / factor)
        out = np.empty((out_h, out_w, 3), dtype=np.uint8)
        # Strips of about 16 MB keep the peak small whatever the level size.
        rows_per_strip = max(1, (16 * 1024 * 1024) // (max(lw, 1) * 3 * factor * factor))
        for r0 in range(0, out_h, rows_per_strip):
            r1 = min(out_h, r0 + rows_per_strip)
            loc = (0, int(round(r0 * factor * ds_level)))
            strip = self.read_region(loc, level, (out_w * factor, (r1 - r0) * factor))
            if factor > 1:
                from wsikit.io._downsample import block_mean  # numba, imported on first use

                out[r0:r1] = block_mean(strip, factor)
            else:
                out[r0:r1] = strip
        return out, ds_level * factor

    def get_thumbnail(self, max_size: int = 1024) -> RGBImage:
        """Return an RGB overview whose longest side is at most ``max_size`` (see :meth:`read_overview`)."""
        return self.read_overview(max_size)[0]

    # ---------------------------------------------------------------- lifecycle
    def close(self) -> None:  # noqa: B027 - optional hook
        """Release file handles. Idempotent."""

    def __enter__(self) -> Slide:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        w, h = self.dimensions
        mpp = "unknown" if self.mpp is None else f"{self.mpp[0]:.4g}"
        return (
            f"<{type(self).__name__} {self.path.name!r} {w}x{h} levels={self.level_count} "
            f"mpp={mpp} backend={self.backend}>"
        )
