"""Readers of nucleus annotations in the formats of the public datasets (numpy out).

- Aperio ImageScope XML (MoNuSeg, MoNuSAC): one ``<Region>`` polygon per nucleus, the class in the
  ``<Attribute Name=...>`` of its ``<Annotation>``;
- ASCII label masks (MICCAI 2015): first line ``width height``, then one integer label per pixel, x fastest;
- one binary PNG per nucleus (Data Science Bowl 2018);
- NuCLS ``.npz`` instance/type maps and ``x,y,class`` point CSVs.

:func:`rasterize_polygons` turns polygons into a uint32 instance image (ids 1..N in file order).
"""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from wsikit._typing import PathLike
from wsikit.errors import ShapeError, SlideOpenError

__all__ = [
    "Polygon",
    "ImageScopeAnnotations",
    "read_imagescope_xml",
    "rasterize_polygons",
    "read_ascii_label_mask",
    "read_instance_pngs",
    "read_npz_instances",
    "read_points_csv",
    "Point",
]


@dataclass(frozen=True)
class Polygon:
    """A polygon in pixel coordinates: ``xy`` is (N, 2) float (x, y); ``label`` the class name or None."""

    xy: npt.NDArray[np.float64]
    label: str | None = None


@dataclass(frozen=True)
class ImageScopeAnnotations:
    """Polygons of an ImageScope XML file and its stated microns per pixel (None when absent)."""

    polygons: list[Polygon]
    mpp: float | None


def _fail(path: Path, problem: str) -> SlideOpenError:
    return SlideOpenError(f"{path}: {problem}")


def read_imagescope_xml(path: PathLike) -> ImageScopeAnnotations:
    """Read an Aperio ImageScope XML annotation file.

    Regions with fewer than 3 distinct vertices are skipped (they enclose no area).

    Raises
    ------
    SlideOpenError
        Missing file or malformed XML.

    Examples
    --------
    >>> import tempfile, os
    >>> xml = '''<Annotations MicronsPerPixel="0.25"><Annotation><Attributes><Attribute Name="Lymphocyte"/>
    ... </Attributes><Regions><Region><Vertices><Vertex X="1" Y="1"/><Vertex X="5" Y="1"/><Vertex X="5" Y="4"/>
    ... </Vertices></Region></Regions></Annotation></Annotations>'''
    >>> p = os.path.join(tempfile.mkdtemp(), "a.xml"); _ = open(p, "w").write(xml)
    >>> ann = read_imagescope_xml(p)
    >>> ann.mpp, len(ann.polygons), ann.polygons[0].label
    (0.25, 1, 'Lymphocyte')
    """
    p = Path(path)
    if not p.is_file():
        raise _fail(p, "no such annotation file")
    try:
        root = ET.parse(p).getroot()
    except ET.ParseError as exc:
        raise _fail(p, f"malformed XML ({exc})") from exc
    mpp_text = root.get("MicronsPerPixel")
    try:
        mpp = float(mpp_text) if mpp_text else None
    except ValueError:
        mpp = None
    polygons = []
    for annotation in root.iter("Annotation"):
        names = [a.get("Name") for a in annotation.iter("Attribute") if a.get("Name")]
        label = names[0] if names and names[0] != "Description" else (annotation.get("Name") or None)
        for region in annotation.iter("Region"):
            xy = np.array(
                [[float(v.get("X", "nan")), float(v.get("Y", "nan"))] for v in region.iter("Vertex")],
                dtype=float,
            )
            if len(xy) == 0 or not np.isfinite(xy).all() or len(np.unique(xy, axis=0)) < 3:
                continue
            polygons.append(Polygon(xy, label))
    return ImageScopeAnnotations(polygons, mpp if mpp and mpp > 0 else None)


def rasterize_polygons(polygons: list[Polygon], shape: tuple[int, int]) -> npt.NDArray[np.uint32]:
    """Rasterize polygons into an instance image (0 background, polygon i -> id i + 1).

    Where polygons overlap, the later one wins (annotation order), so every
    pixel holds one id. Polygons entirely outside the image leave no pixels.

    Examples
    --------
    >>> sq = Polygon(np.array([[1.0, 1.0], [4.0, 1.0], [4.0, 4.0], [1.0, 4.0]]))
    >>> rasterize_polygons([sq], (6, 6))[1:5, 1:5].min()
    np.uint32(1)
    """
    from skimage.draw import polygon as draw_polygon

    out = np.zeros(shape, np.uint32)
    for i, poly in enumerate(polygons):
        rr, cc = draw_polygon(poly.xy[:, 1], poly.xy[:, 0], shape=shape)  # type: ignore[no-untyped-call]
        out[rr, cc] = i + 1
    return out


def read_ascii_label_mask(path: PathLike) -> npt.NDArray[np.int32]:
    """Read a MICCAI 2015 ASCII label mask: ``width height`` then one label per pixel (x fastest).

    Raises
    ------
    SlideOpenError
        Missing file, bad header, or a pixel count that does not match the header.
    """
    p = Path(path)
    if not p.is_file():
        raise _fail(p, "no such mask file")
    with open(p) as fh:
        header = fh.readline().split()
        try:
            width, height = int(header[0]), int(header[1])
        except (IndexError, ValueError) as exc:
            raise _fail(p, f"first line must be 'width height', got {' '.join(header)!r}") from exc
        values = np.array(fh.read().split(), dtype=np.int64)
    if values.size != width * height:
        raise _fail(p, f"holds {values.size} labels for a {width}x{height} mask (truncated?)")
    return values.reshape(height, width).astype(np.int32)


def read_instance_pngs(folder: PathLike, shape: tuple[int, int] | None = None) -> npt.NDArray[np.uint32]:
    """Combine one binary PNG per nucleus (sorted by name) into an instance image (ids 1..N)."""
    from PIL import Image

    files = sorted(Path(folder).glob("*.png"))
    if not files:
        raise _fail(Path(folder), "no mask PNGs")
    out: npt.NDArray[np.uint32] | None = None
    for i, f in enumerate(files):
        pixels = np.asarray(Image.open(f))
        mask = np.asarray(pixels[..., :3].any(axis=-1) if pixels.ndim == 3 else pixels > 0, dtype=bool)
        if out is None:
            out = np.zeros(shape or mask.shape, np.uint32)
        if mask.shape != out.shape:
            raise ShapeError(f"{f}: mask {mask.shape} differs from {out.shape}")
        out[mask] = i + 1
    assert out is not None
    return out


def read_npz_instances(path: PathLike) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int32] | None]:
    """Read a NuCLS-style ``.npz`` with ``inst_map`` (and optional ``type_map``)."""
    p = Path(path)
    if not p.is_file():
        raise _fail(p, "no such label file")
    with np.load(p, allow_pickle=False) as data:
        if "inst_map" not in data:
            raise _fail(p, f"has no 'inst_map' (keys: {', '.join(data.files)})")
        inst = data["inst_map"].astype(np.uint32)
        types = data["type_map"].astype(np.int32) if "type_map" in data else None
    return inst, types


@dataclass(frozen=True)
class Point:
    """A labelled point: pixel (x, y) and a class name."""

    x: float
    y: float
    label: str


def read_points_csv(path: PathLike, *, names: dict[int, str] | None = None) -> list[Point]:
    """Read ``x,y,class`` rows (no header, or a header starting with ``x``); integer classes map through ``names``."""
    p = Path(path)
    if not p.is_file():
        raise _fail(p, "no such points file")
    points = []
    with open(p, newline="") as fh:
        for i, row in enumerate(csv.reader(fh)):
            if not row or (i == 0 and row[0].strip().lower() == "x"):
                continue
            if len(row) < 3:
                raise _fail(p, f"row {i + 1} must be x,y,class, got {','.join(row)!r}")
            label = row[2].strip()
            if names is not None and label.lstrip("-").isdigit():
                label = names.get(int(label), label)
            points.append(Point(float(row[0]), float(row[1]), label))
    return points
