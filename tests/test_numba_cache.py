"""The compiled loops still work where numba cannot cache them (read-only install, no writable home)."""

from __future__ import annotations

import numpy as np
import pytest


def test_kernels_compile_without_a_writable_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    from numba.core import caching
    from numba.core.caching import NullCache

    from wsikit._numba import jit

    monkeypatch.setattr(caching.CacheImpl, "_locator_classes", [])  # what numba sees with nowhere to write

    def double(x: np.ndarray) -> np.ndarray:
        return x * 2

    compiled = jit()(double)
    assert isinstance(compiled._cache, NullCache)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(compiled(np.arange(4)), np.arange(4) * 2)
