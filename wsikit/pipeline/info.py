"""``describe_slide``: geometry, metadata and tissue summary of one slide (backs ``wsikit info``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wsikit._atomic import staged_file
from wsikit._typing import PathLike
from wsikit.io import SlideInfo, open_slide
from wsikit.tiling import outline_mask, tissue_mask

__all__ = ["SlideReport", "describe_slide"]


@dataclass(frozen=True, kw_only=True)
class SlideReport:
    """What ``wsikit info`` reports about a slide.

    Attributes
    ----------
    info : SlideInfo
        Geometry and metadata.
    tissue_fraction : float
        Share of the slide covered by tissue.
    tissue_area_mm2 : float or None
        Tissue area, when the slide's mpp is known.
    thumbnail : str or None
        Path of the written thumbnail, if one was asked for.
    """

    info: SlideInfo
    tissue_fraction: float
    tissue_area_mm2: float | None
    thumbnail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form for JSON output."""
        return {
            **self.info.to_dict(),
            "tissue_fraction": round(self.tissue_fraction, 6),
            "tissue_area_mm2": None if self.tissue_area_mm2 is None else round(self.tissue_area_mm2, 6),
            "thumbnail": self.thumbnail,
        }


def describe_slide(
    path: PathLike, *, thumbnail: PathLike | None = None, thumbnail_size: int = 1024
) -> SlideReport:
    """Open a slide, detect its tissue, and optionally save a thumbnail with the tissue outlined.

    Parameters
    ----------
    path : str or os.PathLike
        The slide.
    thumbnail : str or os.PathLike, optional
        Where to write a PNG overview with the tissue outline in green.
    thumbnail_size : int
        Longest side of the thumbnail in pixels.

    Returns
    -------
    SlideReport

    Examples
    --------
    >>> from wsikit.sample import sample_slide_path
    >>> report = describe_slide(sample_slide_path())
    >>> report.info.mpp, round(report.tissue_fraction, 2) > 0.2
    ((0.499, 0.499), True)
    """
    from PIL import Image

    with open_slide(path) as slide:
        tissue = tissue_mask(slide)
        written = None
        if thumbnail is not None:
            overview, _ = slide.read_overview(thumbnail_size)
            mask = tissue.mask
            if mask.shape != overview.shape[:2]:
                resized = Image.fromarray(mask.astype(np.uint8) * 255).resize(
                    (overview.shape[1], overview.shape[0]), Image.Resampling.NEAREST
                )
                mask = np.asarray(resized) > 0
            out = Path(thumbnail)
            with staged_file(out) as tmp:
                Image.fromarray(outline_mask(overview, mask)).save(tmp, format="PNG")
            written = str(out)
        return SlideReport(
            info=slide.info(),
            tissue_fraction=tissue.fraction,
            tissue_area_mm2=tissue.area_mm2,
            thumbnail=written,
        )
