"""Gather unlabelled nucleus crops from annotated-mask datasets, train the InfoGAN, name its clusters, write weights."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from wsikit._atomic import check_output_parent
from wsikit._typing import PathLike
from wsikit.classify.crops import CROP_MPP, nucleus_crops, standardize_stain
from wsikit.classify.naming import name_clusters
from wsikit.classify.train import ARCH, ClassifierTrainConfig, to_tensor
from wsikit.classify.train import train_classifier as _train
from wsikit.datasets.nuclei import WORKING_MPP, load_dataset
from wsikit.errors import ConfigError, ShapeError
from wsikit.models.registry import save_checkpoint
from wsikit.models.training_state import training_provenance
from wsikit.vectorize.measure import measure_nuclei

__all__ = [
    "gather_crops",
    "save_crops",
    "load_crops",
    "read_crops_file",
    "train_classifier",
    "UNLABELLED_DATASETS",
]

log = logging.getLogger(__name__)

UNLABELLED_DATASETS = ("monuseg", "miccai2015", "dsb2018")
"""Datasets whose nuclei train the classifier. NuCLS and MoNuSAC hold the cell-type labels of the
evaluation and are never used for training."""


MIN_AREA_UM2 = 10.0
"""Annotated objects smaller than this (fragments, debris; a lymphocyte nucleus is about 20-40 um^2) are not used."""


def gather_crops(
    data: PathLike,
    *,
    datasets: tuple[str, ...] = UNLABELLED_DATASETS,
    min_area_um2: float = MIN_AREA_UM2,
    whiten: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, npt.NDArray[Any]]:
    """Crops of every annotated nucleus of ``datasets`` (both MoNuSeg splits: no cell-type labels are used).

    Returns ``{"crops": (N, 40, 40, 3) uint8, "area": (N,), "eccentricity": (N,), "source": (N,) str,
    "whiten": (N,) bool}``;
    each field is Reinhard-standardized before cropping (:func:`standardize_stain`). ``whiten=False`` keeps
    the tissue around each nucleus (the shipped classifier's input whitens it).
    """
    for name in datasets:
        if name in ("nucls", "monusac"):
            raise ConfigError(f"{name} holds the evaluation labels and must not train the classifier")
    samples = []
    for name in datasets:
        samples.extend(load_dataset(name, data, split="train"))
        if name == "monuseg":
            samples.extend(load_dataset(name, data, split="test"))
    crops, area, ecc, source = [], [], [], []
    for i, s in enumerate(samples):
        image = standardize_stain(s.image)
        c, ids = nucleus_crops(image, s.labels, mpp=WORKING_MPP, whiten=whiten)
        m = measure_nuclei(image, s.labels, mpp=WORKING_MPP, ids=ids)
        keep = m["area"] >= min_area_um2
        crops.append(c[keep])
        area.append(m["area"][keep])
        ecc.append(m["eccentricity"][keep])
        source.extend([s.name] * int(keep.sum()))
        if progress is not None:
            progress(i + 1, len(samples))
    return {
        "crops": np.concatenate(crops) if crops else np.zeros((0, 40, 40, 3), np.uint8),
        "area": np.concatenate(area) if area else np.zeros(0),
        "eccentricity": np.concatenate(ecc) if ecc else np.zeros(0),
        "source": np.array(source),
        "whiten": np.full(len(source), whiten),
    }


def save_crops(path: PathLike, crops: dict[str, npt.NDArray[Any]]) -> Path:
    """Write gathered crops to ``path`` (.npz)."""
    p = Path(path)
    check_output_parent(p)
    tmp = p.with_name(p.name + ".partial.npz")
    np.savez_compressed(tmp, **crops)  # type: ignore[arg-type]
    tmp.replace(p)
    return p


def read_crops_file(path: Path) -> dict[str, npt.NDArray[Any]]:
    """Every array of a crops ``.npz`` (no pickles).

    Raises
    ------
    ConfigError
        Missing or unreadable file.
    """
    if not path.is_file():
        raise ConfigError(f"{path}: no such crops file")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:
        raise ConfigError(f"{path}: not a readable crops file ({type(exc).__name__})") from exc


def load_crops(path: PathLike) -> dict[str, npt.NDArray[Any]]:
    """Read crops written by :func:`save_crops`.

    Raises
    ------
    ShapeError
        Not a crops file, or crops of the wrong size.
    """
    p = Path(path)
    data = read_crops_file(p)
    for key in ("crops", "area", "eccentricity"):
        if key not in data:
            raise ShapeError(f"{p}: crops file lacks {key!r}")
    c = data["crops"]
    if c.ndim != 4 or c.shape[1:] != (40, 40, 3) or c.dtype != np.uint8:
        raise ShapeError(f"{p}: crops must be (N, 40, 40, 3) uint8, got {c.shape} {c.dtype}")
    return data


def train_classifier(
    crops: dict[str, npt.NDArray[Any]],
    out: PathLike,
    *,
    config: ClassifierTrainConfig | None = None,
    resume: bool = False,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
    grid_dir: PathLike | None = None,
    command: str | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Train on gathered crops and write the weights ``out`` with the cluster names in their metadata.

    A checkpoint ``OUT.ckpt`` is kept during training (``resume`` continues from it). Every
    ``config.grid_every`` steps a PNG grid of generated nuclei is written to ``grid_dir``
    (default: beside ``out``) as ``OUT_STEM.grid-STEP.png``.
    """
    from PIL import Image

    cfg = config or ClassifierTrainConfig()
    out_path = Path(out)
    check_output_parent(out_path)
    gdir = Path(grid_dir) if grid_dir is not None else out_path.parent

    def on_grid(step: int, grid: npt.NDArray[np.uint8]) -> None:
        big = np.kron(grid, np.ones((2, 2, 1), np.uint8))
        Image.fromarray(big).save(gdir / f"{out_path.stem}.grid-{step:06d}.png")

    ckpt = out_path.with_name(out_path.name + ".ckpt")
    state = _train(crops["crops"], cfg, checkpoint=ckpt, resume=resume, progress=progress, on_grid=on_grid)
    clusters, _ = state.model.predict(to_tensor(crops["crops"]))
    cl = clusters.numpy()
    names = name_clusters(
        cl, area=crops["area"], eccentricity=crops["eccentricity"], n_clusters=cfg.n_classes
    )
    sizes = np.bincount(cl, minlength=cfg.n_classes)
    morph = [
        {
            "cluster": k,
            "name": names[k],
            "nuclei": int(sizes[k]),
            "median_area_um2": float(np.median(crops["area"][cl == k])) if sizes[k] else None,
            "median_eccentricity": float(np.median(crops["eccentricity"][cl == k])) if sizes[k] else None,
        }
        for k in range(cfg.n_classes)
    ]
    last = state.history[-50:]
    summary: dict[str, Any] = {
        "steps": state.step,
        "crops": int(len(crops["crops"])),
        "cluster_names": names,
        "clusters": morph,
        "info_ce_last": float(np.mean([r["info_ce"] for r in last])) if last else None,
        "wasserstein_last": float(np.mean([r["wasserstein"] for r in last])) if last else None,
        "seconds": round(state.seconds, 1),
    }
    meta = {
        "crop_mpp": CROP_MPP,
        "crop_size": 40,
        "whiten": bool(np.all(crops.get("whiten", True))),
        "cluster_names": names,
        "clusters": morph,
        "sources": sorted({str(s).split("/")[0] for s in crops.get("source", np.array([]))}),
        **training_provenance(cfg, summary, command),
    }
    save_checkpoint(
        out_path, arch=ARCH, config=state.model.config.to_dict(), state=state.model.state_dict(), meta=meta
    )
    ckpt.unlink(missing_ok=True)
    return out_path, summary
