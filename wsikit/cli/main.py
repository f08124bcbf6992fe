"""Entry point and command group of the ``wsikit`` CLI.

Errors raised on purpose (:class:`~wsikit.errors.WsikitError`) and usage
errors become one line on stderr with a non-zero exit code (1 and 2); ``-v``
adds the traceback.
"""

from __future__ import annotations

import re
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import click

from wsikit import __version__
from wsikit._logging import configure_cli_logging
from wsikit.errors import WsikitError

__all__ = ["cli", "main", "run"]

_STATE: dict[str, Any] = {"verbosity": 0}


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="wsikit", message="%(prog)s %(version)s")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug); tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors; no progress bars.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """wsikit: whole-slide image toolkit for H&E histopathology.

    Stream tissue patches from slide pyramids (OpenSlide formats, DICOM,
    OME-TIFF, plain images), and write results to OME-Zarr.
    """
    verbosity = -1 if quiet else verbose
    _STATE["verbosity"] = verbosity
    configure_cli_logging(verbosity)
    ctx.ensure_object(dict).update(quiet=quiet, verbosity=verbosity)


def _register() -> None:
    from wsikit.cli.evaluate import evaluate, export_classes_cmd, export_dataset_cmd
    from wsikit.cli.export import export
    from wsikit.cli.info import info
    from wsikit.cli.normalize import normalize
    from wsikit.cli.run import run_cmd, stats
    from wsikit.cli.segment import segment
    from wsikit.cli.tiles import tiles
    from wsikit.cli.train import train

    cli.add_command(info)
    cli.add_command(tiles)
    cli.add_command(normalize)
    cli.add_command(segment)
    cli.add_command(export)
    cli.add_command(run_cmd)
    cli.add_command(stats)
    cli.add_command(train)
    cli.add_command(evaluate)
    cli.add_command(export_dataset_cmd)
    cli.add_command(export_classes_cmd)


_register()


def _option_flags(group: click.Command) -> dict[str, str]:
    """Python parameter name -> long CLI flag of every option of every command under ``group``."""
    flags: dict[str, str] = {}
    for p in group.params:
        if isinstance(p, click.Option) and p.name:
            flags.setdefault(p.name, max(p.opts, key=len))
    for sub in getattr(group, "commands", {}).values():
        for name, flag in _option_flags(sub).items():
            flags.setdefault(name, flag)
    return flags


def as_flags(message: str) -> str:
    """A library error in the CLI's words: each backticked Python parameter (```mpp```) that is an option of
    some command becomes its flag (``--mpp``); library messages name parameters, not flags."""
    flags = _option_flags(cli)
    return re.sub(r"`([a-z_][a-z0-9_]*)`", lambda m: flags.get(m.group(1), m.group(0)), message)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` and return the exit code (no ``sys.exit``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = cli.main(args=args, prog_name="wsikit", standalone_mode=False, obj={"argv": args})
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.UsageError as exc:
        cmd = exc.ctx.command_path if exc.ctx is not None else "wsikit"
        print(f"{cmd}: error: {exc.format_message()} (see '{cmd} --help')", file=sys.stderr)
        return 2
    except click.Abort:
        print("wsikit: aborted", file=sys.stderr)
        return 130
    except WsikitError as exc:
        if _STATE["verbosity"] >= 1:
            traceback.print_exc()
        print(f"wsikit: error: {as_flags(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("wsikit: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an unanticipated input problem: still one line unless -v
        if _STATE["verbosity"] >= 1:
            traceback.print_exc()
        msg = " ".join(str(exc).split()) or type(exc).__name__
        print(f"wsikit: error: {type(exc).__name__}: {msg} (run with -v for the traceback)", file=sys.stderr)
        return 1
    return int(result) if isinstance(result, int) else 0


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())
