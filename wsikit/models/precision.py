"""Inference precision of the networks: float32, or bfloat16 autocast where the hardware computes it natively.

On CUDA, bf16 autocast has always been used. On a CPU with native bf16 instructions (AVX512-BF16 or AMX;
e.g. AMD Zen 4, Intel Sapphire Rapids) oneDNN runs the convolutions in bf16 about twice as fast as in float32
(the U-Net on a 640 px tile: 0.38 vs 0.71 s; ``wsikit run``'s segment stage 1.4-1.6x, docs/segmentation.md);
on other CPUs it would be emulated (slower), so ``auto`` keeps float32 there. Outputs are cast back to float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch

from wsikit.errors import ConfigError

__all__ = ["PRECISIONS", "Precision", "cpu_has_native_bf16", "resolve_precision", "autocast"]

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX tiles)."""
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def resolve_precision(precision: str, device: torch.device | str) -> Literal["fp32", "bf16"]:
    """``fp32`` or ``bf16`` for ``precision`` on ``device``: ``auto`` is bf16 on CUDA and on CPUs with native
    bf16, float32 elsewhere.

    Examples
    --------
    >>> resolve_precision("fp32", "cuda"), resolve_precision("bf16", "cpu")
    ('fp32', 'bf16')
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision  # type: ignore[return-value]
    kind = torch.device(device).type
    return "bf16" if kind == "cuda" or (kind == "cpu" and cpu_has_native_bf16()) else "fp32"


@contextlib.contextmanager
def autocast(device: torch.device, precision: Literal["fp32", "bf16"]) -> Iterator[None]:
    """bf16 autocast on ``device`` when ``precision`` is ``bf16``; nothing otherwise."""
    if precision == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    else:
        yield
