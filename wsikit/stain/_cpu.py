"""What the compiled per-pixel stain kernels share (numba): float32 bit casts, work items and their split
among threads.

Work is cut into items of at most :data:`ITEM_PIXELS` pixels of one image; as many tasks as torch has threads
(on :func:`wsikit._threads.worker_pool`; the kernels release the GIL) each take a fixed share of the items, so
per-item results merged in item order do not depend on the number of threads.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from llvmlite import ir
from numba import types
from numba.extending import intrinsic as _numba_intrinsic

from wsikit._threads import worker_pool

__all__ = ["ITEM_PIXELS", "as_int", "as_float", "items_of", "run_items"]

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


_as_int = _bitcast(types.int32, ir.IntType(32), types.float32)
_as_float = _bitcast(types.float32, ir.FloatType(), types.int32)


as_int = _bitcast(types.int32, ir.IntType(32), types.float32)
as_float = _bitcast(types.float32, ir.FloatType(), types.int32)


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
    futures = [
        worker_pool().submit(fn, x, items[s], *constants, out[s[0] : s[-1] + 1] if out.ndim == 2 else out)  # type: ignore[call-arg]
        for s in shares
    ]
    for f in futures:
        f.result()
