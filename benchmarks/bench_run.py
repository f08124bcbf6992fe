"""Benchmark: `wsikit run` end to end on pyramidal TIFFs built from real MoNuSeg tiles (make_slide.py).

For each slide size: megapixels of tissue (level 0) per second, seconds per stage, nuclei, peak RSS of the
run (a child process per slide, so each peak is its own) and the share of the segmentation stream's time
spent waiting on slide reads.

Usage::

    python benchmarks/bench_run.py [--sizes 4096 8192] [--stain cnn] [--device cpu] [--json out.json]
        [--classifier-weights W.pt] [--precision auto fp32 bf16]

With several ``--precision`` values each slide is run with each, one after the other (side by side in one
run), and the rows carry the resolved precision.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _stamp import stamp  # noqa: E402

_CHILD = """
import json, sys, time
from wsikit.pipeline.run import RunConfig, run_slide
cfg = RunConfig(stain=sys.argv[3], device=sys.argv[4], batch_size=int(sys.argv[5]), workers=2,
                classifier_weights=sys.argv[6] or None, precision=sys.argv[7])
start = time.perf_counter()
s = run_slide(sys.argv[1], sys.argv[2], config=cfg)
s["wall_s"] = time.perf_counter() - start
def _peak_mb():
    # VmHWM: this process's own peak (ru_maxrss survives execve and would report the parent's peak)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
s["peak_rss_mb"] = _peak_mb()
print(json.dumps(s))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192])
    parser.add_argument("--stain", default="cnn")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--classifier-weights", default="", help="cell-type weights (default: the shipped ones)"
    )
    parser.add_argument(
        "--precision", nargs="+", default=["auto"], choices=["auto", "fp32", "bf16"],
        help="inference arithmetic of the stain CNN and U-Net; several: each slide with each",
    )  # fmt: skip
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from make_slide import build

    rows = []
    runs = [(size, precision) for size in args.sizes for precision in args.precision]
    for size, precision in runs:
        slide = HERE / "_work" / f"mosaic_{size}.tiff"
        if not slide.exists():
            build(slide, size, HERE.parents[1] / "shared" / "data")
        with tempfile.TemporaryDirectory() as tmp:
            res = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    _CHILD,
                    str(slide),
                    str(Path(tmp) / "out.wsikit"),
                    args.stain,
                    args.device,
                    str(args.batch_size),
                    args.classifier_weights,
                    precision,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
        s = json.loads(res.stdout.strip().splitlines()[-1])
        tissue_mp = s["tissue_area_mm2"] / (s["mpp"] / 1000.0) ** 2 / 1e6
        row = {
            **stamp(),
            "slide_px": size,
            "stain": args.stain,
            "device": args.device,
            "precision": s["options"]["precision"],
            "tissue_megapixels": round(tissue_mp, 1),
            "nuclei": s["nuclei"],
            "wall_s": round(s["wall_s"], 1),
            "tissue_mp_per_s": round(tissue_mp / s["wall_s"], 3),
            "seconds": s["seconds"],
            "classify_share": round(s["seconds"]["classify"] / s["seconds"]["total"], 3),
            # issue 14's cost: the classify stage and the neighbourhood stage after it
            "classify_and_neighbourhood_share": round(
                (s["seconds"]["classify"] + s["seconds"].get("neighbourhood", 0.0)) / s["seconds"]["total"], 3
            ),
            "classifier": s["models"]["classifier"]["weights"],
            "peak_rss_mb": round(s["peak_rss_mb"], 1),
            "read_wait_share": s["performance"]["segment"].get("read_wait_share"),
            "peak_pending_labels_mb": s["performance"]["segment"].get("peak_pending_mb"),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
