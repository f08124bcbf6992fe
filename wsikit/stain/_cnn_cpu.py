"""The CNN normalizer's per-pixel colour work on the CPU, compiled by numba (lightness mode ``keep``).

Around its small network (about a fifth of its time on a 640 px tile) :class:`~wsikit.stain.CnnNormalizer` runs
some 60 eager torch passes over every pixel: sRGB to Lab, the tissue weight, the lightness matched to the
style's quantiles, then the chroma clamp, the blend with the input's chroma and Lab back to sRGB. Here they are
two loops per pixel, before and after the network:

- :func:`lab_and_light`: Lab, tissue weight and the matched lightness the network reads;
- :func:`to_rgb`: the network's chroma clamped to the style's gamut, blended by the tissue weight with the
  input's, back to sRGB, rounded to uint8.

The arithmetic is float32 like the torch path; the powers use the exact-to-float identities of
:mod:`wsikit.stain._reinhard_cpu` (cube root within 3e-7, sRGB's power within 2e-4 of a grey level), so the two
paths agree to one grey level on a small share of pixels (tested). Items and threads as in
:mod:`wsikit.stain._cpu`: each pixel's result depends on that pixel only, so any split gives the same bytes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from wsikit._numba import jit
from wsikit.stain._cpu import items_of, run_items
from wsikit.stain._reinhard_cpu import _f, _f_inverse, _srgb

__all__ = ["lab_and_light", "to_rgb"]

_F = np.float32
_ZERO, _ONE = _F(0.0), _F(1.0)


@jit()
def _match(v: Any, src: Any, tgt: Any) -> Any:
    """``v`` mapped piecewise-linearly from the increasing knots ``src`` onto ``tgt`` (as torch's searchsorted
    + lerp in :meth:`CnnNormalizer._match_lightness`: the first knot >= v, clamped to 1..n-1)."""
    lo, hi = 0, src.shape[0]
    while lo < hi:  # first index with src[index] >= v
        mid = (lo + hi) >> 1
        if src[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    i = min(max(lo, 1), src.shape[0] - 1)
    x0, x1, y0, y1 = src[i - 1], src[i], tgt[i - 1], tgt[i]
    t = min(max((v - x0) / (x1 - x0), _ZERO), _ONE)
    return y0 + t * (y1 - y0)


@jit()
def _lab_items(
    x: Any, items: Any, lin: Any, od: Any, to_xyz: Any, ramp: Any, src: Any, tgt: Any, out: Any
) -> None:
    """Per pixel of the items: L, a, b, the tissue weight and the matched lightness / 100 into ``out``'s
    five planes (B, 5, P); ``src`` empty: the lightness is not matched."""
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = to_xyz.ravel()
    lo, inv_range = ramp[0], ramp[1]
    match = src.shape[0] > 0
    for row in range(items.shape[0]):
        i, p0, p1 = items[row, 0], items[row, 1], items[row, 2]
        big_l, a_out, b_out, w_out, m_out = out[i, 0], out[i, 1], out[i, 2], out[i, 3], out[i, 4]
        for p in range(p0, p1):
            r, g, b = x[i, 0, p], x[i, 1, p], x[i, 2, p]
            lr, lg, lb = lin[r], lin[g], lin[b]
            fx = _f(m00 * lr + m01 * lg + m02 * lb)
            fy = _f(m10 * lr + m11 * lg + m12 * lb)
            fz = _f(m20 * lr + m21 * lg + m22 * lb)
            light = _F(116.0) * fy - _F(16.0)
            big_l[p] = light
            a_out[p] = _F(500.0) * (fx - fy)
            b_out[p] = _F(200.0) * (fy - fz)
            mean_od = (od[r] + od[g] + od[b]) / _F(3.0)
            w_out[p] = min(max((mean_od - lo) * inv_range, _ZERO), _ONE)
            m_out[p] = (_match(light, src, tgt) if match else light) / _F(100.0)


@jit()
def _rgb_items(lab: Any, items: Any, ab: Any, from_xyz: Any, table: Any, scale: Any, out: Any) -> None:
    """Per pixel: the network's chroma (``ab`` (B, 2, P) x ``scale``) clamped to ``table``'s gamut at the pixel's
    lightness (empty table: not clamped), blended with the input's by the tissue weight, Lab -> sRGB, rounded
    half to even into ``out`` (B, 3, P) uint8."""
    n00, n01, n02, n10, n11, n12, n20, n21, n22 = from_xyz.ravel()
    bins = table.shape[0]
    k = scale[0]
    buf = np.empty(3, np.float32)
    for row in range(items.shape[0]):
        i, p0, p1 = items[row, 0], items[row, 1], items[row, 2]
        big_l, a_in, b_in, weight = lab[i, 0], lab[i, 1], lab[i, 2], lab[i, 3]
        a_net, b_net = ab[i, 0], ab[i, 1]
        for p in range(p0, p1):
            light = big_l[p]
            a, b = a_net[p] * k, b_net[p] * k
            if bins > 0:
                pos = min(max(light / _F(5.0), _ZERO), _F(bins - 1))
                j = int(math.floor(pos))
                j1 = min(j + 1, bins - 1)
                limit = table[j] + (pos - _F(j)) * (table[j1] - table[j])
                chroma = math.sqrt(a * a + b * b)
                s = min(limit / max(chroma, _F(1e-6)), _ONE)
                a, b = a * s, b * s
            w = weight[p]
            a = w * a + (_ONE - w) * a_in[p]
            b = w * b + (_ONE - w) * b_in[p]
            fy = (light + _F(16.0)) / _F(116.0)
            tx = _f_inverse(fy + a / _F(500.0))
            ty = _f_inverse(fy)
            tz = _f_inverse(fy - b / _F(200.0))
            buf[0] = _srgb(n00 * tx + n01 * ty + n02 * tz)
            buf[1] = _srgb(n10 * tx + n11 * ty + n12 * tz)
            buf[2] = _srgb(n20 * tx + n21 * ty + n22 * tz)
            for c in range(3):
                out[i, c, p] = np.uint8(np.rint(buf[c]))


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per grey level: linear intensity and optical density; XYZ / white from linear RGB and back."""
    from wsikit.stain.color import _RGB_TO_XYZ, _WHITE, _srgb_to_linear

    levels = torch.arange(256, dtype=torch.float64)
    linear = _srgb_to_linear(levels / 255.0).float().numpy()
    od = (-torch.log((levels + 1.0) / 256.0)).float().numpy()
    to_xyz = _RGB_TO_XYZ.double() / _WHITE.double()[:, None]
    return linear, od, to_xyz.float().numpy(), torch.linalg.inv(to_xyz).float().numpy()


def lab_and_light(
    x: np.ndarray, quantiles: tuple[np.ndarray, np.ndarray] | None, ramp: tuple[float, float]
) -> np.ndarray:
    """(B, 5, P) float32 of a (B, 3, P) uint8 C-contiguous batch: L, a, b, the tissue weight (``ramp`` = the
    optical densities where it starts and reaches 1) and the lightness / 100 matched from the source quantiles
    onto the style's (``quantiles`` = (source, style) knots, float32 increasing; None: not matched)."""
    lin, od, to_xyz, _ = _tables()
    src, tgt = quantiles if quantiles is not None else (np.zeros(0, np.float32), np.zeros(0, np.float32))
    r = np.array([ramp[0], 1.0 / (ramp[1] - ramp[0])], np.float32)
    out = np.empty((x.shape[0], 5, x.shape[2]), np.float32)
    run_items(_lab_items, x, items_of(x.shape[0], x.shape[2]), (lin, od, to_xyz, r, src, tgt), out)
    return out


def to_rgb(lab: np.ndarray, ab: np.ndarray, table: np.ndarray | None, scale: float) -> np.ndarray:
    """(B, 3, P) uint8: the chroma ``ab`` (B, 2, P) x ``scale``, clamped to the gamut ``table`` (chroma limit per
    5 lightness units; None: not clamped), blended by the tissue weight with ``lab``'s (from
    :func:`lab_and_light`) at its lightness, in sRGB."""
    _, _, _, from_xyz = _tables()
    t = np.zeros(0, np.float32) if table is None else np.ascontiguousarray(table, np.float32)
    out = np.empty((lab.shape[0], 3, lab.shape[2]), np.uint8)
    items = items_of(lab.shape[0], lab.shape[2])
    run_items(_rgb_items, lab, items, (ab, from_xyz, t, np.array([scale], np.float32)), out)
    return out
