"""BRCA-M2C (Abousamra et al., ICCV 2021): TCGA breast patches at about 0.5 um/px with cell-type points.

Layout (``DATA/brca_m2c``): ``images/NAME.png`` (RGB, 465-505 px square), ``labels/NAME_gt_class_coords.txt``
(one nucleus a line: ``Y X CLASS``, 0-based row and column of the PNG; 1 lymphocyte, 2 tumor/epithelial,
3 stromal), ``train.txt`` / ``val.txt`` (PNG file names, split by patient). Each PNG is a 1000 px region
of the source slide downsampled to its width; the file name's last number is about 4x the source um/px,
so the PNG's um/px is ``number / 4 * 1000 / width``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from wsikit._typing import PathLike
from wsikit.errors import ConfigError, ShapeError

__all__ = [
    "BRCA_M2C_CLASSES",
    "BRCA_M2C_SPLITS",
    "PointSample",
    "brca_m2c_mpp",
    "load_brca_m2c",
    "read_brca_m2c_points",
]

BRCA_M2C_CLASSES = {1: "lymphocyte", 2: "tumor", 3: "stromal"}
"""Class ids of the points files -> the dataset's class names."""
BRCA_M2C_SPLITS = ("train", "val", "test")
"""The dataset's splits (by patient). This project's copy holds train and val only; its test split is kept
out of the project for held-out evaluation, and reads the same way where a user has it (``test.txt``)."""

_NAME = re.compile(r"^(?P<case>TCGA-[A-Z0-9]{2}-[A-Z0-9]{4})-.*_(?P<region>\d+)_(?P<scale>\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class PointSample:
    """One labelled image: RGB pixels, resolution and nucleus points of a named class.

    Attributes
    ----------
    name : str
        Image name (file stem).
    patient : str
        Patient (TCGA case) the image comes from; splits never share one.
    image : (H, W, 3) uint8
    mpp : float
        Microns per pixel of ``image``.
    x, y : (N,) float64
        Point positions in pixels of ``image`` (column, row).
    label : (N,) str
        Class name of each point (:data:`BRCA_M2C_CLASSES`).
    """

    name: str
    patient: str
    image: npt.NDArray[np.uint8]
    mpp: float
    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    label: npt.NDArray[np.str_]

    def __len__(self) -> int:
        return len(self.x)


def brca_m2c_mpp(name: str, width: int) -> float:
    """Microns per pixel of a BRCA-M2C image from its file name and width.

    Examples
    --------
    >>> round(brca_m2c_mpp("TCGA-A7-A0D9-01Z-00-DX2_18001_13001_1000_1000_0.9824", 491), 4)
    0.5002
    """
    m = _NAME.match(Path(name).stem if name.endswith(".png") else name)
    if m is None:
        raise ConfigError(f"{name}: not a BRCA-M2C image name (TCGA-..._REGION_SCALE)")
    if width <= 0:
        raise ShapeError(f"{name}: width must be positive, got {width}")
    return float(m["scale"]) / 4.0 * float(m["region"]) / width


def read_brca_m2c_points(
    path: PathLike, *, shape: tuple[int, int]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.str_]]:
    """Read a ``Y X CLASS`` points file of an image of ``shape`` (height, width).

    Returns
    -------
    x, y : (N,) float64
    label : (N,) str

    Raises
    ------
    ConfigError
        Missing file, a malformed line, an unknown class id or a point outside the image (the message
        names the file and the line).
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such points file")
    xs, ys, labels = [], [], []
    h, w = shape
    for i, line in enumerate(p.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise ConfigError(f"{p}: line {i} must be 'Y X CLASS', got {line.strip()!r}")
        try:
            y, x, c = float(parts[0]), float(parts[1]), int(parts[2])
        except ValueError:
            raise ConfigError(f"{p}: line {i} must be 'Y X CLASS' numbers, got {line.strip()!r}") from None
        if c not in BRCA_M2C_CLASSES:
            raise ConfigError(
                f"{p}: line {i}: unknown class id {c}; valid: "
                + ", ".join(f"{k} {v}" for k, v in BRCA_M2C_CLASSES.items())
            )
        if not (0 <= y < h and 0 <= x < w):
            raise ConfigError(f"{p}: line {i}: point (x={x:g}, y={y:g}) lies outside the {w}x{h} image")
        xs.append(x)
        ys.append(y)
        labels.append(BRCA_M2C_CLASSES[c])
    return np.array(xs, np.float64), np.array(ys, np.float64), np.array(labels, dtype=np.str_)


def load_brca_m2c(
    data: PathLike, split: str, *, exclude_patients_of: tuple[str, ...] = ()
) -> list[PointSample]:
    """Read one split of BRCA-M2C from ``data`` (the folder holding ``brca_m2c/``, or ``brca_m2c/`` itself).

    The dataset's splits are by slide, and two val patients (TCGA-A7-A0DB, TCGA-A7-A13G) also have a slide
    in train: ``exclude_patients_of=("val",)`` drops the images of patients that the named splits (where
    present) hold, which makes a train split disjoint from val by patient.

    Raises
    ------
    ConfigError
        Unknown split, missing folder or split list, an empty split, or a bad points file.
    """
    from PIL import Image

    if split not in BRCA_M2C_SPLITS:
        raise ConfigError(f"unknown BRCA-M2C split {split!r}; valid: {', '.join(BRCA_M2C_SPLITS)}")
    root = Path(data)
    if (root / "brca_m2c").is_dir():
        root = root / "brca_m2c"
    listing = root / f"{split}.txt"
    if not listing.is_file():
        raise ConfigError(f"{listing}: no such split list (is {root} the BRCA-M2C folder?)")
    names = [ln.strip() for ln in listing.read_text().splitlines() if ln.strip()]
    if not names:
        raise ConfigError(f"{listing}: the {split} split lists no image")
    excluded: set[str] = set()
    for other in exclude_patients_of:
        other_list = root / f"{other}.txt"
        if other != split and other_list.is_file():
            for ln in other_list.read_text().split():
                m = _NAME.match(Path(ln).stem)
                if m is not None:
                    excluded.add(m["case"])
    out = []
    for fname in names:
        png = root / "images" / fname
        if not png.is_file():
            raise ConfigError(f"{png}: listed in {listing.name} but missing")
        stem = Path(fname).stem
        try:
            with Image.open(png) as im:
                image = np.asarray(im.convert("RGB"))
        except OSError as exc:
            raise ConfigError(f"{png}: not a readable image ({exc})") from exc
        x, y, label = read_brca_m2c_points(
            root / "labels" / f"{stem}_gt_class_coords.txt", shape=image.shape[:2]
        )
        mpp = brca_m2c_mpp(stem, image.shape[1])  # raises on a name that is not BRCA-M2C's
        m = _NAME.match(stem)
        patient = m["case"] if m is not None else stem
        if patient in excluded:
            continue
        out.append(PointSample(stem, patient, image, mpp, x, y, label))
    return out
