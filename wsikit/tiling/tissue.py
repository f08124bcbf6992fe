"""Tissue detection on a low-resolution overview of a slide.

Pixels are tissue when they are stained (saturation above an Otsu threshold)
or dense (optical density above an Otsu threshold); both thresholds are
clamped to ranges that hold for bright-field H&E, so an empty slide yields an
empty mask and a slide full of tissue is not split in half. Pen marks (green,
blue and black ink, faint green edges included) are removed first by hue and
darkness, then the mask is cleaned with morphology: closing, removal of
specks, filling of small holes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from wsikit._typing import BoolMask, RGBImage
from wsikit.errors import ConfigError, ShapeError

__all__ = ["TissueMask", "detect_tissue", "pen_mask", "tissue_mask"]

# Threshold clamps, chosen for bright-field H&E (glass: saturation < 0.04, OD < 0.05).
_SAT_RANGE = (0.07, 0.20)
_OD_RANGE = (0.10, 0.30)


def _otsu(values: npt.NDArray[np.float32], lo: float, hi: float) -> float:
    from skimage.filters import threshold_otsu

    if values.size == 0 or float(values.max() - values.min()) < 1e-6:
        return hi
    return float(np.clip(threshold_otsu(values), lo, hi))  # type: ignore[no-untyped-call]


def _hsv(rgb: RGBImage) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Hue in degrees, saturation and value (0..1) in float32 (skimage's rgb2hsv works in float64)."""
    f = rgb.astype(np.float32) / 255.0
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    mx = np.maximum(np.maximum(r, g), b)  # numpy's max over a 3-long last axis is ~10x slower
    mn = np.minimum(np.minimum(r, g), b)
    delta = mx - mn
    safe = np.where(delta > 0, delta, 1.0)
    hue = np.where(
        mx == r, (g - b) / safe % 6.0, np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0)
    )
    hue = np.where(delta > 0, hue * 60.0, 0.0).astype(np.float32)
    sat = np.where(mx > 0, delta / np.where(mx > 0, mx, 1.0), 0.0).astype(np.float32)
    return hue, sat, mx.astype(np.float32)


_OD_LUT = (-np.log((np.arange(256, dtype=np.float32) + 1.0) / 256.0)).astype(np.float32)


def pen_mask(rgb: RGBImage) -> BoolMask:
    """Pixels of marker ink: green/cyan/blue hues, and near-black.

    H&E hues lie in pink (eosin) to purple (hematoxylin), i.e. about 250-360
    and 0-20 degrees; marker ink is green (~90-170), blue (~200-245) or black.

    Parameters
    ----------
    rgb : numpy.ndarray
        (H, W, 3) uint8.

    Returns
    -------
    numpy.ndarray
        (H, W) bool, True on ink.
    """
    hue_deg, sat, val = _hsv(rgb)
    # Green/cyan never occurs in H&E, even faintly; blue is near hematoxylin, so it must be strong.
    green_ink = (hue_deg > 60) & (hue_deg <= 200) & (sat > 0.08)
    blue_ink = (hue_deg > 200) & (hue_deg < 245) & (sat > 0.25)
    colored_ink = green_ink | blue_ink
    black_ink = val < 0.2
    return np.asarray(colored_ink | black_ink)


def detect_tissue(
    rgb: RGBImage,
    *,
    min_object_px: int = 64,
    max_hole_px: int = 256,
    remove_pen: bool = True,
) -> BoolMask:
    """Detect tissue in a low-resolution RGB overview.

    Parameters
    ----------
    rgb : numpy.ndarray
        (H, W, 3) uint8 overview of the slide (e.g. from ``Slide.read_overview``).
    min_object_px : int
        Connected tissue pieces smaller than this (in overview pixels) are dropped.
    max_hole_px : int
        Holes smaller than this inside tissue (fat, lumen) are filled.
    remove_pen : bool
        Exclude marker ink (see :func:`pen_mask`).

    Returns
    -------
    numpy.ndarray
        (H, W) bool mask, True on tissue.

    Raises
    ------
    ShapeError
        If ``rgb`` is not an (H, W, 3) uint8 array.

    Examples
    --------
    >>> import numpy as np
    >>> glass = np.full((64, 64, 3), 245, np.uint8)
    >>> bool(detect_tissue(glass).any())
    False
    >>> glass[16:48, 16:48] = (200, 120, 170)  # an H&E-pink square
    >>> int(detect_tissue(glass).sum())
    1024
    """
    from scipy import ndimage as ndi
    from skimage import morphology

    if not (isinstance(rgb, np.ndarray) and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8):
        got = f"{rgb.shape} {rgb.dtype}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ShapeError(f"rgb must be an (H, W, 3) uint8 array, got {got}")
    if min_object_px < 0 or max_hole_px < 0:
        raise ConfigError("min_object_px and max_hole_px must be >= 0")
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx = np.maximum(np.maximum(r, g), b).astype(np.float32)
    mn = np.minimum(np.minimum(r, g), b).astype(np.float32)
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1.0), 0.0).astype(np.float32)
    od = (_OD_LUT[rgb[..., 0]] + _OD_LUT[rgb[..., 1]] + _OD_LUT[rgb[..., 2]]) / np.float32(3.0)
    ink = pen_mask(rgb) if remove_pen else np.zeros(sat.shape, bool)
    clean = ~ink
    t_sat = _otsu(sat[clean], *_SAT_RANGE)
    t_od = _otsu(od[clean], *_OD_RANGE)
    tissue = ((sat > t_sat) | (od > t_od)) & clean
    tissue = ndi.binary_closing(tissue, structure=np.ones((3, 3), bool), iterations=1) & clean
    if min_object_px:
        tissue = morphology.remove_small_objects(tissue, max_size=min_object_px - 1)
    if max_hole_px:
        tissue = morphology.remove_small_holes(tissue, max_size=max_hole_px)
    return np.asarray(tissue & clean if remove_pen else tissue, dtype=bool)


@dataclass(frozen=True, kw_only=True)
class TissueMask:
    """A tissue mask with its mapping to level-0 pixels.

    Attributes
    ----------
    mask : numpy.ndarray
        (h, w) bool, True on tissue.
    downsample : float
        Level-0 pixels per mask pixel (the same along x and y).
    mpp : (float, float) or None
        Level-0 microns per pixel of the slide, when known.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((10, 10), bool); m[:5] = True
    >>> tm = TissueMask(mask=m, downsample=100.0, mpp=(0.5, 0.5))
    >>> tm.fraction, tm.area_mm2
    (0.5, 0.125)
    >>> tm.box_fraction(0, 0, 1000, 500)
    1.0
    """

    mask: BoolMask
    downsample: float
    mpp: tuple[float, float] | None = None
    _integral: npt.NDArray[np.int64] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mask.ndim != 2 or self.mask.dtype != np.bool_:
            raise ShapeError(f"mask must be a 2-D bool array, got {self.mask.shape} {self.mask.dtype}")
        if not self.downsample > 0:
            raise ConfigError(f"downsample must be positive, got {self.downsample}")
        integral = np.zeros((self.mask.shape[0] + 1, self.mask.shape[1] + 1), np.int64)
        integral[1:, 1:] = self.mask.cumsum(0).cumsum(1)
        object.__setattr__(self, "_integral", integral)

    @property
    def fraction(self) -> float:
        """Share of the slide area covered by tissue (0..1)."""
        return float(self.mask.mean()) if self.mask.size else 0.0

    @property
    def area_px0(self) -> float:
        """Tissue area in level-0 pixels."""
        return float(self.mask.sum()) * self.downsample**2

    @property
    def area_mm2(self) -> float | None:
        """Tissue area in mm^2, or ``None`` when the slide's mpp is unknown."""
        if self.mpp is None:
            return None
        return self.area_px0 * self.mpp[0] * self.mpp[1] / 1e6

    def box_fraction(self, x0: float, y0: float, x1: float, y1: float) -> float:
        """Tissue fraction of the level-0 box [x0, x1) x [y0, y1) (area outside the slide counts as glass)."""
        d = self.downsample
        h, w = self.mask.shape
        cx0, cy0 = int(np.floor(x0 / d)), int(np.floor(y0 / d))
        cx1, cy1 = int(np.ceil(x1 / d)), int(np.ceil(y1 / d))
        area = max(cx1 - cx0, 1) * max(cy1 - cy0, 1)
        cx0, cx1 = min(max(cx0, 0), w), min(max(cx1, 0), w)
        cy0, cy1 = min(max(cy0, 0), h), min(max(cy1, 0), h)
        ii = self._integral
        count = ii[cy1, cx1] - ii[cy0, cx1] - ii[cy1, cx0] + ii[cy0, cx0]
        return float(count) / area


def tissue_mask(slide: object, *, max_size: int = 2048, remove_pen: bool = True) -> TissueMask:
    """Detect tissue on a slide's overview (longest side at most ``max_size`` px).

    Parameters
    ----------
    slide : wsikit.io.Slide
        An open slide.
    max_size : int
        Longest side of the overview used for detection; memory is bounded by it.
    remove_pen : bool
        Exclude marker ink.

    Returns
    -------
    TissueMask
        The mask, its level-0 downsample and the slide's mpp.

    Examples
    --------
    >>> from wsikit.io import open_slide
    >>> from wsikit.sample import sample_slide_path
    >>> with open_slide(sample_slide_path()) as slide:
    ...     tm = tissue_mask(slide, max_size=1024)
    >>> 0.2 < tm.fraction < 0.9 and tm.area_mm2 > 0.3
    True
    """
    from wsikit.io.slide import Slide

    if not isinstance(slide, Slide):
        raise ShapeError(f"slide must be a wsikit Slide, got {type(slide).__name__}")
    overview, downsample = slide.read_overview(max_size)
    # Size thresholds scale with the overview: ~0.002% of its area for specks, 0.05% for holes.
    n = overview.shape[0] * overview.shape[1]
    mask = detect_tissue(
        overview,
        min_object_px=max(16, n // 5000),
        max_hole_px=max(64, n // 2000),
        remove_pen=remove_pen,
    )
    return TissueMask(mask=mask, downsample=downsample, mpp=slide.mpp)
