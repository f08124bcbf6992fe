"""The neighbourhood stage: features, fitting, weights metadata and the classifier's use of it."""

from __future__ import annotations

import numpy as np
import pytest

from wsikit.classify.neighbourhood import (
    NeighbourhoodStage,
    fit_balanced_logistic,
    fit_neighbourhood_stage,
    neighbourhood_features,
)
from wsikit.errors import ConfigError, ShapeError


def _tissue(seed: int, fields: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fields of 300 um with nests of one cell type each (a nucleus's type is its nest's type, 90% of the time),
    and a weak, noisy network: right about 55% of the time on its own."""
    rng = np.random.default_rng(seed)
    xy, truth, prob, group = [], [], [], []
    for g in range(fields):
        for _ in range(12):
            centre, kind = rng.uniform(0, 300, 2), rng.integers(0, 3)
            n = rng.integers(8, 20)
            pts = centre + rng.normal(0, 12, (n, 2))
            t = np.where(rng.random(n) < 0.9, kind, rng.integers(0, 3, n))
            logits = rng.normal(0, 1.0, (n, 3))
            logits[np.arange(n), t] += 0.9
            p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
            xy.append(pts), truth.append(t), prob.append(p), group.append(np.full(n, g))
    return np.concatenate(prob), np.concatenate(xy), np.concatenate(truth), np.concatenate(group)


def test_neighbours_only_within_a_group_and_radius() -> None:
    p = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]])
    xy = np.array([[0.0, 0.0], [10.0, 0.0], [40.0, 0.0], [5.0, 0.0]])
    f = neighbourhood_features(p, xy, group=np.array([0, 0, 0, 1]))
    # nucleus 0: within 25 um only nucleus 1 (nucleus 3 is near but in another field); within 50 also 2
    assert np.allclose(f[0, 3:6], p[1]) and np.isclose(np.expm1(f[0, 6]), 1)
    assert np.allclose(f[0, 7:10], (p[1] + p[2]) / 2) and np.isclose(np.expm1(f[0, 10]), 2)
    assert np.allclose(f[3, 3:], 0)  # alone in its field: no neighbours, mean 0
    assert neighbourhood_features(np.zeros((0, 3)), np.zeros((0, 2))).shape == (0, 11)
    with pytest.raises(ShapeError):
        neighbourhood_features(p, xy[:2])


def test_the_stage_learns_from_neighbours_on_unseen_fields() -> None:
    p, xy, y, g = _tissue(0)
    stage = fit_neighbourhood_stage(p, xy, y, group=g)
    p2, xy2, y2, g2 = _tissue(1)  # other fields
    network_acc = (p2.argmax(1) == y2).mean()
    stage_acc = (stage.probabilities(p2, xy2, group=g2).argmax(1) == y2).mean()
    assert network_acc < 0.7 and stage_acc > network_acc + 0.15, (network_acc, stage_acc)
    # deterministic, and the weights' metadata gives back the same stage
    again = fit_neighbourhood_stage(p, xy, y, group=g)
    assert np.array_equal(again.weight, stage.weight)
    copy = NeighbourhoodStage.from_meta(stage.to_meta())
    assert np.allclose(copy.probabilities(p2, xy2, group=g2), stage.probabilities(p2, xy2, group=g2))


def test_bad_stage_metadata_and_labels() -> None:
    with pytest.raises(ConfigError, match="malformed neighbourhood stage"):
        NeighbourhoodStage.from_meta({"radii_um": [25.0], "mean": [0.0] * 3})
    p, xy, y, g = _tissue(0, fields=1)
    with pytest.raises(ConfigError, match="every cell type"):
        fit_neighbourhood_stage(p, xy, np.where(y == 2, -1, y), group=g)


def test_shipped_classifier_refines_with_its_stage() -> None:
    from wsikit.classify.infer import CellClassifier

    clf = CellClassifier.from_pretrained()
    assert clf.neighbourhood is not None and clf.neighbourhood.radii_um == (25.0, 50.0)
    p, xy, _, g = _tissue(2, fields=2)
    pred = clf.refine(p, xy, group=g)
    assert len(pred) == len(p) and set(pred.cell_type) <= {0, 1, 2}
    assert np.all((pred.probability > 0) & (pred.probability <= 1))
    with pytest.raises(ConfigError, match="no neighbourhood stage"):
        CellClassifier.from_pretrained("infogan-cells").refine(p, xy)


def test_network_probabilities_do_not_depend_on_thread_count() -> None:
    """The stage carries the last bits of the network's output into its own, and a Dask worker runs 1 thread
    where a single process runs 2: batches of any size must give bit-identical probabilities on both."""
    import torch

    from wsikit.classify.infer import CellClassifier

    clf = CellClassifier.from_pretrained()
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (70, 40, 40, 7), dtype=np.uint8)
    before = torch.get_num_threads()
    try:
        for n in (1, 5, 7, 11, 70):
            torch.set_num_threads(2)
            two = clf.probabilities(crops[:n], with_prior=False)
            torch.set_num_threads(1)
            one = clf.probabilities(crops[:n], with_prior=False)
            assert np.array_equal(one, two), n
    finally:
        torch.set_num_threads(before)


def test_balanced_logistic_on_other_features() -> None:
    """The stage's model on features of the caller's choosing: balanced over classes, unlabelled rows only
    standardize, and the stage is exactly this model on the neighbourhood features."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [300, 60, 40])  # unbalanced
    x = rng.normal(0, 1, (len(y), 2)) + np.array([[0, 0], [3, 0], [0, 3]])[y]
    mean, std, weight, bias = fit_balanced_logistic(x, y)
    z = ((x - mean) / std) @ weight.T + bias
    prob = np.exp(z - z.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    # class-balanced: at the optimum (the bias is not penalized) each class's probability mass, every row weighed
    # by N / (3 x its class count), is N / 3; an unweighted fit would give each class its own count instead
    balance = len(y) / (3 * np.bincount(y))
    assert np.allclose((balance[y, None] * prob).sum(0), len(y) / 3, rtol=1e-3)
    assert (prob.argmax(1) == y).mean() > 0.85
    # rows without a label change the standardization, not the fit's targets
    x_more = np.concatenate([x, rng.normal(5, 1, (50, 2))])
    y_more = np.concatenate([y, np.full(50, -1)])
    mean2, std2, *_ = fit_balanced_logistic(x_more, y_more)
    assert np.allclose(mean2, x_more.mean(0)) and not np.allclose(mean2, mean)
    with pytest.raises(ConfigError, match="every cell type"):
        fit_balanced_logistic(x, np.where(y == 1, -1, y))
    with pytest.raises(ShapeError):
        fit_balanced_logistic(x, y[:-1])
    p, xy, lab, g = _tissue(0)
    stage = fit_neighbourhood_stage(p, xy, lab, group=g)
    direct = fit_balanced_logistic(neighbourhood_features(p, xy, group=g), lab)
    assert np.array_equal(direct[2], stage.weight) and np.array_equal(direct[3], stage.bias)
