"""Benchmark: wsikit side by side with TIAToolbox (and torchstain) on the same real inputs, in one run.

Runs in the separate anchor environment that ``make bench-anchors`` builds (``.venv-anchors``: TIAToolbox
pins torch < 2.13, numpy < 2.4.4 and zarr < 3.2, so it cannot share wsikit's environment). Never used by
``make test`` or CI. Sections (each method of a pair on the same pixels, alternated, medians of repeats):

- **stain**: Macenko (wsikit per image and with slide-level statistics; TIAToolbox, torchstain per image),
  Vahadane (TIAToolbox only: wsikit has none), Reinhard (wsikit per image and slide-level; TIAToolbox per
  image), in MP/s on 224 px MoNuSeg tiles and on a 2048 px region of the CMU-1 slide; and what each does on
  an all-white and a near-white tile (raises, returns unchanged, or colorizes glass);
- **tissue**: TIAToolbox's Otsu and morphological maskers (``WSIReader.tissue_mask``, defaults) vs wsikit's
  ``tissue_mask`` on every real slide in ../shared/data: seconds, tissue share, IoU on a common grid, and a PNG
  per slide (overview | wsikit | TIAToolbox Otsu | TIAToolbox morphological) in docs/img/anchors/;
- **patches**: TIAToolbox's ``SlidingWindowPatchExtractor`` vs wsikit's ``PatchStream`` delivering the same
  224 px level-0 tiles of the same pyramidal TIFF (benchmarks/make_slide.py, real MoNuSeg blocks), MP/s and
  peak RSS, each in a fresh subprocess;
- **reading**: TIAToolbox's ``WSIReader.read_rect`` vs wsikit's ``Slide.read_region``, 512 px reads at
  every level of the same slides, one thread.

Usage::

    .venv-anchors/bin/python benchmarks/bench_anchors.py [--json benchmarks/results_anchors.json]
        [--only stain tissue patches reading]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data"
WORK = HERE / "_work"
IMG = ROOT / "docs" / "img" / "anchors"
sys.path.insert(0, str(HERE))

from _stamp import stamp  # noqa: E402


def _alternated_times(
    fns: dict[str, Callable[[], Any]], repeats: int
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Seconds of each function in every repeat, the functions alternated within a repeat (the same load for
    all), and each one's last result."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    got: dict[str, Any] = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            got[name] = fn()
            times[name].append(time.perf_counter() - start)
    return times, got


def _median_mps(fns: dict[str, Callable[[], Any]], megapixels: float, repeats: int = 5) -> dict[str, float]:
    """Median MP/s of each function over alternated repeats, after one warm-up call each (imports, allocator,
    first-call costs)."""
    for fn in fns.values():
        fn()
    times, _ = _alternated_times(fns, repeats)
    return {k: round(megapixels / statistics.median(v), 2) for k, v in times.items()}


def _rgb(path: Path) -> np.ndarray:
    from PIL import Image

    return np.array(Image.open(path).convert("RGB"))  # writable: TIAToolbox's rgb2od writes into its input


# ------------------------------------------------------------------------------------------------ stain
def _stain_inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """256 tiles of 224 px from the MoNuSeg images, a 2048 px region of CMU-1, and the target image."""
    from wsikit.io import open_slide

    tiles = []
    for path in sorted((DATA / "monuseg").glob("*/*.tif")):
        img = _rgb(path)
        for y in range(0, 1000 - 224 + 1, 224):
            for x in range(0, 1000 - 224 + 1, 224):
                tiles.append(img[y : y + 224, x : x + 224])
    with open_slide(DATA / "slides" / "cmu-1-small-region.svs") as s:
        region = s.read_region((100, 400), 0, (2048, 2048))
    target = _rgb(DATA / "stain" / "tiatoolbox" / "target_image.png")
    return np.stack(tiles[:256]), region, target


def _on_glass(fn: Callable[[np.ndarray], np.ndarray], tile: np.ndarray) -> str:
    try:
        out = fn(tile)
    except Exception as exc:  # the behaviour is the figure
        return f"raises {type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''}".strip()
    change = int(np.abs(np.asarray(out).astype(int) - tile.astype(int)).max())
    return "unchanged" if change == 0 else f"changed (max {change} grey levels)"


def bench_stain() -> dict[str, Any]:
    import tiatoolbox.tools.stainnorm as tia
    import torch
    import torchstain

    from wsikit.stain import MacenkoNormalizer, ReinhardNormalizer

    tiles, region, target = _stain_inputs()
    tile_mp = tiles.shape[0] * 224 * 224 / 1e6
    region_mp = region.shape[0] * region.shape[1] / 1e6
    w_mac = MacenkoNormalizer().fit(target)
    w_rh = ReinhardNormalizer().fit(target)
    t_mac, t_vah, t_rh = tia.MacenkoNormalizer(), tia.VahadaneNormalizer(), tia.ReinhardNormalizer()
    for n in (t_mac, t_vah, t_rh):
        n.fit(target)
    ts = torchstain.normalizers.MacenkoNormalizer(backend="torch")
    ts.fit(torch.from_numpy(target).permute(2, 0, 1))

    def ts_one(img: np.ndarray) -> np.ndarray:
        out, _, _ = ts.normalize(torch.from_numpy(img).permute(2, 0, 1), stains=False)
        return np.asarray(out.numpy())

    mac_tiles_src = w_mac.fit_source(list(tiles))
    rh_tiles_src = w_rh.fit_source(list(tiles))
    mac_region_src = w_mac.fit_source(region)
    rh_region_src = w_rh.fit_source(region)
    batches = [tiles[i : i + 64] for i in range(0, len(tiles), 64)]

    vah_tiles = tiles[:32]  # Vahadane's dictionary learning is slow: 32 tiles give a stable median

    out: dict[str, Any] = {"tiles": {"count": int(len(tiles)), "size": 224, "megapixels": round(tile_mp, 2)}}
    out["tiles_mps"] = _median_mps(
        {
            "wsikit_macenko_slide_stats": lambda: [w_mac.transform(b, source=mac_tiles_src) for b in batches],
            "wsikit_macenko_per_image": lambda: [w_mac.transform(b) for b in batches],
            "tiatoolbox_macenko": lambda: [t_mac.transform(t) for t in tiles],
            "torchstain_macenko": lambda: [ts_one(t) for t in tiles],
            "wsikit_reinhard_slide_stats": lambda: [w_rh.transform(b, source=rh_tiles_src) for b in batches],
            "wsikit_reinhard_per_image": lambda: [w_rh.transform(b) for b in batches],
            "tiatoolbox_reinhard": lambda: [t_rh.transform(t) for t in tiles],
        },
        tile_mp,
    )
    out["tiles_mps"]["tiatoolbox_vahadane"] = _median_mps(
        {"v": lambda: [t_vah.transform(t) for t in vah_tiles]}, len(vah_tiles) * 224 * 224 / 1e6, repeats=3
    )["v"]
    out["region"] = {"size": list(region.shape[:2]), "megapixels": round(region_mp, 2)}
    out["region_mps"] = _median_mps(
        {
            "wsikit_macenko_slide_stats": lambda: w_mac.transform(region, source=mac_region_src),
            "wsikit_macenko_per_image": lambda: w_mac.transform(region),
            "tiatoolbox_macenko": lambda: t_mac.transform(region),
            "torchstain_macenko": lambda: ts_one(region),
            "wsikit_reinhard_slide_stats": lambda: w_rh.transform(region, source=rh_region_src),
            "wsikit_reinhard_per_image": lambda: w_rh.transform(region),
            "tiatoolbox_reinhard": lambda: t_rh.transform(region),
        },
        region_mp,
        repeats=3,
    )
    out["region_mps"]["tiatoolbox_vahadane"] = _median_mps(
        {"v": lambda: t_vah.transform(region)}, region_mp, repeats=1
    )["v"]
    tm, tr = out["tiles_mps"], out["region_mps"]
    out["ratios"] = {
        f"{where}_{name}": round(d[w] / d[t], 2)
        for where, d in (("tiles", tm), ("region", tr))
        for name, w, t in (
            ("macenko_slide_stats_vs_tiatoolbox", "wsikit_macenko_slide_stats", "tiatoolbox_macenko"),
            ("macenko_per_image_vs_tiatoolbox", "wsikit_macenko_per_image", "tiatoolbox_macenko"),
            ("reinhard_slide_stats_vs_tiatoolbox", "wsikit_reinhard_slide_stats", "tiatoolbox_reinhard"),
            ("reinhard_per_image_vs_tiatoolbox", "wsikit_reinhard_per_image", "tiatoolbox_reinhard"),
        )
    }
    rng = np.random.default_rng(0)
    glass = {
        "white (255)": np.full((224, 224, 3), 255, np.uint8),
        "near-white (240 +- 4)": np.clip(240 + rng.integers(-4, 5, (224, 224, 3)), 0, 255).astype(np.uint8),
    }
    out["glass"] = {
        name: {
            "wsikit_macenko": _on_glass(w_mac.transform, tile),
            "wsikit_reinhard": _on_glass(w_rh.transform, tile),
            "tiatoolbox_macenko": _on_glass(t_mac.transform, tile),
            "tiatoolbox_vahadane": _on_glass(t_vah.transform, tile),
            "tiatoolbox_reinhard": _on_glass(t_rh.transform, tile),
            "torchstain_macenko": _on_glass(ts_one, tile),
        }
        for name, tile in glass.items()
    }
    return out


# ----------------------------------------------------------------------------------------------- tissue
def _slides() -> list[Path]:
    return [
        DATA / "slides" / "cmu-1-small-region.svs",
        DATA / "slides" / "tcga-cr-7395-01a-01-ts1.svs",
        DATA / "slides" / "small_dicom.dcm",
        *sorted((DATA / "monusac").glob("*.svs")),
    ]


def _to_grid(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resample of a mask covering the whole slide to ``shape`` (rows, cols)."""
    rows = (np.arange(shape[0]) + 0.5) * mask.shape[0] / shape[0]
    cols = (np.arange(shape[1]) + 0.5) * mask.shape[1] / shape[1]
    return mask[rows.astype(int).clip(0, mask.shape[0] - 1)][:, cols.astype(int).clip(0, mask.shape[1] - 1)]


def _iou(a: np.ndarray, b: np.ndarray) -> float | None:
    union = np.logical_or(a, b).sum()
    return round(float(np.logical_and(a, b).sum() / union), 3) if union else None


def _panel(path: Path, overview: np.ndarray, masks: dict[str, np.ndarray]) -> None:
    from PIL import Image, ImageDraw

    h = 360
    w = max(1, round(overview.shape[1] * h / overview.shape[0]))
    base = Image.fromarray(overview).resize((w, h), Image.Resampling.LANCZOS)
    panels = [("overview", base)]
    for name, m in masks.items():
        grid = _to_grid(m, (h, w))
        shade = np.asarray(base).astype(np.float32)
        shade[~grid] = shade[~grid] * 0.25 + 255 * 0.75  # glass washed out
        shade[grid] = shade[grid] * 0.6 + np.array([0, 90, 255]) * 0.4  # tissue tinted blue
        panels.append((name, Image.fromarray(shade.astype(np.uint8))))
    out = Image.new("RGB", (len(panels) * (w + 8), h + 24), "white")
    draw = ImageDraw.Draw(out)
    for i, (name, im) in enumerate(panels):
        out.paste(im, (i * (w + 8), 24))
        draw.text((i * (w + 8) + 4, 6), name, fill="black")
    IMG.mkdir(parents=True, exist_ok=True)
    out.save(path)


def _median_seconds(fn: Callable[[], Any], repeats: int = 3) -> tuple[float, Any]:
    times, got = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        got = fn()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 4), got


def _median_seconds_alternated(
    fns: dict[str, Callable[[], Any]], repeats: int
) -> tuple[dict[str, float], dict[str, Any]]:
    times, got = _alternated_times(fns, repeats)
    return {k: round(statistics.median(v), 4) for k, v in times.items()}, got


def _tia_default_mask(path: Path, method: str) -> np.ndarray:
    """What a TIAToolbox user gets: ``WSIReader.open(path).tissue_mask(method)`` (1.25x objective power;
    slides without an objective power or mpp at 1/16 of level 0)."""
    from tiatoolbox.wsicore.wsireader import WSIReader

    reader = WSIReader.open(path)
    try:
        virt = reader.tissue_mask(method=method)
    except Exception:
        virt = reader.tissue_mask(method=method, resolution=1 / 16, units="baseline")
    return np.asarray(virt.img).astype(bool)


def bench_tissue() -> dict[str, Any]:
    """Each tool's default (from the file), and the three detectors on one and the same overview."""
    from tiatoolbox.tools.tissuemask import MorphologicalMasker, OtsuTissueMasker

    from wsikit.io import open_slide
    from wsikit.tiling import tissue_mask
    from wsikit.tiling.tissue import detect_tissue

    def wsikit_default(path: Path) -> np.ndarray:
        with open_slide(path) as slide:
            return tissue_mask(slide).mask

    slides = _slides()
    for warm in (lambda: wsikit_default(slides[0]), lambda: _tia_default_mask(slides[0], "otsu")):
        warm()  # first-call costs (imports, JIT) are not the method's
    rows = []
    for path in slides:
        row: dict[str, Any] = {"slide": path.name}
        tools: dict[str, Callable[[], np.ndarray]] = {"wsikit": lambda p=path: wsikit_default(p)}
        for method in ("otsu", "morphological"):
            try:
                _tia_default_mask(path, method)
                tools[f"tiatoolbox_{method}"] = lambda p=path, m=method: _tia_default_mask(p, m)
            except Exception as exc:
                row[f"tiatoolbox_{method}_error"] = f"{type(exc).__name__}: {str(exc)[:120]}"
        # each tool opens the file, reads and detects; 9 repeats with the tools alternated (the same load
        # for all: these are tens of milliseconds on a shared VM), medians
        row["default_seconds"], masks = _median_seconds_alternated(tools, repeats=9)
        row["default_mask_shape"] = {k: list(v.shape) for k, v in masks.items()}
        grid = masks["wsikit"].shape
        on = {k: _to_grid(v, grid) for k, v in masks.items()}
        row["default_tissue_share"] = {k: round(float(v.mean()), 3) for k, v in on.items()}
        row["default_iou_with_wsikit"] = {k: _iou(on["wsikit"], v) for k, v in on.items() if k != "wsikit"}
        # the same overview (wsikit's, longest side 2048 px) through each detector: the algorithms alone
        with open_slide(path) as slide:
            overview, down = slide.read_overview(2048)
            mpp = slide.mpp[0] * down if slide.mpp else None
        n = overview.shape[0] * overview.shape[1]
        same: dict[str, np.ndarray] = {}
        secs: dict[str, float] = {}
        secs["wsikit"], same["wsikit"] = _median_seconds(
            lambda o=overview, k=n: detect_tissue(
                o, min_object_px=max(16, k // 5000), max_hole_px=max(64, k // 2000)
            )
        )
        secs["tiatoolbox_otsu"], same["tiatoolbox_otsu"] = _median_seconds(
            lambda o=overview: OtsuTissueMasker().fit_transform([o])[0]
        )
        morph = MorphologicalMasker(mpp=mpp) if mpp else MorphologicalMasker(power=1.25 * 16 / down)
        secs["tiatoolbox_morphological"], same["tiatoolbox_morphological"] = _median_seconds(
            lambda o=overview, m=morph: m.fit_transform([o])[0]
        )
        row["same_overview"] = {
            "shape": list(overview.shape[:2]),
            "seconds": secs,
            "tissue_share": {k: round(float(np.asarray(v, bool).mean()), 3) for k, v in same.items()},
            "iou_with_wsikit": {
                k: _iou(same["wsikit"], np.asarray(v, bool)) for k, v in same.items() if k != "wsikit"
            },
        }
        png = IMG / f"tissue_{path.stem}.png"
        _panel(png, overview, masks)
        row["png"] = str(png.relative_to(ROOT))
        rows.append(row)
    return {"slides": rows}


# ---------------------------------------------------------------------------------------------- patches


def _benchmark_slide() -> Path:
    path = WORK / "mosaic_8192.tiff"
    if not path.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(HERE / "make_slide.py"), str(path), "--size", "8192"], check=True)
    return path


def _patches_child(tool: str, path: str) -> dict[str, Any]:
    """One tool delivering every 224 px level-0 tile that lies inside ``path`` (no tissue filter), row-major.

    Peak memory: the resident set sampled every 5 ms by a thread, its maximum above the resident set just
    before the tool starts (after imports: the tools' own libraries are not counted).
    """
    import threading

    import torch  # noqa: F401 - both tools import it on first use: not part of their reading memory
    from tiatoolbox.tools.patchextraction import get_patch_extractor

    from wsikit.io import open_slide
    from wsikit.tiling import PatchStream, TileGrid

    page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20

    def rss_mb() -> float:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * page_mb

    base, peak, stop = rss_mb(), [0.0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    n = 0
    if tool == "tiatoolbox":
        ext = get_patch_extractor(
            "slidingwindow", input_img=path, patch_size=(224, 224), stride=(224, 224), within_bound=True
        )
        for patch in ext:
            assert patch.shape == (224, 224, 3)
            n += 1
    else:
        slide = open_slide(path)
        grid = TileGrid.for_slide(slide, tile_size=224)
        w, h = slide.dimensions
        tiles = [t for t in grid if t.x0 + t.size0 <= w and t.y0 + t.size0 <= h]
        for batch in PatchStream(slide, grid, tiles, batch_size=64):
            assert tuple(batch.images.shape[1:]) == (3, 224, 224)
            n += len(batch)
        slide.close()
    seconds = time.perf_counter() - start
    return {
        "patches": n,
        "seconds": round(seconds, 3),
        "mps": round(n * 224 * 224 / 1e6 / seconds, 2),
        "peak_rss_mb_above_imports": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base, 1
        ),
    }


def bench_patches() -> dict[str, Any]:
    path = _benchmark_slide()
    runs: dict[str, list[dict[str, Any]]] = {"tiatoolbox": [], "wsikit": []}
    for _ in range(3):
        for tool in runs:
            got = subprocess.run(
                [sys.executable, __file__, "--patches-child", tool, str(path)],
                capture_output=True,
                text=True,
                check=True,
            )
            runs[tool].append(json.loads(got.stdout.strip().splitlines()[-1]))
    out: dict[str, Any] = {"slide": f"{path.name} (make_slide.py --size 8192: real MoNuSeg blocks)"}
    for tool, r in runs.items():
        out[tool] = {
            "patches": r[0]["patches"],
            "mps": statistics.median(x["mps"] for x in r),
            "peak_rss_mb_above_imports": max(x["peak_rss_mb_above_imports"] for x in r),
        }
    out["ratio_mps"] = round(out["wsikit"]["mps"] / out["tiatoolbox"]["mps"], 2)
    return out


# ---------------------------------------------------------------------------------------------- reading
def _timed_reads(
    path: Path, level: int, size: tuple[int, int], seed: int, backend: str = "auto"
) -> dict[str, float]:
    """MP/s of 40 reads of ``size`` at ``level`` by each tool, each repeat on freshly opened slides (cold
    tile caches: TIAToolbox keeps 256 MB of decoded tiles, OpenSlide 32 MB) and a fresh set of spots; the
    tools alternate on the same spots."""
    from tiatoolbox.wsicore.wsireader import WSIReader

    from wsikit.io import open_slide

    rng = np.random.default_rng(seed)
    times: dict[str, list[float]] = {"wsikit": [], "tiatoolbox": []}
    for repeat in range(4):
        slide, reader = open_slide(path, backend=backend), WSIReader.open(path)  # type: ignore[arg-type]
        w, h = slide.info().level_dimensions[level]
        down = slide.info().level_downsamples[level]
        spots = [
            (
                round(int(rng.integers(0, w - size[0] + 1)) * down),
                round(int(rng.integers(0, h - size[1] + 1)) * down),
            )
            for _ in range(40)
        ]  # level-0 coordinates: both tools take them for reads at any level
        for tool in ("wsikit", "tiatoolbox") if repeat % 2 else ("tiatoolbox", "wsikit"):
            start = time.perf_counter()
            for p in spots:
                if tool == "wsikit":
                    slide.read_region(p, level, size)
                else:
                    reader.read_rect(p, size, resolution=level, units="level")
            if repeat:  # the first repeat warms up
                times[tool].append(time.perf_counter() - start)
        slide.close()
    mp = 40 * size[0] * size[1] / 1e6
    return {k: round(mp / statistics.median(v), 2) for k, v in times.items()}


def bench_reading() -> dict[str, Any]:
    from tiatoolbox.wsicore.wsireader import WSIReader

    from wsikit.io import open_slide

    rows = []
    for path in (_benchmark_slide(), DATA / "slides" / "tcga-cr-7395-01a-01-ts1.svs", *_slides()[:1]):
        reader = WSIReader.open(path)
        with open_slide(path) as slide:
            for level in range(slide.level_count):
                w, h = slide.info().level_dimensions[level]
                size = (min(512, w), min(512, h))
                loc = (round((w - size[0]) / 2 * slide.info().level_downsamples[level]), 0)
                a = slide.read_region(loc, level, size)
                b = np.asarray(reader.read_rect(loc, size, resolution=level, units="level"))[..., :3]
                # wsikit's default backend (tifffile for a generic TIFF, as TIAToolbox's TIFFWSIReader), and for
                # TIFF files also OpenSlide, forced
                for backend in ("auto", "openslide") if path.suffix in (".tif", ".tiff") else ("auto",):
                    mps = _timed_reads(path, level, size, seed=level, backend=backend)
                    with open_slide(path, backend=backend) as probe:  # type: ignore[arg-type]
                        kind = type(probe).__name__
                    rows.append(
                        {
                            "slide": path.name,
                            "wsikit_backend": kind,
                            "tiatoolbox_reader": type(reader).__name__,
                            "level": level,
                            "read": list(size),
                            "wsikit_mps": mps["wsikit"],
                            "tiatoolbox_mps": mps["tiatoolbox"],
                            "ratio": round(mps["wsikit"] / mps["tiatoolbox"], 2),
                            "same_pixels_mean_abs_diff": round(
                                float(np.abs(a.astype(int) - b.astype(int)).mean()), 3
                            ),
                        }
                    )
    return {"reads": rows}


SECTIONS = {"stain": bench_stain, "tissue": bench_tissue, "patches": bench_patches, "reading": bench_reading}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=HERE / "results_anchors.json")
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--patches-child", nargs=2, metavar=("TOOL", "SLIDE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.patches_child:
        print(json.dumps(_patches_child(*args.patches_child)))
        return
    import tiatoolbox

    import wsikit

    result: dict[str, Any] = {
        **stamp(),
        "versions": {
            "wsikit": wsikit.__version__,
            "tiatoolbox": tiatoolbox.__version__,
            "torchstain": importlib.metadata.version("torchstain"),
        },
        "cpu_threads": os.cpu_count(),
    }
    if args.json.exists():  # keep the sections not rerun
        previous = json.loads(args.json.read_text())
        result = {**{k: v for k, v in previous.items() if k in SECTIONS}, **result}
    for name in args.only:
        start = time.perf_counter()
        result[name] = SECTIONS[name]()
        result[name]["section_seconds"] = round(time.perf_counter() - start, 1)
        result[name]["measured"] = {k: result[k] for k in ("commit", "date", "machine")}  # per section
        print(name, json.dumps(result[name], indent=1))
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
