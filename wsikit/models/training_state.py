"""Training checkpoints shared by every trainer: save and restore everything a run needs to resume exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from wsikit.errors import ConfigError

__all__ = ["save_training_state", "load_training_state", "training_provenance"]


def training_provenance(config: Any, summary: dict[str, Any], command: str | None) -> dict[str, Any]:
    """What every trainer writes into its weights' metadata: its config, its summary, the wsikit version,
    the date and the command line."""
    import datetime as dt

    from wsikit._version import __version__

    return {
        "train_config": dict(vars(config)),
        "summary": summary,
        "wsikit_version": __version__,
        "date": dt.date.today().isoformat(),
        "command": command or "",
    }


def save_training_state(
    path: Path,
    *,
    arch: str,
    model: nn.Module,
    model_config: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    step: int,
    rng: np.random.Generator,
    extra: dict[str, Any],
) -> None:
    """Write model, optimizer, step, both RNG states and ``extra`` (histories, configs) atomically."""
    tmp = path.with_name(path.name + ".partial")
    torch.save(
        {
            "arch": arch,
            "model_config": model_config,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "extra": extra,
        },
        tmp,
    )
    tmp.replace(path)


def load_training_state(
    path: Path,
    *,
    arch: str,
    model: nn.Module,
    model_config: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
) -> tuple[int, dict[str, Any]]:
    """Restore a checkpoint written by :func:`save_training_state` into ``model``, ``optimizer`` and the RNGs.

    Returns
    -------
    (step, extra)

    Raises
    ------
    ConfigError
        The checkpoint belongs to another architecture or model configuration.
    """
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("arch") != arch or state.get("model_config") != model_config:
        raise ConfigError(f"{path}: checkpoint is for another model configuration; remove it or change `out`")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    rng.bit_generator.state = state["rng"]
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"]), dict(state["extra"])
