"""Nucleus-outline datasets (instance masks) resampled to one working resolution (0.25 um/px, 40x).

Loaders (each returns :class:`Sample` objects; images RGB uint8, labels uint32 instances):

==========  ==============================================  =========================================
name        files                                           resolution used
==========  ==============================================  =========================================
monuseg     ``monuseg/{train,test}/*.tif`` + ImageScope XML  ``MicronsPerPixel`` of each XML (~0.25)
miccai2015  ``imageNN.png`` + ``imageNN_mask.txt``           20x -> 0.5 um/px, 40x -> 0.25 (its README)
dsb2018     ``stage1_train/<id>/{images,masks}``             not stated: taken as 40x (0.25 um/px)
nucls       ``images/*.png`` + ``labels/*.npz``              ~0.2 um/px (its SOURCE.md)
monuseg_ex  ``monuseg_extra/train/{images,labels}/*.png``,   train ~0.25 (SOURCE.md), test: each XML
            ``monuseg_extra/test/{images,annotations}``
==========  ==============================================  =========================================

(``monuseg_ex`` is ``load_dataset("monuseg_extra")``: not among :data:`DATASETS`, the shipped U-Net's
training data; a validation source.)

``../shared/data/monuseg/test`` is the held-out evaluation set: :func:`training_samples` never
includes it.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from wsikit._typing import PathLike
from wsikit.errors import ConfigError
from wsikit.io.annotations import (
    rasterize_polygons,
    read_ascii_label_mask,
    read_imagescope_xml,
    read_instance_pngs,
    read_npz_instances,
)

__all__ = [
    "Sample",
    "WORKING_MPP",
    "load_dataset",
    "training_samples",
    "resample",
    "resample_image",
    "resize_labels",
    "folder_mpp",
    "DATASETS",
]

log = logging.getLogger(__name__)

WORKING_MPP = 0.25
"""Working resolution of the segmenter, in microns per pixel (40x)."""

DATASETS = ("monuseg", "miccai2015", "dsb2018", "nucls")
"""The datasets the shipped U-Net trains on (:func:`training_samples`' default)."""
ALL_DATASETS = (*DATASETS, "monuseg_extra")
"""Every dataset :func:`load_dataset` reads (monuseg_extra: the rest of MoNuSeg 2018, for validation)."""
_MICCAI_20X = {f"image{i:02d}" for i in range(1, 8)}


@dataclass
class Sample:
    """One annotated image at the working resolution."""

    name: str
    image: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.uint32]
    source_mpp: float


def resample(
    image: npt.NDArray[np.uint8], labels: npt.NDArray[np.uint32], factor: float
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint32]]:
    """Scale an image (bilinear/area) and its labels (nearest) by ``factor`` (>1 enlarges)."""
    if abs(factor - 1.0) < 1e-3:
        return image, labels
    img = resample_image(image, factor)
    return img, resize_labels(labels, img.shape[:2])


def resample_image(image: npt.NDArray[np.uint8], factor: float) -> npt.NDArray[np.uint8]:
    """Scale an image by ``factor`` (>1 enlarges: bilinear; <1: area averaging); unchanged within 0.1%."""
    if abs(factor - 1.0) < 1e-3:
        return image
    from PIL import Image

    h, w = image.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.asarray(
        Image.fromarray(image).resize(size, Image.Resampling.BILINEAR if factor > 1 else Image.Resampling.BOX)
    )


def resize_labels(labels: npt.NDArray[np.integer], shape: tuple[int, ...]) -> npt.NDArray[np.uint32]:
    """Instance labels brought to ``shape`` (H, W) by nearest neighbour (uint32; unchanged when already so)."""
    if labels.shape == tuple(shape):
        return np.asarray(labels, np.uint32)
    from PIL import Image

    resized = Image.fromarray(labels.astype(np.int32)).resize((shape[1], shape[0]), Image.Resampling.NEAREST)
    return np.asarray(resized).astype(np.uint32)


def _rgb(path: Path) -> npt.NDArray[np.uint8]:
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("RGBA", "LA"):
            white = Image.new("RGBA", im.size, (255, 255, 255, 255))
            return np.asarray(Image.alpha_composite(white, im.convert("RGBA")).convert("RGB"))
        return np.asarray(im.convert("RGB"))


def _monuseg(root: Path, split: str) -> list[Sample]:
    import tifffile

    out = []
    for tif in sorted((root / "monuseg" / split).glob("*.tif")):
        ann = read_imagescope_xml(tif.with_suffix(".xml"))
        image = tifffile.imread(tif)[..., :3]
        labels = rasterize_polygons(ann.polygons, image.shape[:2])
        mpp = ann.mpp or WORKING_MPP
        img, lab = resample(image, labels, mpp / WORKING_MPP)
        out.append(Sample(f"monuseg/{split}/{tif.stem}", img, lab, mpp))
    return out


def _monuseg_extra(root: Path, split: str) -> list[Sample]:
    """The rest of MoNuSeg 2018: train = PNG + uint16 instance PNG (about 0.25 um/px), test = PNG + XML."""
    from PIL import Image

    folder = root / "monuseg_extra" / split
    if not (folder / "images").is_dir():
        raise ConfigError(f"{folder}: no images/ folder (split must be train or test)")
    out = []
    for png in sorted((folder / "images").glob("*.png")):
        image = _rgb(png)
        if split == "test":
            ann = read_imagescope_xml(folder / "annotations" / f"{png.stem}.xml")
            labels = rasterize_polygons(ann.polygons, image.shape[:2])
            mpp = ann.mpp or WORKING_MPP
        else:
            with Image.open(folder / "labels" / png.name) as im:
                labels = np.asarray(im).astype(np.uint32)
            mpp = WORKING_MPP
        img, lab = resample(image, labels, mpp / WORKING_MPP)
        out.append(Sample(f"monuseg_extra/{split}/{png.stem}", img, lab, mpp))
    return out


def _miccai(root: Path) -> list[Sample]:
    out = []
    folder = root / "miccai2015"
    for png in sorted(folder.glob("image??.png")):
        image = _rgb(png)
        mask = read_ascii_label_mask(folder / f"{png.stem}_mask.txt")
        if mask.shape != image.shape[:2]:
            log.warning("%s: mask %s does not match image %s; skipped", png, mask.shape, image.shape[:2])
            continue
        mpp = 0.5 if png.stem in _MICCAI_20X else 0.25
        img, lab = resample(image, mask.astype(np.uint32), mpp / WORKING_MPP)
        out.append(Sample(f"miccai2015/{png.stem}", img, lab, mpp))
    return out


def _dsb(root: Path) -> list[Sample]:
    out = []
    for case in sorted((root / "dsb2018" / "stage1_train").iterdir()):
        images = list((case / "images").glob("*.png"))
        if not images:
            continue
        image = _rgb(images[0])
        labels = read_instance_pngs(case / "masks", shape=image.shape[:2])
        out.append(Sample(f"dsb2018/{case.name[:12]}", image, labels, WORKING_MPP))
    return out


def _nucls(root: Path) -> list[Sample]:
    out = []
    for png in sorted(
        (root / "nucls" / "images").glob("*.png"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0)
    ):
        inst, _ = read_npz_instances(root / "nucls" / "labels" / f"{png.stem}.npz")
        img, lab = resample(_rgb(png), inst, 0.2 / WORKING_MPP)
        out.append(Sample(f"nucls/{png.stem}", img, lab, 0.2))
    return out


def load_dataset(name: str, root: PathLike, *, split: str = "train") -> list[Sample]:
    """Load one dataset (see the module table) at :data:`WORKING_MPP`.

    Raises
    ------
    ConfigError
        Unknown dataset name (the message lists the valid ones), or a missing folder.
    """
    base = Path(root)
    if name not in ALL_DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; valid: {', '.join(ALL_DATASETS)}")
    if not (base / name).is_dir():
        raise ConfigError(f"{base / name}: dataset folder not found")
    if name == "monuseg":
        return _monuseg(base, split)
    if name == "monuseg_extra":
        return _monuseg_extra(base, split)
    if name == "miccai2015":
        return _miccai(base)
    if name == "dsb2018":
        return _dsb(base)
    return _nucls(base)


def training_samples(
    root: PathLike, datasets: tuple[str, ...] = DATASETS, *, exclude: tuple[str, ...] = ()
) -> list[Sample]:
    """Every training sample of ``datasets`` (MoNuSeg's held-out test split is never included), less those
    whose name contains any string of ``exclude`` (images held out for validation, e.g. ``"TCGA-A7-A13F"``).

    Raises
    ------
    ConfigError
        An ``exclude`` entry that matches no image (a typo would silently train on the held-out image).
    """
    samples: list[Sample] = []
    for name in datasets:
        samples.extend(load_dataset(name, root, split="train"))
    for pattern in exclude:
        if not any(pattern in s.name for s in samples):
            raise ConfigError(
                f"`exclude` entry {pattern!r} matches no training image of {', '.join(datasets)}"
            )
    return [s for s in samples if not any(pattern in s.name for pattern in exclude)]


def folder_mpp(folder: PathLike, default: float = WORKING_MPP) -> float:
    """Microns per pixel of a labelled folder: its ``manifest.json``'s ``mpp``, else ``default`` (0.25: the
    NuCLS/MoNuSAC and segmentation exports)."""
    m = Path(folder) / "manifest.json"
    if m.is_file():
        try:
            return float(json.loads(m.read_text())["mpp"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{m}: no readable 'mpp' ({exc})") from exc
    return default
