"""Slide backend for plain images (PNG, JPEG, BMP, ...): one level, decoded once into memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsikit._typing import RGBImage
from wsikit.errors import SlideOpenError, UnsupportedFormatError
from wsikit.io.slide import Slide

__all__ = ["ImageSlide"]


def _to_rgb(img: object, path: Path) -> RGBImage:
    from PIL import Image

    assert isinstance(img, Image.Image)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr16 = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr16.max() > 255 else 255.0
        gray = np.clip(arr16 * 255.0 / peak + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=-1))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    if img.mode == "F":
        raise UnsupportedFormatError(f"{path}: floating-point images are not supported")
    return np.asarray(img.convert("RGB"))


class ImageSlide(Slide):
    """A plain raster image exposed as a one-level slide.

    Transparent pixels are composited on white; gray and 16-bit images are
    converted to RGB uint8. ``mpp`` is always ``None``: plain formats carry no
    trustworthy physical size (pass it explicitly where a tool needs it).

    Parameters
    ----------
    path : pathlib.Path
        An image file Pillow can decode.
    """

    backend = "image"

    def __init__(self, path: Path) -> None:
        from PIL import Image, UnidentifiedImageError

        self.path = path
        try:
            with Image.open(path) as img:
                img.load()
                self.vendor = (img.format or "image").lower()
                self._pixels = _to_rgb(img, path)
        except UnidentifiedImageError as exc:
            raise UnsupportedFormatError(f"{path}: not a slide or image format wsikit can read") from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise SlideOpenError(f"{path}: corrupt or truncated image: {exc}") from exc
        h, w = self._pixels.shape[:2]
        self.level_dimensions = ((w, h),)
        self.level_downsamples = (1.0,)
        self.mpp = None
        self.objective_power = None
        self.bounds_offset = (0, 0)
        self.properties = {"image.format": self.vendor}

    @classmethod
    def from_array(cls, pixels: RGBImage, *, name: str = "<array>") -> ImageSlide:
        """Wrap an in-memory (H, W, 3) uint8 array as a one-level slide."""
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            from wsikit.errors import ShapeError

            raise ShapeError(f"pixels must be (H, W, 3) uint8, got {pixels.shape} {pixels.dtype}")
        self = cls.__new__(cls)
        self.path = Path(name)
        self.vendor = "array"
        self._pixels = np.ascontiguousarray(pixels)
        h, w = pixels.shape[:2]
        self.level_dimensions = ((w, h),)
        self.level_downsamples = (1.0,)
        self.mpp = None
        self.objective_power = None
        self.bounds_offset = (0, 0)
        self.properties = {}
        return self

    def _read(self, level: int, x: int, y: int, w: int, h: int) -> RGBImage:
        return self._pixels[y : y + h, x : x + w].copy()
