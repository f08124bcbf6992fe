"""Study: the shipped InfoGAN's calls refined by tissue context (nest density of non-lymphocyte neighbours).

Pre-registered before it was scored (rule and constants fixed in wsikit/classify/context.py, committed first):
the InfoGAN names each nucleus; lymphocytes stay; every other nucleus is epithelial if the area fraction of
a 15 um disc around it covered by other non-lymphocyte nuclei is at least a threshold, else fibroblast. The
threshold is the Otsu threshold of that density over the non-lymphocyte nuclei of the *unlabelled* training
images (MoNuSeg, MICCAI 2015, DSB 2018 instance masks), so no cell-type label is used. The labelled
folder (NuCLS + MoNuSAC, exported by bench_classifier.py) is then scored once, InfoGAN alone beside
InfoGAN + context.

Usage::

    python benchmarks/study_nest_context.py [--data ../shared/data] [--labelled benchmarks/_work/classes_all]
        [--json benchmarks/results_study_nest_context.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

HERE = Path(__file__).resolve().parent


def field_calls(
    clf: Any, image: npt.NDArray[np.uint8], labels: npt.NDArray[np.uint32], mpp: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Ids, InfoGAN cell types and nest densities of every nucleus of one field."""
    from wsikit.classify.context import nest_density
    from wsikit.classify.crops import nucleus_crops, standardize_stain
    from wsikit.vectorize.measure import measure_nuclei

    std = standardize_stain(image)
    crops, ids = nucleus_crops(std, labels, mpp=mpp, whiten=clf.whiten)
    if len(ids) == 0:
        return ids, np.zeros(0, np.int64), np.zeros(0)
    m = measure_nuclei(std, labels, mpp=mpp, ids=ids)
    t = clf.predict(crops).cell_type
    cen = np.stack([m["centroid_y"], m["centroid_x"]], axis=1) * mpp
    h, w = labels.shape
    return ids, t, nest_density(cen, m["area"], t, extent_um=(h * mpp, w * mpp))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=HERE.parents[1] / "shared" / "data")
    parser.add_argument("--labelled", type=Path, default=HERE / "_work" / "classes_all")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    import tifffile
    from PIL import Image

    from wsikit.classify.context import NEST_RADIUS_UM, fit_nest_threshold, refine_with_context
    from wsikit.classify.infer import CellClassifier
    from wsikit.classify.metrics import classification_report
    from wsikit.classify.naming import CELL_TYPES
    from wsikit.io.annotations import read_points_csv
    from wsikit.pipeline.eval_classifier import CLASS_ALIASES
    from wsikit.pipeline.train_classifier import UNLABELLED_DATASETS
    from wsikit.segment.data import WORKING_MPP, load_dataset

    clf = CellClassifier.from_pretrained()
    lym = CELL_TYPES.index("lymphocyte")
    train_density = []
    for name in UNLABELLED_DATASETS:
        splits = ("train", "test") if name == "monuseg" else ("train",)
        for split in splits:
            for s in load_dataset(name, args.data, split=split):
                _, t, d = field_calls(clf, s.image, s.labels, WORKING_MPP)
                train_density.append(d[t != lym])
    dens = np.concatenate(train_density)
    tau = fit_nest_threshold(dens)
    print(f"threshold (Otsu over {len(dens)} unlabelled non-lymphocyte nuclei): {tau:.4f}")
    print(
        "training density quantiles 10/25/50/75/90:", np.quantile(dens, [0.1, 0.25, 0.5, 0.75, 0.9]).round(3)
    )

    truth, alone, density, image_of = [], [], [], []
    for png in sorted(args.labelled.glob("*.png")):
        labels = tifffile.imread(png.with_name(png.stem + ".labels.tif")).astype(np.uint32)
        image = np.asarray(Image.open(png).convert("RGB"))
        ids, t, d = field_calls(clf, image, labels, WORKING_MPP)
        row = {int(i): k for k, i in enumerate(ids)}
        seen: set[int] = set()
        for pt in read_points_csv(png.with_name(png.stem + ".points.csv")):
            c = CLASS_ALIASES.get(pt.label.strip().lower())
            y, x = int(round(pt.y)), int(round(pt.x))
            if c is None or not (0 <= y < labels.shape[0] and 0 <= x < labels.shape[1]):
                continue
            nid = int(labels[y, x])
            if nid == 0 or nid in seen:
                continue
            seen.add(nid)
            k = row[nid]
            truth.append(CELL_TYPES.index(c))
            alone.append(t[k])
            density.append(d[k])
            image_of.append(png.stem)
    truth_a = np.array(truth)
    alone_a = np.array(alone)
    dens_a = np.array(density)
    refined_a = refine_with_context(alone_a, dens_a, tau)
    out: dict[str, Any] = {
        "radius_um": NEST_RADIUS_UM,
        "threshold": tau,
        "training_nuclei": int(len(dens)),
        "nuclei": int(len(truth_a)),
        "per_class": np.bincount(truth_a, minlength=3).tolist(),
    }
    for key, pred in (("infogan", alone_a), ("infogan_context", refined_a)):
        rep = classification_report(truth_a, pred, CELL_TYPES).to_dict()
        out[key] = rep
        per_set = {}
        for prefix in ("nucls", "monusac"):
            sel = np.array([s.startswith(prefix) for s in image_of])
            per_set[prefix] = round(float((pred[sel] == truth_a[sel]).mean()), 4)
        out[key]["per_set_accuracy"] = per_set
        print(key, json.dumps({k: rep[k] for k in ("accuracy", "f1")}), per_set)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
