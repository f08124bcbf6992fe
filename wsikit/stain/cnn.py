"""Inference of the colorization normalizer: keep the input's luminance, predict the target style's chroma."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

from wsikit._typing import PathLike
from wsikit.errors import ConfigError
from wsikit.models.colorizer import AB_SCALE, ColorizerConfig, ColorizerNet
from wsikit.models.registry import load_checkpoint, weights_path
from wsikit.stain._batch import from_batch, to_batch
from wsikit.stain.base import StainNormalizer, tissue_weight
from wsikit.stain.color import lab_to_rgb, rgb_to_lab
from wsikit.stain.train import ARCH

__all__ = ["CnnNormalizer", "DEFAULT_STYLE", "style_statistics", "lightness_quantiles"]

_Q = torch.linspace(0.0, 1.0, 101)
_CHROMA_BIN = 5.0  # lightness units per bin of the chroma gamut table


def lightness_quantiles(rgb: torch.Tensor) -> torch.Tensor:
    """101 quantiles (0, 1, ..., 100 %) of the Lab lightness of a (B, 3, H, W) batch, pooled."""
    light = rgb_to_lab(rgb.float())[:, 0].reshape(-1)
    if light.numel() > 1_000_000:
        gen = torch.Generator(device="cpu").manual_seed(0)
        light = light[torch.randperm(light.numel(), generator=gen)[:1_000_000].to(light.device)]
    return torch.quantile(light, _Q.to(light.device))


def style_statistics(images: list[Any]) -> dict[str, list[float]]:
    """Lightness quantiles and the chroma gamut (99th percentile of chroma per 5-unit lightness bin)
    of a style pool; stored in the weights and used at inference (see :class:`CnnNormalizer`)."""
    batches = [to_batch(im, name="style pool image").float() for im in images]
    lab = torch.cat([rgb_to_lab(b).permute(1, 0, 2, 3).reshape(3, -1) for b in batches], dim=1)
    light = lab[0]
    if light.numel() > 1_000_000:
        gen = torch.Generator(device="cpu").manual_seed(0)
        light = light[torch.randperm(light.numel(), generator=gen)[:1_000_000]]
    quantiles = torch.quantile(light, _Q)
    chroma = lab[1:].norm(dim=0)
    bins = (lab[0] / _CHROMA_BIN).long().clamp(0, int(100 / _CHROMA_BIN))
    table = []
    for b in range(int(100 / _CHROMA_BIN) + 1):
        sel = chroma[bins == b]
        table.append(float(torch.quantile(sel, 0.99)) if sel.numel() >= 50 else float("nan"))
    t = torch.tensor(table)
    known = torch.nonzero(~torch.isnan(t)).flatten()
    for b in range(len(table)):  # fill empty bins from the nearest known bin, shrinking towards black
        if torch.isnan(t[b]):
            nearest = int(known[(known - b).abs().argmin()])
            scale = min(1.0, (b + 0.5) / (nearest + 0.5)) if b < nearest else 1.0
            t[b] = t[nearest] * scale
    return {"lightness_quantiles": [float(v) for v in quantiles], "chroma_max": [float(v) for v in t]}


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
    lightness : {"keep", "match"}
        ``keep`` (the paper's method): the output has the input's lightness exactly.
        ``match``: the output takes the input lightness mapped onto the style's lightness
        distribution (monotone, so structure is kept, but not the luminance values).
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
        lightness: Literal["keep", "match"] = "keep",
    ) -> None:
        super().__init__(device=device)
        if lightness not in ("keep", "match"):
            raise ConfigError(f"lightness must be 'keep' or 'match', got {lightness!r}")
        self.lightness = lightness
        self.model = model.eval().to(self.device)
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.batch_size = batch_size
        self.meta = meta or {}
        self.target = None
        stats = self.meta.get("style_stats")
        self.style = (
            (torch.tensor(stats["lightness_quantiles"]), torch.tensor(stats["chroma_max"]))
            if isinstance(stats, dict)
            else None
        )

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
        return self._colorize(rgb, source)

    def fit(self, target: Any) -> CnnNormalizer:
        raise ConfigError(
            "the CNN's target style is fixed by its weights: train one with `wsikit train normalizer`"
        )

    def fit_source(self, images: Any) -> torch.Tensor | None:  # type: ignore[override]
        """Lightness quantiles of a source slide (its overview or a sample of tiles), to apply to every tile.

        Returns None for weights without style statistics (lightness is then fed as is).
        """
        batch = to_batch(images, name="source images", device=self.device)
        return lightness_quantiles(batch) if self.style is not None else None

    def _match_lightness(self, light: torch.Tensor, source_q: torch.Tensor) -> torch.Tensor:
        """Map lightness through the source's quantiles onto the style's (piecewise linear, monotone)."""
        assert self.style is not None
        target_q = self.style[0].to(light.device)
        src = source_q.to(light.device) + torch.arange(101, device=light.device) * 1e-4  # strictly increasing
        flat = light.reshape(-1).contiguous()
        idx = torch.searchsorted(src, flat).clamp(1, 100)
        x0, x1 = src[idx - 1], src[idx]
        y0, y1 = target_q[idx - 1], target_q[idx]
        t = ((flat - x0) / (x1 - x0)).clamp(0, 1)
        return (y0 + t * (y1 - y0)).reshape(light.shape)

    def _clamp_chroma(self, ab: torch.Tensor, light: torch.Tensor) -> torch.Tensor:
        """Keep chroma within the style's gamut at each pixel's (output) lightness."""
        assert self.style is not None
        table = self.style[1].to(ab.device)
        pos = (light / _CHROMA_BIN).clamp(0, len(table) - 1)
        lo = pos.floor().long()
        hi = (lo + 1).clamp(max=len(table) - 1)
        limit = table[lo] + (pos - lo) * (table[hi] - table[lo])
        chroma = ab.norm(dim=1, keepdim=True)
        out: torch.Tensor = ab * (limit / chroma.clamp(min=1e-6)).clamp(max=1.0)
        return out

    @torch.no_grad()
    def _colorize(self, rgb: torch.Tensor, source_q: torch.Tensor | None = None) -> torch.Tensor:
        h, w = rgb.shape[-2:]
        ph, pw = (-h) % 8, (-w) % 8
        lab = rgb_to_lab(rgb)
        light_out = lab[:, :1]
        light_in = light_out
        if self.style is not None:
            if source_q is not None:
                light_in = self._match_lightness(light_out, source_q)
            else:  # each image is its own source
                light_in = torch.cat(
                    [
                        self._match_lightness(light_out[i : i + 1], lightness_quantiles(rgb[i : i + 1]))
                        for i in range(rgb.shape[0])
                    ]
                )
        light = light_in / 100.0
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
        # Glass keeps its own color, as with the other normalizers: blend by the tissue weight.
        weight = tissue_weight(rgb)
        if self.lightness == "match":
            # the style's lightness too: a monotone remap keeps structure, but not the luminance values
            light_out = weight * light_in + (1 - weight) * light_out
        if self.style is not None:
            ab = self._clamp_chroma(ab, light_out)
        ab = weight * ab + (1 - weight) * lab[:, 1:]
        return lab_to_rgb(torch.cat([light_out, ab], dim=1))

    def transform(self, images: Any, *, source: torch.Tensor | None = None) -> Any:
        """Re-colorize ``images`` (numpy HWC or torch CHW uint8, batched or not) in the weights' style.

        The lightness fed to the network is first matched to the style's lightness distribution
        (through ``source``, the slide's quantiles from :meth:`fit_source`, or each image's own), so
        differently stained inputs look like what the network was trained on; the output keeps the
        input's own lightness, and its chroma is kept within the style's gamut at that lightness.
        """
        batch = to_batch(images, device=self.device)
        out = self._colorize(batch.float(), source).round_().clamp_(0, 255).to(torch.uint8)
        return from_batch(out, images)

    __call__ = transform
