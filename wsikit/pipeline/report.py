"""Slide-level statistics (``summary.json``), cell-type and density maps, and the one-page HTML report."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from wsikit import __version__
from wsikit.classify.naming import CELL_TYPE_COLORS, CELL_TYPES
from wsikit.io.omezarr import OmeZarrStore
from wsikit.io.result import RunFolder
from wsikit.io.slide import Slide
from wsikit.tiling.tissue import TissueMask

__all__ = ["write_summary", "write_report", "read_part_columns", "PART_COLUMNS", "DENSITY_BIN_UM", "colormap"]

DENSITY_BIN_UM = 100.0
"""Side of a density-map bin in microns."""

_MORPHOMETRY = {
    "area": "area_um2",
    "eccentricity": "eccentricity",
    "hematoxylin_od_mean": "hematoxylin_od_mean",
}

# a perceptually ordered dark-blue -> yellow ramp (viridis stops)
_STOPS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], np.float64)


def colormap(values: npt.NDArray[np.floating]) -> npt.NDArray[np.uint8]:
    """Map values in [0, 1] to RGB along the viridis stops (NaN -> white)."""
    v = np.clip(np.nan_to_num(values, nan=0.0), 0, 1) * (len(_STOPS) - 1)
    i = np.minimum(v.astype(int), len(_STOPS) - 2)
    f = (v - i)[..., None]
    rgb = _STOPS[i] * (1 - f) + _STOPS[i + 1] * f
    rgb[np.isnan(values)] = 255
    out: npt.NDArray[np.uint8] = rgb.round().astype(np.uint8)
    return out


PART_COLUMNS = [
    "nucleus_id",
    "class",
    "class_probability",
    "centroid_x",
    "centroid_y",
    "area",
    "eccentricity",
    "hematoxylin_od_mean",
    "red_mean",
    "green_mean",
]
"""Columns of the per-chunk parts that the summary and the report use."""


def non_he_colour(cols: dict[str, npt.NDArray[Any]]) -> npt.NDArray[np.bool_]:
    """Objects whose mean colour no H&E stain gives: green not darker than red.

    Hematoxylin and eosin both absorb green most, so a stained nucleus is darker in green than in red;
    teal, blue-green and green pen ink absorb red. These objects are still counted as nuclei (rejecting them
    belongs to segmentation); the summary counts them and the report leaves them out of its examples.

    Examples
    --------
    >>> non_he_colour({"red_mean": np.array([80.0, 60.0]), "green_mean": np.array([48.0, 95.0])}).tolist()
    [False, True]
    """
    out: npt.NDArray[np.bool_] = np.asarray(cols["green_mean"]) >= np.asarray(cols["red_mean"])
    return out


def read_part_columns(part_files: list[Path], names: list[str] = PART_COLUMNS) -> dict[str, npt.NDArray[Any]]:
    """``names`` of every part, concatenated in chunk order (read once for the summary and the report)."""
    import pyarrow.parquet as pq

    out: dict[str, list[npt.NDArray[Any]]] = {k: [] for k in names}
    for p in part_files:
        t = pq.read_table(p, columns=names)
        for k in names:
            out[k].append(t.column(k).to_numpy())
    return {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in out.items()}


def _stats(values: npt.NDArray[np.floating]) -> dict[str, float | None]:
    v = values[np.isfinite(values)]
    if not len(v):
        return {"median": None, "q1": None, "q3": None, "iqr": None}
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {
        "median": round(float(med), 4),
        "q1": round(float(q1), 4),
        "q3": round(float(q3), 4),
        "iqr": round(float(q3 - q1), 4),
    }


def write_summary(
    work: Path,
    cols: dict[str, npt.NDArray[Any]],
    *,
    slide_p: Path,
    slide: Slide,
    mpp: float,
    tissue: TissueMask,
    models: dict[str, Any],
    options: dict[str, Any],
    segmentation: dict[str, Any],
    performance: dict[str, Any] | None = None,
    damaged: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Compute the slide-level statistics and write ``summary.json`` into ``work``; returns them.

    ``segmentation`` holds counts that a resumed run reproduces exactly; ``performance`` (stream timings,
    memory) and the run's ``seconds`` are the only parts that differ between runs of the same slide.
    """
    n = len(cols["class"])
    area_mm2 = float(tissue.area_mm2) if tissue.area_mm2 is not None else None
    if area_mm2 is None:  # the mask's mpp is the slide's; compute from the mpp used for the run
        area_mm2 = float(tissue.mask.sum() * (tissue.downsample * mpp / 1000.0) ** 2)
    classes: dict[str, Any] = {}
    for i, name in enumerate(CELL_TYPES):
        sel = cols["class"] == i
        count = int(sel.sum())
        classes[name] = {
            "count": count,
            "fraction": round(count / n, 4) if n else None,
            "density_per_mm2": round(count / area_mm2, 2) if area_mm2 else None,
            "morphometry": {
                "area_um2": _stats(cols["area"][sel]),
                "eccentricity": _stats(cols["eccentricity"][sel]),
                "hematoxylin_od": _stats(cols["hematoxylin_od_mean"][sel]),
            },
        }
    lym, epi = classes["lymphocyte"]["count"], classes["epithelial"]["count"]
    summary = {
        "slide_id": slide_p.stem,
        "slide": str(slide_p),
        "dimensions": list(slide.dimensions),
        "reader": {"backend": slide.backend, "tile_decoder": slide.info().tile_decoder},
        "mpp": mpp,
        "tissue_area_mm2": round(area_mm2, 4),
        "nuclei": n,
        "nuclei_per_mm2": round(n / area_mm2, 2) if area_mm2 else None,
        "classes": classes,
        "lymphocyte_to_epithelial_ratio": round(lym / epi, 4) if epi else None,
        "non_he_colour_objects": {
            "count": int(non_he_colour(cols).sum()) if n else 0,
            "rule": "mean green >= mean red (pen ink, dust); counted above as nuclei",
        },
        "models": models,
        "options": options,
        "segmentation": segmentation,
        "damaged_regions": damaged or {"count": 0, "share_of_tissue": 0.0, "boxes_level0": [], "errors": []},
        "performance": performance or {},
        "wsikit_version": __version__,
    }
    RunFolder(work).summary.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _png(image: npt.NDArray[np.uint8], *, optimize: bool = True, compress_level: int = 6) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=optimize, compress_level=compress_level)
    return buf.getvalue()


def _label_level(store: OmeZarrStore, name: str, max_size: int) -> tuple[npt.NDArray[Any], int]:
    level = 0
    while level < store.levels - 1 and max(store.height, store.width) / 2**level > max_size:
        level += 1
    arr = store.array(name, level)
    return np.asarray(arr[:]), 2**level


MAP_MAX_PX = 4096
"""Longest side of ``cell_types.png``: the slide's full resolution up to this size (bounded memory)."""
SHOWN_PX = 480
"""Width at which the report shows the slide and the cell-type map (pictures are sized 2x for sharp screens)."""


def write_report(
    work: Path,
    cols: dict[str, npt.NDArray[Any]],
    *,
    slide: Slide,
    store: OmeZarrStore,
    summary: dict[str, Any],
) -> None:
    """Write ``cell_types.png``, ``density_<class>.png`` and the self-contained ``report.html`` into ``work``.

    ``cell_types.png`` is the cell-type map over the slide at full resolution up to :data:`MAP_MAX_PX` px
    (the report links to it); the report embeds JPEG pictures at twice the size it shows them and the
    density maps at one pixel per bin, so it stays small whatever the slide size.
    """
    from PIL import Image

    big, _ = slide.read_overview(MAP_MAX_PX)
    bh, bw = big.shape[:2]
    # cell-type map: the label pyramid level nearest the map's size, nearest-neighbour resized onto it
    types, _ = _label_level(store, "cell_types", max(bh, bw))
    if types.shape != (bh, bw):
        types = np.asarray(Image.fromarray(types).resize((bw, bh), Image.Resampling.NEAREST))
    colored = big.copy()
    lut = np.zeros((len(CELL_TYPES) + 1, 3), np.uint8)
    for i, t in enumerate(CELL_TYPES):
        lut[i + 1] = CELL_TYPE_COLORS[t]
    mask = types > 0
    colored[mask] = (0.25 * big[mask] + 0.75 * lut[types[mask]]).astype(np.uint8)
    del types, mask
    # up to 4,096 px: zlib level 1 (a 4,096^2 map: 1.0 s and 23.0 MB vs 3.3 s and 21.7 MB at the default 6)
    (work / RunFolder.CELL_TYPE_MAP).write_bytes(_png(colored, optimize=False, compress_level=1))
    # the pictures the report shows, at 2x their displayed size (BOX keeps small nuclei's colour)
    scale = min(1.0, 2 * SHOWN_PX / max(bw, 1))
    shown = (max(1, round(bw * scale)), max(1, round(bh * scale)))
    overview = np.asarray(Image.fromarray(big).resize(shown, Image.Resampling.BOX))
    colored_small = np.asarray(Image.fromarray(colored).resize(shown, Image.Resampling.BOX))
    del big, colored
    # density maps: nuclei per mm^2 in DENSITY_BIN_UM bins, one pixel per bin
    mpp = float(summary["mpp"])
    bin_px = DENSITY_BIN_UM / mpp
    w0, h0 = slide.dimensions
    nb_x, nb_y = max(1, int(np.ceil(w0 / bin_px))), max(1, int(np.ceil(h0 / bin_px)))
    bin_mm2 = (DENSITY_BIN_UM / 1000.0) ** 2
    maps: dict[str, tuple[bytes, float]] = {}
    for i, name in enumerate(CELL_TYPES):
        sel = cols["class"] == i
        hist, _, _ = np.histogram2d(
            cols["centroid_y"][sel],
            cols["centroid_x"][sel],
            bins=(nb_y, nb_x),
            range=((0, nb_y * bin_px), (0, nb_x * bin_px)),
        )
        dens = hist / bin_mm2
        top = float(dens.max()) if dens.size else 0.0
        img = colormap(dens / top if top > 0 else dens)
        png = _png(img)  # one pixel per bin in the report (the browser scales it up, pixelated)
        k = max(1, (2 * SHOWN_PX) // max(nb_x, 1))  # the file: whole pixels per bin, about 960 px wide
        RunFolder(work).density_map(name).write_bytes(_png(np.repeat(np.repeat(img, k, axis=0), k, axis=1)))
        maps[name] = (png, top)
    # example nuclei: the most confident of each class among H&E-coloured objects, outlined in the class colour
    examples: dict[str, list[bytes]] = {}
    side = int(round(24.0 / mpp))
    stained = ~non_he_colour(cols)
    for i, name in enumerate(CELL_TYPES):
        sel = np.nonzero((cols["class"] == i) & stained)[0]
        best = sel[np.argsort(-cols["class_probability"][sel], kind="stable")[:8]]
        tiles = []
        for j in best:
            x, y = int(cols["centroid_x"][j]) - side // 2, int(cols["centroid_y"][j]) - side // 2
            crop = _outlined(
                slide.read_region((x, y), 0, (side, side)),
                _label_window(store, x, y, side, w0, h0) == cols["nucleus_id"][j],
                CELL_TYPE_COLORS[name],
            )
            tiles.append(
                _jpeg(np.asarray(Image.fromarray(crop).resize((96, 96), Image.Resampling.BILINEAR)), 90)
            )
        examples[name] = tiles
    _write_html(RunFolder(work).report, summary, overview, colored_small, maps, examples)


def _label_window(
    store: OmeZarrStore, x: int, y: int, side: int, width: int, height: int
) -> npt.NDArray[Any]:
    """``side`` x ``side`` nucleus labels at level-0 (x, y), zero beyond the slide."""
    out = np.zeros((side, side), np.int64)
    xa, ya, xb, yb = max(x, 0), max(y, 0), min(x + side, width), min(y + side, height)
    if xb > xa and yb > ya:
        out[ya - y : yb - y, xa - x : xb - x] = store.read_region(
            "nuclei", x=xa, y=ya, width=xb - xa, height=yb - ya
        )
    return out


def _outlined(
    image: npt.NDArray[np.uint8], mask: npt.NDArray[np.bool_], color: tuple[int, int, int]
) -> npt.NDArray[np.uint8]:
    """``image`` with the outer boundary of ``mask`` drawn in ``color`` (the nucleus shown stays visible)."""
    from scipy import ndimage as ndi

    ring = ndi.binary_dilation(mask, iterations=2) & ~ndi.binary_dilation(mask)
    out = image.copy()
    out[ring] = color
    return out


def _jpeg(image: npt.NDArray[np.uint8], quality: int = 85) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def _img_tag(
    data: bytes, alt: str, width: int | None = None, *, mime: str = "image/png", pixelated: bool = False
) -> str:
    w = f' width="{width}"' if width else ""
    style = ' style="image-rendering:pixelated"' if pixelated else ""
    return (
        f'<img alt="{html.escape(alt)}"{w}{style} src="data:{mime};base64,{base64.b64encode(data).decode()}">'
    )


def _write_html(
    path: Path,
    s: dict[str, Any],
    overview: npt.NDArray[np.uint8],
    colored: npt.NDArray[np.uint8],
    maps: dict[str, tuple[bytes, float]],
    examples: dict[str, list[bytes]],
) -> None:
    rows = []
    for name in CELL_TYPES:
        c = s["classes"][name]
        m = c["morphometry"]

        def fmt(st: dict[str, Any]) -> str:
            return "-" if st["median"] is None else f"{st['median']:.2f} [{st['q1']:.2f}, {st['q3']:.2f}]"

        rgb = CELL_TYPE_COLORS[name]
        rows.append(
            f"<tr><td><span style='color:rgb{rgb}'>&#9632;</span> {name}</td><td>{c['count']}</td>"
            f"<td>{c['fraction'] if c['fraction'] is not None else '-'}</td>"
            f"<td>{c['density_per_mm2'] if c['density_per_mm2'] is not None else '-'}</td>"
            f"<td>{fmt(m['area_um2'])}</td><td>{fmt(m['eccentricity'])}</td><td>{fmt(m['hematoxylin_od'])}</td></tr>"
        )
    dens = "".join(
        f"<figure>{_img_tag(png, f'{n} density', 360, pixelated=True)}<figcaption>{n}: 0 - {top:.0f} nuclei/mm&sup2; "
        f"({DENSITY_BIN_UM:.0f} &micro;m bins)</figcaption></figure>"
        for n, (png, top) in maps.items()
    )
    ex = "".join(
        f"<h3>{n}</h3><div>{''.join(_img_tag(p, n, mime='image/jpeg') for p in tiles) or 'none'}</div>"
        for n, tiles in examples.items()
    )
    ratio = s["lymphocyte_to_epithelial_ratio"]
    odd = s.get("non_he_colour_objects", {}).get("count", 0)
    artefacts = (
        f"<p><b>{odd}</b> objects ({100 * odd / max(s['nuclei'], 1):.1f}%) have a colour no H&amp;E stain gives "
        "(green not darker than red: pen ink, dust). They are counted above as nuclei of some type; the "
        "examples below leave them out.</p>"
        if odd
        else ""
    )
    dmg = s.get("damaged_regions", {})
    damaged = ""
    if dmg.get("count"):
        boxes = "; ".join(f"{w}x{h} px at ({x}, {y})" for x, y, w, h in dmg["boxes_level0"][:10])
        more = f" and {dmg['count'] - 10} more" if dmg["count"] > 10 else ""
        damaged = (
            f"<p class='warn'><b>{dmg['count']}</b> unreadable (corrupt) regions, "
            f"{100 * dmg['share_of_tissue']:.2f}% of the tissue, were skipped and read as glass: no nuclei "
            f"are counted there (level-0 boxes: {html.escape(boxes)}{more}; "
            f"{html.escape('; '.join(dmg.get('errors', [])[:3]))}).</p>"
        )
    timing = ", ".join(f"{k} {v} s" for k, v in s.get("seconds", {}).items())
    seg = s.get("segmentation", {})
    why = (
        ("dropped_by_size", "outside the nuclear area range"),
        ("dropped_by_colour", "of a colour no nucleus has (ink, eosin fragments)"),
        ("dropped_on_glass", "lying on glass"),
        ("dropped_too_long", "longer than any nucleus (fold edges, fibre strands)"),
    )
    dropped = "; ".join(f"{seg[k]} {text}" for k, text in why if k in seg)
    dropped = f" Segmented objects not counted as nuclei: {dropped}." if dropped else ""
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>wsikit report: {html.escape(s["slide_id"])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}
figure{{display:inline-block;margin:0 1em 1em 0}}.warn{{background:#fff3cd;padding:6px}}</style></head><body>
<h1>{html.escape(s["slide_id"])}</h1>
<p>{s["dimensions"][0]} x {s["dimensions"][1]} px at {s["mpp"]} &micro;m/px; tissue {s["tissue_area_mm2"]} mm&sup2;;
<b>{s["nuclei"]}</b> nuclei ({s["nuclei_per_mm2"]} per mm&sup2;); lymphocyte-to-epithelial ratio {ratio}.</p>
{damaged}<figure>{_img_tag(_jpeg(overview), "slide", SHOWN_PX, mime="image/jpeg")}<figcaption>slide</figcaption></figure>
<figure><a href="cell_types.png">{_img_tag(_jpeg(colored), "cell types", SHOWN_PX, mime="image/jpeg")}</a>
<figcaption>nuclei by cell type (<a href="cell_types.png">full resolution</a>)</figcaption></figure>
<h2>Cell types</h2>
<table><tr><th>class</th><th>nuclei</th><th>fraction</th><th>per mm&sup2;</th><th>area &micro;m&sup2; median [IQR]</th>
<th>eccentricity</th><th>hematoxylin OD</th></tr>{"".join(rows)}</table>
<h2>Density</h2>{dens}
<h2>Most confident examples (24 &micro;m)</h2>{artefacts}{ex}
<h2>Run</h2><p>wsikit {html.escape(str(s["wsikit_version"]))}; stain {html.escape(str(s["options"].get("stain")))};
precision {html.escape(str(s["options"].get("precision", "fp32")))}; segmenter {html.escape(str(s["models"]["segmenter"]["weights"]))}; classifier
{html.escape(str(s["models"]["classifier"]["weights"]))}.{html.escape(dropped)} Time: {html.escape(timing)}.</p>
</body></html>
"""
    path.write_text(doc)
