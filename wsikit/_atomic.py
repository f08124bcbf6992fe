"""Write-then-rename helpers so an interrupted job never leaves complete-looking output."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wsikit.errors import OutputExistsError, StoreError

__all__ = ["staged_directory", "staged_file", "check_output_parent"]


def check_output_parent(path: Path) -> None:
    """Raise a clear error when ``path`` cannot be created (missing or unwritable parent)."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise StoreError(f"{path}: output directory {parent} does not exist")
    if not parent.is_dir():
        raise StoreError(f"{path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StoreError(f"{path}: no write permission in {parent}")


@contextmanager
def staged_directory(final: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling directory that replaces ``final`` only if the block succeeds.

    On any exception the temporary directory is removed and ``final`` is left
    as it was.
    """
    check_output_parent(final)
    if final.exists():
        if final.is_dir() and not any(final.iterdir()):
            final.rmdir()
        elif not overwrite:
            raise OutputExistsError(
                f"{final}: already exists and is not empty (use `overwrite` to replace it)"
            )
    stage = final.with_name(f".{final.name}.partial-{os.getpid()}")
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        final.rename(old)
        stage.rename(final)
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
    else:
        stage.rename(final)


@contextmanager
def staged_file(final: Path, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling path that is renamed to ``final`` if the block succeeds."""
    check_output_parent(final)
    if final.exists() and not overwrite:
        raise OutputExistsError(f"{final}: already exists")
    stage = final.with_name(f".{final.name}.partial-{os.getpid()}")
    try:
        yield stage
    except BaseException:
        stage.unlink(missing_ok=True)
        raise
    os.replace(stage, final)
