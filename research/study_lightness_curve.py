"""Study (not shipped): a lightness curve optimized under the SSIM bound, against the bounded CNN's single share.

For each source image of the stain benchmark (benchmarks/_work/stain, made by prepare_stain_data.py) the
CNN's chroma is kept and the output lightness is set two ways, both held at luminance SSIM >= 0.991 by the
same bisection: (a) ``share``: L + t * (matched L - L), the shipped `lightness="bounded"`; (b) ``curve``: a
monotone 21-knot piecewise-linear curve of L, optimized (Adam, augmented Lagrangian on the SSIM bound, 150
steps) to bring the lightness quantiles to the style's. Prints the paper's metrics per image and averaged.
About 160 s per 1 MP image on a 2-core CPU.

Usage::

    python research/study_lightness_curve.py
"""

# ruff: noqa: E731
import time

import numpy as np
import torch

from wsikit.stain.base import tissue_weight
from wsikit.stain.cnn import CnnNormalizer, largest_passing_share, lightness_quantiles, luminance_ssim
from wsikit.stain.color import lab_to_rgb, rgb_to_lab
from wsikit.stain.evaluate import load_images
from wsikit.stain.metrics import stain_metrics, style_reference

torch.manual_seed(0)
src, names = load_images("benchmarks/_work/stain/source")
tgt, _ = load_images("benchmarks/_work/stain/target")
ref = style_reference(tgt)
nrm = CnnNormalizer.from_pretrained(lightness="keep")
goal = 0.991


def to_t(im):
    return torch.from_numpy(im).permute(2, 0, 1)[None].float()


def interp(L, xk, yk):
    flat = L.reshape(-1)
    idx = torch.searchsorted(xk, flat.contiguous()).clamp(1, len(xk) - 1)
    x0, x1, y0, y1 = xk[idx - 1], xk[idx], yk[idx - 1], yk[idx]
    t = ((flat - x0) / (x1 - x0)).clamp(0, 1)
    return (y0 + t * (y1 - y0)).reshape(L.shape)


def finish(Lnew, ab, im):
    o = lab_to_rgb(torch.cat([Lnew, ab], 1)).round().clamp(0, 255).byte()[0].permute(1, 2, 0).numpy()
    return stain_metrics(o, im, ref)


def bisect(L, delta):
    return largest_passing_share(lambda a: float(luminance_ssim(L, L + a * delta)) >= goal, steps=10)


res = {"share": [], "curve": []}
for im, name in zip(src, names, strict=True):
    x = to_t(im)
    lab = rgb_to_lab(x)
    L = lab[:, :1]
    w = tissue_weight(x)
    keep = nrm.transform(im)
    ab = rgb_to_lab(to_t(keep))[:, 1:]
    q = lightness_quantiles(x)
    m = nrm._match_lightness(L, q)

    t = bisect(L, w * (m - L))
    res["share"].append(finish(L + t * w * (m - L), ab, im))
    # curve
    t0 = time.time()
    src_q = q + torch.arange(101) * 1e-4
    ks = torch.arange(0, 101, 5)
    xk = src_q[ks]
    tk = nrm.style[0][ks].float()
    inc0 = torch.diff(xk).clamp_min(1e-3)
    p = torch.log(torch.expm1(inc0)).clone().requires_grad_(True)
    b = xk[:1].clone().requires_grad_(True)
    opt = torch.optim.Adam([p, b], lr=0.05)
    mu = 0.0
    for _ in range(150):
        yk = torch.cat([b, b + torch.cumsum(torch.nn.functional.softplus(p), 0)])
        Ln = L + w * (interp(L, xk, yk) - L)
        s = luminance_ssim(L, Ln).double().sum()
        w2 = ((yk - tk) ** 2).mean()
        viol = goal - s
        loss = w2 + mu * viol + 5000 * torch.relu(viol) ** 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        mu = max(0.0, mu + 200 * float(viol.detach()))
    with torch.no_grad():
        yk = torch.cat([b, b + torch.cumsum(torch.nn.functional.softplus(p), 0)])
        delta = w * (interp(L, xk, yk) - L)
        a = bisect(L, delta)
        res["curve"].append(finish(L + a * delta, ab, im))
    print(
        name,
        "share",
        t,
        {k: round(v, 3) for k, v in res["share"][-1].items()},
        "\n   curve a",
        a,
        round(time.time() - t0, 1),
        "s",
        {k: round(v, 3) for k, v in res["curve"][-1].items()},
        flush=True,
    )
for k, v in res.items():
    print(k, {m: round(float(np.mean([r[m] for r in v])), 4) for m in v[0]})
