"""Study (issue 15, item 4): bf16 autocast on the CPU for the stain CNN and the U-Net.

This VM's CPU (AMD EPYC, AVX512-BF16) runs oneDNN's bf16 convolutions natively: a 640 px tile through the U-Net
took 0.38 s in bf16 vs 0.71 s in float32 (1 thread, ad hoc timing). Before ``wsikit run``'s default
(``--precision auto``) uses it on such CPUs, the segmentation must stay as accurate.

``score`` runs ``wsikit eval segmenter``'s protocol (``wsikit run``'s path: CNN normalizer, the shipped
``unet-nuclei-cnn``, 7.5-400 um^2, colour rule) on the three validation sources of
research/study_segmenter_extra.py (MoNuSeg test, MoNuSeg extra test, the two breast images of extra train),
once in float32 and once in bf16, and writes research/results_study_precision.json.

Ship rule, committed before scoring: ``auto`` resolves to bf16 on CPUs with native bf16 only if the bf16 mean
over the three sources has Dice, AJI and PQ each >= float32's - 0.003, and ``benchmarks/bench_run.py
--precision fp32 bf16`` shows the segment stage >= 1.3x faster in bf16 on both slides in that one run;
otherwise ``auto`` is float32 on every CPU.

Usage::

    python research/study_precision.py score
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from study_segmenter_extra import ROOT, _sources  # noqa: E402


def score() -> None:
    from wsikit.segment.evaluate import evaluate_segmenter_sources

    folders = _sources()
    rows = {}
    for precision in ("fp32", "bf16"):
        res = evaluate_segmenter_sources(folders, precision=precision)  # type: ignore[arg-type]
        rows[precision] = {
            "mean": res["mean"],
            "sources": {s["source"]: s["mean"] for s in res["sources"]},
            "seconds": res["seconds"],
        }
        print(precision, {k: round(v, 4) for k, v in res["mean"].items()}, res["seconds"], "s")
    old, new = rows["fp32"]["mean"], rows["bf16"]["mean"]
    passed = all(new[k] >= old[k] - 0.003 for k in ("dice", "aji", "pq"))
    print("accuracy part of the rule passed:", passed)
    out = {
        "sources": [str(f.relative_to(ROOT)) for f in folders],
        "rows": rows,
        "rule": "bf16 mean over sources: Dice, AJI, PQ each >= fp32 - 0.003 (and bench_run segment >= 1.3x)",
        "accuracy_passed": passed,
    }
    (HERE / "results_study_precision.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] != ["score"]:
        sys.exit(__doc__)
    score()
