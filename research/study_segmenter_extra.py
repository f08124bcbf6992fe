"""Study (issue 15): fine-tune the shipped U-Net with the rest of MoNuSeg 2018 (monuseg_extra train).

The shipped ``unet-nuclei-cnn`` saw 4 MoNuSeg training images; ../shared/data/monuseg_extra holds 26 more
(7 organs). Its two breast images (TCGA-A7-A13F, TCGA-E2-A14V) are held out of training and form a third
validation source beside MoNuSeg test (4 images) and MoNuSeg extra test (8 images, other organs).

1. ``train``: the shipped model's own fine-tuning command (same hyperparameters, 2,000 steps, seed 0) from
   ``unet-nuclei-cnn.pt``, with ``--dataset monuseg_extra`` added and the two breast images excluded;
2. ``score``: ``wsikit eval segmenter`` on the three sources, shipped weights vs the fine-tuned ones, with
   ``wsikit run``'s default path (CNN normalizer, 7.5-400 um^2, colour rule).

Ship rule, committed before training: the fine-tuned weights replace ``unet-nuclei-cnn`` only if their mean
over the three sources has AJI >= shipped + 0.01, PQ >= shipped + 0.01 and Dice >= shipped - 0.005.

Usage::

    python research/study_segmenter_extra.py train     # about 17 min on 2 cores
    python research/study_segmenter_extra.py score     # writes research/results_study_segmenter_extra.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data"
WORK = HERE / "_work" / "segmenter_extra"
WEIGHTS = WORK / "unet-nuclei-cnn-extra.pt"
BREAST = ("TCGA-A7-A13F", "TCGA-E2-A14V")
WSIKIT = [str(Path(sys.executable).parent / "wsikit")]  # the console script of this environment


def _sources() -> list[Path]:
    """MoNuSeg test, extra test and the two held-out breast images of extra train, as labelled folders."""
    folders = []
    for name, split in (("monuseg", "test"), ("monuseg_extra", "test"), ("monuseg_extra", "train")):
        folder = WORK / f"{name}_{split}"
        if not folder.exists():
            subprocess.run(
                [
                    *WSIKIT,
                    "-q",
                    "export-dataset",
                    name,
                    "--data",
                    str(DATA),
                    "--split",
                    split,
                    "--out",
                    str(folder),
                ],
                check=True,
            )
        folders.append(folder)
    breast = WORK / "monuseg_extra_breast"
    if not breast.exists():
        breast.mkdir()
        for f in folders[2].iterdir():
            if f.name.startswith(BREAST):
                shutil.copy(f, breast / f.name)
    return [folders[0], folders[1], breast]


def train() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    cmd = [
        *WSIKIT, "train", "segmenter", "--data", str(DATA),
        *[x for d in ("monuseg", "miccai2015", "dsb2018", "nucls", "monuseg_extra") for x in ("--dataset", d)],
        *[x for b in BREAST for x in ("--exclude", b)],
        "--init", str(ROOT / "wsikit" / "models" / "weights" / "unet-nuclei-cnn.pt"),
        "--steps", "2000", "--touch-weight", "10", "--blur", "0.2", "--hed-jitter", "0.4", "--gray", "0.1",
        "--lr-schedule", "cosine", "--cnn-stain", "0.5", "--seed", "0", "--out", str(WEIGHTS),
    ]  # fmt: skip
    subprocess.run(cmd, check=True)


def score() -> None:
    from wsikit.segment.evaluate import evaluate_segmenter_sources

    folders = _sources()
    rows = {}
    for label, weights in (("shipped unet-nuclei-cnn", None), ("fine-tuned with monuseg_extra", WEIGHTS)):
        res = evaluate_segmenter_sources(folders, weights=weights)
        rows[label] = {"mean": res["mean"], "sources": {s["source"]: s["mean"] for s in res["sources"]}}
        print(label, {k: round(v, 3) for k, v in res["mean"].items()})
        for s in res["sources"]:
            print("   ", Path(s["source"]).name, {k: round(v, 3) for k, v in s["mean"].items()})
    old, new = rows["shipped unet-nuclei-cnn"]["mean"], rows["fine-tuned with monuseg_extra"]["mean"]
    passed = (
        new["aji"] >= old["aji"] + 0.01
        and new["pq"] >= old["pq"] + 0.01
        and new["dice"] >= old["dice"] - 0.005
    )
    print("ship rule passed:", passed)
    out = {
        "sources": [str(f.relative_to(ROOT)) for f in folders],
        "rows": rows,
        "ship_rule": "mean over sources: AJI >= shipped + 0.01, PQ >= shipped + 0.01, Dice >= shipped - 0.005",
        "ship_rule_passed": passed,
    }
    (HERE / "results_study_segmenter_extra.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("step", choices=["train", "score"])
    {"train": train, "score": score}[ap.parse_args().step]()
