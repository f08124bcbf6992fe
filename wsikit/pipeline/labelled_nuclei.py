"""Labelled points matched to segmented nuclei: the crops that train and score the cell-type classifiers.

A field (an image with cell-type points) is segmented the way ``wsikit run`` segments a slide by default
(the CNN stain normalizer, then the segmenter fine-tuned for its output, at 0.25 um/px; or given instance
labels are used), the instances are brought back to the image's own resolution, and each point is matched
to the nucleus that contains it (the first point wins; points on background count as detection misses).
Crops are cut from the image as ``wsikit run`` cuts them: Reinhard-standardized to the reference style,
then :func:`~wsikit.classify.nucleus_crops` (the unsupervised InfoGAN's whitened input) and
:func:`~wsikit.classify.context_crops` (the labelled classifiers' input).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from wsikit._typing import PathLike
from wsikit.classify.crops import (
    CONTEXT_MPP,
    context_channels,
    context_crops,
    nucleus_crops,
    standardize_stain,
)
from wsikit.classify.naming import CELL_TYPES
from wsikit.errors import ConfigError
from wsikit.vectorize.measure import measure_nuclei

__all__ = [
    "CLASS_ALIASES",
    "MORPHOLOGY",
    "LabelledNuclei",
    "NucleusMatcher",
    "PointMatch",
    "cell_type_index",
    "match_points",
    "nucleus_centres_um",
]

CLASS_ALIASES = {
    "epithelial": "epithelial",
    "tumor_any": "epithelial",
    "tumor": "epithelial",
    "lymphocyte": "lymphocyte",
    "stil": "lymphocyte",
    "fibroblast": "fibroblast",
    "nontil_stromal": "fibroblast",
    "stromal": "fibroblast",
}
"""Class names accepted in points files (lower case) -> cell type; others (macrophage, other_nucleus ...) are skipped."""

MORPHOLOGY = (
    "area",
    "perimeter",
    "major_axis",
    "minor_axis",
    "eccentricity",
    "solidity",
    "circularity",
    "hematoxylin_od_mean",
    "hematoxylin_od_std",
    "eosin_od_mean",
    "red_mean",
    "green_mean",
    "blue_mean",
)
"""Measurements the k-means morphology baseline clusters on."""

UNLABELLED_MIN_AREA_UM2 = 7.5
"""Segmented objects below this area (``wsikit run``'s default minimum nucleus area) do not join the unlabelled pool."""


def cell_type_index(label: str) -> int | None:
    """Index into :data:`CELL_TYPES` of a points-file class name, None for a class that is not scored.

    Examples
    --------
    >>> cell_type_index("stromal"), cell_type_index("sTIL"), cell_type_index("macrophage")
    (2, 1, None)
    """
    t = CLASS_ALIASES.get(label.strip().lower())
    return None if t is None else CELL_TYPES.index(t)


def nucleus_centres_um(
    labels: npt.NDArray[np.integer], ids: npt.NDArray[np.integer], mpp: float
) -> npt.NDArray[np.float64]:
    """(N, 2) centre (x, y) in microns of each nucleus ``ids`` of ``labels`` (the mean of its pixel indices):
    the positions the neighbourhood stage works on.

    Examples
    --------
    >>> lab = np.zeros((6, 6), np.int32); lab[2:4, 0:2] = 5
    >>> nucleus_centres_um(lab, np.array([5]), 0.5).tolist()
    [[0.25, 1.25]]
    """
    from scipy import ndimage as ndi

    yx = np.array(ndi.center_of_mass(np.ones(labels.shape), labels, ids), np.float64).reshape(-1, 2)
    out: npt.NDArray[np.float64] = yx[:, ::-1] * mpp
    return out


@dataclass(frozen=True)
class PointMatch:
    """Points of one field matched to its nuclei (see :func:`match_points`)."""

    ids: npt.NDArray[np.int64]
    """The nuclei that a point names, in the order of their first point."""
    cell_types: npt.NDArray[np.int64]
    """The cell type of each of ``ids``: its first point's."""
    per_class: npt.NDArray[np.int64]
    """Scored points per cell type."""
    matched: npt.NDArray[np.int64]
    """Of those, the points inside a nucleus, per cell type."""
    unmatched: int
    """Scored points on background or outside the field (detection misses)."""
    skipped: int
    """Points of a class that is not scored."""
    duplicates: int
    """Points in a nucleus that an earlier point already named."""


def match_points(labels: npt.NDArray[np.integer], points: Iterable[tuple[float, float, str]]) -> PointMatch:
    """Name nuclei by the points ``(x, y, class)`` that fall in them (pixel coordinates of ``labels``): the
    first point in a nucleus names it; points on background are detection misses.

    Examples
    --------
    >>> lab = np.zeros((10, 10), np.int32); lab[2:5, 2:5] = 7
    >>> m = match_points(lab, [(3, 3, "lymphocyte"), (3.4, 2.6, "tumor"), (8, 8, "stromal")])
    >>> m.ids.tolist(), m.cell_types.tolist(), m.unmatched, m.duplicates
    ([7], [1], 1, 1)
    """
    k = len(CELL_TYPES)
    ids: list[int] = []
    types: list[int] = []
    seen: set[int] = set()
    per_class, matched = np.zeros(k, np.int64), np.zeros(k, np.int64)
    unmatched = skipped = duplicates = 0
    h, w = labels.shape
    for x, y, label in points:
        t = cell_type_index(label)
        if t is None:
            skipped += 1
            continue
        per_class[t] += 1
        yy, xx = int(round(y)), int(round(x))
        if not (0 <= yy < h and 0 <= xx < w) or labels[yy, xx] == 0:
            unmatched += 1
            continue
        matched[t] += 1
        nid = int(labels[yy, xx])
        if nid in seen:
            duplicates += 1  # two points in one nucleus: the first one names it
            continue
        seen.add(nid)
        ids.append(nid)
        types.append(t)
    return PointMatch(
        np.array(ids, np.int64), np.array(types, np.int64), per_class, matched, unmatched, skipped, duplicates
    )


@dataclass
class LabelledNuclei:
    """Matched nuclei of one or more fields: crops, true class, measurements and detection counts.

    ``crops`` are the whitened 40x40 nucleus crops (N, 40, 40, 3); ``context`` the 7-channel context crops
    (N, 40, 40, 7) or None when not asked for. ``points_per_class`` / ``matched_per_class`` count the
    scored points of each cell type and those that fell inside a segmented nucleus (detection recall).
    ``unlabelled`` holds context crops of every other segmented nucleus when asked for (semi-supervised
    training).
    """

    crops: npt.NDArray[np.uint8]
    truth: npt.NDArray[np.int64]
    area: npt.NDArray[np.float64]
    eccentricity: npt.NDArray[np.float64]
    morphology: npt.NDArray[np.float64]
    image: list[str]
    points: int
    unmatched: int
    skipped: int
    points_per_class: npt.NDArray[np.int64]
    matched_per_class: npt.NDArray[np.int64]
    context: npt.NDArray[np.uint8] | None = None
    unlabelled: npt.NDArray[np.uint8] | None = None
    duplicates: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def detection_recall(self) -> dict[str, float | None]:
        """Share of each class's points that lie inside a segmented nucleus."""
        return {
            c: (round(float(m / p), 4) if p else None)
            for c, p, m in zip(CELL_TYPES, self.points_per_class, self.matched_per_class, strict=True)
        }


class NucleusMatcher:
    """Segment fields, match their points to nuclei and cut crops (see the module docstring).

    Parameters
    ----------
    stain
        Segmentation path: ``"cnn"`` (``wsikit run``'s default) or ``"none"`` (raw pixels).
    context
        Also cut 7-channel context crops of the matched nuclei.
    unlabelled
        Also cut context crops of every segmented nucleus no point falls in.
    context_mpp
        Resolutions of the context crops' surroundings fields.
    segmenter_weights
        U-Net weights to segment with (default: the shipped ones for ``stain``, as ``wsikit run``).
    field_classifier
        Called per field with its stain-standardized image, instance labels, um/px and the matched nucleus
        ids; returns their cell types, kept as ``extra["field_class"]`` (for classifiers that need every
        nucleus of the field, such as the neighbourhood stage).
    """

    def __init__(
        self,
        *,
        stain: Literal["cnn", "none"] = "cnn",
        context: bool = False,
        unlabelled: bool = False,
        context_mpp: tuple[float, ...] = (CONTEXT_MPP,),
        segmenter_weights: PathLike | None = None,
        field_classifier: Callable[
            [npt.NDArray[np.uint8], npt.NDArray[np.uint32], float, npt.NDArray[np.int64]],
            npt.NDArray[np.int64],
        ]
        | None = None,
    ) -> None:
        if stain not in ("cnn", "none"):
            raise ConfigError(f"stain must be 'cnn' or 'none', got {stain!r}")
        self.stain = stain
        self.context = context or unlabelled
        self.unlabelled = unlabelled
        self.context_mpp = tuple(context_mpp)
        self.field_classifier = field_classifier
        self.segmenter_weights = segmenter_weights
        self._segmenter: Any = None
        self._normalizer: Any = None

    def segment(self, image: npt.NDArray[np.uint8], mpp: float) -> npt.NDArray[np.uint32]:
        """Nucleus instances of ``image`` (at ``mpp``) at the image's own resolution."""
        from wsikit.segment.infer import Segmenter

        if self._segmenter is None:
            self._segmenter = Segmenter.load(self.segmenter_weights, stain=self.stain)
            if self.stain == "cnn":
                from wsikit.stain.factory import make_normalizer

                self._normalizer = make_normalizer("cnn")
        src = image if self._normalizer is None else np.asarray(self._normalizer.transform(image))
        out: npt.NDArray[np.uint32] = self._segmenter.segment(src, mpp=mpp)
        return out

    def match(
        self,
        fields: Iterable[
            tuple[
                str,
                npt.NDArray[np.uint8],
                float,
                npt.NDArray[np.uint32] | None,
                list[tuple[float, float, str]],
            ]
        ],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> LabelledNuclei:
        """Match the points of ``fields`` ``(name, image, mpp, labels or None, [(x, y, class), ...])``.

        Raises
        ------
        ConfigError
            No point of any field lies inside a nucleus.
        """
        crops, ctx, unl, truth, area, ecc, morph, names = [], [], [], [], [], [], [], []
        field_class: list[npt.NDArray[np.int64]] = []
        k = len(CELL_TYPES)
        n_points = unmatched = skipped = dups = 0
        per_class, matched = np.zeros(k, np.int64), np.zeros(k, np.int64)
        for i, (name, image, mpp, labels, points) in enumerate(fields):
            lab = self.segment(image, mpp) if labels is None else labels
            pm = match_points(lab, points)
            n_points += int(pm.per_class.sum()) + pm.skipped
            skipped, unmatched, dups = skipped + pm.skipped, unmatched + pm.unmatched, dups + pm.duplicates
            per_class += pm.per_class
            matched += pm.matched
            ids, cls = pm.ids.tolist(), pm.cell_types.tolist()
            if progress is not None:
                progress(i + 1)
            if not ids and not self.unlabelled:
                continue
            std = standardize_stain(image)
            if ids:
                c, got = nucleus_crops(std, lab, mpp=mpp, ids=np.array(ids))
                m = measure_nuclei(std, lab, mpp=mpp, ids=got)
                crops.append(c)
                truth.append(np.array(cls, np.int64))
                area.append(m["area"])
                ecc.append(m["eccentricity"])
                morph.append(np.stack([m[key] for key in MORPHOLOGY], axis=1))
                names.extend([name] * len(ids))
                if self.field_classifier is not None:
                    field_class.append(np.asarray(self.field_classifier(std, lab, mpp, got), np.int64))
                if self.context:
                    ctx.append(context_crops(std, lab, mpp=mpp, ids=got, context_mpp=self.context_mpp)[0])
            if self.unlabelled:
                present = np.unique(lab)
                rest = np.setdiff1d(present[present > 0], np.array(ids, np.int64))
                if len(rest):
                    a = measure_nuclei(std, lab, mpp=mpp, ids=rest)["area"]
                    rest = rest[a >= UNLABELLED_MIN_AREA_UM2]
                if len(rest):
                    unl.append(context_crops(std, lab, mpp=mpp, ids=rest, context_mpp=self.context_mpp)[0])
        if not crops:
            raise ConfigError("no labelled point lies inside a nucleus")
        return LabelledNuclei(
            crops=np.concatenate(crops),
            truth=np.concatenate(truth),
            area=np.concatenate(area),
            eccentricity=np.concatenate(ecc),
            morphology=np.concatenate(morph),
            image=names,
            points=n_points,
            unmatched=unmatched,
            skipped=skipped,
            points_per_class=per_class,
            matched_per_class=matched,
            context=np.concatenate(ctx) if self.context else None,
            unlabelled=(
                np.concatenate(unl)
                if unl
                else np.zeros((0, 40, 40, context_channels(self.context_mpp)), np.uint8)
            )
            if self.unlabelled
            else None,
            duplicates=dups,
            extra={"field_class": np.concatenate(field_class)} if field_class else {},
        )
