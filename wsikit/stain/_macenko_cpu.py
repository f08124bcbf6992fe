"""Macenko's per-pixel apply on the CPU as one compiled, vectorized loop (numba).

With the optical-density map M of a source (3 x 3: all of Macenko once the stains are fitted), every pixel is
``OD_out = M OD`` and back to RGB, ``256 exp(-OD_out) - 1``, blended with the input by the tissue weight. The
torch formulation (:func:`wsikit.stain.macenko._apply_od_map`, the path on other devices) makes about ten
passes over each block; here each pixel is read once and written once. ``exp`` is computed as ``2^n 2^f``
(exponent bits, and a degree-7 polynomial on ``|f| <= 1/2``: relative error under 2e-7), which vectorizes
where a call to the C library would not.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from wsikit._numba import jit
from wsikit.stain._cpu import ITEM_PIXELS, as_float, blend_into, items_of, run_items

__all__ = ["apply_od_maps"]

_F = np.float32
_ZERO, _ONE, _HALF, _THIRD = _F(0.0), _F(1.0), _F(0.5), _F(1 / 3)
_LOG2E = _F(1.4426950408889634)
_LN2 = 0.6931471805599453
# 2^f = e^(f ln 2): Taylor coefficients (ln 2)^k / k!, k = 0..7
_C = [_F(_LN2**k / math.factorial(k)) for k in range(8)]
_C0, _C1, _C2, _C3, _C4, _C5, _C6, _C7 = _C
_NEG_LOG = (np.log((np.arange(256, dtype=np.float64) + 1.0) / 256.0)).astype(np.float32)  # -OD per level


@jit(inline=True)
def _exp(x: Any) -> Any:
    """e^x in float32 for x in about [-87, 87] (clamped there)."""
    t = min(max(x * _LOG2E, _F(-126.0)), _F(126.0))
    n = math.floor(t + _HALF)
    f = t - n
    p = _C7
    p = p * f + _C6
    p = p * f + _C5
    p = p * f + _C4
    p = p * f + _C3
    p = p * f + _C2
    p = p * f + _C1
    p = p * f + _C0
    return p * as_float(np.int32((np.int32(n) + np.int32(127)) * np.int32(8388608)))


@jit()
def _apply_items(x: Any, items: Any, neg_log: Any, maps: Any, ramp: Any, out: Any) -> None:
    lo, inv_range = ramp[0], ramp[1]
    buf = np.empty((4, ITEM_PIXELS), dtype=np.float32)
    b0, b1, b2, b3 = buf[0], buf[1], buf[2], buf[3]
    for row in range(items.shape[0]):
        i, p0, p1 = items[row, 0], items[row, 1], items[row, 2]
        xr, xg, xb = x[i, 0], x[i, 1], x[i, 2]
        for p in range(p0, p1):  # look-ups in a scalar pass: a gather in the loop below stops vectorization
            k = p - p0
            b0[k], b1[k], b2[k] = neg_log[xr[p]], neg_log[xg[p]], neg_log[xb[p]]
        m00, m01, m02 = maps[i, 0, 0], maps[i, 0, 1], maps[i, 0, 2]
        m10, m11, m12 = maps[i, 1, 0], maps[i, 1, 1], maps[i, 1, 2]
        m20, m21, m22 = maps[i, 2, 0], maps[i, 2, 1], maps[i, 2, 2]
        for k in range(p1 - p0):  # in place: RGB (float) into b0..b2, the tissue weight into b3
            r, g, b = b0[k], b1[k], b2[k]
            b3[k] = min(max((-(r + g + b) * _THIRD - lo) * inv_range, _ZERO), _ONE)
            b0[k] = min(max(_exp(m00 * r + m01 * g + m02 * b) * _F(256.0) - _ONE, _ZERO), _F(255.0))
            b1[k] = min(max(_exp(m10 * r + m11 * g + m12 * b) * _F(256.0) - _ONE, _ZERO), _F(255.0))
            b2[k] = min(max(_exp(m20 * r + m21 * g + m22 * b) * _F(256.0) - _ONE, _ZERO), _F(255.0))
        blend_into(x, out, i, p0, p1, buf)


def apply_od_maps(x: np.ndarray, maps: np.ndarray, low: float, high: float) -> np.ndarray:
    """Each image of a (B, 3, P) uint8 C-contiguous array through its optical-density map (``maps`` (B, 3, 3),
    acting on ``-OD``: the same matrix), back to RGB, blended with the input by the tissue weight (0 below mean
    OD ``low``, 1 above ``high``): (B, 3, P) uint8."""
    ramp = np.array([low, 1.0 / (high - low)], dtype=np.float32)
    out = np.empty_like(x)
    maps32 = np.ascontiguousarray(maps, dtype=np.float32)
    run_items(_apply_items, x, items_of(x.shape[0], x.shape[2]), (_NEG_LOG, maps32, ramp), out)
    return out
