"""40x40 nucleus crops at a fixed resolution, the classifier's input (numpy in, numpy out).

Each nucleus is cut out centred on its centroid from a window of ``size`` pixels at :data:`CROP_MPP`
(0.5 um/px, so a crop spans 20 um and nuclear size stays a visible feature); a nucleus too large for the
window is cut from a window that fits it and shrunk to ``size``. With ``whiten`` (default) every pixel
outside the nucleus mask becomes white, so the crop shows the nucleus alone.

Before cropping, :func:`standardize_stain` maps a field to one reference H&E color distribution
(Reinhard, Lab mean/std of the bundled CMU-1 sample slide) so that clusters follow cell type, not the
staining of the lab the image came from.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

from wsikit.errors import ShapeError
from wsikit.stain.reinhard import LabStats

__all__ = [
    "to_tensor",
    "scale_jitter",
    "CROP_MPP",
    "CROP_SIZE",
    "CONTEXT_MPP",
    "CONTEXT_CHANNELS",
    "context_channels",
    "nucleus_crops",
    "context_crops",
    "standardize_stain",
    "fit_stain_source",
    "crop_augment",
    "stain_jitter",
    "scanner_jitter",
]

CROP_MPP = 0.5
"""Resolution of the crops, in microns per pixel."""
CROP_SIZE = 40
"""Side of a crop in pixels."""
CONTEXT_MPP = 1.6
"""Default resolution of the surroundings channels of :func:`context_crops` (40 px span 64 um)."""
CONTEXT_CHANNELS = 7
"""Channels of a context crop with one surroundings field: nucleus RGB (3), nucleus mask (1), surroundings RGB (3)."""


def context_channels(context_mpp: tuple[float, ...] = (CONTEXT_MPP,)) -> int:
    """Channels of a context crop with surroundings fields at ``context_mpp``: 4 + 3 per field."""
    return 4 + 3 * len(context_mpp)


# Lab mean / std of tissue pixels of the CMU-1 sample slide (its 1024 px overview), the reference style.
_REFERENCE = LabStats(torch.tensor([47.35, 28.76, -12.52]), torch.tensor([17.19, 10.81, 7.02]))

_RGB_TO_XYZ = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_WHITE = np.array([0.950456, 1.0, 1.088754])
_MIN_TISSUE = 256


def _linear_levels() -> npt.NDArray[np.float64]:
    c = np.arange(256, dtype=np.float64) / 255.0
    out: npt.NDArray[np.float64] = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    return out


# per grey level, the same float64 expressions as on whole images (identical values, looked up instead of
# computed per pixel: the power and the logarithm were most of the time of a slide's stain statistics)
_LINEAR = _linear_levels()
_NEG_LOG_T = np.log((np.arange(256, dtype=np.float64) + 1.0) / 256.0)


def _rgb_to_lab(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    c = _LINEAR[rgb]
    xyz = (c @ _RGB_TO_XYZ.T) / _WHITE
    eps = 216 / 24389
    f = np.where(xyz > eps, np.cbrt(np.maximum(xyz, 1e-12)), (24389 / 27 * xyz + 16) / 116)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1
    )


def _lab_to_rgb(lab: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    xyz = np.where(f > 6 / 29, f**3, (116 * f - 16) * 27 / 24389) * _WHITE
    lin = np.maximum(xyz @ np.linalg.inv(_RGB_TO_XYZ).T, 0.0)
    srgb = np.where(lin > 0.0031308, 1.055 * np.maximum(lin, 1e-12) ** (1 / 2.4) - 0.055, 12.92 * lin)
    out: npt.NDArray[np.float64] = np.clip(srgb * 255.0, 0.0, 255.0)
    return out


def _tissue_weight(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    t = _NEG_LOG_T  # the channels' mean, summed as numpy's mean does (identical values, 2.7x faster)
    od = -((t[rgb[..., 0]] + t[rgb[..., 1]]) + t[rgb[..., 2]]) / 3
    w: npt.NDArray[np.float64] = np.clip((od - 0.15) / 0.15, 0.0, 1.0)  # glass < 0.15, tissue > 0.30 OD
    return w


def fit_stain_source(image: npt.NDArray[np.uint8]) -> LabStats | None:
    """Lab mean/std of the tissue pixels of a slide's overview, for :func:`standardize_stain` (None: too little
    tissue). Computed in float64 with numpy, so it does not depend on thread counts; each distinct colour is
    converted once and weighted by its pixel count (the same moments up to float64 rounding, 2.5x faster on
    a 2,048 px overview)."""
    tissue = image[_tissue_weight(image) >= 0.5]  # tissue pixels only
    if len(tissue) < _MIN_TISSUE:
        return None
    colours, counts, _ = _distinct_colours(tissue)
    lab = _rgb_to_lab(colours)
    weight = counts.astype(np.float64)[:, None] / len(tissue)
    mean = (weight * lab).sum(axis=0)
    std = np.sqrt((weight * (lab - mean) ** 2).sum(axis=0))
    if (std < 1e-3).any():
        return None
    return LabStats(torch.from_numpy(mean), torch.from_numpy(std))


def _distinct_colours(
    pixels: npt.NDArray[np.uint8],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.intp]]:
    """(N, 3) uint8 pixels -> their distinct colours (U, 3), each one's pixel count, and each pixel's colour
    index (first-seen order)."""
    import pandas as pd

    packed = (pixels[:, 0].astype(np.int32) << 16) | (pixels[:, 1].astype(np.int32) << 8) | pixels[:, 2]
    codes, uniques = pd.factorize(packed, sort=False)
    u = np.asarray(uniques, np.int32)
    colours = np.stack([(u >> 16) & 255, (u >> 8) & 255, u & 255], axis=-1).astype(np.uint8)
    return colours, np.bincount(codes, minlength=len(u)), codes


def standardize_stain(
    image: npt.NDArray[np.uint8], *, source: LabStats | None = None
) -> npt.NDArray[np.uint8]:
    """Reinhard-normalize an (H, W, 3) field (or with ``source`` statistics of its slide) to the reference.

    Glass is left as it is (tissue weight as in the stain normalizers); an image with too little tissue to
    fit comes back unchanged. Float64 numpy throughout: the same pixels give the same output on any
    machine and thread count (the classifier's input must be reproducible).
    """
    if source is None:
        source = fit_stain_source(image)
        if source is None:
            return image
    if image.ndim == 3 and image.shape[-1] == 3 and image.shape[0] * image.shape[1] > _PER_COLOUR_MIN:
        # a per-pixel function of the colour: convert each distinct colour once (identical output; a
        # window of tissue holds far fewer colours than pixels)
        colours, _, codes = _distinct_colours(np.ascontiguousarray(image).reshape(-1, 3))
        mapped = _standardize_pixels(colours[:, None], source)[:, 0]
        out: npt.NDArray[np.uint8] = mapped[codes].reshape(image.shape)
        return out
    return _standardize_pixels(image, source)


_PER_COLOUR_MIN = 65536
"""Images with more pixels than this are standardized colour by colour."""


def _standardize_pixels(image: npt.NDArray[np.uint8], source: LabStats) -> npt.NDArray[np.uint8]:
    mean, std = source.mean.double().numpy(), source.std.double().numpy()
    ref_mean, ref_std = _REFERENCE.mean.double().numpy(), _REFERENCE.std.double().numpy()
    lab = (_rgb_to_lab(image) - mean) * (ref_std / std) + ref_mean
    w = _tissue_weight(image)[..., None]
    out = w * _lab_to_rgb(lab) + (1.0 - w) * image.astype(np.float64)
    result: npt.NDArray[np.uint8] = np.floor(out + 0.5).clip(0, 255).astype(np.uint8)
    return result


def nucleus_crops(
    image: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.integer],
    *,
    mpp: float,
    size: int = CROP_SIZE,
    crop_mpp: float = CROP_MPP,
    whiten: bool = True,
    ids: npt.NDArray[np.integer] | None = None,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """Cut one crop per nucleus.

    Parameters
    ----------
    image
        (H, W, 3) uint8 RGB field.
    labels
        (H, W) instance ids (0 = background).
    mpp
        Resolution of ``image`` in microns per pixel.
    ids
        Crop these ids, in this order (default: every id present, ascending).

    Returns
    -------
    crops : (N, size, size, 3) uint8
    ids : (N,) int64, the instance id of each crop

    Examples
    --------
    >>> lab = np.zeros((60, 60), np.int32); lab[20:30, 25:33] = 7
    >>> crops, ids = nucleus_crops(np.full((60, 60, 3), 90, np.uint8), lab, mpp=0.25)
    >>> crops.shape, ids.tolist(), int(crops[0, 0, 0, 0]), int(crops[0, 20, 20, 0])
    ((1, 40, 40, 3), [7], 255, 90)
    """
    if image.ndim != 3 or image.shape[2] != 3 or labels.shape != image.shape[:2]:
        raise ShapeError(
            f"image must be (H, W, 3) and labels (H, W) of the same size, got {image.shape}, {labels.shape}"
        )
    if mpp <= 0 or crop_mpp <= 0 or size < 8:
        raise ShapeError(f"mpp and crop_mpp must be positive and size >= 8, got {mpp}, {crop_mpp}, {size}")
    fields, want = _cut(
        image, labels, mpp=mpp, size=size, fields=((crop_mpp, "whiten" if whiten else "rgb"),), ids=ids
    )
    return fields[0], want


_BATCH = 128  # crops gathered and resized at once: bounded memory (128 fields of 256 px: 25 MB)


def _resize_batch(patches: npt.NDArray[np.uint8], size: int) -> npt.NDArray[np.uint8]:
    """(N, S, S[, 3]) uint8 -> (N, size, size[, 3]): bilinear with antialiasing, torch's uint8 kernel.

    The same filter as PIL's ``Image.resize(BILINEAR)``, which the crops were made with until session 12
    (torch's uint8 path follows PIL's): identical for a factor of 2, at most 2 apart on under 1% of values for
    other factors. Crops already ``size`` are returned as they are.
    """
    if patches.shape[1] == size and patches.shape[2] == size:
        return patches
    t = torch.from_numpy(patches)
    t = t[:, None] if t.ndim == 3 else t.permute(0, 3, 1, 2)  # channels-last strides: torch's fast path
    r = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", antialias=True)
    return (r[:, 0] if patches.ndim == 3 else r.permute(0, 2, 3, 1)).numpy()


def _cut(
    image: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.integer],
    *,
    mpp: float,
    size: int,
    fields: tuple[tuple[float, str], ...],
    ids: npt.NDArray[np.integer] | None,
) -> tuple[list[npt.NDArray[np.uint8]], npt.NDArray[np.int64]]:
    """Per nucleus and per field ``(crop_mpp, kind)``, a square crop centred on the nucleus's box, spanning
    ``size * crop_mpp`` microns or 1.15 x the nucleus's longer side if larger, resized to ``size`` px (pixels
    beyond the image white). ``kind``: "rgb" the image, "whiten" the image with every pixel outside the
    nucleus white, "mask" 255 inside the nucleus and 0 elsewhere (one channel; resized as 255 - the whitened
    crop of a black image, as the weights were trained).

    Vectorized: the image is padded once with white (labels with 0), crops of one side length are gathered
    from it and resized together (:func:`_resize_batch`), :data:`_BATCH` at a time.
    """
    from scipy import ndimage as ndi

    lab = np.asarray(labels)
    objects = ndi.find_objects(lab.astype(np.int64, copy=False))
    present = np.array([i + 1 for i, s in enumerate(objects) if s is not None], np.int64)
    want = present if ids is None else np.asarray(ids, np.int64)
    out = [np.empty((len(want), size, size) if kind == "mask" else (len(want), size, size, 3), np.uint8)
           for _, kind in fields]  # fmt: skip
    if len(want) == 0:
        return out, want
    boxes = np.empty((len(want), 4), np.int64)
    for k, nid in enumerate(want):
        sl = objects[nid - 1] if 0 < nid <= len(objects) else None
        if sl is None:
            raise ShapeError(f"id {int(nid)} is not present in labels")
        boxes[k] = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
    cy, cx = (boxes[:, 0] + boxes[:, 1]) / 2, (boxes[:, 2] + boxes[:, 3]) / 2
    extent = np.maximum(boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2]) * 1.15
    sides = [np.ceil(np.maximum(size * crop_mpp / mpp, extent)).astype(np.int64) for crop_mpp, _ in fields]
    pad = int(max(int(s.max()) for s in sides)) + 1
    h, w = lab.shape
    img_pad = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), constant_values=255)
    lab_pad = np.pad(lab, pad) if any(kind != "rgb" for _, kind in fields) else lab
    for f, (_, kind) in enumerate(fields):
        side = sides[f]
        y0 = np.round(cy - side / 2).astype(np.int64) + pad  # round half to even, as Python's round
        x0 = np.round(cx - side / 2).astype(np.int64) + pad
        for s in np.unique(side).tolist():
            group = np.flatnonzero(side == s)
            for a in range(0, len(group), _BATCH):
                sel = group[a : a + _BATCH]
                if kind == "mask":  # a whitened blank image: 0 inside, 255 elsewhere; inverted after resizing
                    patch = np.empty((len(sel), s, s), np.uint8)
                    for j, k in enumerate(sel.tolist()):
                        ya, xa = int(y0[k]), int(x0[k])
                        np.not_equal(lab_pad[ya : ya + s, xa : xa + s], want[k], out=patch[j].view(bool))
                    patch *= 255
                else:
                    patch = np.empty((len(sel), s, s, 3), np.uint8)
                    for j, k in enumerate(sel.tolist()):
                        ya, xa = int(y0[k]), int(x0[k])
                        patch[j] = img_pad[ya : ya + s, xa : xa + s]
                        if kind == "whiten":
                            patch[j][lab_pad[ya : ya + s, xa : xa + s] != want[k]] = 255
                out[f][sel] = _resize_batch(patch, size)
    for f, (_, kind) in enumerate(fields):
        if kind == "mask":
            np.subtract(255, out[f], out=out[f])
    return out, want


def context_crops(
    image: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.integer],
    *,
    mpp: float,
    ids: npt.NDArray[np.integer] | None = None,
    size: int = CROP_SIZE,
    context_mpp: tuple[float, ...] = (CONTEXT_MPP,),
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """Crops of each nucleus with its surroundings: the input of the labelled cell-type classifiers.

    Channels (last axis): 0-2 the nucleus crop of :func:`nucleus_crops` at :data:`CROP_MPP` with the
    tissue around it kept (20 um field), 3 the nucleus's own mask in that crop (255 inside), then per
    entry of ``context_mpp`` a wider RGB field of ``size`` pixels at that resolution centred on the same
    point (default one field of 64 um: stroma, nests, lymphocyte aggregates). Pixels beyond the image are
    white (glass).

    Returns
    -------
    crops : (N, size, size, 4 + 3 * len(context_mpp)) uint8
    ids : (N,) int64

    Examples
    --------
    >>> lab = np.zeros((200, 200), np.int32); lab[95:105, 96:104] = 3
    >>> crops, ids = context_crops(np.full((200, 200, 3), 90, np.uint8), lab, mpp=0.5)
    >>> crops.shape, ids.tolist(), int(crops[0, 20, 20, 3]), int(crops[0, 0, 0, 3]), int(crops[0, 0, 0, 4])
    ((1, 40, 40, 7), [3], 255, 0, 90)
    """
    if image.ndim != 3 or image.shape[2] != 3 or labels.shape != image.shape[:2]:
        raise ShapeError(
            f"image must be (H, W, 3) and labels (H, W) of the same size, got {image.shape}, {labels.shape}"
        )
    if mpp <= 0 or size < 8 or any(m <= 0 for m in context_mpp):
        raise ShapeError(
            f"mpp and context_mpp must be positive and size >= 8, got {mpp}, {context_mpp}, {size}"
        )
    # the surroundings: the same centre, windows too large for any nucleus to enlarge them
    fields = ((CROP_MPP, "rgb"), (CROP_MPP, "mask"), *((m, "rgb") for m in context_mpp))
    (near, mask, *wide), got = _cut(image, labels, mpp=mpp, size=size, fields=fields, ids=ids)
    return np.concatenate([near, mask[..., None], *wide], axis=-1), got


def crop_augment(crops: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random 90-degree rotations and flips of a (B, C, H, W) batch (one draw per crop)."""
    if crops.ndim != 4:
        raise ShapeError(f"crops must be (B, C, H, W), got {tuple(crops.shape)}")
    k = torch.randint(0, 4, (crops.shape[0],), generator=generator)
    flip = torch.randint(0, 2, (crops.shape[0],), generator=generator).bool()
    out = crops.clone()
    for r in range(4):
        sel = k == r
        if sel.any():
            out[sel] = torch.rot90(crops[sel], r, dims=(2, 3))
    out[flip] = out[flip].flip(3)
    return out


def stain_jitter(crops: torch.Tensor, generator: torch.Generator, *, strength: float = 1.0) -> torch.Tensor:
    """Random brightness, contrast and per-channel colour shifts of (B, C, H, W) crops in [-1, 1].

    The same draw applies to every RGB triple of a crop (channels 0-2 and, for context crops, 4-6, 7-9
    ...); a context crop's mask channel 3 is left alone. ``strength`` 1 draws contrast in [0.85, 1.15],
    brightness in [-0.1, 0.1] and colour shifts in [-0.06, 0.06] (on the [-1, 1] scale).
    """
    if crops.ndim != 4 or not (
        crops.shape[1] == 3 or (crops.shape[1] >= 7 and (crops.shape[1] - 4) % 3 == 0)
    ):
        raise ShapeError(f"crops must be (B, 3 or 4 + 3k, H, W), got {tuple(crops.shape)}")
    b = crops.shape[0]

    def draw(*shape: int, half: float) -> torch.Tensor:
        return (torch.rand(*shape, generator=generator) * 2 - 1) * half * strength

    contrast = 1 + draw(b, 1, 1, 1, half=0.15)
    shift = draw(b, 1, 1, 1, half=0.1) + draw(b, 3, 1, 1, half=0.06)
    out = crops.clone()
    groups = [(0, 3)] + [(a, a + 3) for a in range(4, crops.shape[1], 3)]
    for a, z in groups:
        out[:, a:z] = (crops[:, a:z] * contrast + shift).clamp(-1, 1)
    return out


def scale_jitter(
    crops: torch.Tensor, generator: torch.Generator, *, max_scale: float = 0.2, p: float = 0.5
) -> torch.Tensor:
    """Random zoom about the centre of (B, C, H, W) crops (probability ``p`` per crop) by a factor drawn
    log-uniformly in [1 / (1 + ``max_scale``), 1 + ``max_scale``]: nuclei and their surroundings look larger or
    smaller, as they do across scanners, patients and segmentations. Bilinear, edges replicated; every channel
    (the mask and the surroundings fields too) zooms alike.
    """
    if crops.ndim != 4:
        raise ShapeError(f"crops must be (B, C, H, W), got {tuple(crops.shape)}")
    b = crops.shape[0]
    log_s = (torch.rand(b, generator=generator) * 2 - 1) * float(np.log1p(max_scale))
    on = torch.rand(b, generator=generator) < p
    inv = torch.where(on, torch.exp(-log_s), torch.ones(b)).to(crops.dtype)
    theta = torch.zeros(b, 2, 3, dtype=crops.dtype)
    theta[:, 0, 0] = inv
    theta[:, 1, 1] = inv
    grid = torch.nn.functional.affine_grid(theta, list(crops.shape), align_corners=False)
    out: torch.Tensor = torch.nn.functional.grid_sample(
        crops, grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return out


def _rgb_groups(channels: int) -> list[tuple[int, int]]:
    return [(0, 3)] + [(a, a + 3) for a in range(4, channels, 3)]


def scanner_jitter(
    crops: torch.Tensor, generator: torch.Generator, *, p_sharpness: float = 0.5, p_edge: float = 0.25
) -> torch.Tensor:
    """Random sharpness and field-edge changes of (B, C, H, W) context crops in [-1, 1] (C = 4 + 3k).

    - sharpness (probability ``p_sharpness``): ``x + a * (x - blur(x))`` with ``a`` in [-0.6, 1.0] on every
      RGB triple (negative blurs, positive sharpens): scanners and objectives differ (a 40x scan brought to
      0.5 um/px is sharper than a 20x scan);
    - field edge (probability ``p_edge``, surroundings fields only): the part beyond a random line 4-16 px
      from one side of the field is glass (white), as where a small image or the slide ends.

    The nucleus mask (channel 3) is left alone.
    """
    if crops.ndim != 4 or crops.shape[1] < 7 or (crops.shape[1] - 4) % 3:
        raise ShapeError(f"crops must be (B, 4 + 3k, H, W) context crops, got {tuple(crops.shape)}")
    b, c, h, w = crops.shape
    out = crops.clone()
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0  # binomial blur, sigma ~1 px
    kernel = (k[:, None] * k[None, :]).to(crops.dtype)[None, None]
    amount = torch.rand(b, generator=generator) * 1.6 - 0.6
    sharp = torch.rand(b, generator=generator) < p_sharpness
    for a, z in _rgb_groups(c):
        x = out[:, a:z]
        blurred = torch.nn.functional.conv2d(
            torch.nn.functional.pad(x.reshape(-1, 1, h, w), (2, 2, 2, 2), mode="replicate"), kernel
        ).reshape(x.shape)
        adj = (x + amount[:, None, None, None] * (x - blurred)).clamp(-1, 1)
        out[:, a:z] = torch.where(sharp[:, None, None, None], adj, x)
    edge = torch.rand(b, generator=generator) < p_edge
    side = torch.randint(0, 4, (b,), generator=generator)
    cut = torch.randint(4, 17, (b,), generator=generator)
    yy = torch.arange(h)[:, None].expand(h, w)
    xx = torch.arange(w)[None, :].expand(h, w)
    for i in torch.nonzero(edge).flatten().tolist():
        n = int(cut[i])
        glass = [xx < n, xx >= w - n, yy < n, yy >= h - n][int(side[i])]
        out[i, 4:, glass] = 1.0
    return out


def to_tensor(crops: npt.NDArray[np.uint8]) -> torch.Tensor:
    """(N, S, S, C) uint8 crops -> (N, C, S, S) float in [-1, 1] (C = 3 nucleus crops, 7 or more context crops)."""
    if crops.ndim != 4 or crops.shape[3] < 3:
        raise ShapeError(f"crops must be (N, S, S, C >= 3) uint8, got {crops.shape}")
    return torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
