"""Shared fixtures: the real data in ../shared/data and small generated pyramids."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("WSIKIT_DATA", REPO.parent / "shared" / "data"))
SAMPLE = REPO / "examples" / "data" / "cmu-1-small-region.svs"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_slow = pytest.mark.skip(reason="slow: needs --runslow")
    cuda = False
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        pass
    skip_gpu = pytest.mark.skip(reason="gpu: CUDA not available")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not cuda:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """../shared/data (or $WSIKIT_DATA); tests that need it skip with a reason when it is absent."""
    if not DATA.is_dir():
        pytest.skip(f"real data not found at {DATA} (set WSIKIT_DATA)")
    return DATA


@pytest.fixture(scope="session")
def sample_slide() -> Path:
    return SAMPLE


def he_texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A deterministic H&E-coloured test image with structure at several scales."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 0.5 + 0.25 * np.sin(xx / 37.0) * np.cos(yy / 23.0) + 0.1 * rng.standard_normal((height, width))
    base = np.clip(base, 0, 1)
    pink = np.array([230, 150, 200], np.float32)
    purple = np.array([110, 60, 150], np.float32)
    img = pink * (1 - base[..., None]) + purple * base[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def write_pyramid_tiff(
    path: Path,
    image: np.ndarray,
    *,
    levels: int = 3,
    tile: int = 128,
    mpp: float | None = 0.5,
    compression: str | None = "jpeg",
    ome: bool = False,
) -> Path:
    """Write a tiled pyramidal TIFF (SubIFDs for OME, pages for generic TIFF) with tifffile."""
    import tifffile

    pyramid = [image]
    for _ in range(levels - 1):
        prev = pyramid[-1]
        h, w = prev.shape[0] // 2 * 2, prev.shape[1] // 2 * 2
        p = prev[:h, :w].reshape(h // 2, 2, w // 2, 2, *prev.shape[2:]).mean(axis=(1, 3))
        pyramid.append(p.astype(image.dtype))
    res = {}
    if mpp is not None:
        res = {"resolution": (1e4 / mpp, 1e4 / mpp), "resolutionunit": "CENTIMETER"}
    photometric = "rgb" if image.ndim == 3 else "minisblack"
    with tifffile.TiffWriter(path, bigtiff=False, ome=ome) as tif:
        meta = {"PhysicalSizeX": mpp, "PhysicalSizeY": mpp} if (ome and mpp) else None
        for i, lvl in enumerate(pyramid):
            kwargs = {"tile": (tile, tile), "photometric": photometric, "compression": compression, **res}
            if ome:
                if i == 0:
                    tif.write(lvl, subifds=levels - 1, metadata=meta, **kwargs)
                else:
                    tif.write(lvl, subfiletype=1, **kwargs)
            else:
                tif.write(lvl, subfiletype=0 if i == 0 else 1, metadata=None, **kwargs)
    return path


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small generated slides for edge cases (odd sizes, 1-level, 16-bit, gray, missing mpp, OME)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("generated")
    img = he_texture(1000, 1300)
    out = {
        "pyramid_jpeg": write_pyramid_tiff(root / "pyramid.tiff", img, levels=3, mpp=0.25),
        "ome_pyramid": write_pyramid_tiff(
            root / "pyramid.ome.tiff", img, levels=3, mpp=0.5, ome=True, compression="zlib"
        ),
        "odd_one_level": write_pyramid_tiff(
            root / "odd.tiff", he_texture(333, 517, 1), levels=1, mpp=None, compression="zlib"
        ),
        "uint16": write_pyramid_tiff(
            root / "u16.tiff",
            (he_texture(256, 384, 2).astype(np.uint16) * 257),
            levels=1,
            mpp=None,
            compression="zlib",
        ),
        "gray": write_pyramid_tiff(
            root / "gray.tiff", he_texture(256, 256, 3)[..., 0], levels=2, mpp=None, compression="zlib"
        ),
    }
    Image.fromarray(img[:300, :400]).save(root / "plain.png")
    Image.fromarray(np.dstack([img[:200, :200], np.full((200, 200), 128, np.uint8)])).save(root / "rgba.png")
    Image.fromarray(img[:300, :400]).save(root / "plain.jpg", quality=95)
    Image.fromarray(np.full((400, 500, 3), 247, np.uint8)).save(root / "blank.png")
    out.update(
        plain_png=root / "plain.png",
        rgba_png=root / "rgba.png",
        plain_jpg=root / "plain.jpg",
        blank_png=root / "blank.png",
    )
    return out


def assert_opens_in_ome_zarr_readers(path: Path, labels: tuple[str, ...] = ("nuclei",)) -> None:
    """What napari-ome-zarr and the OME-Zarr validator do with a result store: both must succeed, and the
    image and every label must lie on one physical grid (the same extent in micrometres)."""
    import zarr
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models.v05.image import Image as OmeImage
    from ome_zarr_models.v05.image_label import ImageLabel

    OmeImage.from_zarr(zarr.open_group(str(path), mode="r"))  # raises on a declared array that is missing
    for name in labels:
        ImageLabel.from_zarr(zarr.open_group(str(path / "labels" / name), mode="r"))
    for start in (path, *(path / "labels" / n for n in labels)):
        nodes = list(Reader(parse_url(str(start)))())
        loaded = {n.metadata.get("name"): n for n in nodes if n.data}
        assert set(labels) <= set(loaded), (start, list(loaded))
        image = next(n for n in nodes if n.data and n.data[0].ndim == 3)
        img_extent = (
            np.array(image.data[0].shape[-2:])
            * image.metadata["coordinateTransformations"][0][0]["scale"][-2:]
        )
        for name in labels:
            lab = loaded[name]
            lab_extent = (
                np.array(lab.data[0].shape) * lab.metadata["coordinateTransformations"][0][0]["scale"]
            )
            # the overview's last pixel may cover up to (downsample - 1) pixels past the slide's edge
            assert np.all(img_extent >= lab_extent - 1e-6) and np.all(
                img_extent - lab_extent < img_extent / 50
            )
            assert len(lab.data) == len(image.data)
