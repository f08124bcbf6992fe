"""Color conversions on (B, 3, H, W) float tensors (any device): RGB <-> optical density and CIE Lab."""

from __future__ import annotations

import torch

__all__ = ["rgb_to_od", "od_to_rgb", "rgb_to_lab", "lab_to_rgb", "luminance"]

_IO = 255.0  # incident light intensity

_RGB_TO_XYZ = torch.tensor(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_WHITE = torch.tensor([0.950456, 1.0, 1.088754])


def rgb_to_od(rgb: torch.Tensor) -> torch.Tensor:
    """Optical density ``-ln((I + 1) / 256)`` of 0..255 intensities (0 for white, about 5.5 for black)."""
    return -torch.log((rgb.float() + 1.0) / (_IO + 1.0))


def od_to_rgb(od: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_od`, clamped to 0..255 (float)."""
    return ((_IO + 1.0) * torch.exp(-od) - 1.0).clamp(0.0, 255.0)


def _srgb_to_linear(c: torch.Tensor) -> torch.Tensor:
    return torch.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)


def _linear_to_srgb(c: torch.Tensor) -> torch.Tensor:
    c = c.clamp(min=0.0)
    return torch.where(c > 0.0031308, 1.055 * c.clamp(min=1e-12) ** (1 / 2.4) - 0.055, 12.92 * c)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB (0..255, channel dim 1) to CIE Lab (D65): L in 0..100, a/b about -128..127."""
    c = _srgb_to_linear(rgb.float() / 255.0)
    m = _RGB_TO_XYZ.to(c.device, c.dtype)
    xyz = torch.einsum("ij,bjhw->bihw", m, c) / _WHITE.to(c.device, c.dtype).view(1, 3, 1, 1)
    eps = 216 / 24389
    f = torch.where(xyz > eps, xyz.clamp(min=1e-12) ** (1 / 3), (24389 / 27 * xyz + 16) / 116)
    fx, fy, fz = f[:, 0], f[:, 1], f[:, 2]
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """CIE Lab (D65) to sRGB 0..255 (float, clamped)."""
    lab = lab.float()
    fy = (lab[:, 0] + 16) / 116
    fx = fy + lab[:, 1] / 500
    fz = fy - lab[:, 2] / 200
    f = torch.stack([fx, fy, fz], dim=1)
    eps = 6 / 29
    xyz = torch.where(f > eps, f**3, (116 * f - 16) * 27 / 24389)
    xyz = xyz * _WHITE.to(lab.device, lab.dtype).view(1, 3, 1, 1)
    m_inv = torch.linalg.inv(_RGB_TO_XYZ).to(lab.device, lab.dtype)
    lin = torch.einsum("ij,bjhw->bihw", m_inv, xyz)
    return (_linear_to_srgb(lin) * 255.0).clamp(0.0, 255.0)


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """Lab lightness L (0..100) as (B, 1, H, W)."""
    return rgb_to_lab(rgb)[:, :1]
