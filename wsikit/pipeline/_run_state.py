"""Bookkeeping of ``wsikit run``: input fingerprints, the DONE marker, and the per-output-folder lock."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from wsikit.errors import OutputExistsError
from wsikit.io.fingerprint import fingerprint_file, fingerprint_slide
from wsikit.io.result import RunFolder

__all__ = ["fingerprint_file", "fingerprint_slide", "RunLock", "read_done", "write_done", "key_of"]


def key_of(fingerprint: dict[str, Any]) -> str:
    """One hash of the whole fingerprint (inputs, models, options)."""
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()


def read_done(out: Path) -> dict[str, Any] | None:
    """The DONE marker of a finished run, or None."""
    p = RunFolder(out).done
    if not p.is_file():
        return None
    try:
        data: dict[str, Any] = json.loads(p.read_text())
        return data
    except ValueError:
        return None


def write_done(out: Path, fingerprint: dict[str, Any]) -> None:
    """Write the DONE marker (atomically; the last file a run writes)."""
    tmp = out / ".DONE.partial"
    tmp.write_text(json.dumps({"key": key_of(fingerprint), **fingerprint}, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, RunFolder(out).done)


class RunLock:
    """An exclusive lock on an output folder (``OUT/.lock``, released when the process ends, even by SIGKILL)."""

    def __init__(self, out: Path) -> None:
        self.path = out / ".lock"
        self._fh: IO[str] | None = None

    def __enter__(self) -> RunLock:
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            owner = fh.read().strip() or "?"
            fh.close()
            raise OutputExistsError(
                f"{self.path.parent}: another wsikit run is writing this output (pid {owner}); wait for it or "
                "choose another `out`"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self.path.unlink(missing_ok=True)
