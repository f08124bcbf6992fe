"""wsikit: whole-slide image toolkit for H&E breast histopathology.

The top-level package is light: it never imports torch or click at import time. The notebook API::

    import wsikit
    slide = wsikit.open_slide("slide.svs")                  # a Slide (wsikit.io)
    norm = wsikit.stain.CnnNormalizer.from_pretrained()      # numpy or torch in, the same out
    seg = wsikit.segment.Segmenter.from_pretrained()
    labels = seg.segment(image, mpp=0.25)                    # uint32 instances
    result = wsikit.run_slide("slide.svs", out="slide.wsikit", stain="cnn")   # a RunResult
    res = wsikit.open_result("slide.wsikit")                 # ResultStore: .summary, .cells(), .labels()

Subpackages (``wsikit.io``, ``tiling``, ``stain``, ``segment``, ``vectorize``, ``classify``, ``datasets``,
``models``, ``pipeline``) are imported on first use. See docs/api.md.

Examples
--------
>>> import wsikit
>>> isinstance(wsikit.__version__, str)
True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from wsikit._version import __version__
from wsikit.errors import WsikitError

if TYPE_CHECKING:
    from wsikit._typing import PathLike
    from wsikit.io.result import ResultStore
    from wsikit.io.slide import Slide
    from wsikit.pipeline.run import RunResult


__all__ = ["WsikitError", "__version__", "open_slide", "open_result", "run_slide"]

_SUBPACKAGES = ("io", "tiling", "stain", "segment", "vectorize", "classify", "datasets", "models", "pipeline")


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"wsikit.{name}")
    raise AttributeError(f"module 'wsikit' has no attribute {name!r}")


def open_slide(path: PathLike, *, backend: str = "auto") -> Slide:
    """Open a whole-slide image or plain image; see :func:`wsikit.io.open_slide`."""
    from wsikit.io import open_slide as _open_slide

    return _open_slide(path, backend=backend)  # type: ignore[arg-type]


def open_result(path: PathLike) -> ResultStore:
    """Open a finished ``wsikit run`` folder; see :class:`wsikit.io.result.ResultStore`."""
    from wsikit.io.result import ResultStore

    return ResultStore(path)


def run_slide(
    slide: PathLike, out: PathLike | None = None, *, overwrite: bool = False, **options: Any
) -> RunResult:
    """Run the whole pipeline on one slide (``wsikit run``); returns a :class:`~wsikit.pipeline.run.RunResult`.

    ``options`` are the fields of :class:`wsikit.pipeline.run.RunConfig` (``stain="cnn"``, ``device="cuda"``,
    ``workers=4``, ``slide_mpp=0.25``, ...); ``out`` defaults to ``SLIDE_NAME.wsikit`` beside the slide. A
    finished output of the same inputs and options is returned as it is (``skipped=True``).
    """
    from pathlib import Path

    from wsikit.pipeline.run import RunConfig, RunResult
    from wsikit.pipeline.run import run_slide as _run_slide

    summary = _run_slide(slide, out, config=RunConfig(**options), overwrite=overwrite)
    skipped = bool(summary.pop("skipped", False))
    path = Path(summary.pop("out"))
    return RunResult(out=path, summary=summary, skipped=skipped)
