"""Macenko stain normalization (SVD of optical density, angle percentiles), batched in torch.

Macenko M. et al., "A method for normalizing histology slides for quantitative analysis", ISBI 2009.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from wsikit.stain._batch import from_batch, pixel_blocks, to_batch
from wsikit.stain.base import MIN_TISSUE_PIXELS, StainNormalizer
from wsikit.stain.color import od_to_rgb, rgb_to_od

__all__ = ["MacenkoNormalizer", "StainStats", "macenko_stain_matrix"]

_MAX_SAMPLES = 500_000


@dataclass(frozen=True)
class StainStats:
    """Fitted Macenko statistics.

    Attributes
    ----------
    stain_matrix : torch.Tensor
        (2, 3): unit optical-density vectors of hematoxylin (row 0) and eosin (row 1).
    max_concentrations : torch.Tensor
        (2,): 99th percentile of each stain's concentration over tissue pixels.
    """

    stain_matrix: torch.Tensor
    max_concentrations: torch.Tensor

    def to(self, device: torch.device) -> StainStats:
        return StainStats(self.stain_matrix.to(device), self.max_concentrations.to(device))


def _tissue_od(rgb: torch.Tensor, beta: float) -> torch.Tensor:
    od = rgb_to_od(rgb).permute(0, 2, 3, 1).reshape(-1, 3)
    keep = (od > beta).all(dim=1)
    od = od[keep]
    if od.shape[0] > _MAX_SAMPLES:  # deterministic subsample: percentiles need no more
        gen = torch.Generator(device="cpu").manual_seed(0)
        idx = torch.randperm(od.shape[0], generator=gen)[:_MAX_SAMPLES].to(od.device)
        od = od[idx]
    return od


def quantile(x: torch.Tensor, q: torch.Tensor | float, dim: int = -1) -> torch.Tensor:
    """:func:`torch.quantile` (linear interpolation) of finite values along ``dim``, by selection
    (:func:`torch.kthvalue`, linear time) instead of a full sort: the same order statistics and the same
    interpolation, so the same numbers, 3-10x faster on a tile's pixels.

    Examples
    --------
    >>> x = torch.tensor([3.0, 1.0, 4.0, 1.0, 5.0])
    >>> bool(torch.equal(quantile(x, 0.3), torch.quantile(x, 0.3)))
    True
    """
    qs = torch.as_tensor(q, dtype=x.dtype, device=x.device)
    n = x.shape[dim]
    rank = qs.reshape(-1) * (n - 1)
    below = rank.floor()
    out = []
    for r, b in zip(rank.tolist(), below.tolist(), strict=True):
        lo = torch.kthvalue(x, int(b) + 1, dim=dim).values
        hi = torch.kthvalue(x, min(int(b) + 2, n), dim=dim).values if r > b else lo
        out.append(torch.lerp(lo, hi, torch.tensor(r - b, dtype=x.dtype, device=x.device)))
    stacked = torch.stack(out)
    return stacked.reshape(tuple(qs.shape) + tuple(stacked.shape[1:]))


def macenko_stain_matrix(od: torch.Tensor, *, alpha: float = 1.0) -> torch.Tensor:
    """Hematoxylin and eosin OD vectors from tissue optical densities.

    Parameters
    ----------
    od : torch.Tensor
        (N, 3) optical densities of tissue pixels.
    alpha : float
        Percentile (and 100 - alpha) of the angle distribution taken as the extreme stains.

    Returns
    -------
    torch.Tensor
        (2, 3) unit vectors, hematoxylin first (the one absorbing more red).
    """
    od64 = od.double()
    cov = torch.cov(od64.T)
    _, vecs = torch.linalg.eigh(cov)
    plane = vecs[:, 1:3]  # the two largest eigenvectors span the stain plane
    plane = plane * torch.where(plane.sum(dim=0) < 0, -1.0, 1.0)
    proj = od64 @ plane
    phi = torch.atan2(proj[:, 1], proj[:, 0])
    lo, hi = quantile(phi, torch.tensor([alpha / 100, 1 - alpha / 100], dtype=phi.dtype, device=phi.device))
    v1 = plane @ torch.stack([torch.cos(lo), torch.sin(lo)])
    v2 = plane @ torch.stack([torch.cos(hi), torch.sin(hi)])
    he = torch.stack([v1, v2]) if v1[0] > v2[0] else torch.stack([v2, v1])
    he = he * torch.where(he.sum(dim=1, keepdim=True) < 0, -1.0, 1.0)
    out: torch.Tensor = (he / he.norm(dim=1, keepdim=True)).to(od.dtype)
    return out


CHUNK_PIXELS = 1 << 18
"""Pixels per pass of the fused kernel (see :func:`wsikit.stain._batch.pixel_blocks`)."""


def _apply_od_map(x: torch.Tensor, od_map: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Fused Macenko apply on uint8 (B, 3, P): OD_out = M OD (M (3, 3), or (B, 3, 3) one per image), back to
    RGB, blended by tissue weight."""
    f = x.float()
    neg_od = (f + 1.0).div_(256.0).log_()  # -OD
    b = x.shape[0]
    out = torch.matmul(od_map, neg_od.reshape(b, 3, -1)).reshape(neg_od.shape)
    weight = neg_od.mean(dim=1, keepdim=True).neg_().sub_(low).div_(high - low).clamp_(0.0, 1.0)
    out = out.exp_().mul_(256.0).sub_(1.0).clamp_(0.0, 255.0)
    out = out.sub_(f).mul_(weight).add_(f)
    return out.add_(0.5).clamp_(0.0, 255.0).to(torch.uint8)


class MacenkoNormalizer(StainNormalizer[StainStats]):
    """Macenko normalization on (B, 3, H, W) batches.

    Parameters
    ----------
    alpha : float
        Angle percentile for the extreme stain vectors (1 in the paper).
    beta : float
        Optical-density threshold: pixels below it in any channel are glass and ignored for fitting.
    device : torch device
        Where fitting and transforms run. On the CPU the per-pixel apply is a compiled loop (numba), elsewhere
        fused torch ops.
    compile : bool
        Apply through torch.compile's fusion of the torch ops instead (for GPUs; on the CPU the default loop
        is about twice as fast, and the first call costs 5-20 s).

    Examples
    --------
    >>> import numpy as np
    >>> from wsikit.io import open_slide
    >>> from wsikit.sample import sample_slide_path
    >>> with open_slide(sample_slide_path()) as s:
    ...     target = s.read_region((900, 1000), 0, (256, 256))
    ...     tile = s.read_region((1000, 2000), 0, (256, 256))
    >>> norm = MacenkoNormalizer().fit(target)
    >>> out = norm.transform(tile)
    >>> out.shape, out.dtype
    ((256, 256, 3), dtype('uint8'))
    """

    name = "macenko"

    def __init__(
        self,
        *,
        alpha: float = 1.0,
        beta: float = 0.15,
        device: torch.device | str = "cpu",
        compile: bool = False,
    ) -> None:
        super().__init__(device=device)
        self.alpha = alpha
        self.beta = beta
        # On the CPU the apply is a compiled loop (wsikit.stain._macenko_cpu); elsewhere torch ops, or with
        # compile=True torch.compile's fusion of them (for GPUs: on the CPU it is half the compiled loop's
        # speed, and its first call costs 5-20 s).
        self._compiled = compile
        self._kernel = torch.compile(_apply_od_map, dynamic=True) if compile else _apply_od_map

    def od_map(self, source: StainStats) -> torch.Tensor:
        """The (3, 3) matrix M with OD_target = M OD_source for this source (all of Macenko, per slide)."""
        target = self.target
        assert target is not None
        pinv = torch.linalg.pinv(source.stain_matrix.T.double())  # (2, 3)
        scale = (target.max_concentrations / source.max_concentrations).double()
        od_map: torch.Tensor = (target.stain_matrix.T.double() @ torch.diag(scale) @ pinv).float()
        return od_map

    def transform(self, images: Any, *, source: StainStats | None = None) -> Any:
        """See :meth:`StainNormalizer.transform`; the batch goes through the fused kernel in cache-sized blocks,
        with one OD map for the batch (``source``) or one per image fitted on its own."""
        if self.target is None:
            return super().transform(images, source=source)  # raises: not fitted
        batch = to_batch(images, device=self.device)
        b = batch.shape[0]
        if source is not None:
            maps = self.od_map(source).to(self.device).expand(b, 3, 3)
            fitted = [True] * b
        else:
            stats = [self._fit_stats(batch[i : i + 1].float()) for i in range(b)]
            fitted = [s is not None for s in stats]
            eye = torch.eye(3, device=self.device)
            maps = torch.stack([eye if s is None else self.od_map(s).to(self.device) for s in stats])
        flat = batch.reshape(b, 3, -1)
        if batch.device.type == "cpu" and not self._compiled:
            from wsikit.stain._macenko_cpu import apply_od_maps  # numba, imported on first use

            out = torch.from_numpy(
                apply_od_maps(np.ascontiguousarray(flat.numpy()), maps.numpy(), 0.15, 0.30)
            )
        else:
            out = torch.empty_like(flat)
            for i0, i1, p0, p1 in pixel_blocks(b, flat.shape[2], CHUNK_PIXELS):
                out[i0:i1, :, p0:p1] = self._kernel(flat[i0:i1, :, p0:p1], maps[i0:i1], 0.15, 0.30)
        for i, ok in enumerate(fitted):
            if not ok:  # too little tissue to fit: returned unchanged
                out[i] = flat[i]
        return from_batch(out.reshape(batch.shape), images)

    def _fit_stats(self, rgb: torch.Tensor) -> StainStats | None:
        od = _tissue_od(rgb, self.beta)
        if od.shape[0] < MIN_TISSUE_PIXELS:
            return None
        he = macenko_stain_matrix(od, alpha=self.alpha)
        conc = torch.linalg.lstsq(he.T.double(), od.T.double()).solution.float()  # (2, N)
        max_c = quantile(conc, 0.99, dim=1)
        if not torch.isfinite(max_c).all() or (max_c <= 1e-6).any():
            return None
        return StainStats(he, max_c)

    def _apply(self, rgb: torch.Tensor, source: StainStats) -> torch.Tensor:
        target = self.target
        assert target is not None
        b, _, h, w = rgb.shape
        od = rgb_to_od(rgb).reshape(b, 3, -1)  # (B, 3, P)
        pinv = torch.linalg.pinv(source.stain_matrix.T.double()).float()  # (2, 3)
        conc = torch.einsum("sc,bcp->bsp", pinv, od)
        conc = conc * (target.max_concentrations / source.max_concentrations).view(1, 2, 1)
        od_out = torch.einsum("sc,bsp->bcp", target.stain_matrix, conc)
        return od_to_rgb(od_out).reshape(b, 3, h, w)

    def _stats_to(self, stats: StainStats, device: torch.device) -> StainStats:
        return stats.to(device)
