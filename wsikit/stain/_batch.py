"""Validation and conversion of image batches for the stain normalizers."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from wsikit.errors import ShapeError

__all__ = ["to_batch", "from_batch", "pixel_blocks"]


def _describe(x: Any) -> str:
    if isinstance(x, np.ndarray | torch.Tensor):
        return f"{type(x).__name__} {tuple(x.shape)} {x.dtype}"
    return type(x).__name__


def to_batch(images: Any, *, name: str = "images", device: torch.device | str | None = None) -> torch.Tensor:
    """Return ``images`` as a (B, 3, H, W) uint8 tensor.

    Accepts a numpy (H, W, 3) or (B, H, W, 3) uint8 array, or a torch (3, H, W)
    or (B, 3, H, W) uint8 tensor. Anything else raises :class:`ShapeError`
    naming what was received: grayscale or RGBA arrays, 16-bit or float
    images (convert them explicitly; a silent rescale would hide a mistake).
    """
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise ShapeError(
                f"{name} must be uint8 RGB, got {_describe(images)} (convert 16-bit/float images first)"
            )
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ShapeError(f"{name} must be (H, W, 3) or (B, H, W, 3) RGB, got {_describe(images)}")
        if not images.flags.writeable:  # torch.from_numpy needs a writable buffer
            images = images.copy()
        tensor = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    elif isinstance(images, torch.Tensor):
        if images.dtype != torch.uint8:
            raise ShapeError(
                f"{name} must be uint8 RGB, got {_describe(images)} (convert 16-bit/float images first)"
            )
        tensor = images[None] if images.ndim == 3 else images
        if tensor.ndim != 4 or tensor.shape[1] != 3:
            raise ShapeError(f"{name} must be (3, H, W) or (B, 3, H, W) RGB, got {_describe(images)}")
    else:
        raise ShapeError(
            f"{name} must be a numpy array or torch tensor of uint8 RGB, got {_describe(images)}"
        )
    if tensor.shape[-1] == 0 or tensor.shape[-2] == 0 or tensor.shape[0] == 0:
        raise ShapeError(f"{name} is empty: {_describe(images)}")
    return tensor.to(device) if device is not None else tensor


def from_batch(batch: torch.Tensor, like: Any) -> Any:
    """Return ``batch`` ((B, 3, H, W) uint8) in the layout of ``like`` (numpy HWC or torch CHW, batched or not)."""
    if isinstance(like, np.ndarray):
        out = batch.permute(0, 2, 3, 1).cpu().numpy()
        return out[0] if like.ndim == 3 else out
    return batch[0] if like.ndim == 3 else batch


def pixel_blocks(b: int, p: int, chunk: int) -> list[tuple[int, int, int, int]]:
    """Blocks of a (B, 3, P) batch for cache-sized passes: ``(first image, last image + 1, first pixel, last
    pixel + 1)``, whole images grouped up to ``chunk`` pixels, or an image of ``chunk`` pixels or more cut
    into pixel ranges. Per-pixel kernels run 2-2.5x faster this way on a CPU than on a whole batch of tiles
    at once (their float temporaries stay in cache instead of landing on fresh pages).

    >>> pixel_blocks(5, 100, 250)
    [(0, 2, 0, 100), (2, 4, 0, 100), (4, 5, 0, 100)]
    >>> pixel_blocks(1, 500, 250)
    [(0, 1, 0, 250), (0, 1, 250, 500)]
    """
    if p >= chunk:
        return [(i, i + 1, s, min(s + chunk, p)) for i in range(b) for s in range(0, p, chunk)]
    per = max(1, chunk // p)
    return [(i, min(i + per, b), 0, p) for i in range(0, b, per)]
