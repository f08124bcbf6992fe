"""Study: how the CNN normalizer's lightness mode changes segmentation (the check behind unet-nuclei-cnn).

Each labelled image (default: the 4 MoNuSeg test images exported by ``wsikit export-dataset``) is segmented
raw and after the shipped CNN normalizer with its source lightness kept (what ``wsikit run --stain cnn``
does), matched to the style or bounded (SSIM >= 0.99); mean pixel Dice, AJI and PQ per row.

Usage::

    python research/study_segment_lightness.py [--folder benchmarks/_work/monuseg_test] [--weights W]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=HERE.parent / "benchmarks" / "_work" / "monuseg_test")
    parser.add_argument("--weights", type=Path, default=None, help="U-Net weights [default: unet-nuclei]")
    args = parser.parse_args()
    from wsikit.segment.evaluate import load_labelled_folder
    from wsikit.segment.infer import Segmenter
    from wsikit.segment.metrics import aggregated_jaccard_index, panoptic_quality, pixel_metrics
    from wsikit.stain.cnn import CnnNormalizer

    seg = Segmenter.load(args.weights)
    items = load_labelled_folder(args.folder)
    print(f"{'input':<22}{'Dice':>8}{'AJI':>8}{'PQ':>8}")
    for mode in ("raw", "keep", "match", "bounded"):
        norm = None if mode == "raw" else CnnNormalizer.from_pretrained(lightness=mode)  # type: ignore[arg-type]
        rows = []
        for _, image, labels in items:
            x = image if norm is None else np.asarray(norm.transform(image))
            pred = seg.instances(x)
            rows.append(
                (
                    pixel_metrics(labels, pred)["dice"],
                    aggregated_jaccard_index(labels, pred),
                    panoptic_quality(labels, pred)["pq"],
                )
            )
        dice, aji, pq = np.mean(rows, axis=0)
        label = "raw" if mode == "raw" else f"CNN, lightness {mode}"
        print(f"{label:<22}{dice:>8.3f}{aji:>8.3f}{pq:>8.3f}")


if __name__ == "__main__":
    main()
