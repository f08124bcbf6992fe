"""The per-pixel part of tissue detection as one compiled pass (numba), equal to the numpy formulas it
replaced bit for bit (float arithmetic in source order: no fast math)."""

from __future__ import annotations

from typing import Any

import numpy as np

from wsikit._numba import jit

__all__ = ["pixel_features"]


@jit(fastmath=False)
def _features(
    rgb: Any,
    od_lut: Any,
    sat_lut: Any,
    remove_pen: bool,
    sat: Any,
    od: Any,
    clean: Any,
    pairs: Any,
    od_clean: Any,
) -> int:
    h, w, _ = rgb.shape
    n = 0
    three = np.float32(3.0)
    for y in range(h):
        for x in range(w):
            r, g, b = np.int32(rgb[y, x, 0]), np.int32(rgb[y, x, 1]), np.int32(rgb[y, x, 2])
            mx = max(r, g, b)
            mn = min(r, g, b)
            ink: Any = False
            if remove_pen:  # tissue._ink, pixel by pixel
                delta = mx - mn
                green_max = g == mx and r != mx
                blue_max = b == mx and r != mx and g != mx
                g_minus_r3 = 3 * (g - r)
                green_ink = (green_max or (blue_max and g_minus_r3 >= 2 * delta)) and 25 * delta > 2 * mx
                blue_ink = blue_max and g_minus_r3 < 2 * delta and 12 * (r - g) < delta and 4 * delta > mx
                ink = green_ink or blue_ink or mx < 51
            s = sat_lut[mx, mn]
            d = (od_lut[r] + od_lut[g] + od_lut[b]) / three
            sat[y, x] = s
            od[y, x] = d
            clean[y, x] = not ink
            if not ink:
                pairs[mx * 256 + mn] += 1
                od_clean[n] = d
                n += 1
    return n


def pixel_features(
    rgb: np.ndarray, od_lut: np.ndarray, sat_lut: np.ndarray, remove_pen: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """HSV saturation and mean optical density (float32), the ink-free mask, the counts of (max, min) channel
    pairs over ink-free pixels (65,536) and their optical densities, of an (H, W, 3) uint8 image."""
    h, w, _ = rgb.shape
    sat = np.empty((h, w), np.float32)
    od = np.empty((h, w), np.float32)
    clean = np.empty((h, w), np.bool_)
    pairs = np.zeros(256 * 256, np.int64)
    od_clean = np.empty(h * w, np.float32)
    n = _features(np.ascontiguousarray(rgb), od_lut, sat_lut, remove_pen, sat, od, clean, pairs, od_clean)
    return sat, od, clean, pairs, od_clean[:n]
