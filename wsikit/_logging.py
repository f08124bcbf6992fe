"""Logging helpers: no handlers at import; the CLI configures levels."""

from __future__ import annotations

import logging

__all__ = ["get_logger", "configure_cli_logging"]


def get_logger(name: str) -> logging.Logger:
    """Return the module logger ``name`` (a thin wrapper around :func:`logging.getLogger`)."""
    return logging.getLogger(name)


def configure_cli_logging(verbosity: int) -> None:
    """Configure the ``wsikit`` logger for command-line use.

    Parameters
    ----------
    verbosity : int
        -1 for quiet (errors only), 0 for warnings, 1 for info, 2+ for debug.
    """
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logger = logging.getLogger("wsikit")
    logger.setLevel(level)
    if not any(getattr(h, "_wsikit_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler._wsikit_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
