"""The error hierarchy of wsikit.

Every error raised on purpose by wsikit derives from :class:`WsikitError`.
Subclasses also inherit the builtin they specialize, so ``except OSError``
still catches a slide that cannot be opened (the pattern of zarr-python's
``errors.py``). Messages name the argument or file, what was expected and
what was received; the CLI prints them as one line.
"""

from __future__ import annotations

__all__ = [
    "WsikitError",
    "SlideOpenError",
    "SlideReadError",
    "UnsupportedFormatError",
    "ShapeError",
    "ConfigError",
    "StoreError",
    "OutputExistsError",
    "NoTissueError",
]


class WsikitError(Exception):
    """Root of all errors raised on purpose by wsikit."""


class SlideOpenError(WsikitError, OSError):
    """A slide or image file cannot be opened (missing, not a file, corrupt, truncated)."""


class UnsupportedFormatError(SlideOpenError):
    """A file exists and is readable but no backend recognises its format."""


class SlideReadError(WsikitError, OSError):
    """Pixels could not be read from an opened slide (e.g. a corrupt tile)."""


class ShapeError(WsikitError, ValueError):
    """An array or region has the wrong shape, size or dtype."""


class ConfigError(WsikitError, ValueError):
    """An option or configuration value is out of its valid range."""


class StoreError(WsikitError, OSError):
    """An OME-Zarr store is missing, malformed, or used in a way it does not allow."""


class OutputExistsError(WsikitError, FileExistsError):
    """An output path exists and overwriting was not requested."""


class NoTissueError(WsikitError, ValueError):
    """A slide or image holds no tissue where tissue is required (e.g. exporting tissue tiles)."""
