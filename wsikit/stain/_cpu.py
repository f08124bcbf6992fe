"""What the compiled per-pixel stain kernels share (numba): float32 bit casts, work items and their split
among threads.

Work is cut into items of at most :data:`ITEM_PIXELS` pixels of one image; as many tasks as torch has threads
(:func:`wsikit._threads.run_parallel`; the kernels release the GIL) each take a fixed share of the items, so
per-item results merged in item order do not depend on the number of threads.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch
from llvmlite import ir
from numba import types
from numba.extending import intrinsic as _numba_intrinsic

from wsikit._numba import jit
from wsikit._threads import run_parallel

__all__ = ["ITEM_PIXELS", "as_int", "as_float", "blend_into", "items_of", "run_items"]

ITEM_PIXELS = 4096
"""Pixels per work item: a kernel's scalar look-up pass writes a few float buffers of this size (L1/L2)."""
_INLINE_PIXELS = 1 << 16  # smaller jobs run on the calling thread: a thread hand-off costs more than them


def _bitcast(to: Any, llvm_type: Any, source: Any) -> Any:
    """A numba intrinsic that reads a 32-bit scalar's bits as another 32-bit type (LLVM bitcast)."""

    def typer(typingctx: Any, value: Any) -> Any:
        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            return builder.bitcast(args[0], llvm_type)

        return to(source), codegen

    return _numba_intrinsic(typer)


as_int = _bitcast(types.int32, ir.IntType(32), types.float32)
as_float = _bitcast(types.float32, ir.FloatType(), types.int32)


@jit()
def blend_into(x: Any, out: Any, i: int, p0: int, p1: int, buf: Any) -> None:
    """``out[i, c, p0:p1]`` = the input blended with the mapped colour ``buf[c]`` by the tissue weight ``buf[3]``,
    rounded half up: one output plane per loop (three stores in one loop might alias, which stops LLVM from
    vectorizing it)."""
    weight = buf[3]
    for ch in range(3):
        src, dst, mapped = x[i, ch, p0:p1], out[i, ch, p0:p1], buf[ch]
        for k in range(p1 - p0):
            s = np.float32(src[k])
            dst[k] = np.uint8(s + weight[k] * (mapped[k] - s) + np.float32(0.5))


def items_of(b: int, p: int) -> np.ndarray:
    """(image, first pixel, last pixel + 1) of every work item, int64 (n, 3)."""
    starts = np.arange(0, p, ITEM_PIXELS)
    per_image = np.stack([starts, np.minimum(starts + ITEM_PIXELS, p)], axis=1)
    rows = [np.column_stack([np.full(len(per_image), i), per_image]) for i in range(b)]
    return np.concatenate(rows).astype(np.int64)


def run_items(fn: Any, x: np.ndarray, items: np.ndarray, constants: tuple[Any, ...], out: np.ndarray) -> None:
    """``fn(x, items, *constants, out)`` over a fixed split of the items among torch's threads; ``out`` is
    either per item (2-D: each share gets its rows) or the whole output image array."""
    threads = max(1, torch.get_num_threads())
    pixels = int((items[:, 2] - items[:, 1]).sum())
    if threads == 1 or pixels < _INLINE_PIXELS or len(items) < 2:
        fn(x, items, *constants, out)
        return
    shares = np.array_split(np.arange(len(items)), min(threads, len(items)))
    run_parallel(
        [
            partial(fn, x, items[s], *constants, out[s[0] : s[-1] + 1] if out.ndim == 2 else out)
            for s in shares
        ]
    )
