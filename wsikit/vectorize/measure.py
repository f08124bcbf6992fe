"""Per-nucleus measurements from an RGB image and its instance labels (numpy in, columns out).

Morphology follows :func:`skimage.measure.regionprops_table`'s definitions: perimeter comes from it,
centroids, axis lengths and eccentricity from the same second moments computed for every nucleus at once
(:func:`_second_moments`; regionprops computes them one region at a time, 20x slower), solidity from the same
convex hulls built for every nucleus at once (:func:`_convex_areas`, 3x faster); stain intensities from Ruifrok-Johnston
color deconvolution (:func:`skimage.color.rgb2hed`, hematoxylin and eosin optical density).
Lengths are in microns and areas in square microns when ``mpp`` is given, in pixels otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from wsikit.errors import ShapeError

__all__ = ["measure_nuclei", "MEASUREMENT_UNITS", "measurement_names"]

# name -> unit (with mpp; without it, um becomes px)
MEASUREMENT_UNITS: dict[str, str] = {
    "area": "um^2",
    "perimeter": "um",
    "major_axis": "um",
    "minor_axis": "um",
    "eccentricity": "",
    "solidity": "",
    "circularity": "",
    "hematoxylin_od_mean": "OD",
    "hematoxylin_od_std": "OD",
    "eosin_od_mean": "OD",
    "eosin_od_std": "OD",
    "red_mean": "",
    "red_std": "",
    "green_mean": "",
    "green_std": "",
    "blue_mean": "",
    "blue_std": "",
}


_HED_SCALE = float(-np.log(1e-6))


def measurement_names() -> list[str]:
    """Names of the measurement columns, in output order (centroids excluded)."""
    return list(MEASUREMENT_UNITS)


def _channel_stats(values: npt.NDArray[np.floating], labels: npt.NDArray[np.intp], n: int) -> tuple[Any, Any]:
    count = np.bincount(labels, minlength=n + 1)[1:].astype(np.float64)
    s = np.bincount(labels, weights=values, minlength=n + 1)[1:]
    s2 = np.bincount(labels, weights=values.astype(np.float64) ** 2, minlength=n + 1)[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / count
        var = np.maximum(s2 / count - mean**2, 0.0)
    return mean, np.sqrt(var)


def _second_moments(
    lab: npt.NDArray[np.intp], n: int, pixels: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]] | None = None
) -> tuple[
    npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]
]:
    """Per label 1..n: centroid (row, col) and the eigenvalues (major, minor) of regionprops' inertia tensor.

    Two passes (means, then central moments about them), so large coordinates lose no precision. ``pixels``:
    ``np.nonzero(lab)``, when the caller has it.
    """
    rr, cc = np.nonzero(lab) if pixels is None else pixels
    sel = lab[rr, cc]
    count = np.bincount(sel, minlength=n + 1).astype(np.float64)
    count[count == 0] = np.nan
    cy = np.bincount(sel, weights=rr, minlength=n + 1) / count
    cx = np.bincount(sel, weights=cc, minlength=n + 1) / count
    dr, dc = rr - cy[sel], cc - cx[sel]
    vr = np.bincount(sel, weights=dr * dr, minlength=n + 1) / count  # mu20 / mu00
    vc = np.bincount(sel, weights=dc * dc, minlength=n + 1) / count  # mu02 / mu00
    cov = np.bincount(sel, weights=dr * dc, minlength=n + 1) / count  # mu11 / mu00
    # eigenvalues of [[vc, -cov], [-cov, vr]] (regionprops' inertia tensor), clipped at 0 as regionprops does
    half_sum, root = (vr + vc) / 2, np.sqrt(((vr - vc) / 2) ** 2 + cov**2)
    return cy, cx, np.maximum(half_sum + root, 0.0), np.maximum(half_sum - root, 0.0)


def _line_extremes(
    label: npt.NDArray[np.intp], line: npt.NDArray[np.intp], along: npt.NDArray[np.intp], n_lines: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Per (label, line) of labelled pixels given in ``along``-ascending order within each line: (label,
    line, first ``along``, last ``along``)."""
    order = np.argsort(label * n_lines + line, kind="stable")  # stable: ``along`` stays ascending
    label, line, along = label[order], line[order], along[order]
    new = np.r_[True, (label[1:] != label[:-1]) | (line[1:] != line[:-1])]
    first = np.flatnonzero(new)
    last = np.r_[first[1:] - 1, len(label) - 1]
    return label[first], line[first], along[first], along[last]


def _convex_areas(
    lab: npt.NDArray[np.intp],
    want: npt.NDArray[np.intp],
    pixels: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]] | None = None,
) -> npt.NDArray[np.float64]:
    """Pixels in each label's convex hull, exactly as regionprops' ``area_convex`` (for every label at once).

    regionprops takes the hull of every pixel's edge midpoints ((r +- 0.5, c), (r, c +- 0.5)) and counts the
    pixel centres inside or on it. The same hull is that of the midpoints on the first and last pixel of each
    row and column (:func:`_line_extremes`); GEOS builds all hulls in one call (of a line through the points:
    no point objects), and the centres on each integer row are counted between the hull's crossings of that
    row. 3x faster than regionprops' per-region loop. ``pixels``: ``np.nonzero(lab)``, when the caller has it.
    """
    import shapely

    rr, cc = (
        np.nonzero(lab) if pixels is None else pixels
    )  # row-major: columns ascend in a row, rows in a column
    label = lab[rr, cc]
    rows = _line_extremes(label, rr, cc, lab.shape[0])
    cols = _line_extremes(label, cc, rr, lab.shape[1])
    x = np.concatenate([rows[2] - 0.5, rows[3] + 0.5, cols[1], cols[1]]).astype(np.float64)
    y = np.concatenate([rows[1], rows[1], cols[2] - 0.5, cols[3] + 0.5]).astype(np.float64)
    label = np.concatenate([rows[0], rows[0], cols[0], cols[0]])
    position = np.full(int(lab.max()) + 1, -1, np.intp)
    position[want] = np.arange(len(want))
    index = position[label]
    keep = index >= 0
    order = np.argsort(index[keep], kind="stable")
    hulls = shapely.convex_hull(
        shapely.linestrings(np.c_[x[keep], y[keep]][order], indices=index[keep][order])
    )
    coords, ring = shapely.get_coordinates(shapely.get_exterior_ring(hulls), return_index=True)
    edge = (ring[1:] == ring[:-1]) & (coords[1:, 1] != coords[:-1, 1])  # the hull's non-horizontal edges
    (x0, y0), (x1, y1), owner = coords[:-1][edge].T, coords[1:][edge].T, ring[:-1][edge]
    lo = np.ceil(np.minimum(y0, y1)).astype(np.int64)
    n_rows = np.maximum(np.floor(np.maximum(y0, y1)).astype(np.int64) - lo + 1, 0)
    e = np.repeat(np.arange(len(owner)), n_rows)
    row = lo[e] + np.arange(len(e)) - np.repeat(np.cumsum(n_rows) - n_rows, n_rows)
    cross = x0[e] + (row - y0[e]) * (x1[e] - x0[e]) / (y1[e] - y0[e])
    key = owner[e] * (lab.shape[0] + 2) + row + 1
    order = np.argsort(key, kind="stable")
    key, cross, owner_of = key[order], cross[order], owner[e][order]
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    left, right = np.minimum.reduceat(cross, first), np.maximum.reduceat(cross, first)
    count = np.maximum(np.floor(right + 1e-9) - np.ceil(left - 1e-9) + 1, 0)
    areas: npt.NDArray[np.float64] = np.bincount(owner_of[first], weights=count, minlength=len(want)).astype(
        np.float64
    )
    return areas


def measure_nuclei(
    image: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.integer],
    *,
    mpp: float | None = None,
    ids: npt.NDArray[np.integer] | None = None,
) -> dict[str, npt.NDArray[np.float64]]:
    """Measure every labelled nucleus.

    Parameters
    ----------
    image
        (H, W, 3) uint8 RGB.
    labels
        (H, W) instance ids, 0 = background.
    mpp
        Microns per pixel; None gives pixel units.
    ids
        Measure only these ids (default: every id present), in this order.

    Returns
    -------
    dict
        ``label``, ``centroid_x``, ``centroid_y`` (pixels of ``labels``, pixel-edge convention: the
        centre of pixel (0, 0) is (0.5, 0.5), as in the polygons) and every name of
        :data:`MEASUREMENT_UNITS`, each a 1-D float64 array with one entry per nucleus.

    Examples
    --------
    >>> lab = np.zeros((20, 20), np.int32); lab[5:15, 5:15] = 1
    >>> m = measure_nuclei(np.full((20, 20, 3), 120, np.uint8), lab, mpp=0.5)
    >>> float(m["area"][0]), round(float(m["solidity"][0]), 2)
    (25.0, 1.0)
    """
    from skimage.color import rgb2hed
    from skimage.measure import regionprops_table

    if image.ndim != 3 or image.shape[2] != 3 or labels.shape != image.shape[:2]:
        raise ShapeError(
            f"image must be (H, W, 3) and labels (H, W) of the same size, got {image.shape}, {labels.shape}"
        )
    lab = np.ascontiguousarray(labels).astype(np.intp, copy=False)
    if ids is None:
        present = np.unique(lab)
        want = present[present > 0]
    else:
        want = np.asarray(ids, np.intp)
        if want.size:  # measure only these: neighbours in a halo would cost regionprops time for nothing
            keep = np.zeros(int(lab.max()) + 1, bool)
            keep[want[want <= lab.max()]] = True
            lab = np.where(keep[lab], lab, 0)
    out: dict[str, npt.NDArray[np.float64]] = {}
    if want.size == 0:
        for k in ["label", "centroid_x", "centroid_y", *MEASUREMENT_UNITS]:
            out[k] = np.zeros(0, np.float64)
        return out
    props = regionprops_table(
        lab,
        properties=(
            "label",
            "area",
            "perimeter",
        ),
    )  # type: ignore[no-untyped-call]
    index = {int(v): i for i, v in enumerate(props["label"])}
    missing = [int(v) for v in want if int(v) not in index]
    if missing:
        raise ShapeError(f"ids not present in labels: {missing[:5]}")
    rows = np.array([index[int(v)] for v in want], np.intp)
    scale = 1.0 if mpp is None else float(mpp)
    area_px = props["area"][rows].astype(np.float64)
    perim_px = props["perimeter"][rows].astype(np.float64)
    n = int(lab.max())
    rr, cc = np.nonzero(lab)  # labelled pixels, row-major: shared by the moments and the hulls
    pixels = (rr, cc)
    cy, cx, major, minor = (v[want] for v in _second_moments(lab, n, pixels))
    out["label"] = want.astype(np.float64)
    # pixel-edge convention, as the polygons: pixel (0, 0) covers [0, 1], so its centre is 0.5
    out["centroid_x"] = cx + 0.5
    out["centroid_y"] = cy + 0.5
    out["area"] = area_px * scale**2
    out["perimeter"] = perim_px * scale
    out["major_axis"] = 4 * np.sqrt(major) * scale
    out["minor_axis"] = 4 * np.sqrt(minor) * scale
    with np.errstate(invalid="ignore", divide="ignore"):
        out["eccentricity"] = np.where(major > 0, np.sqrt(np.clip(1 - minor / major, 0, 1)), 0.0)
    out["solidity"] = area_px / _convex_areas(lab, want, pixels)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["circularity"] = np.clip(np.where(perim_px > 0, 4 * np.pi * area_px / perim_px**2, np.nan), 0, 1)
    # intensities: bincount over the (few) labelled pixels only
    mask = lab > 0
    sel = lab[mask]
    pix = image[mask].astype(np.float64)
    hed = rgb2hed(image[mask][None].astype(np.float64) / 255.0)[0]
    channels = {
        # rgb2hed divides ln(I) by ln(1e-6); undo it to get natural-log optical-density concentrations
        "hematoxylin_od": hed[:, 0] * _HED_SCALE,
        "eosin_od": hed[:, 1] * _HED_SCALE,
        "red": pix[:, 0],
        "green": pix[:, 1],
        "blue": pix[:, 2],
    }
    for name, values in channels.items():
        mean, std = _channel_stats(values, sel, n)
        out[f"{name}_mean"] = mean[want - 1]
        out[f"{name}_std"] = std[want - 1]
    return {k: out[k] for k in ["label", "centroid_x", "centroid_y", *MEASUREMENT_UNITS]}
