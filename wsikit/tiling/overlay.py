"""Drawing helpers for overviews (pure numpy)."""

from __future__ import annotations

from wsikit._typing import BoolMask, RGBImage
from wsikit.errors import ShapeError

__all__ = ["outline_mask"]


def outline_mask(
    rgb: RGBImage, mask: BoolMask, *, color: tuple[int, int, int] = (0, 160, 0), width: int = 2
) -> RGBImage:
    """Return a copy of ``rgb`` with the outline of ``mask`` drawn in ``color``.

    Parameters
    ----------
    rgb : numpy.ndarray
        (H, W, 3) uint8 image.
    mask : numpy.ndarray
        (H, W) bool mask of the same size.
    color : (int, int, int)
        Outline color.
    width : int
        Outline width in pixels.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.full((8, 8, 3), 255, np.uint8); m = np.zeros((8, 8), bool); m[2:6, 2:6] = True
    >>> int((outline_mask(img, m, width=1) != 255).any(axis=-1).sum())
    12
    """
    from scipy import ndimage as ndi

    if rgb.shape[:2] != mask.shape:
        raise ShapeError(f"mask {mask.shape} does not match image {rgb.shape[:2]}")
    inner = ndi.binary_erosion(mask, iterations=max(1, width), border_value=0)
    edge = mask & ~inner
    out = rgb.copy()
    out[edge] = color
    return out
