"""Choose the probability-to-instance thresholds of a segmenter on labelled validation images."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from wsikit.errors import ConfigError
from wsikit.segment.metrics import aggregated_jaccard_index, pixel_metrics
from wsikit.segment.targets import InstanceParams, instances_from_probabilities

__all__ = ["tune_instance_params", "DEFAULT_GRID"]

DEFAULT_GRID: dict[str, tuple[float, ...]] = {
    "foreground": (0.4, 0.5, 0.6, 0.7),
    "marker": (0.3, 0.5, 0.7),
    "marker_open": (0, 1, 2),
    "min_size": (10, 25, 50),
}


def tune_instance_params(
    images: Sequence[tuple[npt.NDArray[np.floating], npt.NDArray[np.integer]]],
    grid: dict[str, tuple[Any, ...]] | None = None,
) -> tuple[InstanceParams, list[dict[str, Any]]]:
    """Grid-search :class:`InstanceParams` on (probabilities (C, H, W), instance labels) pairs.

    With the distance channel (C = 4) the grid also tries both seed rules (``seeds``: ``classes`` and
    ``distance``), so validation decides whether the distance map's seeds are used. The score is the mean over images of pixel Dice + AJI (both matter: Dice for the nuclear area, AJI for
    splitting touching nuclei). Ties keep the first setting of the grid order.

    Returns
    -------
    (best, table)
        The best parameters and one row per setting (its parameters, mean Dice, mean AJI, score), best first.

    Examples
    --------
    >>> lab = np.zeros((32, 32), np.uint32); lab[4:14, 4:14] = 1; lab[18:28, 6:16] = 2
    >>> from wsikit.segment.targets import three_class_target
    >>> t = three_class_target(lab)
    >>> probs = np.stack([(t == k).astype(np.float32) for k in range(3)])
    >>> best, table = tune_instance_params([(probs, lab)], {"foreground": (0.5,), "marker": (0.5,)})
    >>> best.foreground, round(table[0]["aji"], 3)
    (0.5, 1.0)
    """
    if not images:
        raise ConfigError("no validation images to tune on")
    has_distance = all(probs.shape[0] == 4 for probs, _ in images)
    axes: dict[str, tuple[Any, ...]] = {
        **DEFAULT_GRID,
        "seeds": ("classes", "distance") if has_distance else ("classes",),
        **(grid or {}),
    }
    names = list(axes)
    table: list[dict[str, Any]] = []
    for values in itertools.product(*(axes[n] for n in names)):
        setting = dict(zip(names, values, strict=True))
        for key in ("marker_open", "min_size"):
            if key in setting:
                setting[key] = int(setting[key])
        params = InstanceParams(**setting)
        dice, aji = [], []
        for probs, labels in images:
            pred = instances_from_probabilities(probs, params)
            dice.append(pixel_metrics(labels, pred)["dice"])
            aji.append(aggregated_jaccard_index(labels, pred))
        row = {**setting, "dice": float(np.mean(dice)), "aji": float(np.mean(aji))}
        row["score"] = row["dice"] + row["aji"]
        table.append(row)
    order = sorted(range(len(table)), key=lambda i: (-table[i]["score"], i))
    table = [table[i] for i in order]
    best = InstanceParams(**{k: table[0][k] for k in names})
    return best, table
