"""Inference of the nuclei U-Net on an image at the working resolution: class probabilities and instances."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from wsikit._typing import PathLike
from wsikit.errors import ShapeError
from wsikit.models.precision import Precision, autocast, resolve_precision
from wsikit.models.registry import weights_path
from wsikit.models.unet import UNet
from wsikit.segment.targets import InstanceParams, instances_from_probabilities

__all__ = ["Segmenter", "pretrained_name"]


def pretrained_name(stain: str = "none") -> str:
    """Name of the shipped segmenter for tiles normalized by ``stain``: ``nuclei-cnn`` (fine-tuned on
    CNN-restyled crops) for the CNN normalizer, ``nuclei`` otherwise.

    Examples
    --------
    >>> pretrained_name("cnn"), pretrained_name("macenko"), pretrained_name()
    ('nuclei-cnn', 'nuclei', 'nuclei')
    """
    return "nuclei-cnn" if stain == "cnn" else "nuclei"


class Segmenter:
    """A trained U-Net: 3 classes (background / interior / boundary), and the normalized distance map when
    trained with one (:attr:`channels` 4).

    Images are processed in overlapping windows (``window`` px, ``overlap`` px shared) whose centres are
    kept, so the result does not depend on where a nucleus falls relative to a window.

    Parameters
    ----------
    model : UNet
        A trained network.
    mpp : float
        Microns per pixel the network works at.
    device : str
        ``cpu`` or ``cuda``.
    precision : {"fp32", "bf16", "auto"}
        Arithmetic of the network (:mod:`wsikit.models.precision`): ``auto`` is bf16 autocast on CUDA and on
        CPUs with native bf16 (about 2x faster there), float32 elsewhere.
    tta : bool
        Test-time augmentation: average the probabilities over the 8 rotations / flips of each input
        (8x the compute; slightly better Dice and AJI).
    instance_params : InstanceParams, optional
        Thresholds from probabilities to instances; default: those stored with the weights (tuned on their
        validation images), else :class:`InstanceParams`'s defaults.
    """

    def __init__(
        self,
        model: UNet,
        *,
        mpp: float = 0.25,
        device: str = "cpu",
        window: int = 512,
        overlap: int = 64,
        meta: dict[str, Any] | None = None,
        instance_params: InstanceParams | None = None,
        tta: bool = False,
        precision: Precision = "auto",
    ) -> None:
        # channels_last: oneDNN's convolutions run about 1.25x faster on the CPU too (and on CUDA)
        self.model = model.eval().to(device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.mpp = mpp
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        self.window = window
        self.overlap = overlap
        self.meta = meta or {}
        self.tta = tta
        self.instance_params = instance_params or InstanceParams.from_dict(self.meta.get("instances"))

    @property
    def channels(self) -> int:
        """Channels of :meth:`probabilities`: 3 class probabilities, + the distance map (4)."""
        return int(self.model.config.n_outputs)

    @classmethod
    def from_weights(cls, path: PathLike, **kwargs: Any) -> Segmenter:
        """Load weights written by ``wsikit train segmenter``."""
        model = UNet.load(path)
        meta = dict(model.weights_meta)
        return cls(model, mpp=float(meta.get("mpp", 0.25)), meta=meta, **kwargs)

    @classmethod
    def load(cls, weights: PathLike | None = None, *, stain: str = "none", **kwargs: Any) -> Segmenter:
        """``weights`` if given, else the shipped default for tiles normalized by ``stain`` (the choice every
        command's ``--weights`` makes; see :func:`pretrained_name`)."""
        return (
            cls.from_weights(weights, **kwargs)
            if weights
            else cls.from_pretrained(pretrained_name(stain), **kwargs)
        )

    @classmethod
    def from_pretrained(cls, name: str = "nuclei", **kwargs: Any) -> Segmenter:
        """Load the shipped weights ``unet-<name>``."""
        return cls.from_weights(weights_path(f"unet-{name}", arch=UNet.ARCH), **kwargs)

    @torch.no_grad()
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.tta:
            return self._forward_once(x)
        acc = torch.zeros(x.shape[0], self.channels, *x.shape[2:], device=x.device)
        for k in range(4):
            for flip in (False, True):
                t = torch.rot90(x, k, dims=(2, 3))
                t = t.flip(3) if flip else t
                y = self._forward_once(t.contiguous())
                y = y.flip(3) if flip else y
                acc += torch.rot90(y, -k, dims=(2, 3))
        return acc / 8

    @torch.no_grad()
    def _forward_once(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.precision):
            logits: torch.Tensor = self.model(x.contiguous(memory_format=torch.channels_last))
        logits = logits.float()
        out = logits[:, :3].softmax(dim=1)
        if self.channels > 3:
            out = torch.cat([out, logits[:, 3:].sigmoid()], dim=1)
        return out.contiguous()

    def batch_probabilities(self, images: torch.Tensor, *, micro_batch: int | None = None) -> torch.Tensor:
        """(B, C, H, W) probabilities (:attr:`channels`) for a (B, 3, H, W) uint8 batch (H, W multiples of 16).

        ``micro_batch`` runs the network on that many images at a time: on the CPU, 1 gives the same
        throughput with a quarter of the activation memory of 4 (a 640 px tile needs about 200 MB).
        """
        step = micro_batch or images.shape[0] or 1
        parts = [
            self._forward(images[i : i + step].to(self.device).float().div_(255.0)).cpu()
            for i in range(0, images.shape[0], step)
        ]
        return torch.cat(parts) if parts else torch.zeros(0, self.channels, *images.shape[2:])

    def probabilities(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """(C, H, W) probabilities of background / interior / boundary (and the normalized distance map when
        :attr:`channels` is 4) for an (H, W, 3) uint8 image."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ShapeError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
        h, w = image.shape[:2]
        x = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)[None].float().div_(255.0)
        win, ov = self.window, self.overlap
        if h <= win and w <= win:
            ph, pw = (-h) % 16, (-w) % 16
            xp = F.pad(x, (0, pw, 0, ph), mode="replicate").to(self.device)
            return self._forward(xp)[0, :, :h, :w].cpu().numpy()
        out = np.zeros((self.channels, h, w), np.float32)
        step = win - 2 * ov
        xp = F.pad(x, (ov, ov + win, ov, ov + win), mode="replicate")
        for y in range(0, h, step):
            for x0 in range(0, w, step):
                tile = xp[:, :, y : y + win, x0 : x0 + win].to(self.device)
                probs = self._forward(tile)[0].cpu().numpy()
                ch, cw = min(step, h - y), min(step, w - x0)
                out[:, y : y + ch, x0 : x0 + cw] = probs[:, ov : ov + ch, ov : ov + cw]
        return out

    def instances(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint32]:
        """Nucleus instance labels (uint32, 0 = background) of an image at the working resolution."""
        return instances_from_probabilities(self.probabilities(image), self.instance_params)

    def segment(self, image: npt.NDArray[np.uint8], *, mpp: float) -> npt.NDArray[np.uint32]:
        """Nucleus instances (uint32, 0 = background) of an (H, W, 3) uint8 image of ``mpp`` um/px.

        The image is resampled to the segmenter's resolution (:attr:`mpp`, 0.25 um/px), segmented, and
        the labels are brought back to the image's grid (nearest), so they are (H, W).

        Examples
        --------
        >>> import numpy as np
        >>> from wsikit.segment import Segmenter
        >>> seg = Segmenter.from_pretrained()
        >>> seg.segment(np.full((64, 80, 3), 255, np.uint8), mpp=0.5).shape
        (64, 80)
        """
        from wsikit.datasets.nuclei import resample_image, resize_labels

        if not 0 < mpp < 100:
            raise ShapeError(f"mpp must be a positive number of microns per pixel, got {mpp}")
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ShapeError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
        return resize_labels(self.instances(resample_image(image, mpp / self.mpp)), image.shape[:2])
