"""The stain-normalizer interface shared by Macenko, Reinhard and the CNN.

Every normalizer works on batches on any torch device::

    norm = MacenkoNormalizer().fit(target_images)        # the target style, once
    stats = norm.fit_source(slide_tiles_or_overview)     # the source slide, once
    out = norm.transform(batch, source=stats)            # every tile, consistent

``transform`` without ``source`` fits each image on its own. Background is
protected: each output pixel is blended with the input by a tissue weight
(0 on glass, 1 on stained tissue), so glass is never colorized, and an
image with too little tissue to fit is returned unchanged.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Generic, TypeVar

import torch

from wsikit.errors import ConfigError, WsikitError
from wsikit.stain._batch import from_batch, to_batch
from wsikit.stain.color import rgb_to_od

__all__ = ["StainNormalizer", "StainFitError", "tissue_weight", "MIN_TISSUE_PIXELS"]

MIN_TISSUE_PIXELS = 256
"""Fewest tissue pixels an image (or slide sample) needs for fitting; fewer means pass-through."""

S = TypeVar("S")


class StainFitError(WsikitError, ValueError):
    """Stain statistics cannot be fitted (e.g. the target has no tissue pixels)."""


TISSUE_OD = (0.15, 0.30)
"""Mean optical densities where :func:`tissue_weight` starts to rise from 0 and where it reaches 1."""


def tissue_weight(
    rgb: torch.Tensor, *, low: float = TISSUE_OD[0], high: float = TISSUE_OD[1]
) -> torch.Tensor:
    """Per-pixel tissue weight in [0, 1] from the mean optical density.

    0 below ``low`` (glass), 1 above ``high`` (stained tissue), linear between.

    Parameters
    ----------
    rgb : torch.Tensor
        (B, 3, H, W) uint8 or float 0..255.

    Returns
    -------
    torch.Tensor
        (B, 1, H, W) float.
    """
    od = rgb_to_od(rgb).mean(dim=1, keepdim=True)
    return ((od - low) / (high - low)).clamp(0.0, 1.0)


class StainNormalizer(ABC, Generic[S]):
    """Base class: fit a target style, fit a source, transform batches.

    Subclasses implement ``_fit_stats`` (statistics of a set of pixels) and
    ``_apply`` (transform a float batch given source statistics).
    """

    name: str = "base"

    def __init__(self, *, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.target: S | None = None

    # --------------------------------------------------------------- fitting
    @abstractmethod
    def _fit_stats(self, rgb: torch.Tensor) -> S | None:
        """Statistics of the tissue pixels of a (B, 3, H, W) float batch, or None if too few."""

    @abstractmethod
    def _apply(self, rgb: torch.Tensor, source: S) -> torch.Tensor:
        """Normalize a (B, 3, H, W) float 0..255 batch from ``source`` to the target statistics."""

    def _pooled(self, images: Any, name: str) -> torch.Tensor:
        """A batch, or a list of images of any sizes pooled into one (1, 3, 1, N) pixel row."""
        if isinstance(images, list | tuple):
            if not images:
                raise StainFitError(f"{name}: no images given")
            rows = [to_batch(im, name=name, device=self.device).flatten(2) for im in images]
            return torch.cat([r.permute(1, 0, 2).reshape(3, -1) for r in rows], dim=1)[
                None, :, None, :
            ].float()
        return to_batch(images, name=name, device=self.device).float()

    def fit(self, target: Any) -> StainNormalizer[S]:
        """Fit the target style on one image, a batch, or a list of images of any sizes (pixels pooled).

        Raises
        ------
        StainFitError
            The target holds fewer than :data:`MIN_TISSUE_PIXELS` tissue pixels.
        """
        batch = self._pooled(target, "target")
        stats = self._fit_stats(batch)
        if stats is None:
            raise StainFitError(f"target has too little tissue to fit a {self.name} style (all glass?)")
        self.target = stats
        return self

    def fit_source(self, images: Any) -> S:
        """Fit source statistics once per slide (on an overview or a sample of tiles).

        Raises
        ------
        StainFitError
            Too little tissue in ``images``.
        """
        batch = self._pooled(images, "source images")
        stats = self._fit_stats(batch)
        if stats is None:
            raise StainFitError(f"source images have too little tissue to fit {self.name} statistics")
        return stats

    # ------------------------------------------------------------- transform
    def transform(self, images: Any, *, source: S | None = None) -> Any:
        """Normalize ``images`` to the fitted target style.

        Parameters
        ----------
        images : numpy.ndarray or torch.Tensor
            (H, W, 3) / (B, H, W, 3) uint8 numpy, or (3, H, W) / (B, 3, H, W) uint8 torch.
        source : statistics from :meth:`fit_source`, optional
            Apply the same source statistics to every image (slide tiles). Without
            it each image is fitted on its own; one with too little tissue is
            returned unchanged.

        Returns
        -------
        Same type and layout as ``images``, uint8.
        """
        if self.target is None:
            raise ConfigError(f"{self.name} normalizer is not fitted: call fit(target) first")
        batch = to_batch(images, device=self.device)
        x = batch.float()
        out = x.clone()
        if source is not None:
            out = self._apply(x, source)
        else:
            for i in range(x.shape[0]):
                stats = self._fit_stats(x[i : i + 1])
                if stats is not None:
                    out[i : i + 1] = self._apply(x[i : i + 1], stats)
        w = tissue_weight(x)
        result = (w * out + (1.0 - w) * x).add_(0.5).clamp_(0, 255).to(torch.uint8)  # round half up
        return from_batch(result, images)

    __call__ = transform

    def to(self, device: torch.device | str) -> StainNormalizer[S]:
        """Move the normalizer (and its fitted statistics) to ``device``."""
        self.device = torch.device(device)
        if self.target is not None:
            self.target = self._stats_to(self.target, self.device)
        return self

    def _stats_to(self, stats: S, device: torch.device) -> S:
        return stats
