"""``make_normalizer``: a fitted stain normalizer by method name (what every command's ``--stain`` builds)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from wsikit._typing import PathLike
from wsikit.errors import ConfigError
from wsikit.io import open_slide
from wsikit.models.precision import Precision
from wsikit.stain.base import StainNormalizer
from wsikit.stain.cnn import CnnNormalizer
from wsikit.stain.macenko import MacenkoNormalizer
from wsikit.stain.reinhard import ReinhardNormalizer

__all__ = ["METHODS", "make_normalizer"]

METHODS = ("cnn", "macenko", "reinhard")


def make_normalizer(
    method: Literal["cnn", "macenko", "reinhard"],
    *,
    target: PathLike | npt.NDArray[np.uint8] | None = None,
    weights: PathLike | None = None,
    device: str = "cpu",
    lightness: Literal["keep", "match", "bounded"] = "keep",
    min_ssim: float = 0.99,
    chroma_downsample: int = 1,
    precision: Precision = "auto",
) -> StainNormalizer[Any]:
    """Build a fitted normalizer: the CNN from ``weights`` (default: shipped style; ``lightness`` and
    ``min_ssim`` as in :class:`~wsikit.stain.cnn.CnnNormalizer`), or Macenko/Reinhard fitted on the
    ``target`` image (an (H, W, 3) uint8 array, or a path to an image or slide: read whole, or its 4,096 px
    overview when larger). ``chroma_downsample`` (CNN only): chroma predicted at that fraction of the
    resolution; ``precision`` (CNN only): see :mod:`wsikit.models.precision`.

    Examples
    --------
    >>> import numpy as np
    >>> target = np.full((64, 64, 3), (180, 90, 160), np.uint8)
    >>> target[::4, ::4] = (60, 20, 110)
    >>> type(make_normalizer("reinhard", target=target)).__name__
    'ReinhardNormalizer'
    """
    if method == "cnn":
        if target is not None:
            raise ConfigError("`target` applies to macenko/reinhard; the CNN's style comes from `weights`")
        return (
            CnnNormalizer.from_weights(
                weights,
                device=device,
                lightness=lightness,
                min_ssim=min_ssim,
                chroma_downsample=chroma_downsample,
                precision=precision,
            )
            if weights
            else CnnNormalizer.from_pretrained(
                device=device,
                lightness=lightness,
                min_ssim=min_ssim,
                chroma_downsample=chroma_downsample,
                precision=precision,
            )
        )
    if lightness != "keep":
        raise ConfigError("`lightness` applies to the cnn method only")
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if weights is not None:
        raise ConfigError("`weights` applies to the cnn method only")
    if target is None:
        raise ConfigError(f"{method} needs a target image of the wanted style (`target`)")
    if isinstance(target, np.ndarray):
        pixels = target
    else:
        with open_slide(target) as t:
            w, h = t.dimensions
            if w * h > 4096 * 4096:
                pixels, _ = t.read_overview(4096)
            else:
                pixels = t.read_region((0, 0), 0, (w, h))
    norm: StainNormalizer[Any] = (
        MacenkoNormalizer(device=device) if method == "macenko" else ReinhardNormalizer(device=device)
    )
    return norm.fit(pixels)
