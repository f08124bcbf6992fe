"""Inference of the colorization normalizer: keep the input's luminance, predict the target style's chroma."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from wsikit._typing import PathLike
from wsikit.errors import ConfigError
from wsikit.models.colorizer import AB_SCALE, ColorizerNet
from wsikit.models.precision import Precision, autocast, resolve_precision
from wsikit.models.registry import weights_path
from wsikit.stain._batch import from_batch, to_batch
from wsikit.stain.base import TISSUE_OD, StainNormalizer, tissue_weight
from wsikit.stain.color import lab_to_rgb, rgb_to_lab

__all__ = [
    "CnnNormalizer",
    "DEFAULT_STYLE",
    "SourceLightness",
    "style_statistics",
    "lightness_quantiles",
    "luminance_ssim",
    "largest_passing_share",
]

_Q = torch.linspace(0.0, 1.0, 101)
_CHROMA_BIN = 5.0  # lightness units per bin of the chroma gamut table


def lightness_quantiles(rgb: torch.Tensor) -> torch.Tensor:
    """101 quantiles (0, 1, ..., 100 %) of the Lab lightness of a (B, 3, H, W) batch, pooled."""
    return _quantiles_of_lightness(rgb_to_lab(rgb.float())[:, 0])


def _quantiles_of_lightness(light: torch.Tensor) -> torch.Tensor:
    light = light.reshape(-1)
    if light.numel() > 1_000_000:
        gen = torch.Generator(device="cpu").manual_seed(0)
        light = light[torch.randperm(light.numel(), generator=gen)[:1_000_000].to(light.device)]
    return _sorted_quantiles(light, _Q.to(light.device))


def _knots(quantiles: torch.Tensor) -> torch.Tensor:
    """Quantiles (..., 101) made strictly increasing (+ 1e-4 per rank) for the piecewise-linear lightness match."""
    return quantiles + torch.arange(quantiles.shape[-1], device=quantiles.device) * 1e-4


def _sorted_quantiles(values: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """:func:`torch.quantile` (linear) of a 1-D tensor: the same ranks, gathers and lerp; on the CPU the values
    at those ranks come from a compiled histogram selection (:func:`wsikit.stain._cnn_cpu.order_statistics`,
    about 10x a full sort on a tile's pixels; the same values, hence the same result: tested)."""
    if values.device.type != "cpu":
        return torch.quantile(values, q)
    from wsikit.stain._cnn_cpu import order_statistics

    ranks = q.to(values.dtype) * (values.numel() - 1)
    below, above = ranks.long(), ranks.ceil().long()
    ks, where = np.unique(torch.cat([below, above]).numpy(), return_inverse=True)
    picked = torch.from_numpy(order_statistics(values.contiguous().numpy(), ks))[torch.from_numpy(where)]
    return torch.lerp(picked[: len(q)], picked[len(q) :], ranks - below)


def luminance_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM per image between two (B, 1, H, W) Lab lightness batches (0..100).

    The same definition as :func:`wsikit.stain.metrics.stain_metrics` (scikit-image's defaults: 7x7 uniform
    window, sample covariance, K1 0.01, K2 0.03, data range 100, image borders left out), in torch so it can
    steer :class:`CnnNormalizer`'s bounded lightness.

    Examples
    --------
    >>> x = torch.rand(2, 1, 32, 32) * 100
    >>> [round(v, 4) for v in luminance_ssim(x, x).tolist()]
    [1.0, 1.0]
    """
    win, n = 7, 49.0
    c1, c2 = (0.01 * 100.0) ** 2, (0.03 * 100.0) ** 2
    a, b = a.double(), b.double()

    def mean(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t, win, stride=1)

    ma, mb = mean(a), mean(b)
    cov = n / (n - 1)
    va, vb = cov * (mean(a * a) - ma * ma), cov * (mean(b * b) - mb * mb)
    vab = cov * (mean(a * b) - ma * mb)
    s = ((2 * ma * mb + c1) * (2 * vab + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
    return s.flatten(1).mean(1).float()


class SourceLightness(NamedTuple):
    """A source slide's lightness statistics (from :meth:`CnnNormalizer.fit_source`)."""

    quantiles: torch.Tensor
    """101 lightness quantiles of the source."""
    share: float = 0.0
    """Share of the way to the style's lightness the output goes (``lightness="bounded"``): tissue
    lightness becomes ``L + share * (matched L - L)``."""


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


def largest_passing_share(ok: Callable[[float], bool], *, steps: int = 8) -> float:
    """Largest ``a`` in [0, 1] with ``ok(a)``, by bisection to 1 / 2**steps (``ok`` must be monotone: true
    up to some share, false beyond; ``ok(0)`` is assumed).

    Examples
    --------
    >>> largest_passing_share(lambda a: a <= 0.3, steps=8)
    0.296875
    >>> largest_passing_share(lambda a: True)
    1.0
    """
    if ok(1.0):
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


class CnnNormalizer(StainNormalizer[None]):
    """The paper's colorization CNN as a stain normalizer.

    The target style lives in the weights (one network per style), so there
    is nothing to ``fit``; ``fit_source`` returns None. Output = Lab(L of the
    input, a*b* predicted), so the tissue structure is the input's.

    Parameters
    ----------
    model : ColorizerNet
        A trained network.
    lightness : {"keep", "match", "bounded"}
        ``keep`` (the paper's method): the output has the input's lightness exactly.
        ``match``: the output takes the input lightness mapped onto the style's lightness
        distribution (monotone, so structure is kept, but not the luminance values).
        ``bounded``: the output lightness moves from the input's toward the matched one as far as it can
        while the luminance SSIM against the input stays >= ``min_ssim`` (one share per source slide, or
        per image when each image is its own source).
    min_ssim : float
        The structure bound of ``bounded`` (default 0.99).
    device : torch device
        Where inference runs; on CUDA in channels_last.
    precision : {"fp32", "bf16", "auto"}
        Arithmetic of the network (:mod:`wsikit.models.precision`): ``auto`` is bf16 autocast on CUDA and on
        CPUs with native bf16, float32 elsewhere.
    batch_size : int
        Images per forward pass.
    chroma_downsample : {1, 2, 4}
        The network predicts chroma from lightness averaged over k x k pixels, upsampled (bilinear); the
        lightness stays at full resolution.
    compiled : bool
        On the CPU with ``keep``, uint8 images: the per-pixel colour work around the network runs as compiled
        loops (:mod:`wsikit.stain._cnn_cpu`; the same float32 formulas, within one grey level of the torch
        path on a small share of pixels). False: the torch path everywhere.

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
        lightness: Literal["keep", "match", "bounded"] = "keep",
        min_ssim: float = 0.99,
        chroma_downsample: int = 1,
        precision: Precision = "auto",
        compiled: bool = True,
    ) -> None:
        super().__init__(device=device)
        self.compiled = compiled
        self.precision = resolve_precision(precision, self.device)
        if chroma_downsample not in (1, 2, 4):
            raise ConfigError(f"chroma_downsample must be 1, 2 or 4, got {chroma_downsample}")
        self.chroma_downsample = chroma_downsample
        if lightness not in ("keep", "match", "bounded"):
            raise ConfigError(f"lightness must be 'keep', 'match' or 'bounded', got {lightness!r}")
        if not 0.0 < min_ssim <= 1.0:
            raise ConfigError(f"min_ssim must be in (0, 1], got {min_ssim}")
        self.lightness = lightness
        self.min_ssim = min_ssim
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
        model = ColorizerNet.load(path)
        return cls(model, meta=dict(model.weights_meta), **kwargs)

    @classmethod
    def from_pretrained(cls, name: str = DEFAULT_STYLE, **kwargs: Any) -> CnnNormalizer:
        """Load shipped weights by style name (``tia`` by default; an unknown name lists the valid ones)."""
        return cls.from_weights(weights_path(f"colorizer-{name}", arch=ColorizerNet.ARCH), **kwargs)

    def _fit_stats(self, rgb: torch.Tensor) -> None:
        return None

    def _apply(self, rgb: torch.Tensor, source: None) -> torch.Tensor:
        return self._colorize(rgb, source)

    def fit(self, target: Any) -> CnnNormalizer:
        raise ConfigError(
            "the CNN's target style is fixed by its weights: train one with `wsikit train normalizer`"
        )

    def fit_source(self, images: Any) -> SourceLightness | None:  # type: ignore[override]
        """Lightness statistics of a source slide (its overview or a sample of tiles), for every tile.

        With ``lightness="bounded"`` the share of the way to the style's lightness is chosen here, on
        ``images``, so every tile of the slide gets the same lightness mapping. Returns None for weights
        without style statistics (lightness is then fed as is).
        """
        if self.style is None:
            return None
        batch = to_batch(images, name="source images", device=self.device).float()
        quantiles = lightness_quantiles(batch)
        if self.lightness != "bounded":
            return SourceLightness(quantiles)
        light = rgb_to_lab(batch)[:, :1]
        share = self._bounded_share(light, self._match_lightness(light, quantiles), tissue_weight(batch))
        return SourceLightness(quantiles, share)

    def _bounded_share(self, light: torch.Tensor, matched: torch.Tensor, weight: torch.Tensor) -> float:
        """Largest share in [0, 1] of the move to the matched lightness that keeps the mean luminance SSIM
        >= ``min_ssim`` (bisection, 1/256 steps; a margin of 0.001 is kept for the 8-bit rounding).

        (Moving the mean offset first, which SSIM forgives more, was tried: it lowers the Euclidean
        distance but raises the histogram distances on the stain benchmark, so one share it is.)
        """
        if min(light.shape[-2:]) < 7:
            return 0.0
        goal = min(self.min_ssim + 0.001, 1.0)
        delta = weight * (matched - light)

        return largest_passing_share(
            lambda a: float(luminance_ssim(light, light + a * delta).mean()) >= goal, steps=8
        )

    def _match_lightness(self, light: torch.Tensor, source_q: torch.Tensor) -> torch.Tensor:
        """Map lightness through the source's quantiles onto the style's (piecewise linear, monotone)."""
        assert self.style is not None
        target_q = self.style[0].to(light.device)
        src = _knots(source_q.to(light.device))
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
        # sqrt(a^2 + b^2) elementwise: torch's vector norm over a 2-long channel axis is 25x slower on the
        # CPU (and differs from it by 1 ulp on some pixels, being the less exact of the two)
        chroma = torch.sqrt(ab[:, :1] * ab[:, :1] + ab[:, 1:] * ab[:, 1:])
        out: torch.Tensor = ab * (limit / chroma.clamp(min=1e-6)).clamp(max=1.0)
        return out

    @torch.no_grad()
    def _chroma(self, light: torch.Tensor) -> torch.Tensor:
        """The network's chroma (B, 2, H, W), before :data:`AB_SCALE`, for lightness / 100 (B, 1, H, W)."""
        h, w = light.shape[-2:]
        k = self.chroma_downsample  # chroma from lightness at 1/k resolution: the network's cost / k^2
        ph, pw = (-h) % (8 * k), (-w) % (8 * k)
        if ph or pw:
            mode = "reflect" if h > ph and w > pw else "replicate"
            light = F.pad(light, (0, pw, 0, ph), mode=mode)
        if k > 1:
            light = F.avg_pool2d(light, k)
        outs = []
        for i in range(0, light.shape[0], self.batch_size):
            x = light[i : i + self.batch_size]
            if self.device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(self.device, self.precision):
                ab, _ = self.model(x)
            outs.append(ab.float())
        ab = torch.cat(outs)
        if k > 1:
            ab = F.interpolate(ab, scale_factor=k, mode="bilinear", align_corners=False)
        return ab[..., :h, :w]

    @torch.no_grad()
    def _colorize_cpu(self, rgb: torch.Tensor, source: SourceLightness | None) -> torch.Tensor:
        """:meth:`_colorize` of a uint8 batch on the CPU (lightness ``keep``), rounded to uint8: the per-pixel
        colour work compiled (:mod:`wsikit.stain._cnn_cpu`), the network as in :meth:`_colorize`."""
        from wsikit.stain._cnn_cpu import lab_and_light, match_light, to_rgb

        b, _, h, w = rgb.shape
        lab = lab_and_light(rgb.reshape(b, 3, h * w).contiguous().numpy(), TISSUE_OD)
        if self.style is not None:
            if source is not None:
                quantiles = source.quantiles.float()[None].expand(b, -1)
            else:  # each image is its own source
                quantiles = torch.stack(
                    [_quantiles_of_lightness(torch.from_numpy(lab[i, 0])).float() for i in range(b)]
                )
            match_light(lab, _knots(quantiles).numpy(), self.style[0].float().numpy())
        ab = self._chroma(torch.from_numpy(lab[:, 4]).view(b, 1, h, w))
        table = None if self.style is None else self.style[1].float().numpy()
        out = to_rgb(lab, np.ascontiguousarray(ab.reshape(b, 2, h * w).numpy()), table, AB_SCALE)
        return torch.from_numpy(out).view(b, 3, h, w)

    @torch.no_grad()
    def _colorize(self, rgb: torch.Tensor, source: SourceLightness | None = None) -> torch.Tensor:
        lab = rgb_to_lab(rgb)
        light_out = lab[:, :1]
        light_in = light_out
        weight = tissue_weight(rgb)
        shares = [0.0] * rgb.shape[0]
        if self.style is not None:
            if source is not None:
                light_in = self._match_lightness(light_out, source.quantiles)
                shares = [source.share] * rgb.shape[0]
            else:  # each image is its own source
                light_in = torch.cat(
                    [
                        self._match_lightness(
                            light_out[i : i + 1], _quantiles_of_lightness(light_out[i : i + 1])
                        )
                        for i in range(rgb.shape[0])
                    ]
                )
                if self.lightness == "bounded":
                    shares = [
                        self._bounded_share(light_out[i : i + 1], light_in[i : i + 1], weight[i : i + 1])
                        for i in range(rgb.shape[0])
                    ]
        ab = self._chroma(light_in / 100.0) * AB_SCALE
        # Glass keeps its own color, as with the other normalizers: blend by the tissue weight.
        if self.lightness == "match":
            # the style's lightness too: a monotone remap keeps structure, but not the luminance values
            light_out = weight * light_in + (1 - weight) * light_out
        elif self.lightness == "bounded" and self.style is not None:
            share = torch.tensor(shares, device=rgb.device).view(-1, 1, 1, 1)
            light_out = light_out + share * weight * (light_in - light_out)
        if self.style is not None:
            ab = self._clamp_chroma(ab, light_out)
        ab = weight * ab + (1 - weight) * lab[:, 1:]
        return lab_to_rgb(torch.cat([light_out, ab], dim=1))

    def transform(self, images: Any, *, source: SourceLightness | None = None) -> Any:
        """Re-colorize ``images`` (numpy HWC or torch CHW uint8, batched or not) in the weights' style.

        The lightness fed to the network is first matched to the style's lightness distribution
        (through ``source``, the slide's quantiles from :meth:`fit_source`, or each image's own), so
        differently stained inputs look like what the network was trained on; the output keeps the
        input's own lightness, and its chroma is kept within the style's gamut at that lightness.
        """
        batch = to_batch(images, device=self.device)
        if (
            self.device.type == "cpu"
            and self.lightness == "keep"
            and batch.dtype == torch.uint8
            and self.compiled
        ):
            return from_batch(self._colorize_cpu(batch, source), images)
        out = self._colorize(batch.float(), source).round_().clamp_(0, 255).to(torch.uint8)
        return from_batch(out, images)

    __call__ = transform
