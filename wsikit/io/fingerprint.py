"""Content fingerprints of input files (slides, weights): what a result was computed from."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["fingerprint_file", "fingerprint_slide"]

_EDGE = 8 << 20  # bytes hashed at each end of a large file


def fingerprint_file(path: Path) -> str:
    """sha256 of a file (its size and first/last 8 MiB for files over 64 MiB: slides can be many GB)."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as fh:
        if size <= 8 * _EDGE:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        else:
            h.update(fh.read(_EDGE))
            fh.seek(size - _EDGE)
            h.update(fh.read(_EDGE))
    return h.hexdigest()


def fingerprint_slide(path: Path) -> str:
    """Fingerprint of a slide file, or of every file of a slide folder (DICOM series, MRXS data)."""
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f.relative_to(path).as_posix().encode())
            h.update(fingerprint_file(f).encode())
        return h.hexdigest()
    files = [path]
    companion = path.with_suffix("")  # MRXS keeps its data in a folder named like the slide
    if path.suffix.lower() == ".mrxs" and companion.is_dir():
        files += sorted(p for p in companion.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for f in files:
        h.update(fingerprint_file(f).encode())
    return h.hexdigest()
