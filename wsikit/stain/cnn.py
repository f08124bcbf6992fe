"""Inference of the colorization normalizer: keep the input's luminance, predict the target style's chroma."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from wsikit._typing import PathLike
from wsikit.errors import ConfigError
from wsikit.models.colorizer import AB_SCALE, ColorizerConfig, ColorizerNet
from wsikit.models.registry import load_checkpoint, weights_path
from wsikit.stain._batch import from_batch, to_batch
from wsikit.stain.base import StainNormalizer
from wsikit.stain.color import lab_to_rgb, rgb_to_lab
from wsikit.stain.train import ARCH

__all__ = ["CnnNormalizer", "DEFAULT_STYLE"]

DEFAULT_STYLE = "tia"
"""Name of the shipped default style (trained on TIAToolbox's stain-normalization target image, BSD-3)."""


class CnnNormalizer(StainNormalizer[None]):
    """The paper's colorization CNN as a stain normalizer.

    The target style lives in the weights (one network per style), so there
    is nothing to ``fit``; ``fit_source`` returns None. Output = Lab(L of the
    input, a*b* predicted), so the tissue structure is the input's.

    Parameters
    ----------
    model : ColorizerNet
        A trained network.
    device : torch device
        Where inference runs; on CUDA it uses autocast (bf16) and channels_last.
    batch_size : int
        Images per forward pass.

    Examples
    --------
    >>> import numpy as np
    >>> norm = CnnNormalizer.from_pretrained()
    >>> out = norm.transform(np.full((64, 64, 3), 200, np.uint8))
    >>> out.shape
    (64, 64, 3)
    """

    name = "cnn"

    def __init__(
        self,
        model: ColorizerNet,
        *,
        device: torch.device | str = "cpu",
        batch_size: int = 16,
        meta: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(device=device)
        self.model = model.eval().to(self.device)
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.batch_size = batch_size
        self.meta = meta or {}
        self.target = None

    @classmethod
    def from_weights(cls, path: PathLike, **kwargs: Any) -> CnnNormalizer:
        """Load a weights file written by ``wsikit train normalizer``.

        Raises
        ------
        WeightsError
            Not a wsikit weights file, or weights of another architecture.
        """
        data = load_checkpoint(path, arch=ARCH)
        model = ColorizerNet(ColorizerConfig(**data["config"]))
        try:
            model.load_state_dict(data["state_dict"])
        except RuntimeError as exc:
            from wsikit.models.registry import WeightsError

            raise WeightsError(f"{path}: weights do not fit the stated architecture: {exc}") from exc
        return cls(model, meta={**data["meta"], "weights": str(Path(path))}, **kwargs)

    @classmethod
    def from_pretrained(cls, name: str = DEFAULT_STYLE, **kwargs: Any) -> CnnNormalizer:
        """Load shipped weights by style name (``tia`` by default; an unknown name lists the valid ones)."""
        return cls.from_weights(weights_path(f"colorizer-{name}", arch=ARCH), **kwargs)

    def _fit_stats(self, rgb: torch.Tensor) -> None:
        return None

    def _apply(self, rgb: torch.Tensor, source: None) -> torch.Tensor:
        return self._colorize(rgb)

    def fit(self, target: Any) -> CnnNormalizer:
        raise ConfigError(
            "the CNN's target style is fixed by its weights: train one with `wsikit train normalizer`"
        )

    def fit_source(self, images: Any) -> None:
        """Nothing to fit: the CNN reads each image's luminance only."""
        to_batch(images, name="source images")
        return None

    @torch.no_grad()
    def _colorize(self, rgb: torch.Tensor) -> torch.Tensor:
        h, w = rgb.shape[-2:]
        ph, pw = (-h) % 8, (-w) % 8
        lab = rgb_to_lab(rgb)
        light = lab[:, :1] / 100.0
        if ph or pw:
            mode = "reflect" if h > ph and w > pw else "replicate"
            light = F.pad(light, (0, pw, 0, ph), mode=mode)
        outs = []
        for i in range(0, light.shape[0], self.batch_size):
            x = light[i : i + self.batch_size]
            if self.device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    ab, _ = self.model(x)
                ab = ab.float()
            else:
                ab, _ = self.model(x)
            outs.append(ab)
        ab = torch.cat(outs)[..., :h, :w] * AB_SCALE
        return lab_to_rgb(torch.cat([lab[:, :1], ab], dim=1))

    def transform(self, images: Any, *, source: None = None) -> Any:
        """Re-colorize ``images`` (numpy HWC or torch CHW uint8, batched or not) in the weights' style."""
        batch = to_batch(images, device=self.device)
        out = self._colorize(batch.float()).round_().clamp_(0, 255).to(torch.uint8)
        return from_batch(out, images)

    __call__ = transform
