"""Stain-normalization metrics (the paper's three, plus structure and speed), on numpy arrays.

Definitions (also in docs/stain-normalization.md), for an output image O, its source S and a target style
pool T; "tissue pixels" are pixels whose tissue weight (mean optical density >= 0.225, see
:func:`wsikit.stain.tissue_weight`) is at least 0.5 - in the *source* for O, in T for T:

- ``euclidean``: CIE Lab Euclidean distance (Delta E*ab, CIE76) between the mean tissue color of O and of T.
  0 is ideal; about 2.3 is a just-noticeable difference.
- ``chroma_distance``: the same distance on the chromatic axes (a*, b*) only, leaving out lightness, which
  carries tissue structure (a method that keeps the source's luminance, like the CNN, cannot change it).
- ``hist_correlation``: Pearson correlation between the 64-bin histograms of O and T, per RGB channel
  over tissue pixels, averaged over the channels (OpenCV's HISTCMP_CORREL). 1 is ideal.
- ``hellinger``: Hellinger distance sqrt(1 - sum sqrt(p q)) between the same normalized histograms,
  averaged over the channels. 0 is ideal.
- ``ssim_luminance``: SSIM (scikit-image, data range 100) between the Lab lightness of O and of S:
  1 when the tissue structure is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from wsikit.errors import ShapeError
from wsikit.stain.base import tissue_weight
from wsikit.stain.color import rgb_to_lab

__all__ = ["StyleReference", "style_reference", "stain_metrics", "BINS"]

BINS = 64


def _tensor(rgb: npt.NDArray[np.uint8]) -> torch.Tensor:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ShapeError(f"image must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]


def _tissue(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    return np.asarray(tissue_weight(_tensor(rgb))[0, 0].numpy() >= 0.5)


def _hist(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    """(3, BINS) per-channel histograms normalized to sum 1."""
    out = np.stack([np.bincount(pixels[:, c] // (256 // BINS), minlength=BINS) for c in range(3)]).astype(
        float
    )
    result: npt.NDArray[np.float64] = out / np.maximum(out.sum(axis=1, keepdims=True), 1)
    return result


def _mean_lab(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    t = torch.from_numpy(pixels.reshape(1, -1, 1, 3)).permute(0, 3, 1, 2)
    return np.asarray(rgb_to_lab(t)[0, :, :, 0].mean(dim=1).double().numpy())


@dataclass(frozen=True)
class StyleReference:
    """Histograms and mean Lab color of a target style's tissue pixels."""

    hist: npt.NDArray[np.float64]
    mean_lab: npt.NDArray[np.float64]
    n_pixels: int


def style_reference(images: list[npt.NDArray[np.uint8]]) -> StyleReference:
    """Pool the tissue pixels of the target images into a :class:`StyleReference`."""
    pixels = np.concatenate([img[_tissue(img)] for img in images]) if images else np.zeros((0, 3), np.uint8)
    if len(pixels) == 0:
        raise ShapeError("the target images hold no tissue pixels")
    return StyleReference(_hist(pixels), _mean_lab(pixels), len(pixels))


def stain_metrics(
    output: npt.NDArray[np.uint8], source: npt.NDArray[np.uint8], reference: StyleReference
) -> dict[str, float]:
    """The four metrics of ``output`` (normalized ``source``) against ``reference``; see the module doc.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> img = rng.integers(40, 200, (64, 64, 3), dtype=np.uint8)
    >>> m = stain_metrics(img, img, style_reference([img]))
    >>> round(m["euclidean"], 6), round(m["hist_correlation"], 6), round(m["hellinger"], 6), m["ssim_luminance"]
    (0.0, 1.0, 0.0, 1.0)
    >>> m["chroma_distance"] <= m["euclidean"]
    True
    """
    from skimage.metrics import structural_similarity

    if output.shape != source.shape:
        raise ShapeError(f"output {output.shape} and source {source.shape} differ in shape")
    mask = _tissue(source)
    pixels = output[mask] if mask.any() else output.reshape(-1, 3)
    h = _hist(pixels)
    ref = reference.hist
    corr = []
    for c in range(3):
        a, b = h[c] - h[c].mean(), ref[c] - ref[c].mean()
        denom = np.sqrt((a * a).sum() * (b * b).sum())
        corr.append(float((a * b).sum() / denom) if denom > 0 else 0.0)
    hell = [float(np.sqrt(max(0.0, 1.0 - np.sqrt(h[c] * ref[c]).sum()))) for c in range(3)]
    mean_lab = _mean_lab(pixels)
    euclid = float(np.linalg.norm(mean_lab - reference.mean_lab))
    chroma = float(np.linalg.norm(mean_lab[1:] - reference.mean_lab[1:]))
    lo = rgb_to_lab(_tensor(output))[0, 0].numpy()
    ls = rgb_to_lab(_tensor(source))[0, 0].numpy()
    ssim = float(structural_similarity(lo, ls, data_range=100.0))  # type: ignore[no-untyped-call]
    return {
        "euclidean": euclid,
        "chroma_distance": chroma,
        "hist_correlation": float(np.mean(corr)),
        "hellinger": float(np.mean(hell)),
        "ssim_luminance": ssim,
    }
