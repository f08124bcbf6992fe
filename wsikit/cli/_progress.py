"""Progress bars for CLI commands (rich); silent with --quiet or when stderr is not a terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

__all__ = ["progress_bar", "stage_progress", "is_quiet", "resolve_device"]


@contextmanager
def progress_bar(description: str, *, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """Yield an ``update(done, total)`` callback that drives a rich progress bar with ETA."""
    if not enabled or not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def is_quiet(ctx: object) -> bool:
    """Whether the global ``-q`` flag was given (click context object set by the ``wsikit`` group)."""
    obj = getattr(ctx, "obj", None)
    return bool(obj and obj.get("quiet"))


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is present, else ``cpu``; other values unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@contextmanager
def stage_progress(*, enabled: bool = True) -> Iterator[Callable[[str, int, int], None]]:
    """Yield ``update(stage, done, total)``: one rich progress bar (with ETA) per pipeline stage."""
    if not enabled or not sys.stderr.isatty():
        yield lambda stage, done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def command_line() -> str:
    """The command line being run, as a shell-quoted string (recorded in model metadata).

    Read from click's root context (``wsikit.cli.main.run`` stores the arguments there), else ``sys.argv``.
    """
    import shlex
    import sys

    ctx = click.get_current_context(silent=True)
    argv = (ctx.find_root().obj or {}).get("argv") if ctx is not None else None
    argv = argv if argv is not None else sys.argv[1:]
    return "wsikit " + " ".join(shlex.quote(str(a)) for a in argv)
