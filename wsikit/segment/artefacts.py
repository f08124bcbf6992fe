"""Reject segmented objects whose colour no hematoxylin-stained nucleus has: pen ink, eosin fragments.

The U-Net sees stain-normalized pixels, and the CNN normalizer re-colours luminance in H&E colours, so a
dark ink stroke or a dense eosin fragment can look like a nucleus to it. On the *raw* pixels the colour
tells them apart: hematoxylin absorbs green at least as much as red (optical density OD_g >= OD_r, a
purple-blue object), eosin absorbs green far more than red (pink), and the inks used on slides absorb red
more than green (teal, blue, green) or absorb every channel alike (black: OD_b as high as OD_g).

The rule (:class:`ColourRule`) bounds two ratios of an object's mean optical density per channel. Its
bounds were chosen on validation images only (``research/study_artefacts.py``: MoNuSeg 2018 images the
shipped U-Net never trained on, 7 organs, with ink strokes painted on them, and BRCA-M2C val), to keep at
least 99.5% of the annotated nuclei of every source; docs/segmentation.md gives the figures.

Examples
--------
>>> import numpy as np
>>> rgb = np.full((20, 40, 3), 240, np.uint8)
>>> rgb[:, :20] = (95, 60, 140)      # a purple (hematoxylin) object
>>> rgb[:, 20:] = (60, 150, 150)     # a teal ink stroke
>>> labels = np.zeros((20, 40), np.int32); labels[5:15, 5:15] = 1; labels[5:15, 25:35] = 2
>>> ColourRule().rejects(rgb, labels, np.array([1, 2])).tolist()
[False, True]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "ColourRule",
    "GlassRule",
    "LengthRule",
    "glass_of",
    "glass_ring_share",
    "object_axes",
    "object_od",
    "pixel_axes",
    "optical_density",
]

GLASS_OD = 0.225
"""Mean optical density below which a raw pixel is glass (the stain normalizers' tissue weight of 0.5)."""


def optical_density(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Optical density ``-ln((I + 1) / 256)`` of uint8 intensities (0 for white, about 5.5 for black)."""
    od: npt.NDArray[np.float32] = -np.log((rgb.astype(np.float32) + 1.0) / 256.0)
    return od


def object_od(
    rgb: npt.NDArray[np.uint8], labels: npt.NDArray[np.integer], ids: npt.NDArray[np.integer]
) -> npt.NDArray[np.float64]:
    """(N, 3) mean optical density (natural log) per RGB channel of each object ``ids`` of ``labels``."""
    from scipy import ndimage as ndi

    od = optical_density(rgb)
    if len(ids) == 0:
        return np.zeros((0, 3))
    return np.stack([np.asarray(ndi.mean(od[..., c], labels, ids), np.float64) for c in range(3)], axis=1)


@dataclass(frozen=True)
class ColourRule:
    """Bounds on an object's mean optical-density ratios that every hematoxylin-stained nucleus meets.

    Attributes
    ----------
    max_red_to_green : float
        OD_r / OD_g above this: absorbs red more than a nucleus does (teal, blue, green ink).
    min_red_to_green : float
        OD_r / OD_g below this: pink, eosin without hematoxylin.
    max_blue_to_green : float
        OD_b / OD_g above this: absorbs blue as much as green (black and blue ink, dust).
    """

    max_red_to_green: float = 1.0
    min_red_to_green: float = 0.3
    max_blue_to_green: float = 0.75

    def rejects_od(self, od: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """True for each row of (N, 3) mean ODs that no nucleus has."""
        g = np.maximum(od[:, 1], 1e-6)
        rg, bg = od[:, 0] / g, od[:, 2] / g
        return (rg > self.max_red_to_green) | (rg < self.min_red_to_green) | (bg > self.max_blue_to_green)

    def rejects(
        self, rgb: npt.NDArray[np.uint8], labels: npt.NDArray[np.integer], ids: npt.NDArray[np.integer]
    ) -> npt.NDArray[np.bool_]:
        """True for each object of ``ids`` whose raw colour (``rgb``, the same grid as ``labels``) is not a nucleus's."""
        return self.rejects_od(object_od(rgb, labels, ids))


def glass_of(od: npt.NDArray[np.floating], axis: int = -1) -> npt.NDArray[np.bool_]:
    """Glass pixels of an optical-density image (:func:`optical_density`; channels on ``axis``): mean OD below
    :data:`GLASS_OD`."""
    glass: npt.NDArray[np.bool_] = od.mean(axis=axis) < GLASS_OD
    return glass


def glass_ring_share(
    rgb: npt.NDArray[np.uint8] | None,
    labels: npt.NDArray[np.integer],
    ids: npt.NDArray[np.integer],
    ring_px: float,
    *,
    glass: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[np.float64]:
    """For each object of ``ids``: the share of glass (mean optical density below :data:`GLASS_OD`) among the
    background pixels within ``ring_px`` of it that are nearer to it than to any other object (one Euclidean
    distance transform for all objects); 0 for an object with no such pixel. ``rgb`` (H, W, 3) raw uint8, or
    its ``glass`` mask (:func:`glass_of`) where the optical densities are at hand already."""
    from scipy import ndimage as ndi

    ids = np.asarray(ids, np.int64)
    background = labels == 0
    if len(ids) == 0 or not background.any() or background.all():
        return np.zeros(len(ids))
    dist, (iy, ix) = ndi.distance_transform_edt(background, return_indices=True)
    ring = background & (dist <= ring_px)
    owner = np.asarray(labels[iy[ring], ix[ring]], np.int64)
    if glass is None:
        assert rgb is not None, "give rgb or glass"
        glass = glass_of(optical_density(rgb))
    on_ring = glass[ring]
    size = max(int(labels.max()), int(ids.max())) + 1
    total = np.bincount(owner, minlength=size)[ids]
    on_glass = np.bincount(owner, weights=on_ring, minlength=size)[ids]
    share: npt.NDArray[np.float64] = np.where(total > 0, on_glass / np.maximum(total, 1), 0.0)
    return share


@dataclass(frozen=True)
class GlassRule:
    """Objects lying on glass: more than ``max_share`` of the ring of ``ring_um`` around them is glass.

    A nucleus sits in tissue; the objects this drops on the bundled CMU-1 slide are pieces of dark fibres,
    ink and eosin fragments surrounded by glass (docs/segmentation.md). Its bound was chosen on validation
    images (``research/study_glass_ring.py``).
    """

    max_share: float = 0.8
    ring_um: float = 4.0

    def rejects(
        self,
        rgb: npt.NDArray[np.uint8],
        labels: npt.NDArray[np.integer],
        ids: npt.NDArray[np.integer],
        mpp: float,
    ) -> npt.NDArray[np.bool_]:
        """True for each object of ``ids`` (``labels`` on ``rgb``'s grid of ``mpp`` um/px) that lies on glass."""
        return self.rejects_glass(glass_of(optical_density(rgb)), labels, ids, mpp)

    def rejects_glass(
        self,
        glass: npt.NDArray[np.bool_],
        labels: npt.NDArray[np.integer],
        ids: npt.NDArray[np.integer],
        mpp: float,
    ) -> npt.NDArray[np.bool_]:
        """:meth:`rejects` from the image's glass mask (:func:`glass_of`)."""
        return glass_ring_share(None, labels, ids, self.ring_um / mpp, glass=glass) > self.max_share


def object_axes(
    labels: npt.NDArray[np.integer], ids: npt.NDArray[np.integer]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(major, minor) axis lengths in pixels of each object ``ids`` of ``labels``: those of the ellipse with the
    object's second moments (scikit-image's ``axis_major_length`` / ``axis_minor_length``); 0 for an id with
    no pixel."""
    ids = np.asarray(ids, np.int64)
    lab = np.asarray(labels).astype(np.int64, copy=False)
    if len(ids) == 0:
        return np.zeros(0), np.zeros(0)
    lut = np.full(max(int(lab.max()), int(ids.max())) + 1, -1, np.int64)
    lut[ids] = np.arange(len(ids))
    rows, cols = np.nonzero(lut[lab] >= 0)
    return pixel_axes(lut[lab[rows, cols]], rows, cols, len(ids))


def pixel_axes(
    group: npt.NDArray[np.integer], rows: npt.NDArray[np.integer], cols: npt.NDArray[np.integer], n: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(major, minor) axis lengths (see :func:`object_axes`) of ``n`` objects given as pixel coordinates
    ``rows``, ``cols`` with the object index ``group`` (0 .. n-1) of each pixel."""
    r, c = np.asarray(rows, np.float64), np.asarray(cols, np.float64)

    def mean(w: npt.NDArray[np.float64] | None) -> npt.NDArray[np.float64]:
        out: npt.NDArray[np.float64] = np.bincount(group, weights=w, minlength=n)[:n].astype(np.float64)
        return out / count

    count = np.maximum(np.bincount(group, minlength=n)[:n].astype(np.float64), 1.0)
    mr, mc = mean(r), mean(c)
    vr, vc = np.maximum(mean(r * r) - mr * mr, 0.0), np.maximum(mean(c * c) - mc * mc, 0.0)
    cov = mean(r * c) - mr * mc
    mid, half = (vr + vc) / 2, np.sqrt(((vr - vc) / 2) ** 2 + cov**2)
    return 4 * np.sqrt(np.maximum(mid + half, 0.0)), 4 * np.sqrt(np.maximum(mid - half, 0.0))


@dataclass(frozen=True)
class LengthRule:
    """Objects longer than any nucleus: the major axis of the ellipse with their second moments exceeds
    ``max_length_um``.

    On the bundled CMU-1 slide the longest "fibroblasts" are dark edges of folded or torn tissue and fibre
    strands 25-65 um long; almost no annotated nucleus of MoNuSeg's seven organs is longer than 25 um
    (docs/segmentation.md). Its bound was chosen on tuning images and BRCA-M2C train
    (``research/study_length_rule.py``).
    """

    max_length_um: float = 25.0

    def rejects(
        self, labels: npt.NDArray[np.integer], ids: npt.NDArray[np.integer], mpp: float
    ) -> npt.NDArray[np.bool_]:
        """True for each object of ``ids`` (``labels`` at ``mpp`` um/px) longer than :attr:`max_length_um`."""
        return self.rejects_major(object_axes(labels, ids)[0], mpp)

    def rejects_major(self, major_px: npt.NDArray[np.float64], mpp: float) -> npt.NDArray[np.bool_]:
        """True for each major axis (pixels of ``mpp`` um) above :attr:`max_length_um`."""
        out: npt.NDArray[np.bool_] = np.asarray(major_px) * mpp > self.max_length_um
        return out
