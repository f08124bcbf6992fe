"""Layering: the light layers must not pull in torch or click (checked in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["wsikit", "wsikit.io", "wsikit.tiling", "wsikit.io.omezarr"])
def test_light_modules_do_not_import_torch_or_click(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "heavy = [m for m in ('torch', 'click') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} imported {out.stdout.strip()}"


def test_io_and_tiling_do_not_import_upper_layers() -> None:
    code = (
        "import sys, wsikit.io, wsikit.tiling; "
        "print(','.join(m for m in sys.modules if m.startswith(('wsikit.pipeline', 'wsikit.cli'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_version_is_exposed() -> None:
    import wsikit

    assert wsikit.__version__.count(".") == 2
