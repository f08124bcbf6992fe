"""Benchmark: vectorization and export speed on a real slide's nucleus labels, and streaming-write memory.

1. `wsikit segment` on the bundled CMU-1 sample slide (real labels; cached in benchmarks/_work), then
   polygons/s of the chunked vectorizer alone (polygons + morphology) and with intensity measurements
   (slide reads + color deconvolution), and polygons/s of writing GeoJSON and GeoParquet;
2. peak RSS of streaming 10^5 and 10^6 synthetic polygons to GeoJSON (a child process each).

Usage::

    python benchmarks/bench_vectorize.py [--million] [--json out.json] [--profile]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

_STREAM = """
import sys, time, shapely
from shapely import affinity
from wsikit.io.geojson import GeoJsonWriter, nucleus_uuid
n = int(sys.argv[1])
base = shapely.Polygon([(0, 0), (7, 0), (9, 5), (6, 9), (1, 8), (0, 5)])
start = time.perf_counter()
with GeoJsonWriter(sys.argv[2]) as w:
    for i in range(n):
        w.write(nucleus_uuid("bench", i), affinity.translate(base, i % 2000 * 12, i // 2000 * 12),
                classification=("Lymphocyte", (38, 139, 210)),
                measurements={"area_um2": 40.5, "eccentricity": 0.5, "hematoxylin_od_mean": 1.2})
rate = n / (time.perf_counter() - start)
def _peak_mb():
    # VmHWM: this process's own peak (ru_maxrss survives execve and would report the parent's peak)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
print(_peak_mb(), rate)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--million", action="store_true", help="also stream 10^6 polygons (about 2 min)")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--profile", action="store_true", help="also print where a vectorizer pass spends its time (cProfile)"
    )
    args = parser.parse_args()

    from wsikit.io import open_slide
    from wsikit.pipeline.export import NucleusTableWriter, iter_store_batches, open_result
    from wsikit.pipeline.segment import segment_slide
    from wsikit.sample import sample_slide_path

    work = HERE / "_work"
    work.mkdir(exist_ok=True)
    slide_path = sample_slide_path()
    store_path = work / "cmu1_nuclei.zarr"
    if not store_path.exists():
        segment_slide(slide_path, store_path)
    store = open_result(store_path)
    out: dict[str, object] = {"slide": slide_path.name}
    start = time.perf_counter()
    batches = list(iter_store_batches(store, None))
    t_shape = time.perf_counter() - start
    n = sum(len(b) for b in batches)
    with open_slide(slide_path) as slide:
        start = time.perf_counter()
        batches = list(iter_store_batches(store, slide))
        t_full = time.perf_counter() - start
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.runcall(lambda: list(iter_store_batches(store, None)))
        pstats.Stats(prof).sort_stats("cumulative").print_stats(r"wsikit|skimage|shapely|numpy", 15)
    out.update(
        nuclei=n,
        vectorize_polygons_per_s=round(n / t_shape, 1),
        vectorize_measure_polygons_per_s=round(n / t_full, 1),
    )
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("geojson", "parquet"):
            start = time.perf_counter()
            w = NucleusTableWriter(
                slide_id="cmu1",
                has_mpp=True,
                mpp=0.499,
                offset=(0.0, 0.0),
                geojson=Path(tmp) / "n.geojson" if kind == "geojson" else None,
                parquet=Path(tmp) / "n.parquet" if kind == "parquet" else None,
            )
            for b in batches:
                w.write(b)
            w.close()
            out[f"write_{kind}_polygons_per_s"] = round(n / (time.perf_counter() - start), 1)
        sizes = [100_000] + ([1_000_000] if args.million else [])
        for count in sizes:
            res = subprocess.run(
                [sys.executable, "-c", _STREAM, str(count), str(Path(tmp) / f"s{count}.geojson")],
                capture_output=True,
                text=True,
                check=True,
            )
            rss, rate = (float(v) for v in res.stdout.split())
            out[f"stream_{count}_peak_rss_mb"] = round(rss, 1)
            out[f"stream_{count}_polygons_per_s"] = round(rate, 1)
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
