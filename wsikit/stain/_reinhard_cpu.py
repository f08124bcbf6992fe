"""Reinhard's per-pixel kernels on the CPU, compiled by numba into vectorized loops.

The torch formulation (:func:`wsikit.stain.reinhard.reinhard_kernel` on other devices) runs about 45 passes of
eager elementwise ops over every pixel, two of them float powers; here each pixel is converted, mapped and
written in one loop that LLVM vectorizes (AVX2 / AVX-512). The two powers are replaced by exact-to-float
identities: the cube root by a bit-level first guess and two Halley steps (relative error under 3e-7), and
sRGB's ``x ** (1 / 2.4)`` by ``sqrt(sqrt(cbrt(x))) ** 5`` (under 2e-4 of a grey level). Per-pixel table
look-ups (linear intensity, optical density) run in a short scalar loop into L1-sized buffers first, because
a gather inside the arithmetic loop stops it from being vectorized.

Work items and threads: :mod:`wsikit.stain._cpu`; the statistics are summed per item in float64 and merged
in item order, so results do not depend on the number of threads.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from wsikit._numba import jit
from wsikit.stain._cpu import ITEM_PIXELS, as_float, as_int, blend_into, items_of, run_items

__all__ = ["lab_moments", "apply_maps"]


_F = np.float32
_EPS = _F(216 / 24389)  # XYZ / white below which f is linear
_KAPPA = _F(24389 / 27 / 116)  # slope of that linear part
_INV_KAPPA = _F(27 * 116 / 24389)
_DELTA = _F(6 / 29)  # f at _EPS
_KNEE = _F(0.0031308)  # linear intensity where sRGB's curve turns linear
_ZERO, _ONE, _HALF, _THIRD = _F(0.0), _F(1.0), _F(0.5), _F(1 / 3)


@jit(inline=True)
def _cbrt(x: Any) -> Any:
    """Cube root of a positive float32: exponent / 3 on the bits (within 4%), two Halley steps."""
    y = as_float(np.int32(_F(as_int(x)) * _THIRD) + np.int32(709921077))
    y3 = y * y * y
    y = y * (y3 + x + x) / (y3 + y3 + x)
    y3 = y * y * y
    return y * (y3 + x + x) / (y3 + y3 + x)


@jit(inline=True)
def _f(t: Any) -> Any:
    """CIE's f: cube root above _EPS, its tangent below (one expression, no branch)."""
    return _cbrt(max(t, _EPS)) + min(t - _EPS, _ZERO) * _KAPPA


@jit(inline=True)
def _f_inverse(f: Any) -> Any:
    c = max(f, _DELTA)
    return c * c * c + min(f - _DELTA, _ZERO) * _INV_KAPPA


@jit(inline=True)
def _srgb(lin: Any) -> Any:
    """sRGB 0..255 (float, clamped) of a linear intensity: ``x ** (5 / 12)`` as ``sqrt(sqrt(cbrt(x))) ** 5``."""
    lin = max(lin, _ZERO)
    q = math.sqrt(math.sqrt(_cbrt(max(lin, _KNEE))))
    v = (
        q * q * q * q * q * _F(1.055 * 255.0)
        - _F(0.055 * 255.0)
        + min(lin - _KNEE, _ZERO) * _F(12.92 * 255.0)
    )
    return min(max(v, _ZERO), _F(255.0))


@jit()
def _look_up(x: Any, i: int, p0: int, p1: int, lin: Any, log_t: Any, buf: Any) -> None:
    """Linear intensities and the summed log transmittance of pixels p0..p1 of image i into ``buf``."""
    for p in range(p0, p1):
        r, g, b = x[i, 0, p], x[i, 1, p], x[i, 2, p]
        k = p - p0
        buf[0, k] = lin[r]
        buf[1, k] = lin[g]
        buf[2, k] = lin[b]
        buf[3, k] = log_t[r] + log_t[g] + log_t[b]


@jit()
def _moments_items(x: Any, items: Any, lin: Any, log_t: Any, to_xyz: Any, ramp: Any, out: Any) -> None:
    """Per item: tissue pixel count, sums and sums of squares of L, a, b (float64) into ``out`` rows."""
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = to_xyz.ravel()
    lo, inv_range = ramp[0], ramp[1]
    buf = np.empty((4, ITEM_PIXELS), dtype=np.float32)
    for row in range(items.shape[0]):
        i, p0, p1 = items[row, 0], items[row, 1], items[row, 2]
        _look_up(x, i, p0, p1, lin, log_t, buf)
        n = s0 = s1 = s2 = q0 = q1 = q2 = 0.0  # float64 sums of float32 terms
        b0, b1, b2, b3 = buf[0], buf[1], buf[2], buf[3]
        for k in range(p1 - p0):
            lr, lg, lb = b0[k], b1[k], b2[k]
            weight = (-b3[k] * _THIRD - lo) * inv_range
            keep: Any = _ONE if weight >= _HALF else _ZERO
            fx = _f(m00 * lr + m01 * lg + m02 * lb)
            fy = _f(m10 * lr + m11 * lg + m12 * lb)
            fz = _f(m20 * lr + m21 * lg + m22 * lb)
            big_l = (_F(116.0) * fy - _F(16.0)) * keep
            a = _F(500.0) * (fx - fy) * keep
            b = _F(200.0) * (fy - fz) * keep
            n += keep
            s0 += big_l
            s1 += a
            s2 += b
            q0 += big_l * big_l
            q1 += a * a
            q2 += b * b
        out[row, 0], out[row, 1], out[row, 2], out[row, 3] = n, s0, s1, s2
        out[row, 4], out[row, 5], out[row, 6] = q0, q1, q2


@jit()
def _apply_items(
    x: Any, items: Any, lin: Any, log_t: Any, to_xyz: Any, from_xyz: Any, maps: Any, ramp: Any, out: Any
) -> None:
    """Map f of every pixel of the items by its image's ``A f + c`` (``maps`` (B, 3, 4)) back to sRGB, blend
    with the input by the tissue weight, round half up into ``out``."""
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = to_xyz.ravel()
    n00, n01, n02, n10, n11, n12, n20, n21, n22 = from_xyz.ravel()
    lo, inv_range = ramp[0], ramp[1]
    buf = np.empty((4, ITEM_PIXELS), dtype=np.float32)
    for row in range(items.shape[0]):
        i, p0, p1 = items[row, 0], items[row, 1], items[row, 2]
        _look_up(x, i, p0, p1, lin, log_t, buf)
        # scalars, not array loads: the stores below could alias them, which would stop vectorization
        a00, a01, a02, c0 = maps[i, 0, 0], maps[i, 0, 1], maps[i, 0, 2], maps[i, 0, 3]
        a10, a11, a12, c1 = maps[i, 1, 0], maps[i, 1, 1], maps[i, 1, 2], maps[i, 1, 3]
        a20, a21, a22, c2 = maps[i, 2, 0], maps[i, 2, 1], maps[i, 2, 2], maps[i, 2, 3]
        b0, b1, b2, b3 = buf[0], buf[1], buf[2], buf[3]
        for k in range(p1 - p0):  # in place: sRGB (float) into b0..b2, the tissue weight into b3
            lr, lg, lb = b0[k], b1[k], b2[k]
            b3[k] = min(max((-b3[k] * _THIRD - lo) * inv_range, _ZERO), _ONE)
            fx = _f(m00 * lr + m01 * lg + m02 * lb)
            fy = _f(m10 * lr + m11 * lg + m12 * lb)
            fz = _f(m20 * lr + m21 * lg + m22 * lb)
            tx = _f_inverse(a00 * fx + a01 * fy + a02 * fz + c0)
            ty = _f_inverse(a10 * fx + a11 * fy + a12 * fz + c1)
            tz = _f_inverse(a20 * fx + a21 * fy + a22 * fz + c2)
            b0[k] = _srgb(n00 * tx + n01 * ty + n02 * tz)
            b1[k] = _srgb(n10 * tx + n11 * ty + n12 * tz)
            b2[k] = _srgb(n20 * tx + n21 * ty + n22 * tz)
        blend_into(x, out, i, p0, p1, buf)


def _constants() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from wsikit.stain.reinhard import _TISSUE_HIGH, _TISSUE_LOW, _tables

    lin, log_t, to_xyz, from_xyz = (t.numpy() for t in _tables(torch.device("cpu")))
    ramp = np.array([_TISSUE_LOW, 1.0 / (_TISSUE_HIGH - _TISSUE_LOW)], dtype=np.float32)
    return lin, log_t, to_xyz, from_xyz, ramp


def lab_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count, mean and sum of squared deviations of L, a, b over each image's tissue pixels (tissue weight
    >= 0.5) of a (B, 3, P) uint8 C-contiguous array: (B,), (B, 3), (B, 3) float64."""
    lin, log_t, to_xyz, _, ramp = _constants()
    items = items_of(x.shape[0], x.shape[2])
    sums = np.zeros((len(items), 7))
    run_items(_moments_items, x, items, (lin, log_t, to_xyz, ramp), sums)
    per_image = np.zeros((x.shape[0], 7))
    np.add.at(per_image, items[:, 0], sums)  # item order: the same sums for any number of threads
    n = per_image[:, 0]
    mean = per_image[:, 1:4] / np.maximum(n, 1.0)[:, None]
    m2 = np.maximum(per_image[:, 4:7] - per_image[:, 1:4] * mean, 0.0)
    return n, mean, m2


def apply_maps(x: np.ndarray, a: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Each image of a (B, 3, P) uint8 C-contiguous array mapped by ``A f + c`` (``a`` (B, 3, 3), ``c``
    (B, 3)), back to sRGB, blended with the input by the tissue weight: (B, 3, P) uint8."""
    lin, log_t, to_xyz, from_xyz, ramp = _constants()
    maps = np.ascontiguousarray(np.concatenate([a, c[:, :, None]], axis=2), dtype=np.float32)
    out = np.empty_like(x)
    run_items(
        _apply_items, x, items_of(x.shape[0], x.shape[2]), (lin, log_t, to_xyz, from_xyz, maps, ramp), out
    )
    return out
