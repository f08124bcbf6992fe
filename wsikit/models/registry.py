"""Weights shipped inside the package: name -> file + sha256 + architecture, and checkpoint I/O.

In the spirit of torchvision's ``models/_api.py``: every default model is a
:class:`WeightsEntry`; loading checks the file's sha256, and an unknown name
lists the valid ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Self, TypeVar

import torch
from torch import nn

from wsikit._typing import PathLike
from wsikit.errors import ConfigError, WsikitError

__all__ = [
    "WeightsEntry",
    "WEIGHTS",
    "weights_path",
    "save_checkpoint",
    "load_checkpoint",
    "load_model",
    "LoadedModel",
    "Pretrained",
    "WeightsError",
]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


class WeightsError(WsikitError, ValueError):
    """A weights file is missing, corrupt, or made for another architecture."""


@dataclass(frozen=True, kw_only=True)
class WeightsEntry:
    """A shipped weights file."""

    name: str
    arch: str
    file: str
    sha256: str
    description: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return WEIGHTS_DIR / self.file


WEIGHTS: dict[str, WeightsEntry] = {}


def _register(entry: WeightsEntry) -> None:
    WEIGHTS[entry.name] = entry


def weights_path(name: str, *, arch: str | None = None) -> Path:
    """Path of the shipped weights ``name`` after checking its sha256.

    Raises
    ------
    ConfigError
        Unknown name (the message lists the valid ones) or a name for another architecture.
    WeightsError
        The file is missing or its checksum does not match (a corrupt installation).
    """
    entry = WEIGHTS.get(name)
    if entry is None or (arch is not None and entry.arch != arch):
        valid = sorted(k for k, e in WEIGHTS.items() if arch is None or e.arch == arch)
        raise ConfigError(f"unknown weights {name!r}; valid names: {', '.join(valid) or 'none'}")
    if not entry.path.is_file():
        raise WeightsError(f"{entry.path}: shipped weights {name!r} are missing from the installation")
    digest = hashlib.sha256(entry.path.read_bytes()).hexdigest()
    if digest != entry.sha256:
        raise WeightsError(f"{entry.path}: checksum mismatch for weights {name!r} (corrupt installation?)")
    return entry.path


def save_checkpoint(
    path: PathLike,
    *,
    arch: str,
    config: dict[str, Any],
    state: dict[str, Any],
    meta: dict[str, Any] | None = None,
    half: bool = True,
) -> None:
    """Save model weights with their architecture and config (fp16 tensors by default, to stay small)."""
    tensors = {k: (v.half() if half and v.is_floating_point() else v) for k, v in state.items()}
    p = Path(path)
    tmp = p.with_name(p.name + ".partial")
    torch.save(
        {
            "format": "wsikit-weights-1",
            "arch": arch,
            "config": config,
            "state_dict": tensors,
            "meta": meta or {},
        },
        tmp,
    )
    tmp.replace(p)


def load_checkpoint(path: PathLike, *, arch: str | tuple[str, ...]) -> dict[str, Any]:
    """Load a weights file written by :func:`save_checkpoint` and check its architecture (one of ``arch``).

    Raises
    ------
    WeightsError
        Missing, unreadable or corrupt file, or weights for another architecture.
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"{p}: no such weights file")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{p}: not a readable weights file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict) or data.get("format") != "wsikit-weights-1":
        raise WeightsError(f"{p}: not a wsikit weights file")
    archs = (arch,) if isinstance(arch, str) else arch
    if data.get("arch") not in archs:
        want = " or ".join(repr(a) for a in archs)
        raise WeightsError(f"{p}: weights are for architecture {data.get('arch')!r}, expected {want}")
    data["state_dict"] = {
        k: (v.float() if v.is_floating_point() else v) for k, v in data["state_dict"].items()
    }
    return data


M = TypeVar("M", bound=nn.Module)


@dataclass(frozen=True)
class LoadedModel(Generic[M]):
    """A network loaded from a weights file, with what the file says about it.

    Attributes
    ----------
    model : torch.nn.Module
        The network with its weights, in eval mode.
    arch : str
        The architecture id stored in the file.
    meta : dict
        The file's metadata (training command, data, thresholds ...) plus ``weights``: the file's path.
    """

    model: M
    arch: str
    meta: dict[str, Any]


def load_model(
    path: PathLike,
    *,
    arch: str | tuple[str, ...],
    build: Callable[[dict[str, Any]], M],
    state_prefix: dict[str, str] | None = None,
) -> LoadedModel[M]:
    """The one weights loader: read ``path`` (:func:`load_checkpoint`), build the network from the stored
    config with ``build`` and load its state.

    Parameters
    ----------
    path : str or Path
        A file written by :func:`save_checkpoint`.
    arch : str or tuple of str
        Architecture ids the caller accepts.
    build : callable
        Stored config dict -> an untrained network.
    state_prefix : dict, optional
        Per architecture id, the prefix of the state keys that belong to the network (e.g. the critic of a
        whole InfoGAN checkpoint); the prefix is stripped and other keys ignored.

    Raises
    ------
    WeightsError
        Missing, unreadable, of another architecture, or a state that does not fit the network.
    """
    data = load_checkpoint(path, arch=arch)
    model = build(dict(data["config"]))
    prefix = (state_prefix or {}).get(data["arch"], "")
    state = {k[len(prefix) :]: v for k, v in data["state_dict"].items() if k.startswith(prefix)}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: weights do not fit the stated architecture: {exc}") from exc
    return LoadedModel(model.eval(), str(data["arch"]), {**data["meta"], "weights": str(Path(path))})


class Pretrained:
    """``load(path)`` and ``from_pretrained(name)`` for a network class of :mod:`wsikit.models`.

    A network class sets :attr:`ARCH` (the architecture id its weights files carry) and :meth:`from_config`;
    both class methods go through :func:`load_model`. The loaded network keeps the file's metadata in
    ``weights_meta``.

    Examples
    --------
    >>> from wsikit.models import UNet
    >>> net = UNet.from_pretrained("unet-nuclei-cnn")
    >>> net.config.base, net.weights_meta["arch"], net.training
    (16, 'unet-v1', False)
    """

    ARCH: ClassVar[str]
    """The architecture id of the class's weights files."""
    ALSO_LOADS: ClassVar[dict[str, str]] = {}
    """Other architecture ids whose files hold this network, each with the prefix of its state keys."""
    weights_meta: dict[str, Any]

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        """An untrained network of the architecture a weights file's config describes."""
        raise NotImplementedError

    @classmethod
    def accepted_archs(cls) -> tuple[str, ...]:
        return (cls.ARCH, *cls.ALSO_LOADS)

    @classmethod
    def load(cls, path: PathLike) -> Self:
        """The network in a weights file (written by :func:`save_checkpoint`), in eval mode.

        Raises
        ------
        WeightsError
            Missing, unreadable, of another architecture, or weights that do not fit.
        """
        loaded = load_model(path, arch=cls.accepted_archs(), build=cls._build, state_prefix=cls.ALSO_LOADS)
        model: Self = loaded.model
        model.weights_meta = {**loaded.meta, "arch": loaded.arch}
        return model

    @classmethod
    def _build(cls, config: dict[str, Any]) -> Any:  # Any: a Pretrained class is an nn.Module subclass
        return cls.from_config(config)

    @classmethod
    def from_pretrained(cls, name: str) -> Self:
        """A network shipped with wsikit, by its name in :data:`WEIGHTS` (an unknown name lists the valid
        ones for this class; the file's sha256 is checked)."""
        archs = cls.accepted_archs()
        entry = WEIGHTS.get(name)
        if entry is None or entry.arch not in archs:
            valid = sorted(k for k, e in WEIGHTS.items() if e.arch in archs)
            raise ConfigError(f"unknown weights {name!r} for {cls.__name__}; valid names: {', '.join(valid)}")
        return cls.load(weights_path(name))


_register(
    WeightsEntry(
        name="colorizer-tia",
        arch="colorizer-v1",
        file="colorizer-tia.pt",
        sha256="5b88515910891dde8228153c8e66b2bdf4880eb9b131746d1ff0d64cb0fd4e37",
        description="Stain-normalization CNN (MSE + classification loss, width 16) in the style of "
        "TIAToolbox's stain-normalization target image (BSD-3-Clause); see docs/stain-normalization.md",
        meta={"style": "tia", "license_of_training_data": "BSD-3-Clause"},
    )
)
_register(
    WeightsEntry(
        name="colorizer-tia-mse",
        arch="colorizer-v1",
        file="colorizer-tia-mse.pt",
        sha256="3a552533a24f68456d30cd2052714fbed0501dc2a139bb34ebc69c5afe0acac3",
        description="Stain-normalization CNN, MSE loss only (the paper's ablation), same style pool as colorizer-tia",
        meta={"style": "tia-mse", "license_of_training_data": "BSD-3-Clause"},
    )
)
_register(
    WeightsEntry(
        name="unet-nuclei",
        arch="unet-v1",
        file="unet-nuclei.pt",
        sha256="c1df79eba19dd6f7bba053d2de7957307d5c983c466c9f1130892fde962496cc",
        description="3-class nuclei U-Net (base 16) at 0.25 um/px, trained (then fine-tuned) on MoNuSeg train, MICCAI 2015, DSB 2018 "
        "and NuCLS; see docs/segmentation.md",
        meta={"mpp": 0.25},
    )
)
_register(
    WeightsEntry(
        name="unet-nuclei-cnn",
        arch="unet-v1",
        file="unet-nuclei-cnn.pt",
        sha256="ffa1aca3790c04fe5448ec7d6049a98021565b4dce53abb659b11ec247f665e5",
        description="unet-nuclei fine-tuned with half of its crops restyled by colorizer-tia, for tiles the CNN "
        "normalizer has restyled (the segmenter of `wsikit run --stain cnn`); see docs/segmentation.md",
        meta={"mpp": 0.25, "stain": "cnn"},
    )
)
_register(
    WeightsEntry(
        name="infogan-cells",
        arch="infogan-v1",
        file="infogan-cells.pt",
        sha256="563c9b53f575316a861f2c1aac6f2fda04d87351254a59a53844d3076581a24c",
        description="InfoGAN nucleus classifier, K=8 clusters each named epithelial / lymphocyte / fibroblast by "
        "the morphology rule, trained without labels on nucleus crops of MoNuSeg, MICCAI 2015 and DSB 2018; "
        "see docs/classification.md",
        meta={"crop_mpp": 0.5, "n_classes": 8},
    )
)
_register(
    WeightsEntry(
        name="cells-context-cnn",
        arch="context-cnn-ensemble-v1",
        file="cells-context-cnn.pt",
        sha256="c7a7ae0a643ac1b5a0a4e0c37f9ceb835499a67c9f864581cac39892e2a3475e",
        description="Two supervised context CNNs (seeds 0 and 1; the InfoGAN critic's network on 7-channel "
        "context crops: nucleus, its mask, 64 um of surroundings) whose softmaxes are averaged, their "
        "configuration chosen on BRCA-M2C val, then refit on BRCA-M2C train + "
        "val (82 breast patients, labels BSD-3-Clause), with a neighbourhood stage (the CNN's predictions for the "
        "nuclei within 25 and 50 um; wsikit.classify.neighbourhood); `wsikit run`'s default cell-type classifier; "
        "see docs/classification.md",
        meta={"crop_mpp": 0.5, "context_mpp": [1.6]},
    )
)
_register(
    WeightsEntry(
        name="cells-context-infogan",
        arch="infogan-v1",
        file="cells-context-infogan.pt",
        sha256="de747395c1d8bf6409817b1c5372c3a34df6f09e3cf819521972095551aa9e21",
        description="Semi-supervised InfoGAN on 7-channel context crops: the paper's generator / WGAN-GP critic / "
        "D_Q, D_Q's 3-way code also trained with labels of BRCA-M2C train; see docs/classification.md",
        meta={"crop_mpp": 0.5, "context_mpp": [1.6]},
    )
)
