"""Type aliases shared across wsikit."""

from __future__ import annotations

import os
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

PathLike: TypeAlias = str | os.PathLike[str]
"""A filesystem path."""

RGBImage: TypeAlias = npt.NDArray[np.uint8]
"""An (H, W, 3) uint8 RGB image."""

BoolMask: TypeAlias = npt.NDArray[np.bool_]
"""An (H, W) boolean mask."""

IntPair: TypeAlias = tuple[int, int]
"""An (x, y) or (width, height) pair of integers."""
