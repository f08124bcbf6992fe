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

__all__ = ["ColourRule", "object_od", "optical_density"]


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
