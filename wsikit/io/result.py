"""A ``wsikit run`` folder: its layout (:class:`RunFolder`, the one place that names its files) and the
reader of a finished one (:class:`ResultStore`, opened with :func:`open_result`).

The folder ``SLIDE.wsikit`` holds ``result.zarr`` (OME-Zarr: the slide's overview and the nucleus / cell-type
labels), ``cells.parquet`` (one row per nucleus), ``nuclei.geojson``, ``summary.json``, the maps, the report
and ``DONE`` (written last). This class is the one reader of that layout for notebook users.

Examples
--------
>>> res = open_result("slide.wsikit")                   # doctest: +SKIP
>>> res.summary["nuclei"], res.summary["classes"]["lymphocyte"]["count"]   # doctest: +SKIP
>>> cells = res.cells()                                  # GeoDataFrame, one row per nucleus  # doctest: +SKIP
>>> types = res.labels("cell_types", level=2)            # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt

from wsikit._typing import PathLike
from wsikit.errors import StoreError
from wsikit.io.omezarr import CLASS_PROBABILITY, IMAGE, NucleusSource, OmeZarrStore

if TYPE_CHECKING:
    import geopandas

__all__ = ["ResultStore", "RunFolder", "open_result"]


@dataclass(frozen=True)
class RunFolder:
    """The files of a ``wsikit run`` output folder (or of its ``.work`` staging folder, which holds the same
    names until the run moves them up): the one place that names them.

    Examples
    --------
    >>> f = RunFolder(Path("slide.wsikit"))
    >>> f.store.name, f.work.root.name, f.work.parts.as_posix()
    ('result.zarr', '.work', 'slide.wsikit/.work/parts')
    >>> f.is_output(Path("density_lymphocyte.png")), f.is_output(f.work.parts)
    (True, False)
    """

    root: Path

    STORE: ClassVar[str] = "result.zarr"
    SUMMARY: ClassVar[str] = "summary.json"
    CELLS: ClassVar[str] = "cells.parquet"
    GEOJSON: ClassVar[str] = "nuclei.geojson"
    CELL_TYPE_MAP: ClassVar[str] = "cell_types.png"
    REPORT: ClassVar[str] = "report.html"
    DONE: ClassVar[str] = "DONE"
    WORK: ClassVar[str] = ".work"
    OUTPUT_FILES: ClassVar[tuple[str, ...]] = (GEOJSON, CELLS, SUMMARY, CELL_TYPE_MAP, REPORT)
    """The finished files besides the store and the density maps (``density_<class>.png``)."""

    @property
    def store(self) -> Path:
        return self.root / self.STORE

    @property
    def summary(self) -> Path:
        return self.root / self.SUMMARY

    @property
    def cells(self) -> Path:
        return self.root / self.CELLS

    @property
    def geojson(self) -> Path:
        return self.root / self.GEOJSON

    @property
    def report(self) -> Path:
        return self.root / self.REPORT

    @property
    def done(self) -> Path:
        """The marker a finished run writes last."""
        return self.root / self.DONE

    @property
    def work(self) -> RunFolder:
        """The staging folder of an unfinished run."""
        return RunFolder(self.root / self.WORK)

    @property
    def parts(self) -> Path:
        """Per-chunk tables of the classify stage (in the staging folder)."""
        return self.root / "parts"

    # resume state of an unfinished run (in the staging folder)
    @property
    def key(self) -> Path:
        """The hash of the inputs, models and options the staged work was made with."""
        return self.root / "KEY"

    @property
    def damage_log(self) -> Path:
        """Unreadable tiles met so far (kept across a resume)."""
        return self.root / "damaged.jsonl"

    @property
    def segment_journal(self) -> Path:
        """Pending nuclei and tiles done of an unfinished segment stage."""
        return self.root / "segment.journal.npz"

    @property
    def segment_stats(self) -> Path:
        """The segment stage's counts (written when it finishes)."""
        return self.root / "segment.json"

    def stage_done(self, stage: str) -> Path:
        """The marker a finished stage leaves (``segment``, ``normalized``)."""
        return self.root / f"{stage}.done"

    def density_map(self, cell_type: str) -> Path:
        return self.root / f"density_{cell_type}.png"

    def is_output(self, path: Path) -> bool:
        """Whether ``path``'s name is one of a finished run's outputs (moved up from the staging folder)."""
        name = path.name
        return name in (*self.OUTPUT_FILES, self.STORE) or (
            name.startswith("density_") and name.endswith(".png")
        )


class ResultStore:
    """A finished ``wsikit run`` output folder.

    Parameters
    ----------
    path : path-like
        The folder (``SLIDE.wsikit``).

    Raises
    ------
    StoreError
        The folder does not exist, is not a wsikit result, or is unfinished (no ``DONE``: a run is
        writing it, or one was interrupted and must be run again to finish).
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise StoreError(f"{self.path}: no such wsikit result folder")
        self.folder = folder = RunFolder(self.path)
        """The folder's files (:class:`RunFolder`)."""
        if not folder.store.is_dir() or not folder.summary.is_file():
            if folder.work.root.is_dir():
                raise StoreError(
                    f"{self.path}: unfinished run (no DONE); run `wsikit run` again to finish it"
                )
            raise StoreError(f"{self.path}: not a wsikit run result (no result.zarr / summary.json)")
        if not folder.done.is_file():
            raise StoreError(f"{self.path}: unfinished run (no DONE); run `wsikit run` again to finish it")

    def __repr__(self) -> str:
        s = self.summary
        return f"<ResultStore {self.path.name!r} {s.get('nuclei')} nuclei, slide {s.get('slide_id')!r}>"

    @cached_property
    def summary(self) -> dict[str, Any]:
        """``summary.json``: counts, densities, class statistics, damaged regions, models, options."""
        return dict(json.loads(self.folder.summary.read_text()))

    @cached_property
    def store(self) -> OmeZarrStore:
        """The OME-Zarr store (``result.zarr``), read-only."""
        return OmeZarrStore.open(self.folder.store)

    @property
    def mpp(self) -> float:
        """Level-0 microns per pixel the run used."""
        return float(self.summary["mpp"])

    def levels(self) -> int:
        """Number of pyramid levels of the labels (level k is downsampled 2^k)."""
        return self.store.levels

    def labels(
        self,
        name: str = "nuclei",
        *,
        level: int = 0,
        x: int = 0,
        y: int = 0,
        width: int | None = None,
        height: int | None = None,
    ) -> npt.NDArray[Any]:
        """A region of label image ``name`` ("nuclei": uint32 ids; "cell_types": uint8, 1 epithelial,
        2 lymphocyte, 3 fibroblast) at ``level``; ``x, y, width, height`` in that level's pixels (default:
        the whole level)."""
        arr = self.store.array(name, level)
        h, w = arr.shape
        width = w - x if width is None else width
        height = h - y if height is None else height
        return np.asarray(self.store.read_region(name, x=x, y=y, width=width, height=height, level=level))

    @property
    def source(self) -> NucleusSource:
        """Where the nuclei came from: the slide, its id, bounds offset, um/px, and the cell-type names."""
        return self.store.source()

    def class_probability(self) -> npt.NDArray[np.float64] | None:
        """Per nucleus id, the probability of the class it was given (index = nucleus id, NaN for ids with
        no nucleus), or None for a result without cell types."""
        values = self.store.nucleus_values(CLASS_PROBABILITY)
        return None if values is None else np.asarray(values, np.float64)

    def overview(self, *, level: int = 0) -> npt.NDArray[np.uint8]:
        """The slide image stored with the labels, (H, W, 3) uint8: an overview at 1/8 of level 0 (or the
        normalized slide at full resolution after ``--save-normalized``), downsampled 2^level more."""
        h, w = self.store.image_shape(level)
        return np.moveaxis(self.store.read_region(IMAGE, x=0, y=0, width=w, height=h, level=level), 0, -1)

    def cells(self, columns: list[str] | None = None) -> geopandas.GeoDataFrame:
        """``cells.parquet`` as a GeoDataFrame: one row per nucleus (id, centroid, measurements, class,
        class probability, polygon in level-0 pixels)."""
        import geopandas

        return geopandas.read_parquet(self.folder.cells, columns=columns)


def open_result(path: PathLike) -> ResultStore:
    """Open a finished ``wsikit run`` folder (see :class:`ResultStore`)."""
    return ResultStore(path)
