"""The CNN normalizer's per-pixel colour work on the CPU, compiled by numba (lightness mode ``keep``).

Around its small network (about a fifth of its time on 640 px tiles before this module) :class:`~wsikit.stain.CnnNormalizer` runs
some 60 eager torch passes over every pixel: sRGB to Lab, the tissue weight, the lightness matched to the
style's quantiles, then the chroma clamp, the blend with the input's chroma and Lab back to sRGB. Here they are
two loops per pixel, before and after the network:

- :func:`lab_and_light` then :func:`match_light`: Lab, tissue weight and the matched lightness the network
  reads;
- :func:`to_rgb`: the network's chroma clamped to the style's gamut, blended by the tissue weight with the
  input's, back to sRGB, rounded to uint8.

:func:`order_statistics` gives the per-tile lightness quantiles their 202 order statistics without a full sort.

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
from wsikit.stain._cpu import ITEM_PIXELS, items_of, run_items
from wsikit.stain._reinhard_cpu import _f, _f_inverse, _srgb

__all__ = ["lab_and_light", "match_light", "order_statistics", "to_rgb"]

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
def _lab_items(x: Any, items: Any, lin: Any, od: Any, to_xyz: Any, ramp: Any, out: Any) -> None:
    """Per pixel of the items: L, a, b, the tissue weight and L / 100 into ``out``'s five planes (B, 5, P).
    A scalar pass looks the grey levels up into float buffers, then a vectorized one does the arithmetic."""
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = to_xyz.ravel()
    lo, inv_range = ramp[0], ramp[1]
    buf = np.empty((4, ITEM_PIXELS), dtype=np.float32)
    for row in range(items.shape[0]):
        i, p0, p1 = items[row, 0], items[row, 1], items[row, 2]
        n = p1 - p0
        b0, b1, b2, b3 = buf[0], buf[1], buf[2], buf[3]
        for q in range(n):
            r, g, b = x[i, 0, p0 + q], x[i, 1, p0 + q], x[i, 2, p0 + q]
            b0[q] = lin[r]
            b1[q] = lin[g]
            b2[q] = lin[b]
            b3[q] = od[r] + od[g] + od[b]
        big_l, a_out, b_out = out[i, 0, p0:p1], out[i, 1, p0:p1], out[i, 2, p0:p1]
        w_out, m_out = out[i, 3, p0:p1], out[i, 4, p0:p1]
        for q in range(n):
            lr, lg, lb = b0[q], b1[q], b2[q]
            fx = _f(m00 * lr + m01 * lg + m02 * lb)
            fy = _f(m10 * lr + m11 * lg + m12 * lb)
            fz = _f(m20 * lr + m21 * lg + m22 * lb)
            light = _F(116.0) * fy - _F(16.0)
            big_l[q] = light
            a_out[q] = _F(500.0) * (fx - fy)
            b_out[q] = _F(200.0) * (fy - fz)
            w_out[q] = min(max((b3[q] / _F(3.0) - lo) * inv_range, _ZERO), _ONE)
            m_out[q] = light / _F(100.0)


@jit()
def _match_items(lab: Any, items: Any, src: Any, tgt: Any, out: Any) -> None:
    """Plane 4 of ``out`` (= ``lab``): each pixel's L matched through its image's knots ``src[i]`` onto ``tgt``,
    / 100."""
    for row in range(items.shape[0]):
        i, p0, p1 = items[row, 0], items[row, 1], items[row, 2]
        knots, big_l, m_out = src[i], lab[i, 0], out[i, 4]
        for p in range(p0, p1):
            m_out[p] = _match(big_l[p], knots, tgt) / _F(100.0)


@jit()
def _rgb_items(lab: Any, items: Any, ab: Any, from_xyz: Any, table: Any, scale: Any, out: Any) -> None:
    """Per pixel: the network's chroma (``ab`` (B, 2, P) x ``scale``) clamped to ``table``'s gamut at the pixel's
    lightness (empty table: not clamped), blended with the input's by the tissue weight, Lab -> sRGB, rounded
    half to even into ``out`` (B, 3, P) uint8. Three passes per item: the gamut look-up (scalar), the colour
    arithmetic into float buffers (vectorized), one store loop per plane."""
    n00, n01, n02, n10, n11, n12, n20, n21, n22 = from_xyz.ravel()
    bins = table.shape[0]
    k = scale[0]
    buf = np.empty((4, ITEM_PIXELS), dtype=np.float32)
    for row in range(items.shape[0]):
        i, p0, p1 = items[row, 0], items[row, 1], items[row, 2]
        n = p1 - p0
        big_l, a_in, b_in, weight = lab[i, 0, p0:p1], lab[i, 1, p0:p1], lab[i, 2, p0:p1], lab[i, 3, p0:p1]
        a_net, b_net = ab[i, 0, p0:p1], ab[i, 1, p0:p1]
        limit = buf[3]
        if bins > 0:
            for q in range(n):
                pos = min(max(big_l[q] / _F(5.0), _ZERO), _F(bins - 1))
                j = int(pos)
                j1 = min(j + 1, bins - 1)
                limit[q] = table[j] + (pos - _F(j)) * (table[j1] - table[j])
        else:
            limit[:n] = _F(1e30)  # no clamp (fastmath: no infinities)
        r_out, g_out, b_out = buf[0], buf[1], buf[2]
        for q in range(n):
            light = big_l[q]
            a, b = a_net[q] * k, b_net[q] * k
            chroma = math.sqrt(a * a + b * b)
            s = min(limit[q] / max(chroma, _F(1e-6)), _ONE)
            w = weight[q]
            a = w * (a * s) + (_ONE - w) * a_in[q]
            b = w * (b * s) + (_ONE - w) * b_in[q]
            fy = (light + _F(16.0)) / _F(116.0)
            tx = _f_inverse(fy + a / _F(500.0))
            ty = _f_inverse(fy)
            tz = _f_inverse(fy - b / _F(200.0))
            r_out[q] = _srgb(n00 * tx + n01 * ty + n02 * tz)
            g_out[q] = _srgb(n10 * tx + n11 * ty + n12 * tz)
            b_out[q] = _srgb(n20 * tx + n21 * ty + n22 * tz)
        for c in range(3):
            dst, src = out[i, c, p0:p1], buf[c]
            for q in range(n):
                dst[q] = np.uint8(np.rint(src[q]))


@jit(fastmath=False)
def _order_statistics(values: Any, ks: Any, out: Any) -> None:
    """``out[j]`` = the ``ks[j]``-th smallest of ``values`` (``ks`` increasing): a 65,536-bin histogram finds each
    rank's bin (the bin index is monotone in the value), then only the values of those bins are sorted."""
    lo, hi = values[0], values[0]
    for v in values:
        lo = min(lo, v)
        hi = max(hi, v)
    bins = 65536
    scale = (bins - 1) / (np.float64(hi) - np.float64(lo)) if hi > lo else 0.0
    counts = np.zeros(bins + 1, np.int64)
    for v in values:
        counts[int((np.float64(v) - lo) * scale) + 1] += 1
    for b in range(1, bins + 1):
        counts[b] += counts[b - 1]  # counts[b] = values in bins < b
    # the bins holding the ranks: their values gathered in one pass (bucket by bucket, in bin order), sorted
    start = np.full(bins, -1, np.int64)  # a needed bin's first slot in ``gathered``
    total = 0
    for k in ks:
        b = np.searchsorted(counts, k, side="right") - 1
        if start[b] < 0:
            start[b] = total
            total += counts[b + 1] - counts[b]
    gathered = np.empty(total, values.dtype)
    fill = start.copy()
    for v in values:
        b = int((np.float64(v) - lo) * scale)
        if fill[b] >= 0:
            gathered[fill[b]] = v
            fill[b] += 1
    for b in range(bins):
        if start[b] >= 0:
            bucket = gathered[start[b] : fill[b]]
            if bucket.min() < bucket.max():  # a bucket of one value (glass) needs no sort
                bucket.sort()
    for j in range(ks.shape[0]):
        b = np.searchsorted(counts, ks[j], side="right") - 1
        out[j] = gathered[start[b] + ks[j] - counts[b]]


def order_statistics(values: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """The ``ks``-th smallest values (0-based, increasing int64) of a 1-D float32 array, as ``np.sort(values)[ks]``
    without sorting all of it."""
    if values.size == 0:
        raise ValueError("no values")
    out = np.empty(len(ks), values.dtype)
    _order_statistics(np.ascontiguousarray(values), np.ascontiguousarray(ks, np.int64), out)
    return out


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per grey level: linear intensity and optical density; XYZ / white from linear RGB and back (the compiled
    Reinhard kernel's tables)."""
    from wsikit.stain.reinhard import _tables as reinhard_tables

    linear, log_t, to_xyz, from_xyz = (t.numpy() for t in reinhard_tables(torch.device("cpu")))
    return linear, -log_t, to_xyz, from_xyz


def lab_and_light(x: np.ndarray, ramp: tuple[float, float]) -> np.ndarray:
    """(B, 5, P) float32 of a (B, 3, P) uint8 C-contiguous batch: L, a, b, the tissue weight (``ramp`` = the
    optical densities where it starts and reaches 1) and L / 100 (the network's input, until
    :func:`match_light` replaces it)."""
    lin, od, to_xyz, _ = _tables()
    r = np.array([ramp[0], 1.0 / (ramp[1] - ramp[0])], np.float32)
    out = np.empty((x.shape[0], 5, x.shape[2]), np.float32)
    run_items(_lab_items, x, items_of(x.shape[0], x.shape[2]), (lin, od, to_xyz, r), out)
    return out


def match_light(lab: np.ndarray, src: np.ndarray, tgt: np.ndarray) -> None:
    """In place: ``lab``'s plane 4 = its L mapped piecewise-linearly through each image's increasing knots
    ``src`` (B, K) onto ``tgt`` (K,), / 100."""
    src = np.ascontiguousarray(src, np.float32)
    tgt = np.ascontiguousarray(tgt, np.float32)
    run_items(_match_items, lab, items_of(lab.shape[0], lab.shape[2]), (src, tgt), lab)


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
