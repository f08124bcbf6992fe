"""Study (issue 15, item 2; issue 14, item 4): drop segmented objects longer than any nucleus.

On the bundled CMU-1 slide, 3 of the report's 12 most confident "fibroblasts" are dark edges of folded or torn
tissue and fibre strands 25-37 um long (the longest object the demo keeps is 65 um); annotated nuclei are
almost never that long (MoNuSeg's seven organs: 9 of 15,479 training nuclei over 25 um).
:class:`wsikit.segment.artefacts.LengthRule` drops objects whose major axis (of the ellipse with their second
moments) exceeds ``max_length_um``.

``measure``: the objects' axes on (a) the tuning images (the 24 non-breast MoNuSeg 2018 extra-train images,
objects cached by research/study_object_filter.py ``prepare``: ``wsikit run``'s segmentation with its area
range and colour rule; nucleus = IoU >= 0.1 with an annotated one), (b) BRCA-M2C train (without the val
patients) and val at 20x, segmented as the labelled-nuclei matcher does, with ``wsikit run``'s area range;
each object with the class of the point it holds, if any.

``choose`` (tuning images and BRCA-M2C train only): the smallest ``max_length_um`` of the grid whose rule drops
at most 0.1% of the tuning images' nucleus objects and at most 0.1% of BRCA-M2C train's matched nuclei of
every class.

``score``: the three validation sources (MoNuSeg test, MoNuSeg 2018 extra test, its two breast images) by
``wsikit eval segmenter``'s path without and with the rule; BRCA-M2C val: the matched nuclei of each class the
rule would drop; the CMU-1 demo (``make demo``'s run with the rule off): what it drops, by class, and a panel
of them (``--panel``).

Ship rule, committed before ``score`` was run: the rule is on by default in ``wsikit run`` and ``wsikit eval
segmenter`` only if (1) on the mean over the three sources AJI, PQ and Dice each stay >= without - 0.002,
(2) on BRCA-M2C val it drops at most 0.2% of the matched nuclei of each class, and (3) on CMU-1 the objects it
drops are, looked at in the panel, mostly not nuclei.

Usage::

    python research/study_length_rule.py measure
    python research/study_length_rule.py choose
    python research/study_length_rule.py score [--panel docs/img/length_rule_cmu1.jpg]
    python research/study_length_rule.py panel --panel docs/img/length_rule_cmu1.jpg   # its CMU-1 panel alone
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from study_object_filter import _load  # noqa: E402
from study_segmenter_extra import _sources  # noqa: E402

WORK = HERE / "_work" / "length_rule"
GRID = (20.0, 22.5, 25.0, 27.5, 30.0, 35.0, 40.0)
BUDGET = 0.001  # share of nucleus objects (tuning) / matched nuclei per class (BRCA-M2C train) it may drop
DATA = ROOT.parent / "shared" / "data"
CLASSES = ("epithelial", "lymphocyte", "fibroblast")


def _brca(split: str) -> dict[str, np.ndarray]:
    """Axes (um) of every object of the split's images, with the cell type of the point it holds (-1: none)."""
    from wsikit.datasets.brca_m2c import load_brca_m2c
    from wsikit.pipeline.labelled_nuclei import NucleusMatcher, cell_type_index, match_points
    from wsikit.segment.artefacts import object_axes
    from wsikit.segment.evaluate import RUN_AREA_UM2, _keep_area

    matcher = NucleusMatcher(stain="cnn")
    major, minor, cls, image = [], [], [], []
    samples = load_brca_m2c(DATA, split, exclude_patients_of=("val",) if split == "train" else ())
    for i, s in enumerate(samples):
        lab = _keep_area(np.asarray(matcher.segment(s.image, s.mpp)), RUN_AREA_UM2, s.mpp)
        ids = np.arange(1, int(lab.max()) + 1)
        a, b = object_axes(lab, ids)
        t = np.full(len(ids), -1, np.int64)
        pm = match_points(lab, list(zip(s.x, s.y, s.label, strict=True)))
        t[pm.ids - 1] = pm.cell_types
        major.append(a * s.mpp)
        minor.append(b * s.mpp)
        cls.append(t)
        image.append(np.full(len(ids), i))
        print(split, i + 1, len(samples), s.name, len(ids), flush=True)
    assert cell_type_index("tumor") == 0  # cell types in CLASSES order
    return {
        k: np.concatenate(v) for k, v in (("major", major), ("minor", minor), ("cls", cls), ("image", image))
    }


def measure() -> None:
    from wsikit.segment.artefacts import object_axes

    WORK.mkdir(parents=True, exist_ok=True)
    rows = _load("tuning")
    major = np.concatenate([object_axes(r["pred"], r["ids"])[0] * 0.25 for r in rows])
    minor = np.concatenate([object_axes(r["pred"], r["ids"])[1] * 0.25 for r in rows])
    nucleus = np.concatenate([r["nucleus"] for r in rows])
    truth = np.concatenate([object_axes(r["truth"], np.unique(r["truth"])[1:])[0] * 0.25 for r in rows])
    np.savez_compressed(WORK / "tuning.npz", major=major, minor=minor, nucleus=nucleus, truth_major=truth)
    for split in ("train", "val"):
        np.savez_compressed(WORK / f"brca_{split}.npz", **_brca(split))


def _table(major: np.ndarray, groups: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    return {
        str(t): {g: round(float((major[m] > t).mean()), 5) if m.any() else 0.0 for g, m in groups.items()}
        for t in GRID
    }


def choose() -> None:
    tun = np.load(WORK / "tuning.npz")
    tr = np.load(WORK / "brca_train.npz")
    t_tab = _table(tun["major"], {"nuclei": tun["nucleus"], "non_nuclei": ~tun["nucleus"]})
    b_tab = _table(
        tr["major"], {**{c: tr["cls"] == k for k, c in enumerate(CLASSES)}, "unmatched": tr["cls"] < 0}
    )
    a_tab = {str(t): round(float((tun["truth_major"] > t).mean()), 5) for t in GRID}
    ok = [
        t for t in GRID
        if t_tab[str(t)]["nuclei"] <= BUDGET and all(b_tab[str(t)][c] <= BUDGET for c in CLASSES)
    ]  # fmt: skip
    chosen = min(ok) if ok else None
    for t in GRID:
        print(t, "tuning", t_tab[str(t)], "annotated", a_tab[str(t)], "brca train", b_tab[str(t)])
    print("chosen max_length_um", chosen)
    out = {"max_length_um": chosen, "budget": BUDGET, "tuning_objects": t_tab, "tuning_annotated": a_tab,
           "brca_train": b_tab, "tuning_counts": int(len(tun["major"])), "brca_train_counts": int(len(tr["major"]))}  # fmt: skip
    (HERE / "results_study_length_rule_choice.json").write_text(json.dumps(out, indent=1) + "\n")


SLIDE = ROOT / "examples" / "data" / "cmu-1-small-region.svs"


def _run_without() -> Path:
    """``make demo``'s run of the CMU-1 slide with the length rule off (made once)."""
    import subprocess

    out = WORK / "cmu-1-without-length-rule.wsikit"
    if not (out / "DONE").exists():
        wsikit = str(ROOT / ".venv" / "bin" / "wsikit")
        subprocess.run(
            [wsikit, "run", str(SLIDE), "--out", str(out), "--no-length-filter", "--overwrite"], check=True
        )
    return out


def _demo(run: Path, slide: Path, max_length_um: float, panel: Path | None) -> dict[str, Any]:
    """What the rule drops of a ``wsikit run`` result (its cells table), per class; optionally a panel."""
    import geopandas as gpd

    cells = gpd.read_parquet(run / "cells.parquet")
    long = cells[cells["major_axis_um"] > max_length_um]
    out = {
        "nuclei": len(cells),
        "dropped": {str(c): int((long["class"] == c).sum()) for c in CLASSES},
        "top12_fibroblasts_dropped": int(
            (
                cells[cells["class"] == "fibroblast"].nlargest(12, "class_probability")["major_axis_um"]
                > max_length_um
            ).sum()
        ),
    }
    if panel is not None and len(long):
        _panel(long.sort_values("major_axis_um", ascending=False), slide, panel)
    return out


def _panel(cells: Any, slide: Path, out: Path, size_um: float = 48.0, cols: int = 8) -> None:
    """Each object outlined in its class colour on a ``size_um`` tile of the slide (at most 32 objects)."""
    from PIL import Image, ImageDraw

    from wsikit.io import open_slide

    colours = {"epithelial": (230, 30, 30), "lymphocyte": (40, 110, 255), "fibroblast": (200, 200, 0)}
    with open_slide(slide) as s:
        mpp = float(s.mpp_x or 0.5)
        half = int(size_um / mpp / 2)
        tiles = []
        for _, row in cells.head(32).iterrows():
            cx, cy = int(row["centroid_x"]), int(row["centroid_y"])  # level-0 pixels
            tile = Image.fromarray(
                np.asarray(s.read_region((cx - half, cy - half), 0, (2 * half, 2 * half)))[..., :3]
            )
            draw = ImageDraw.Draw(tile)
            xs, ys = row.geometry.exterior.xy
            draw.line([(x - cx + half, y - cy + half) for x, y in zip(xs, ys, strict=True)],
                      fill=colours[row["class"]], width=1)  # fmt: skip
            tiles.append(tile.resize((4 * half, 4 * half), Image.Resampling.LANCZOS))
    w = tiles[0].size[0]
    rows = (len(tiles) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * (w + 4), rows * (w + 4)), (255, 255, 255))
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % cols) * (w + 4), (i // cols) * (w + 4)))
    sheet.save(out, quality=88)


def score(panel: Path | None) -> None:
    from wsikit.segment.artefacts import LengthRule
    from wsikit.segment.evaluate import evaluate_segmenter_sources

    choice = json.loads((HERE / "results_study_length_rule_choice.json").read_text())
    t = float(choice["max_length_um"])
    out: dict[str, Any] = {"max_length_um": t}
    for key, rule in (("without", None), ("with", LengthRule(t))):
        res = evaluate_segmenter_sources(list(_sources()), stain="cnn", length_rule=rule)
        out[key] = {"mean": res["mean"], **{s["source"]: s["mean"] for s in res["sources"]}}
        print(key, {m: round(res["mean"][m], 4) for m in ("dice", "aji", "pq")}, flush=True)
    val = np.load(WORK / "brca_val.npz")
    out["brca_val_dropped_share"] = {
        c: round(float((val["major"][val["cls"] == k] > t).mean()), 5) for k, c in enumerate(CLASSES)
    }
    out["brca_val_dropped"] = {
        c: int((val["major"][val["cls"] == k] > t).sum()) for k, c in enumerate(CLASSES)
    }
    out["brca_val_unmatched_dropped"] = int((val["major"][val["cls"] < 0] > t).sum())
    out["cmu1_demo"] = _demo(_run_without(), SLIDE, t, panel)
    old, new = out["without"]["mean"], out["with"]["mean"]
    out["rule_sources"] = bool(all(new[m] >= old[m] - 0.002 for m in ("dice", "aji", "pq")))
    out["rule_brca_val"] = bool(all(v <= 0.002 for v in out["brca_val_dropped_share"].values()))
    print(json.dumps({k: v for k, v in out.items() if k not in ("without", "with")}, indent=1))
    (HERE / "results_study_length_rule.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("step", choices=("measure", "choose", "score", "panel"))
    ap.add_argument("--panel", type=Path)
    a = ap.parse_args()
    if a.step == "panel":  # the CMU-1 part of score alone
        demo = json.loads((HERE / "results_study_length_rule.json").read_text())
        print(_demo(_run_without(), SLIDE, demo["max_length_um"], a.panel))
    else:
        {"measure": measure, "choose": choose}.get(a.step, lambda: score(a.panel))()
