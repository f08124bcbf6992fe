"""The paper's k-means baselines on nucleus crops: raw pixels, CNN features, morphology + intensity."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from wsikit.errors import ShapeError
from wsikit.models.unet import UNet

__all__ = ["kmeans", "pixel_features", "cnn_features", "standardized"]


def kmeans(
    features: npt.NDArray[np.floating], k: int, *, seed: int = 0, restarts: int = 10
) -> npt.NDArray[np.int64]:
    """k-means (k-means++ init, best of ``restarts`` by inertia) with a fixed seed; cluster index per row."""
    from scipy.cluster.vq import kmeans2

    x = np.asarray(features, np.float64)
    if x.ndim != 2 or len(x) < k:
        raise ShapeError(f"features must be (N, D) with N >= k={k}, got {x.shape}")
    best, best_inertia = None, np.inf
    rng = np.random.default_rng(seed)
    for _ in range(restarts):
        centers, labels = kmeans2(x, k, minit="++", seed=rng, iter=50)
        inertia = float(((x - centers[labels]) ** 2).sum())
        if inertia < best_inertia:
            best, best_inertia = labels, inertia
    assert best is not None
    out: npt.NDArray[np.int64] = best.astype(np.int64)
    return out


def pixel_features(crops: npt.NDArray[np.uint8], *, size: int = 32) -> npt.NDArray[np.float32]:
    """The paper's raw-pixel vectors: crops resized to ``size`` x ``size`` x 3 and flattened (3072 for 32)."""
    x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() / 255.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.permute(0, 2, 3, 1).reshape(len(crops), -1).numpy()


@torch.no_grad()
def cnn_features(
    crops: npt.NDArray[np.uint8], model: UNet, *, upscale: int = 2, batch_size: int = 256
) -> npt.NDArray[np.float32]:
    """Global-average-pooled bottleneck of the segmentation U-Net's encoder on each crop.

    Crops (0.5 um/px) are upscaled by ``upscale`` to the U-Net's 0.25 um/px first. No ImageNet-pretrained
    network can be downloaded offline, so the method's ResNet-152 baseline uses this encoder instead.
    """
    model.eval()
    out = []
    for i in range(0, len(crops), batch_size):
        x = (
            torch.from_numpy(np.ascontiguousarray(crops[i : i + batch_size])).permute(0, 3, 1, 2).float()
            / 255.0
        )
        size = crops.shape[1] * upscale
        size += (-size) % 16
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        out.append(model.encode(x).mean(dim=(2, 3)))
    return torch.cat(out).numpy() if out else np.zeros((0, 16 * model.config.base), np.float32)


def standardized(columns: list[npt.NDArray[np.floating]]) -> npt.NDArray[np.float64]:
    """Stack columns into (N, D) and z-score each (NaN -> column median)."""
    x = np.stack([np.asarray(c, np.float64) for c in columns], axis=1)
    med = np.nanmedian(x, axis=0)
    x = np.where(np.isnan(x), med, x)
    sd = x.std(axis=0)
    z: npt.NDArray[np.float64] = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    return z
