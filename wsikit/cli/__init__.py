"""The ``wsikit`` command line: parse, call one public function, print."""

from __future__ import annotations

from wsikit.cli.main import cli, main

__all__ = ["cli", "main"]
