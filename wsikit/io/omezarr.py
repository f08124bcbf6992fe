"""OME-Zarr (NGFF 0.5, Zarr v3) image stores with a ``labels/`` group.

Layout written by :class:`OmeZarrStore`::

    result.zarr/                 image group: ome.multiscales (axes c, y, x), ome.omero
    result.zarr/0, 1, ...        RGB pyramid, (3, H/d, W/d) uint8, level k downsampled d * 2^k
    result.zarr/labels/          ome.labels = ["nuclei", ...]
    result.zarr/labels/nuclei/   label image: ome.multiscales (axes y, x) + ome.image-label
    result.zarr/labels/nuclei/0  (H, W) uint32, same number of levels as the image

``d`` is :attr:`OmeZarrStore.image_downsample`: 1 when the store holds the image at full resolution
(``wsikit normalize``, ``wsikit run --save-normalized``), 8 (:data:`OVERVIEW_DOWNSAMPLE`) when the image is
an overview of the slide beside full-resolution labels (``wsikit run`` and ``wsikit segment`` by default,
so the slide is not copied). Every array the metadata declares exists, and the scale transforms put the
image and the labels on the same physical grid (micrometres, or level-0 pixels without mpp), so
ome-zarr-py's Reader, napari-ome-zarr and the ome-zarr-models validator open the store and overlay the
labels on the image. Image arrays start white (their fill value) until written.

Writes are chunk-aligned: every :meth:`OmeZarrStore.write_region` call must
cover whole chunks (or reach the array edge), so concurrent writers that own
disjoint chunks never touch the same file (partial writes of one chunk from
two processes lose data). Chunks equal to the fill value are not written.
Lower pyramid levels are built afterwards by :meth:`OmeZarrStore.build_pyramid`,
chunk by chunk, in bounded memory. A store can be reopened with ``mode="r+"``
to add labels or resume: :meth:`OmeZarrStore.written_chunks` tells which
chunks already exist.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from wsikit._typing import PathLike
from wsikit.errors import OutputExistsError, ShapeError, StoreError

__all__ = [
    "OmeZarrStore",
    "NucleusSource",
    "NGFF_VERSION",
    "IMAGE",
    "OVERVIEW_DOWNSAMPLE",
    "CLASS_PROBABILITY",
]

NGFF_VERSION = "0.5"
IMAGE = "image"
"""Name used for the RGB image array in methods that take ``name``."""
OVERVIEW_DOWNSAMPLE = 8
"""Level-0 pixels per image pixel of a store whose image is an overview of the slide."""
CLASS_PROBABILITY = "nucleus_class_probability"
"""Name of the per-nucleus vector of class probabilities (:meth:`OmeZarrStore.nucleus_values`)."""

_RGB_CHANNELS = [
    {"label": "R", "color": "FF0000"},
    {"label": "G", "color": "00FF00"},
    {"label": "B", "color": "0000FF"},
]


@dataclass(frozen=True, kw_only=True)
class NucleusSource:
    """Where a store's nuclei came from, as ``wsikit segment`` and ``wsikit run`` record it (the one writer:
    :meth:`OmeZarrStore.set_source`; the one reader: :meth:`OmeZarrStore.source`).

    Attributes
    ----------
    slide : Path or None
        The source slide (absolute path at the time of the run).
    slide_id : str or None
        Its name without suffix (the ``slide_id`` of exported tables).
    bounds_offset : (float, float)
        Level-0 offset of the slide's bounds (OpenSlide ``bounds-x/y``), added to exported coordinates.
    slide_mpp : float or None
        Level-0 microns per pixel the run used.
    has_classes : bool
        Whether ``labels/cell_types`` and the class probabilities were written.
    cell_types : tuple of str
        Names of the classes 1..K of ``labels/cell_types``.
    """

    slide: Path | None = None
    slide_id: str | None = None
    bounds_offset: tuple[float, float] = (0.0, 0.0)
    slide_mpp: float | None = None
    has_classes: bool = False
    cell_types: tuple[str, ...] = ()


def _scale_transform(ndim: int, mpp: tuple[float, float] | None, factor: int) -> list[dict[str, Any]]:
    sy, sx = (mpp[1], mpp[0]) if mpp is not None else (1.0, 1.0)
    scale = [sy * factor, sx * factor]
    if ndim == 3:
        scale = [1.0, *scale]
    return [{"type": "scale", "scale": scale}]


def _axes(ndim: int, mpp: tuple[float, float] | None) -> list[dict[str, str]]:
    space: list[dict[str, str]] = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    if mpp is not None:
        for ax in space:
            ax["unit"] = "micrometer"
    return ([{"name": "c", "type": "channel"}] if ndim == 3 else []) + space


def _multiscales(
    name: str, ndim: int, levels: int, mpp: tuple[float, float] | None, method: str, downsample: int = 1
) -> list[Any]:
    return [
        {
            "name": name,
            "axes": _axes(ndim, mpp),
            "datasets": [
                {"path": str(k), "coordinateTransformations": _scale_transform(ndim, mpp, downsample * 2**k)}
                for k in range(levels)
            ],
            "type": method,
            "metadata": {"description": "2x2 " + method + " downsampling per level", "method": "wsikit"},
        }
    ]


def _level_shapes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    shapes = [(height, width)]
    for _ in range(levels - 1):
        h, w = shapes[-1]
        shapes.append((max(1, math.ceil(h / 2)), max(1, math.ceil(w / 2))))
    return shapes


def default_levels(height: int, width: int, chunk: int) -> int:
    """Levels halving the image until its longest side fits in one chunk (at least 1)."""
    return (
        max(1, math.ceil(math.log2(max(height, width, 1) / chunk)) + 1) if max(height, width) > chunk else 1
    )


class OmeZarrStore:
    """An OME-Zarr image group on disk, with its pyramid and label images.

    Create with :meth:`create`, reopen with :meth:`open`. Arrays are addressed
    by ``name``: :data:`IMAGE` for the RGB image, or a label name such as
    ``"nuclei"``.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.zarr")
    >>> store = OmeZarrStore.create(path, height=300, width=500, chunk=128, mpp=(0.5, 0.5))
    >>> store.levels
    3
    >>> store.create_label("nuclei", colors={1: (255, 0, 0, 255)})
    >>> store.write_region("nuclei", 0, 128, np.ones((128, 128), np.uint32))
    >>> store.build_pyramid("nuclei")
    >>> sorted(store.written_chunks("nuclei"))
    [(0, 1)]
    >>> OmeZarrStore.open(path).label_names
    ['nuclei']
    """

    def __init__(self, path: Path, group: Any, mode: str) -> None:
        self.path = path
        self._group = group
        self._mode = mode

    # ---------------------------------------------------------------- creation
    @classmethod
    def create(
        cls,
        path: PathLike,
        *,
        height: int,
        width: int,
        chunk: int = 1024,
        levels: int | None = None,
        mpp: tuple[float, float] | None = None,
        name: str = "image",
        image_downsample: int = 1,
        overwrite: bool = False,
    ) -> OmeZarrStore:
        """Create a new store for a ``height`` x ``width`` image.

        Parameters
        ----------
        path : str or os.PathLike
            Directory to create (conventionally ending in ``.zarr``).
        height, width : int
            Level-0 size in pixels.
        chunk : int
            Chunk side in pixels (chunks are ``(3, chunk, chunk)`` / ``(chunk, chunk)``).
        levels : int, optional
            Pyramid levels; default halves until the image fits one chunk.
        mpp : (float, float), optional
            Level-0 microns per pixel (x, y); axes get unit micrometer when given.
        name : str
            Name stored in the multiscales metadata.
        image_downsample : int
            Level-0 pixels per pixel of the RGB image: 1 stores the image at full
            resolution; a power of two stores an overview (e.g.
            :data:`OVERVIEW_DOWNSAMPLE` for a result whose full-resolution image
            stays in the slide). Labels are always full resolution.
        overwrite : bool
            Replace an existing store at ``path``.

        Raises
        ------
        OutputExistsError
            ``path`` exists and ``overwrite`` is False.
        ShapeError
            Non-positive sizes, chunk or levels, or ``image_downsample`` not a power of two.
        """
        import zarr

        p = Path(path)
        if height <= 0 or width <= 0:
            raise ShapeError(f"image size must be positive, got {height}x{width}")
        if chunk <= 0:
            raise ShapeError(f"chunk must be positive, got {chunk}")
        n_levels = levels if levels is not None else default_levels(height, width, chunk)
        if n_levels <= 0:
            raise ShapeError(f"levels must be positive, got {n_levels}")
        d = int(image_downsample)
        if d < 1 or d & (d - 1) or d != image_downsample:
            raise ShapeError(f"image_downsample must be a power of two >= 1, got {image_downsample}")
        if p.exists():
            if not overwrite:
                raise OutputExistsError(f"{p}: already exists (use overwrite to replace it)")
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        if not p.parent.exists():
            raise StoreError(f"{p}: parent directory {p.parent} does not exist")
        group = zarr.open_group(str(p), mode="w", zarr_format=3)
        ome: dict[str, Any] = {
            "version": NGFF_VERSION,
            "multiscales": _multiscales(name, 3, n_levels, mpp, "mean", d),
            "omero": {
                "rdefs": {"model": "color"},
                "channels": [
                    {**c, "active": True, "window": {"min": 0, "max": 255, "start": 0, "end": 255}}
                    for c in _RGB_CHANNELS
                ],
            },
        }
        group.attrs["ome"] = ome
        group.attrs["wsikit"] = {
            "height": height,
            "width": width,
            "chunk": chunk,
            "levels": n_levels,
            "mpp": list(mpp) if mpp is not None else None,
            "image_downsample": d,
        }
        store = cls(p, group, "w")
        ih, iw = max(1, math.ceil(height / d)), max(1, math.ceil(width / d))
        for k, (h, w) in enumerate(_level_shapes(ih, iw, n_levels)):
            store._create_array(str(k), (3, h, w), (3, chunk, chunk), np.uint8, 255)
        labels = group.create_group("labels")
        labels.attrs["ome"] = {"version": NGFF_VERSION, "labels": []}
        return store

    @classmethod
    def open(cls, path: PathLike, *, mode: Literal["r", "r+"] = "r") -> OmeZarrStore:
        """Open an existing store written by :meth:`create`.

        Raises
        ------
        StoreError
            ``path`` is missing or is not an OME-Zarr image written by wsikit.
        """
        import zarr

        p = Path(path)
        if not p.exists():
            raise StoreError(f"{p}: no such OME-Zarr store")
        try:
            group = zarr.open_group(str(p), mode=mode, zarr_format=3)
        except Exception as exc:
            raise StoreError(f"{p}: not a Zarr v3 group: {exc}") from exc
        ome = group.attrs.get("ome")
        if not isinstance(ome, dict) or "multiscales" not in ome or "wsikit" not in group.attrs:
            raise StoreError(f"{p}: not an OME-Zarr image written by wsikit (no ome.multiscales)")
        return cls(p, group, mode)

    # ---------------------------------------------------------------- metadata
    @property
    def _meta(self) -> dict[str, Any]:
        return dict(self._group.attrs["wsikit"])

    @property
    def attributes(self) -> dict[str, Any]:
        """wsikit's own attributes of the store (size, chunk, levels, mpp, and whatever was added)."""
        return self._meta

    def update_attributes(self, **values: Any) -> None:
        """Add JSON-serializable attributes (e.g. the source slide and its bounds offset)."""
        self._check_writable()
        self._group.attrs["wsikit"] = {**self._meta, **values}

    def set_source(self, source: NucleusSource) -> None:
        """Record where the nuclei came from (see :class:`NucleusSource`)."""
        self.update_attributes(
            slide=str(source.slide) if source.slide is not None else None,
            slide_id=source.slide_id,
            bounds_offset=[float(v) for v in source.bounds_offset],
            slide_mpp=source.slide_mpp,
            has_classes=source.has_classes,
            cell_types=list(source.cell_types),
        )

    def source(self) -> NucleusSource:
        """Where the nuclei came from, as recorded by :meth:`set_source` (defaults for older stores)."""
        a = self._meta
        offset = a.get("bounds_offset") or (0.0, 0.0)
        return NucleusSource(
            slide=Path(a["slide"]) if a.get("slide") else None,
            slide_id=str(a["slide_id"]) if a.get("slide_id") else None,
            bounds_offset=(float(offset[0]), float(offset[1])),
            slide_mpp=float(a["slide_mpp"]) if a.get("slide_mpp") is not None else None,
            has_classes=bool(a.get("has_classes", False)),
            cell_types=tuple(a.get("cell_types") or ()),
        )

    @property
    def height(self) -> int:
        """Level-0 height in pixels."""
        return int(self._meta["height"])

    @property
    def width(self) -> int:
        """Level-0 width in pixels."""
        return int(self._meta["width"])

    @property
    def chunk(self) -> int:
        """Chunk side in pixels."""
        return int(self._meta["chunk"])

    @property
    def levels(self) -> int:
        """Number of pyramid levels (the same for the image and every label)."""
        return int(self._meta["levels"])

    @property
    def mpp(self) -> tuple[float, float] | None:
        """Level-0 microns per pixel (x, y), or None."""
        mpp = self._meta["mpp"]
        return (float(mpp[0]), float(mpp[1])) if mpp else None

    @property
    def image_downsample(self) -> int:
        """Level-0 pixels per pixel of the stored RGB image (1: full resolution; else an overview)."""
        return int(self._meta.get("image_downsample", 1))

    @property
    def has_image(self) -> bool:
        """Whether the store holds the RGB image at full resolution (not only an overview)."""
        return self.image_downsample == 1

    def image_shape(self, level: int = 0) -> tuple[int, int]:
        """(height, width) of the RGB image at ``level`` (level-0 size / image_downsample / 2^level)."""
        d = self.image_downsample
        shapes = _level_shapes(
            max(1, math.ceil(self.height / d)), max(1, math.ceil(self.width / d)), self.levels
        )
        if not 0 <= level < self.levels:
            raise ShapeError(f"level must be in [0, {self.levels - 1}], got {level}")
        return shapes[level]

    @property
    def label_names(self) -> list[str]:
        """Names of the label images under ``labels/``."""
        return list(self._group["labels"].attrs["ome"].get("labels", []))

    def label_metadata(self, name: str) -> dict[str, Any]:
        """The ``image-label`` metadata (colors, properties, source) of label ``name``."""
        self._check_label(name)
        return dict(self._group[f"labels/{name}"].attrs["ome"]["image-label"])

    # ---------------------------------------------------------------- labels
    def create_label(
        self,
        name: str,
        *,
        dtype: npt.DTypeLike = np.uint32,
        colors: Mapping[int, Sequence[int]] | None = None,
        properties: Mapping[int, Mapping[str, Any]] | None = None,
    ) -> None:
        """Add a label image with the same shape, chunks and levels as the image.

        Parameters
        ----------
        name : str
            Label name (a path segment, e.g. ``"nuclei"``).
        dtype : numpy dtype
            Integer dtype (uint32 for instances, uint8 for classes).
        colors : mapping int -> (r, g, b, a), optional
            Display color per label value.
        properties : mapping int -> dict, optional
            Arbitrary properties per label value (e.g. ``{"name": "lymphocyte"}``).

        Raises
        ------
        StoreError
            The store is read-only, or ``name`` exists already.
        ShapeError
            ``dtype`` is not an unsigned/signed integer type or ``name`` is not a plain name.
        """
        self._check_writable()
        if not name or "/" in name or name in (".", ".."):
            raise ShapeError(f"label name must be a plain name, got {name!r}")
        dt = np.dtype(dtype)
        if dt.kind not in "ui":
            raise ShapeError(f"label dtype must be an integer type, got {dt}")
        if name in self.label_names:
            raise StoreError(f"{self.path}: label {name!r} exists already")
        labels = self._group["labels"]
        sub = labels.create_group(name)
        ome = {
            "version": NGFF_VERSION,
            "multiscales": _multiscales(name, 2, self.levels, self.mpp, "nearest"),
            "image-label": {"source": {"image": "../../"}},
        }
        sub.attrs["ome"] = ome
        for k, (h, w) in enumerate(_level_shapes(self.height, self.width, self.levels)):
            self._create_array(f"labels/{name}/{k}", (h, w), (self.chunk, self.chunk), dt, 0)
        self.set_label_metadata(name, colors=colors, properties=properties)
        labels_ome = dict(labels.attrs["ome"])
        labels_ome["labels"] = [*labels_ome.get("labels", []), name]
        labels.attrs["ome"] = labels_ome

    def remove_label(self, name: str) -> None:
        """Delete label ``name`` if present, listed or not (a label left half-created by a crash too)."""
        self._check_writable()
        if not name or "/" in name or name in (".", ".."):
            raise ShapeError(f"label name must be a plain name, got {name!r}")
        labels = self._group["labels"]
        labels_ome = dict(labels.attrs["ome"])
        if name in labels_ome.get("labels", []):
            labels_ome["labels"] = [n for n in labels_ome["labels"] if n != name]
            labels.attrs["ome"] = labels_ome
        shutil.rmtree(self.path / "labels" / name, ignore_errors=True)

    def write_nucleus_values(self, name: str, values: npt.NDArray[np.generic]) -> None:
        """Store a per-nucleus vector (``values[i]`` belongs to nucleus id ``i``; e.g. the class probability)
        beside the labels, replacing one of that name. Viewers ignore it; :meth:`nucleus_values` reads it."""
        self._check_writable()
        if not name or "/" in name or name in (".", "..", "labels") or name.isdigit():
            raise ShapeError(f"nucleus-value name must be a plain, non-numeric name, got {name!r}")
        v = np.asarray(values)
        if v.ndim != 1:
            raise ShapeError(f"nucleus values must be 1-D (one per nucleus id), got {v.shape}")
        arr = self._group.create_array(
            name, shape=v.shape, dtype=v.dtype, chunks=(max(1, min(len(v), 1 << 20)),), overwrite=True
        )
        arr[:] = v

    def nucleus_values(self, name: str) -> npt.NDArray[np.generic] | None:
        """The per-nucleus vector ``name`` written by :meth:`write_nucleus_values`, or None if absent."""
        if name not in self._group:
            return None
        return np.asarray(self._group[name][:])

    def set_label_metadata(
        self,
        name: str,
        *,
        colors: Mapping[int, Sequence[int]] | None = None,
        properties: Mapping[int, Mapping[str, Any]] | None = None,
    ) -> None:
        """Replace the colors and/or properties of label ``name`` (None keeps the current value)."""
        self._check_writable()
        node = self._group[f"labels/{name}"]
        ome = dict(node.attrs["ome"])
        image_label = dict(ome["image-label"])
        if colors is not None:
            image_label["colors"] = [
                {"label-value": int(v), "rgba": [int(c) for c in (list(rgba) + [255])[:4]]}
                for v, rgba in sorted(colors.items())
            ]
        if properties is not None:
            image_label["properties"] = [
                {"label-value": int(v), **{str(k): val for k, val in props.items()}}
                for v, props in sorted(properties.items())
            ]
        if "colors" in image_label and "properties" in image_label:
            cv = sorted(c["label-value"] for c in image_label["colors"])
            pv = sorted(p["label-value"] for p in image_label["properties"])
            if cv != pv:
                raise ShapeError(
                    f"label {name!r}: colors are given for values {cv} but properties for {pv}; "
                    "NGFF readers require the same label values in both"
                )
        ome["image-label"] = image_label
        node.attrs["ome"] = ome

    # ---------------------------------------------------------------- arrays
    def _create_array(
        self, path: str, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: npt.DTypeLike, fill: int
    ) -> None:
        import zarr

        zarr.create_array(
            store=str(self.path),
            name=path,
            shape=shape,
            chunks=tuple(
                min(c, s) if i == 0 and len(shape) == 3 else c
                for i, (c, s) in enumerate(zip(chunks, shape, strict=True))
            ),
            dtype=dtype,
            fill_value=fill,
            dimension_names=("c", "y", "x") if len(shape) == 3 else ("y", "x"),
            config={"write_empty_chunks": False},
        )

    def _array_path(self, name: str, level: int) -> str:
        if not 0 <= level < self.levels:
            raise ShapeError(f"level must be in [0, {self.levels - 1}], got {level}")
        if name == IMAGE:
            return str(level)
        self._check_label(name)
        return f"labels/{name}/{level}"

    def array(self, name: str = IMAGE, level: int = 0) -> Any:
        """The ``zarr.Array`` of ``name`` at ``level`` (opened with empty chunks skipped on write)."""
        import zarr

        return zarr.open_array(
            store=str(self.path),
            path=self._array_path(name, level),
            mode="r" if self._mode == "r" else "r+",
            config={"write_empty_chunks": False},
        )

    def _check_label(self, name: str) -> None:
        if name not in self.label_names:
            known = ", ".join(self.label_names) or "none"
            raise StoreError(f"{self.path}: no label {name!r} (labels: {known})")

    def _check_writable(self) -> None:
        if self._mode == "r":
            raise StoreError(f"{self.path}: opened read-only; reopen with mode='r+' to write")

    def write_region(self, name: str, y: int, x: int, data: npt.NDArray[Any]) -> None:
        """Write a chunk-aligned block at level 0.

        Parameters
        ----------
        name : str
            :data:`IMAGE` (``data`` is (3, h, w) or (h, w, 3) uint8) or a label name ((h, w)).
        y, x : int
            Top-left of the block; multiples of :attr:`chunk`. Image blocks are in the image's
            own pixels (level-0 pixels / :attr:`image_downsample`).
        data : numpy.ndarray
            The block. Its far edges must be chunk multiples too, or reach the array edge.

        Raises
        ------
        ShapeError
            The block is not chunk-aligned, out of bounds, or of the wrong shape or dtype.
        """
        self._check_writable()
        arr = self.array(name, 0)
        if name == IMAGE:
            if data.ndim == 3 and data.shape[-1] == 3 and data.shape[0] != 3:
                data = np.moveaxis(data, -1, 0)
            if data.ndim != 3 or data.shape[0] != 3:
                raise ShapeError(f"image block must be (3, h, w) or (h, w, 3), got {data.shape}")
        elif data.ndim != 2:
            raise ShapeError(f"label block must be (h, w), got {data.shape}")
        if data.dtype != arr.dtype:
            if not np.can_cast(data.dtype, arr.dtype, casting="safe"):
                raise ShapeError(f"{name}: block dtype {data.dtype} does not fit array dtype {arr.dtype}")
            data = data.astype(arr.dtype)
        h, w = data.shape[-2:]
        c = self.chunk
        H, W = self.image_shape(0) if name == IMAGE else (self.height, self.width)
        if y < 0 or x < 0 or y + h > H or x + w > W:
            raise ShapeError(f"block {h}x{w} at (y={y}, x={x}) is outside the {H}x{W} array")
        aligned = (
            y % c == 0
            and x % c == 0
            and ((y + h) % c == 0 or y + h == H)
            and ((x + w) % c == 0 or x + w == W)
        )
        if not aligned:
            raise ShapeError(
                f"block {h}x{w} at (y={y}, x={x}) is not aligned to {c}-px chunks; "
                "concurrent writers must own whole chunks"
            )
        if name == IMAGE:
            arr[:, y : y + h, x : x + w] = data
        else:
            arr[y : y + h, x : x + w] = data

    def read_region(
        self, name: str, *, x: int, y: int, width: int, height: int, level: int = 0
    ) -> npt.NDArray[Any]:
        """Read a block (any alignment) of ``name`` at ``level``: labels (height, width), the image (3, height,
        width).

        Keyword arguments only, named as :meth:`wsikit.io.Slide.read_region`'s ``(x, y)`` and ``(width,
        height)``, so that the two readers cannot be called in each other's order. Coordinates are pixels of
        ``level``; the image's own pixels for ``name="image"`` (see :meth:`image_shape`).
        """
        arr = self.array(name, level)
        if name == IMAGE:
            return np.asarray(arr[:, y : y + height, x : x + width])
        return np.asarray(arr[y : y + height, x : x + width])

    def written_chunks(self, name: str = IMAGE, level: int = 0) -> set[tuple[int, int]]:
        """(row, col) chunk indices present on disk for ``name`` at ``level`` (resume bookkeeping).

        Chunks that were all fill value are not stored and so not listed.
        """
        root = self.path / self._array_path(name, level) / "c"
        out: set[tuple[int, int]] = set()
        if not root.is_dir():
            return out
        for dirpath, _, files in os.walk(root):
            rel = Path(dirpath).relative_to(root).parts
            for f in files:
                idx = [int(p) for p in (*rel, f)]
                out.add((idx[-2], idx[-1]))
        return out

    # ---------------------------------------------------------------- pyramid
    def build_pyramid(self, name: str = IMAGE, *, workers: int | None = None) -> None:
        """Compute levels 1.. of ``name`` from level 0, chunk by chunk.

        Images: the 2x2 mean of the level above. Labels: level k takes the level-0 pixel at the centre of
        each 2^k x 2^k block (nearest-neighbour sampling at pixel centres, as ome-zarr-py's own scaler),
        so label values stay valid ids and stay centred on the image's pixels at every level (taking the
        top-left pixel of each 2x2 block level after level moves them (2^k - 1) / 2 level-0 pixels up and
        left). Memory per worker is about four chunks.
        """
        self._check_writable()
        c = self.chunk
        full_h, full_w = self.array(name, 0).shape[-2:]
        for k in range(1, self.levels):
            src = self.array(name, k - 1 if name == IMAGE else 0)
            dst = self.array(name, k)
            h, w = dst.shape[-2:]
            blocks = [(r, q) for r in range(0, h, c) for q in range(0, w, c)]

            def work(
                block: tuple[int, int], src: Any = src, dst: Any = dst, h: int = h, w: int = w, f: int = 2**k
            ) -> None:
                r, q = block
                bh, bw = min(c, h - r), min(c, w - q)
                if name == IMAGE:
                    part = np.asarray(src[:, 2 * r : 2 * (r + bh), 2 * q : 2 * (q + bw)])
                    part = _pad_to(part, 2 * bh, 2 * bw)
                    out = part.reshape(3, bh, 2, bw, 2).astype(np.uint16).sum(axis=(2, 4))
                    dst[:, r : r + bh, q : q + bw] = ((out + 2) // 4).astype(np.uint8)
                else:
                    rows = np.minimum(np.arange(r, r + bh) * f + f // 2, full_h - 1)
                    cols = np.minimum(np.arange(q, q + bw) * f + f // 2, full_w - 1)
                    # only the level-0 chunks under this block are read (a bounding slice, then sampled)
                    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
                    part = np.asarray(src[y0:y1:f, x0:x1:f])
                    dst[r : r + bh, q : q + bw] = _pad_to(part, bh, bw)

            with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
                list(pool.map(work, blocks))

    def chunk_grid(self) -> list[tuple[int, int, int, int]]:
        """Level-0 chunk boxes (y, x, h, w) in row-major order: the units of work for writers."""
        c = self.chunk
        return [
            (y, x, min(c, self.height - y), min(c, self.width - x))
            for y in range(0, self.height, c)
            for x in range(0, self.width, c)
        ]


def _pad_to(part: npt.NDArray[Any], h: int, w: int) -> npt.NDArray[Any]:
    ph, pw = h - part.shape[-2], w - part.shape[-1]
    if ph <= 0 and pw <= 0:
        return part
    pad = [(0, 0)] * (part.ndim - 2) + [(0, max(ph, 0)), (0, max(pw, 0))]
    return np.pad(part, pad, mode="edge")
