"""``open_slide``: pick the right backend for a file and open it, or say clearly why not."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from wsikit._logging import get_logger
from wsikit._typing import PathLike
from wsikit.errors import SlideOpenError, UnsupportedFormatError
from wsikit.io.slide import Slide

__all__ = ["open_slide", "BACKENDS"]

log = get_logger(__name__)

Backend = Literal["auto", "openslide", "tifffile", "dicom", "image"]
BACKENDS: tuple[str, ...] = ("auto", "openslide", "tifffile", "dicom", "image")

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _sniff(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(132)


def _validate_path(path: Path) -> None:
    if not path.exists():
        raise SlideOpenError(f"{path}: no such file")
    if path.is_dir():
        if any(p.suffix.lower() == ".dcm" for p in path.iterdir()):
            return
        raise SlideOpenError(
            f"{path}: is a directory, not a slide file (a DICOM folder must hold .dcm files)"
        )
    if not os.access(path, os.R_OK):
        raise SlideOpenError(f"{path}: permission denied")
    if path.stat().st_size == 0:
        raise SlideOpenError(f"{path}: file is empty")


def open_slide(path: PathLike, *, backend: Backend = "auto") -> Slide:
    """Open a whole-slide image or plain image as a :class:`~wsikit.io.Slide`.

    Backends are tried in this order when ``backend="auto"``:

    1. DICOM WSI (a ``.dcm`` instance or a folder of them) - pydicom.
    2. Generic TIFFs, tiled or flat, including OME-TIFF pyramids - tifffile (OpenSlide if tifffile cannot).
    3. Vendor formats OpenSlide recognises (svs, ndpi, mrxs, scn, vms, bif, ...); the tiles of Aperio JPEG
       and JPEG 2000 (RGB) files are decoded by tifffile when it gives OpenSlide's pixels (checked at open;
       several times faster).
    4. Plain images (png, jpg, bmp, ...) as one-level slides - Pillow.

    TIFF-based files are checked for truncation before use, so a partial copy
    fails here rather than on some tile later.

    Parameters
    ----------
    path : str or os.PathLike
        The slide file, or a folder holding one DICOM series.
    backend : {"auto", "openslide", "tifffile", "dicom", "image"}
        Force one backend instead of detecting.

    Returns
    -------
    Slide
        An open slide; use it as a context manager to close it.

    Raises
    ------
    SlideOpenError
        Missing path, directory, empty, unreadable, truncated or corrupt file.
    UnsupportedFormatError
        A readable file that no backend recognises (e.g. a text file named .svs).

    Examples
    --------
    >>> from wsikit.io import open_slide
    >>> from wsikit.sample import sample_slide_path
    >>> with open_slide(sample_slide_path()) as slide:
    ...     slide.dimensions, slide.mpp
    ((2220, 2967), (0.499, 0.499))
    """
    p = Path(path)
    _validate_path(p)
    if backend not in BACKENDS:
        raise SlideOpenError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")

    from wsikit.io._dicom_backend import DicomSlide, is_dicom_file
    from wsikit.io._image_backend import ImageSlide
    from wsikit.io._openslide_backend import OpenSlideSlide, openslide_format
    from wsikit.io._tiff_backend import TiffSlide, check_tiff_integrity

    if backend == "dicom" or (backend == "auto" and (p.is_dir() or is_dicom_file(p))):
        return DicomSlide(p)
    head = _sniff(p)
    is_tiff = head[:4] in _TIFF_MAGIC
    if is_tiff and backend in ("auto", "openslide", "tifffile"):
        check_tiff_integrity(p)  # a truncated copy fails here, not on some tile later
    if backend == "openslide":
        return OpenSlideSlide(p, tifffile_tiles=False)  # forced: OpenSlide decodes every tile
    if backend == "tifffile":
        return TiffSlide(p)
    if backend == "image":
        return ImageSlide(p)
    vendor = openslide_format(p)
    # Generic TIFFs go to tifffile: it reads OME-TIFF SubIFD pyramids and OME metadata (OpenSlide ignores both)
    # and decodes a 512 px region of a tiled JPEG TIFF about 2x faster (docs/benchmarks.md, "Reading").
    if vendor == "generic-tiff":
        try:
            return TiffSlide(p)
        except (SlideOpenError, UnsupportedFormatError):
            log.debug("%s: tifffile cannot read this generic TIFF; trying OpenSlide", p)
    # Flat (untiled) TIFFs are declined by OpenSlide and go to tifffile, which reads strips lazily.
    if vendor is not None:
        log.debug("%s: OpenSlide format %s", p, vendor)
        try:
            return OpenSlideSlide(p)
        except SlideOpenError:
            # e.g. a generic TIFF in a compression OpenSlide does not decode (JPEG 2000): tifffile may
            if vendor != "generic-tiff":
                raise
            log.debug("%s: OpenSlide cannot open this generic TIFF; trying tifffile", p)
    if is_tiff:
        return TiffSlide(p)
    if p.suffix.lower() in {".svs", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif", ".svslide"}:
        raise UnsupportedFormatError(
            f"{p}: not a valid {p.suffix.lower()} slide (OpenSlide does not recognise its contents)"
        )
    return ImageSlide(p)
