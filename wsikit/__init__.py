"""wsikit: whole-slide image toolkit for H&E breast histopathology.

The top-level package is light: it never imports torch or click. Reading
slides lives in :mod:`wsikit.io`, tiling in :mod:`wsikit.tiling`.

Examples
--------
>>> import wsikit
>>> isinstance(wsikit.__version__, str)
True
"""

from __future__ import annotations

from wsikit.errors import WsikitError

__version__ = "0.1.0"

__all__ = ["WsikitError", "__version__", "open_slide"]


def open_slide(path: str, **kwargs: object) -> object:
    """Open a slide; see :func:`wsikit.io.open_slide` (imported lazily)."""
    from wsikit.io import open_slide as _open_slide

    return _open_slide(path, **kwargs)  # type: ignore[arg-type]
