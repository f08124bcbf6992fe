"""Study (issue 15, item 1): a learned filter of segmented objects that overlap no nucleus.

On the three validation sources (MoNuSeg test, MoNuSeg 2018 extra test, its two breast images) about one in six
objects that ``wsikit run``'s segmentation keeps overlaps no annotated nucleus (IoU < 0.1 with every one);
dropping exactly those (an oracle) lifts mean AJI 0.601 -> 0.653 and PQ 0.572 -> 0.622. Can a filter on what the
pipeline has at hand (:mod:`wsikit.segment.object_filter`) get part of that?

``prepare``: segment the 24 non-breast MoNuSeg 2018 extra-train images (the tuning images of
research/study_segmenter_distance.py; the shipped U-Net never trained on them) and the three validation
sources as ``wsikit eval segmenter`` scores the run's path (CNN normalizer, ``unet-nuclei-cnn``, area range,
colour rule); keep per image the instances, the annotation and each object's features and label (nucleus:
IoU >= 0.1 with some annotated nucleus). ``fit``: fit :func:`fit_object_filter` on the tuning images' objects
and choose its threshold there, by the mean of AJI + PQ over the tuning images (grid 0.05 .. 0.6). ``score``:
the three sources without and with the filter.

Ship rule, committed before ``score`` was run (session 11's): the filter ships (in the segmenter weights'
metadata, applied by ``wsikit run`` and ``wsikit eval segmenter``) only if the mean over the three sources has
AJI and PQ each >= without + 0.01 and Dice >= without - 0.005.

Usage::

    python research/study_object_filter.py prepare
    python research/study_object_filter.py fit
    python research/study_object_filter.py score
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from study_segmenter_distance import _sources_all  # noqa: E402
from study_segmenter_extra import BREAST, _sources  # noqa: E402

WORK = HERE / "_work" / "object_filter"
THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6)


def _segment(folder: Path, skip_breast: bool) -> list[dict[str, Any]]:
    from wsikit.datasets.nuclei import folder_mpp
    from wsikit.segment import ColourRule
    from wsikit.segment.evaluate import RUN_AREA_UM2, _keep, _keep_area, _load_models, load_labelled_folder
    from wsikit.segment.metrics import overlaps
    from wsikit.segment.object_filter import object_features
    from wsikit.segment.targets import instances_from_probabilities

    seg, norm = _load_models("cnn", None, None, False)
    rule = ColourRule()
    out = []
    for name, raw, labels in load_labelled_folder(folder):
        if skip_breast and name.startswith(BREAST):
            continue
        factor = folder_mpp(folder, default=0.25) / seg.mpp
        assert abs(factor - 1) < 1e-3, "scored at the folder's own grid (MoNuSeg: 0.25 um/px)"
        img = np.asarray(norm.transform(raw))
        probs = seg.probabilities(img)
        pred = _keep_area(instances_from_probabilities(probs, seg.instance_params), RUN_AREA_UM2, seg.mpp)
        ids = np.arange(1, int(pred.max()) + 1)
        pred = _keep(pred, np.concatenate([[False], ~rule.rejects(raw, pred, ids)]))
        obj, feats = object_features(probs, raw, pred)
        gt_ids, pred_ids, ga, pa, inter = overlaps(labels, pred)
        iou = inter / (ga[:, None] + pa[None, :] - inter) if inter.size else np.zeros((0, len(pred_ids)))
        best = dict(
            zip(
                np.asarray(pred_ids).tolist(),
                (iou.max(axis=0) if len(gt_ids) else np.zeros(len(pred_ids))).tolist(),
                strict=True,
            )
        )
        is_nucleus = np.array([best.get(int(i), 0.0) >= 0.1 for i in obj])
        out.append(
            {
                "name": name,
                "pred": pred,
                "truth": labels,
                "ids": obj,
                "features": feats,
                "nucleus": is_nucleus,
            }
        )
    return out


def prepare() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    sets = {"tuning": (_sources_all()[2], True), **{f.name: (f, False) for f in _sources()}}
    for key, (folder, skip) in sets.items():
        rows = _segment(folder, skip)
        np.savez_compressed(
            WORK / f"{key}.npz",
            **{f"{i}_{k}": np.asarray(v) for i, r in enumerate(rows) for k, v in r.items()},
            n=np.array(len(rows)),
        )
        n_obj = sum(len(r["ids"]) for r in rows)
        print(
            key,
            len(rows),
            "images,",
            n_obj,
            "objects,",
            round(sum(r["nucleus"].sum() for r in rows) / n_obj, 3),
            "on nuclei",
        )


def _load(key: str) -> list[dict[str, Any]]:
    z = np.load(WORK / f"{key}.npz")
    return [
        {k: z[f"{i}_{k}"] for k in ("name", "pred", "truth", "ids", "features", "nucleus")}
        for i in range(int(z["n"]))
    ]


def _metrics(rows: list[dict[str, Any]], flt: Any | None) -> dict[str, float]:
    from wsikit.segment import aggregated_jaccard_index, panoptic_quality
    from wsikit.segment.metrics import pixel_metrics

    vals = []
    for r in rows:
        pred = r["pred"]
        if flt is not None and len(r["ids"]):
            keep = np.zeros(int(pred.max()) + 1, bool)
            keep[r["ids"][flt.keeps(r["features"])]] = True
            pred = np.where(keep[pred], pred, 0)
        vals.append((pixel_metrics(r["truth"], pred)["dice"], aggregated_jaccard_index(r["truth"], pred),
                     panoptic_quality(r["truth"], pred)["pq"], int((np.unique(pred) > 0).sum())))  # fmt: skip
    v = np.array(vals, np.float64)
    return {
        "dice": float(v[:, 0].mean()),
        "aji": float(v[:, 1].mean()),
        "pq": float(v[:, 2].mean()),
        "objects": float(v[:, 3].mean()),
    }


def fit() -> None:
    from wsikit.segment.object_filter import fit_object_filter

    rows = _load("tuning")
    feats = np.concatenate([r["features"] for r in rows])
    label = np.concatenate([r["nucleus"] for r in rows])
    flt = fit_object_filter(feats, label)
    table, best = threshold_table(rows, flt)
    chosen = flt.with_threshold(best)
    print("chosen threshold", best, "coef", np.round(chosen.coef, 3).tolist())
    (WORK / "filter.json").write_text(json.dumps(chosen.to_meta()))
    (HERE / "results_study_object_filter_fit.json").write_text(
        json.dumps(
            {
                "objects": int(len(label)),
                "nuclei": int(label.sum()),
                "table": table,
                "chosen": chosen.to_meta(),
            },
            indent=1,
        )
        + "\n"
    )


def threshold_table(rows: list[dict[str, Any]], flt: Any) -> tuple[dict[str, dict[str, float]], float]:
    """The tuning images' metrics without the filter and at each of :data:`THRESHOLDS`, and the threshold
    with the best mean AJI + PQ (the registered choice)."""
    table = {"none": _metrics(rows, None)}
    for t in THRESHOLDS:
        table[str(t)] = _metrics(rows, flt.with_threshold(t))
    for k, m in table.items():
        print(k, {a: round(b, 4) for a, b in m.items()})
    best = max(THRESHOLDS, key=lambda t: table[str(t)]["aji"] + table[str(t)]["pq"])
    return table, best


def score_sources(flt: Any, load: Any, out: Path, extra: dict[str, Any]) -> None:
    """The three sources (``load(name)`` gives their cached rows) without and with ``flt``, the registered rule,
    and the JSON ``out`` (with ``extra`` entries)."""
    rows: dict[str, Any] = {"without": {}, "with": {}}
    for f in _sources():
        data = load(f.name)
        rows["without"][f.name] = _metrics(data, None)
        rows["with"][f.name] = _metrics(data, flt)
    mean = {
        k: {m: float(np.mean([v[m] for v in rows[k].values()])) for m in ("dice", "aji", "pq", "objects")}
        for k in rows
    }
    for k in rows:
        print(k, {m: round(v, 4) for m, v in mean[k].items()})
        for s, v in rows[k].items():
            print("   ", s, {m: round(x, 4) for m, x in v.items()})
    old, new = mean["without"], mean["with"]
    passed = (
        new["aji"] >= old["aji"] + 0.01
        and new["pq"] >= old["pq"] + 0.01
        and new["dice"] >= old["dice"] - 0.005
    )
    print("rule passed:", passed)
    out.write_text(
        json.dumps(
            {
                "rule": "mean over 3 sources: AJI and PQ >= without + 0.01, Dice >= without - 0.005",
                "sources": rows,
                "mean": mean,
                "passed": passed,
                **extra,
            },
            indent=1,
        )
        + "\n"
    )


def score() -> None:
    from wsikit.segment.object_filter import ObjectFilter

    flt = ObjectFilter.from_meta(json.loads((WORK / "filter.json").read_text()))
    score_sources(flt, _load, HERE / "results_study_object_filter.json", {"filter": flt.to_meta()})


if __name__ == "__main__":
    if sys.argv[1:] not in (["prepare"], ["fit"], ["score"]):
        sys.exit(__doc__)
    {"prepare": prepare, "fit": fit, "score": score}[sys.argv[1]]()
