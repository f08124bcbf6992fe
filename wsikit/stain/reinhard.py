"""Reinhard color transfer (mean and standard deviation per Lab channel), batched in torch.

Reinhard E. et al., "Color transfer between images", IEEE CG&A 2001.

The transform is fused (:func:`reinhard_kernel`): uint8 sRGB is linearized by a 256-entry table, and since
CIE Lab is an affine function of ``f = cbrt(XYZ / white)``, Reinhard's affine map of Lab is a 3 x 3 matrix
and a bias on ``f``, so Lab itself is never formed. On the CPU each pixel goes through one compiled,
vectorized loop (:mod:`wsikit.stain._reinhard_cpu`, numba: 3-4x the torch ops below); on other devices
through eager torch ops over cache-sized blocks, where each image's statistics come from the same ``f``.
Both equal the unfused formula (:func:`wsikit.stain.color.rgb_to_lab` /
:func:`~wsikit.stain.color.lab_to_rgb`) to within one grey level.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from wsikit.stain._batch import from_batch, pixel_blocks, to_batch
from wsikit.stain.base import MIN_TISSUE_PIXELS, StainNormalizer
from wsikit.stain.color import _RGB_TO_XYZ, _WHITE, _srgb_to_linear, lab_to_rgb, rgb_to_lab

__all__ = ["ReinhardNormalizer", "LabStats", "reinhard_kernel"]

# Lab = _LAB_FROM_F @ f + _LAB_OFFSET, with f = (fx, fy, fz)
_LAB_FROM_F = torch.tensor(
    [[0.0, 116.0, 0.0], [500.0, -500.0, 0.0], [0.0, 200.0, -200.0]], dtype=torch.float64
)
_LAB_OFFSET = torch.tensor([-16.0, 0.0, 0.0], dtype=torch.float64)
_LAB_FROM_F_INV = torch.linalg.inv(_LAB_FROM_F)
_EPS = 216 / 24389  # XYZ / white below which f is linear
_KAPPA = 24389 / 27 / 116  # slope of that linear part
_DELTA = 6 / 29  # f at _EPS
_SRGB_KNEE = 0.0031308  # linear intensity where sRGB's curve turns linear
_TISSUE_LOW, _TISSUE_HIGH = 0.15, 0.30  # base.tissue_weight's ramp (mean optical density)
CHUNK_PIXELS = 1 << 17
"""Pixels per fused pass (about 3 MB per float temporary): large enough to amortize torch's per-call cost,
small enough that the temporaries are reused from the allocator's cache instead of fresh pages."""
FIT_PIXELS = 1 << 18
"""Images up to this size are fitted on all their pixels; larger ones on a regular grid of this many."""


@dataclass(frozen=True)
class LabStats:
    """Mean and standard deviation of L, a, b over tissue pixels, each (3,)."""

    mean: torch.Tensor
    std: torch.Tensor

    def to(self, device: torch.device) -> LabStats:
        return LabStats(self.mean.to(device), self.std.to(device))


@functools.lru_cache(maxsize=8)
def _tables(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per grey level: linear intensity and log transmittance; XYZ / white from linear RGB and back."""
    levels = torch.arange(256, dtype=torch.float64)
    linear = _srgb_to_linear(levels / 255.0).float().to(device)
    log_t = torch.log((levels + 1.0) / 256.0).float().to(device)  # -optical density
    to_xyz = _RGB_TO_XYZ.double() / _WHITE.double()[:, None]
    from_xyz = torch.linalg.inv(to_xyz)
    return linear, log_t, to_xyz.float().to(device), from_xyz.float().to(device)


def _f_and_weight(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``f`` (B, 3, P) and the tissue weight (B, 1, P) of a (B, 3, P) uint8 batch."""
    linear, log_t, to_xyz, _ = _tables(x.device)
    b = x.shape[0]
    idx = x.reshape(-1).int()
    rgb_lin = linear.index_select(0, idx).reshape(b, 3, -1)
    xyz = torch.matmul(to_xyz, rgb_lin)
    # f = cbrt(t) above _EPS, its tangent at _EPS below: one expression, no branch
    f = xyz.clamp(min=_EPS).pow_(1 / 3).add_(xyz.sub_(_EPS).clamp_(max=0.0).mul_(_KAPPA))
    weight = log_t.index_select(0, idx).reshape(b, 3, -1).mean(dim=1, keepdim=True)
    weight = weight.neg_().sub_(_TISSUE_LOW).div_(_TISSUE_HIGH - _TISSUE_LOW).clamp_(0.0, 1.0)
    return f, weight


def _f_maps(mean: torch.Tensor, std: torch.Tensor, target: LabStats) -> tuple[torch.Tensor, torch.Tensor]:
    """Reinhard's Lab map ``(lab - m_s) * s_t / s_s + m_t`` of each source (rows of ``mean``, ``std``: (B, 3))
    written on f: ``A f + c``, A (B, 3, 3) and c (B, 3), float64 on the CPU."""
    t, t0 = _LAB_FROM_F, _LAB_OFFSET
    t_inv = _LAB_FROM_F_INV
    scale = target.std.double().cpu()[None] / std.double().cpu()  # (B, 3)
    a = t_inv[None] @ (scale[:, :, None] * t[None])
    shift = scale * (t0[None] - mean.double().cpu()) + target.mean.double().cpu()[None] - t0[None]
    return a, shift @ t_inv.T


def _rgb_from_f(f: torch.Tensor) -> torch.Tensor:
    """sRGB 0..255 float (B, 3, P) from f (B, 3, P) (f is overwritten)."""
    _, _, _, from_xyz = _tables(f.device)
    # the inverse of f (cube above _DELTA, its tangent below) and sRGB's curve (power above 0.0031308,
    # linear below; the two meet there), each as one expression
    cube = f.clamp(min=_DELTA)
    xyz = (cube * cube).mul_(cube).add_(f.sub_(_DELTA).clamp_(max=0.0).div_(_KAPPA))
    lin = torch.matmul(from_xyz, xyz).clamp_(min=0.0)
    low = lin.sub(_SRGB_KNEE).clamp_(max=0.0).mul_(12.92 * 255.0)
    srgb = lin.clamp_(min=_SRGB_KNEE).pow_(1 / 2.4).mul_(1.055 * 255.0).sub_(0.055 * 255.0).add_(low)
    return srgb.clamp_(0.0, 255.0)


def _moments(f: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Count, mean and sum of squared deviations of L, a, b over each image's tissue pixels (weight >= 0.5)
    of a block, each (B,) / (B, 3) float64 (deviations from the block's own mean: no cancellation)."""
    t = _LAB_FROM_F.to(f.device, f.dtype)
    lab = torch.matmul(t, f).add_(_LAB_OFFSET.to(f.device, f.dtype)[:, None])
    keep = (weight >= 0.5).to(f.dtype)
    n = keep.sum(dim=(1, 2))
    mean = (lab * keep).sum(dim=2) / n.clamp(min=1.0)[:, None]
    dev = lab.sub_(mean[:, :, None]).mul_(keep)
    m2 = (dev * dev).sum(dim=2)
    return n.double().cpu(), mean.double().cpu(), m2.double().cpu()


def _merge(
    a: tuple[torch.Tensor, torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Moments of two pixel sets together (Chan et al.'s parallel variance)."""
    n = a[0] + b[0]
    share = (b[0] / n.clamp(min=1.0))[:, None]
    delta = b[1] - a[1]
    return n, a[1] + delta * share, a[2] + b[2] + delta * delta * (a[0][:, None] * share)


def _stats_from_moments(
    n: torch.Tensor, mean: torch.Tensor, m2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image: whether it can be fitted (enough tissue, no flat channel), Lab mean and std (unbiased)."""
    std = torch.sqrt(m2 / (n - 1).clamp(min=1.0)[:, None])
    ok = (n >= MIN_TISSUE_PIXELS) & (std >= 1e-3).all(dim=1)
    return ok, mean, torch.where(ok[:, None], std, torch.ones_like(std))


def _accumulate(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Moments (count, mean, squared deviations) of L, a, b over each image's tissue pixels, block by block."""
    b = flat.shape[0]
    acc = (
        torch.zeros(b, dtype=torch.float64),
        torch.zeros(b, 3, dtype=torch.float64),
        torch.zeros(b, 3, dtype=torch.float64),
    )
    for i0, i1, p0, p1 in pixel_blocks(b, flat.shape[2], CHUNK_PIXELS):
        m = _moments(*_f_and_weight(flat[i0:i1, :, p0:p1]))
        merged = _merge((acc[0][i0:i1], acc[1][i0:i1], acc[2][i0:i1]), m)
        for whole, part in zip(acc, merged, strict=True):
            whole[i0:i1] = part
    return acc


def _moments_of(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Moments of each image's tissue pixels of a (B, 3, P) uint8 batch: compiled on the CPU, torch elsewhere."""
    if flat.device.type != "cpu":
        return _accumulate(flat)
    from wsikit.stain import _reinhard_cpu  # numba: imported on first use (0.2 s)

    n, mean, m2 = _reinhard_cpu.lab_moments(np.ascontiguousarray(flat.numpy()))
    return torch.from_numpy(n), torch.from_numpy(mean), torch.from_numpy(m2)


def _lab_stats(flat: torch.Tensor) -> list[LabStats | None]:
    """Lab statistics of each image's tissue pixels (tissue weight >= 0.5) of a (B, 3, P) uint8 batch."""
    ok, mean, std = _stats_from_moments(*_moments_of(flat))
    return [
        LabStats(mean[i].float().to(flat.device), std[i].float().to(flat.device)) if ok[i] else None
        for i in range(flat.shape[0])
    ]


def _sample_grid(x: torch.Tensor) -> torch.Tensor:
    """The pixels of (B, 3, H, W) on a regular grid of at most :data:`FIT_PIXELS` per image, as (B, 3, P)."""
    step = max(1, math.ceil(math.sqrt(x.shape[2] * x.shape[3] / FIT_PIXELS)))
    return x[:, :, ::step, ::step].reshape(x.shape[0], 3, -1)


def reinhard_kernel(
    x: torch.Tensor, target: LabStats, source: LabStats | None = None
) -> tuple[torch.Tensor, list[bool]]:
    """Reinhard-normalize a (B, 3, H, W) uint8 batch in fused passes over cache-sized pixel blocks.

    Parameters
    ----------
    x : torch.Tensor
        (B, 3, H, W) uint8 sRGB.
    target : LabStats
        The target style.
    source : LabStats, optional
        Source statistics for the whole batch (one slide). Without it each image is fitted on its own
        tissue pixels: on all of them for images up to :data:`FIT_PIXELS` (in the same pass that transforms
        them up to :data:`CHUNK_PIXELS`), on a regular grid of at most :data:`FIT_PIXELS` pixels for larger
        images (a 1 MP field: every second pixel and row; its statistics differ from all pixels' in the
        third digit).

    Returns
    -------
    (torch.Tensor, list of bool)
        The (B, 3, H, W) uint8 result, blended with the input by the tissue weight, and per image whether
        it was normalized (False: too little tissue to fit; that image is returned unchanged).
    """
    if x.device.type != "cpu":
        return _torch_kernel(x, target, source)
    b = x.shape[0]
    flat = x.reshape(b, 3, -1)
    if source is not None:
        ok = torch.ones(b, dtype=torch.bool)
        mean, std = source.mean.double().cpu().expand(b, 3), source.std.double().cpu().expand(b, 3)
    else:
        ok, mean, std = _stats_from_moments(
            *_moments_of(flat if flat.shape[2] <= FIT_PIXELS else _sample_grid(x))
        )
    a, c = _f_maps(mean, std, target)
    a = torch.where(ok[:, None, None], a, torch.eye(3, dtype=torch.float64))  # unfittable: identity ...
    c = torch.where(ok[:, None], c, torch.zeros_like(c))
    from wsikit.stain import _reinhard_cpu

    pixels = np.ascontiguousarray(flat.numpy())
    out = _reinhard_cpu.apply_maps(pixels, a.numpy(), c.numpy())
    for i in torch.nonzero(~ok).flatten().tolist():
        out[i] = pixels[i]  # ... and restored exactly
    return torch.from_numpy(out).reshape(x.shape), ok.tolist()


def _torch_kernel(
    x: torch.Tensor, target: LabStats, source: LabStats | None = None
) -> tuple[torch.Tensor, list[bool]]:
    """:func:`reinhard_kernel` in eager torch ops (any device), in fused passes over cache-sized pixel blocks:
    images that fit in one block are fitted on the ``f`` that the pass computes anyway."""
    b = x.shape[0]
    flat = x.reshape(b, 3, -1)
    p = flat.shape[2]
    fitted: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # ok, mean, std per image
    if source is not None:
        fitted = (
            torch.ones(b, dtype=torch.bool),
            source.mean.double().cpu().expand(b, 3),
            source.std.double().cpu().expand(b, 3),
        )
    elif p > CHUNK_PIXELS:  # an image spans several blocks: fit it in a pass of its own
        grid = flat if p <= FIT_PIXELS else _sample_grid(x)
        acc = _accumulate(grid)
        fitted = _stats_from_moments(*acc)
    done = torch.zeros(b, dtype=torch.bool)
    out = torch.empty_like(flat)
    for i0, i1, p0, p1 in pixel_blocks(b, p, CHUNK_PIXELS):
        block = flat[i0:i1, :, p0:p1]
        f, weight = _f_and_weight(block)
        # whole images in this block: fit each on the f just computed
        ok, mean, std = (
            _stats_from_moments(*_moments(f, weight)) if fitted is None else (t[i0:i1] for t in fitted)
        )
        a, c = _f_maps(mean, std, target)
        eye = torch.eye(3, dtype=torch.float64)
        a = torch.where(ok[:, None, None], a, eye)  # unfittable images: identity (restored exactly below)
        c = torch.where(ok[:, None], c, torch.zeros_like(c))
        done[i0:i1] = ok
        a32, c32 = a.to(x.device, torch.float32), c.to(x.device, torch.float32)[:, :, None]
        rgb = _rgb_from_f(torch.baddbmm(c32, a32, f))
        # input and result both lie in 0..255, so the blend needs no clamp; + 0.5 and truncation round half up
        out[i0:i1, :, p0:p1] = torch.lerp(block.float(), rgb, weight).add_(0.5)
    for i in torch.nonzero(~done).flatten().tolist():
        out[i] = flat[i]
    return out.reshape(x.shape), done.tolist()


class ReinhardNormalizer(StainNormalizer[LabStats]):
    """Reinhard normalization on (B, 3, H, W) batches; statistics from tissue pixels only.

    With source statistics given (``transform(images, source=stats)``: one slide's) every image is mapped
    with them; without, each image is fitted on its own tissue pixels.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> target = rng.integers(60, 200, (64, 64, 3), dtype=np.uint8)
    >>> norm = ReinhardNormalizer().fit(target)
    >>> norm.transform(target[::-1].copy()).shape
    (64, 64, 3)
    """

    name = "reinhard"

    def _fit_stats(self, rgb: torch.Tensor) -> LabStats | None:
        x = rgb.round().clamp(0, 255).to(torch.uint8)
        return _lab_stats(x.permute(1, 0, 2, 3).reshape(1, 3, -1))[0]

    def transform(self, images: Any, *, source: LabStats | None = None) -> Any:
        """See :meth:`StainNormalizer.transform`; the whole batch goes through :func:`reinhard_kernel`."""
        if self.target is None:
            return super().transform(images, source=source)  # raises: not fitted
        out, _ = reinhard_kernel(to_batch(images, device=self.device), self.target, source)
        return from_batch(out, images)

    __call__ = transform

    def _apply(self, rgb: torch.Tensor, source: LabStats) -> torch.Tensor:
        """The unfused formula on a float batch (reference for the kernel; not used by :meth:`transform`)."""
        target = self.target
        assert target is not None
        lab = rgb_to_lab(rgb)
        scale = (target.std / source.std).view(1, 3, 1, 1)
        lab = (lab - source.mean.view(1, 3, 1, 1)) * scale + target.mean.view(1, 3, 1, 1)
        return lab_to_rgb(lab)

    def _stats_to(self, stats: LabStats, device: torch.device) -> LabStats:
        return stats.to(device)
