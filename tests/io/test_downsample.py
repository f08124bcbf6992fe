"""Overview block means: the compiled kernel against numpy's exact integer formula."""

from __future__ import annotations

import numpy as np

from wsikit.io._downsample import block_mean


def test_block_mean_equals_the_integer_formula() -> None:
    """Rounded half up, for factors 1-7, one band (small) and several bands of rows (large), gray and RGB."""
    rng = np.random.default_rng(0)
    for factor, (h, w, c) in [(1, (5, 7, 3)), (2, (2, 2, 3)), (2, (1200, 1100, 3)), (3, (999, 1302, 3)),
                              (5, (35, 40, 1)), (7, (700, 1407, 3))]:  # fmt: skip
        image = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
        image[:factor, :factor] = 255  # a block of the maximum: no overflow
        sums = np.full((h // factor, w // factor, c), factor * factor // 2, np.uint32)
        for dy in range(factor):
            for dx in range(factor):
                sums += image[dy::factor, dx::factor]
        want = (sums // (factor * factor)).astype(np.uint8)
        np.testing.assert_array_equal(block_mean(image, factor), want)
        np.testing.assert_array_equal(block_mean(image[:, ::-1], factor), want[:, ::-1])  # not contiguous
