"""Study (issue 3, blocked): does matching the bounded CNN's chroma statistics to the style close the gap to SVD?

The bounded CNN (``CnnNormalizer(lightness="bounded", min_ssim=0.99)``) keeps luminance SSIM >= 0.99 and
trails SVD/Macenko on the paper's three metrics. Chroma (a*, b*) does not enter the luminance SSIM, so it can
be moved freely: here each output's tissue a*, b* are shifted (and optionally scaled) to the mean (and std)
of the style pool's tissue pixels - a Reinhard step on chroma only, after the CNN. Printed beside the plain
bounded CNN; SVD's figures are in benchmarks/results_eval_normalizer.json.

Usage::

    python research/study_chroma_match.py [--source benchmarks/_work/stain/source]
        [--target benchmarks/_work/stain/target] [--min-ssim 0.99]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import numpy.typing as npt

HERE = Path(__file__).resolve().parent
METRICS = ("euclidean", "chroma_distance", "hist_correlation", "hellinger", "ssim_luminance")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source", type=Path, default=HERE.parent / "benchmarks" / "_work" / "stain" / "source"
    )
    parser.add_argument(
        "--target", type=Path, default=HERE.parent / "benchmarks" / "_work" / "stain" / "target"
    )
    parser.add_argument("--min-ssim", type=float, default=0.99)
    args = parser.parse_args()
    import torch

    from wsikit.stain.cnn import CnnNormalizer
    from wsikit.stain.color import lab_to_rgb, rgb_to_lab
    from wsikit.stain.evaluate import load_images
    from wsikit.stain.metrics import _tissue, stain_metrics, style_reference

    def lab(img: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        out: npt.NDArray[np.float32] = rgb_to_lab(torch.from_numpy(img).permute(2, 0, 1)[None].float())[
            0
        ].numpy()
        return out

    def rgb(lab_img: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
        t = lab_to_rgb(torch.from_numpy(lab_img)[None].float())[0].permute(1, 2, 0)
        out: npt.NDArray[np.uint8] = t.clamp(0, 255).round().byte().numpy()
        return out

    sources, _ = load_images(args.source)
    targets, _ = load_images(args.target)
    ref = style_reference(targets)
    pool = np.concatenate([lab(t)[:, _tissue(t)] for t in targets], axis=1)
    t_mean, t_std = pool.mean(axis=1), pool.std(axis=1)
    norm = CnnNormalizer.from_pretrained(lightness="bounded", min_ssim=args.min_ssim)
    rows: dict[str, list[dict[str, float]]] = {
        "bounded CNN": [],
        "+ chroma mean": [],
        "+ chroma mean/std": [],
    }
    for src in sources:
        out = np.asarray(norm.transform(src))
        rows["bounded CNN"].append(stain_metrics(out, src, ref))
        out_lab, tissue = lab(out), _tissue(src)
        for key, scale in (("+ chroma mean", False), ("+ chroma mean/std", True)):
            moved = out_lab.copy()
            for c in (1, 2):
                mu, sd = out_lab[c][tissue].mean(), out_lab[c][tissue].std()
                moved[c] = (out_lab[c] - mu) * (t_std[c] / sd if scale else 1.0) + t_mean[c]
            rows[key].append(stain_metrics(rgb(moved), src, ref))
    print(f"{'':<20}" + "".join(f"{m:>18}" for m in METRICS))
    for key, results in rows.items():
        print(f"{key:<20}" + "".join(f"{np.mean([r[m] for r in results]):>18.3f}" for m in METRICS))


if __name__ == "__main__":
    main()
