"""``evaluate_normalizers``: the paper's stain-normalization table on folders of images."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from wsikit._typing import PathLike
from wsikit.errors import ConfigError
from wsikit.io import open_slide
from wsikit.stain import MacenkoNormalizer, ReinhardNormalizer
from wsikit.stain.cnn import CnnNormalizer
from wsikit.stain.metrics import StyleReference, stain_metrics, style_reference

__all__ = ["MethodResult", "evaluate_normalizers", "load_images", "DEFAULT_METHODS"]

log = logging.getLogger(__name__)

DEFAULT_METHODS = (
    "none",
    "macenko",
    "reinhard",
    "tiatoolbox-macenko",
    "tiatoolbox-vahadane",
    "cnn-mse",
    "cnn",
    "cnn-match",
    "cnn-bounded",
)
_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}


@dataclass
class MethodResult:
    """Mean metrics of one method over the source images (and per image)."""

    method: str
    label: str
    metrics: dict[str, float] = field(default_factory=dict)
    per_image: list[dict[str, Any]] = field(default_factory=list)
    megapixels_per_s: float = float("nan")
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "label": self.label,
            **self.metrics,
            "megapixels_per_s": self.megapixels_per_s,
            "skipped": self.skipped,
            "per_image": self.per_image,
        }


def load_images(folder: PathLike) -> tuple[list[np.ndarray], list[str]]:
    """All images of a folder (not recursive) as RGB uint8, with their names."""
    p = Path(folder)
    if not p.is_dir():
        raise ConfigError(f"{p}: not a folder of images")
    files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in _SUFFIXES)
    if not files:
        raise ConfigError(f"{p}: no images (png, jpg, tif) in this folder")
    images = []
    for f in files:
        with open_slide(f) as s:
            w, h = s.dimensions
            images.append(s.read_region((0, 0), 0, (w, h)))
    return images, [f.name for f in files]


def _tiatoolbox(kind: str) -> Any:
    from tiatoolbox.tools import stainnorm  # optional extra; ImportError means "not installed"

    return stainnorm.get_normalizer(kind)


def evaluate_normalizers(
    source: PathLike | list[np.ndarray],
    target: PathLike | list[np.ndarray],
    *,
    methods: tuple[str, ...] = DEFAULT_METHODS,
    cnn_weights: dict[str, PathLike] | None = None,
    min_ssim: float = 0.99,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[MethodResult], StyleReference]:
    """Normalize every source image to the target style with each method and score it.

    Macenko and Reinhard fit the target on the pooled target images and each
    source image on its own. The CNNs carry their target style in their weights
    (``cnn`` and ``cnn-mse`` default to the shipped ``tia`` and ``tia-mse``).
    TIAToolbox methods are skipped with a reason when it is not installed. ``min_ssim`` is the
    structure bound of ``cnn-bounded``.
    """
    src_images, src_names = (
        load_images(source)
        if not isinstance(source, list)
        else (source, [f"image{i}" for i in range(len(source))])
    )
    tgt_images, _ = load_images(target) if not isinstance(target, list) else (target, [])
    reference = style_reference(tgt_images)
    weights = dict(cnn_weights or {})
    results = []
    for method in methods:
        if progress is not None:
            progress(method)
        label = method
        try:
            fn: Callable[[np.ndarray], np.ndarray]
            if method == "none":
                fn, label = (lambda im: im), "none (source as is)"
            elif method == "macenko":
                mac = MacenkoNormalizer().fit(tgt_images)
                fn, label = mac.transform, "SVD / Macenko (wsikit, torch)"
            elif method == "reinhard":
                rei = ReinhardNormalizer().fit(tgt_images)
                fn, label = rei.transform, "Reinhard (wsikit, torch)"
            elif method.startswith("tiatoolbox-"):
                tia = _tiatoolbox(method.split("-", 1)[1])
                tia.fit(np.concatenate([t.reshape(1, -1, 3) for t in tgt_images], axis=1))
                fn, label = tia.transform, f"TIAToolbox {method.split('-', 1)[1]}"
            elif method in ("cnn", "cnn-mse", "cnn-match", "cnn-bounded"):
                default = "tia-mse" if method == "cnn-mse" else "tia"
                lightness: Literal["keep", "match", "bounded"] = (
                    "match" if method == "cnn-match" else "bounded" if method == "cnn-bounded" else "keep"
                )
                key = "cnn" if method in ("cnn-match", "cnn-bounded") else method
                norm = (
                    CnnNormalizer.from_weights(weights[key], lightness=lightness, min_ssim=min_ssim)
                    if key in weights
                    else CnnNormalizer.from_pretrained(default, lightness=lightness, min_ssim=min_ssim)
                )
                fn = norm.transform
                variant = {
                    "cnn": "MSE + class.",
                    "cnn-mse": "MSE only",
                    "cnn-match": "MSE + class., L matched",
                    "cnn-bounded": f"MSE + class., L bounded {min_ssim:g}",
                }
                label = f"CNN ({variant[method]}, {norm.meta.get('style', '?')})"
            else:
                raise ConfigError(f"unknown method {method!r}; valid: {', '.join(DEFAULT_METHODS)}")
        except ImportError as exc:
            results.append(MethodResult(method, label, skipped=f"not installed ({exc.name})"))
            continue
        res = MethodResult(method, label)
        seconds = 0.0
        pixels = 0
        for img, name in zip(src_images, src_names, strict=True):
            t0 = time.perf_counter()
            out = fn(img)
            seconds += time.perf_counter() - t0
            pixels += img.shape[0] * img.shape[1]
            res.per_image.append({"image": name, **stain_metrics(np.asarray(out, np.uint8), img, reference)})
        keys = ("euclidean", "chroma_distance", "hist_correlation", "hellinger", "ssim_luminance")
        res.metrics = {k: float(np.mean([r[k] for r in res.per_image])) for k in keys}
        res.megapixels_per_s = pixels / 1e6 / seconds if seconds > 0 and method != "none" else float("nan")
        results.append(res)
    return results, reference
