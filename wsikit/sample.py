"""The bundled sample slide (OpenSlide's CMU-1 small region, CC0)."""

from __future__ import annotations

from pathlib import Path

from wsikit.errors import SlideOpenError

__all__ = ["SAMPLE_SLIDE_NAME", "sample_slide_path"]

SAMPLE_SLIDE_NAME = "cmu-1-small-region.svs"


def sample_slide_path() -> Path:
    """Return the path of the bundled sample slide.

    The wheel ships it inside the package (``wsikit/_sample/``); a source
    checkout finds it in ``examples/data/``.

    Returns
    -------
    pathlib.Path
        Path to ``cmu-1-small-region.svs`` (Aperio SVS, 2220 x 2967 px, 0.499 um/px).

    Examples
    --------
    >>> sample_slide_path().name
    'cmu-1-small-region.svs'
    """
    here = Path(__file__).resolve().parent
    for candidate in (
        here / "_sample" / SAMPLE_SLIDE_NAME,
        here.parent / "examples" / "data" / SAMPLE_SLIDE_NAME,
    ):
        if candidate.is_file():
            return candidate
    raise SlideOpenError(f"the bundled sample slide {SAMPLE_SLIDE_NAME} is missing from the installation")
