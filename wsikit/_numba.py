"""numba's ``njit`` as this package compiles its per-pixel loops: no GIL (they run on a thread pool), no
division-by-zero checks (a branch in the loop stops LLVM from vectorizing it), cached on disk beside the
module or in the user's cache folder (compiled once per machine and numba version, about 1-3 s each); where
neither can be written (a read-only install and home), compiled once per process instead."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

__all__ = ["jit"]

_Fn = TypeVar("_Fn", bound=Callable[..., Any])


def jit(*, inline: bool = False, fastmath: bool = True) -> Callable[[_Fn], _Fn]:
    """Decorator: compile with numba (imported here, on first use of a module that compiles).

    ``inline``: into the caller's loop, where it can be vectorized with it. ``fastmath=False`` keeps float
    arithmetic in source order, for results that must equal numpy's bit for bit.
    """
    from numba import njit

    options: dict[str, Any] = {
        "nogil": True,
        "fastmath": fastmath,
        "error_model": "numpy",
        "inline": "always" if inline else "never",
    }

    def decorate(fn: _Fn) -> _Fn:
        try:
            return cast(_Fn, njit(cache=True, **options)(fn))
        except RuntimeError:  # numba found no writable cache location: compile in each process
            return cast(_Fn, njit(cache=False, **options)(fn))

    return decorate
