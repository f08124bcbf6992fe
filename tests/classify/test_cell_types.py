"""Context crops, the labelled classifiers (supervised CNN and semi-supervised InfoGAN: short real training
runs on BRCA-M2C nuclei), their weights, evaluation metrics and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsikit.classify.crops import context_crops, stain_jitter
from wsikit.classify.infer import CellClassifier
from wsikit.classify.naming import CELL_TYPES
from wsikit.errors import ConfigError, ShapeError
from wsikit.models.registry import WeightsError


def test_context_crops_hold_nucleus_mask_and_surroundings():
    lab = np.zeros((400, 400), np.int32)
    lab[195:205, 196:204] = 4
    image = np.full((400, 400, 3), 230, np.uint8)
    image[lab > 0] = (90, 40, 130)
    image[:, :150] = (200, 120, 170)  # "stroma" 25 um to the left: outside the 20 um crop, inside 64 um
    crops, ids = context_crops(image, lab, mpp=0.5)
    assert ids.tolist() == [4] and crops.shape == (1, 40, 40, 7) and crops.dtype == np.uint8
    c = crops[0]
    assert c[20, 20, :3].tolist() == [90, 40, 130] and c[0, 0, :3].tolist() == [230, 230, 230]
    assert (
        c[20, 20, 3] == 255 and c[0, 0, 3] == 0 and 70 <= (c[..., 3] > 127).sum() <= 90
    )  # 10x8 px at crop scale
    assert c[20, 1, 4:].tolist() == [200, 120, 170] and c[20, 35, 4:].tolist() == [230, 230, 230]
    edge, _ = context_crops(image, lab, mpp=0.05)  # a 20 um field: beyond it is glass (white)
    assert (edge[0, 0, 0, 4:] == 255).all()


def test_context_crops_are_the_crops_the_weights_were_trained_on():
    """context_crops cuts its fields in one pass; each must equal the field cut alone as at training time:
    the nucleus crop, 255 - the whitened crop of a black image (the mask), the 64 um field."""
    from skimage.draw import ellipse

    from wsikit.classify.crops import CONTEXT_MPP, nucleus_crops

    rng = np.random.default_rng(0)
    lab = np.zeros((300, 300), np.int32)
    for k in range(1, 25):  # nuclei of many sizes, some cut by the image edge
        rr, cc = ellipse(
            *rng.uniform(0, 300, 2), *rng.uniform(3, 30, 2), shape=lab.shape, rotation=rng.uniform(0, 3)
        )
        lab[rr, cc] = k
    image = rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)
    for mpp in (0.5, 0.25):
        crops, ids = context_crops(image, lab, mpp=mpp)
        near, got = nucleus_crops(image, lab, mpp=mpp, whiten=False)
        blank, _ = nucleus_crops(np.zeros_like(image), lab, mpp=mpp, whiten=True)
        wide, _ = nucleus_crops(image, lab, mpp=mpp, crop_mpp=CONTEXT_MPP, whiten=False)
        assert ids.tolist() == got.tolist() and len(ids) > 15
        np.testing.assert_array_equal(crops[..., :3], near)
        np.testing.assert_array_equal(crops[..., 3], 255 - blank[..., 0])
        np.testing.assert_array_equal(crops[..., 4:], wide)


def _pil_crop(image, lab, nid, *, mpp, crop_mpp, size=40):
    """The crop as it was cut one nucleus at a time with PIL before session 12 (the weights' training crops)."""
    from PIL import Image
    from scipy import ndimage as ndi

    ys, xs = ndi.find_objects(lab)[nid - 1]
    cy, cx = (ys.start + ys.stop) / 2, (xs.start + xs.stop) / 2
    side = int(np.ceil(max(size * crop_mpp / mpp, max(ys.stop - ys.start, xs.stop - xs.start) * 1.15)))
    y0, x0 = int(round(cy - side / 2)), int(round(cx - side / 2))
    patch = np.full((side, side, 3), 255, np.uint8)
    h, w = lab.shape
    ya, yb, xa, xb = max(y0, 0), min(y0 + side, h), max(x0, 0), min(x0 + side, w)
    patch[ya - y0 : yb - y0, xa - x0 : xb - x0] = image[ya:yb, xa:xb]
    if side == size:
        return patch
    return np.asarray(Image.fromarray(patch).resize((size, size), Image.Resampling.BILINEAR))


def test_context_crops_match_the_per_crop_pil_resize_they_replace():
    """Crops are resized in batches by torch's uint8 antialiased bilinear: the same as PIL's per-crop resize
    for the 2x of the nucleus field at 0.25 um/px, at most 2 apart at other factors (nuclei larger than the
    field, the 64 um field)."""
    from skimage.draw import ellipse

    from wsikit.classify.crops import CONTEXT_MPP, CROP_MPP

    rng = np.random.default_rng(1)
    lab = np.zeros((400, 400), np.int32)
    for k in range(1, 30):
        rr, cc = ellipse(*rng.uniform(0, 400, 2), *rng.uniform(3, 50, 2), shape=lab.shape)
        lab[rr, cc] = k
    ids = np.unique(lab)[1:]
    image = rng.integers(0, 256, (400, 400, 3), dtype=np.uint8)
    crops, got = context_crops(image, lab, mpp=0.25)
    assert got.tolist() == ids.tolist()
    worst = {"near": 0, "wide": 0}
    for i, nid in enumerate(ids):
        near = _pil_crop(image, lab, nid, mpp=0.25, crop_mpp=CROP_MPP)
        wide = _pil_crop(image, lab, nid, mpp=0.25, crop_mpp=CONTEXT_MPP)
        d_near = np.abs(crops[i, ..., :3].astype(int) - near).max()
        if np.ptp(np.nonzero(lab == nid)[0]) * 1.15 < 80 and np.ptp(np.nonzero(lab == nid)[1]) * 1.15 < 80:
            assert d_near == 0  # an 80 px field resized 2x: bit-identical
        worst["near"] = max(worst["near"], d_near)
        worst["wide"] = max(worst["wide"], np.abs(crops[i, ..., 4:].astype(int) - wide).max())
    assert 0 < worst["near"] <= 2 and 0 < worst["wide"] <= 2  # the large nuclei and the wide field do differ


def test_classifier_tta_is_the_mean_over_rotations_and_flips_and_invariant_to_them():
    clf = CellClassifier.from_pretrained()
    crops = np.random.default_rng(0).integers(0, 256, (5, 40, 40, 7), dtype=np.uint8)
    views = [np.rot90(crops, k, axes=(1, 2)) for k in range(4)]
    views += [v[:, :, ::-1] for v in views]
    each = [clf.probabilities(np.ascontiguousarray(v), tta=False, with_prior=False) for v in views]
    tta = clf.probabilities(crops, tta=True, with_prior=False)
    np.testing.assert_allclose(tta, np.mean(each, axis=0), atol=1e-5)
    for v in views[1:]:
        np.testing.assert_allclose(
            clf.probabilities(np.ascontiguousarray(v), tta=True, with_prior=False), tta, atol=1e-5
        )
    assert not np.allclose(each[0], tta, atol=1e-3)  # the views do differ


def test_ensemble_of_context_cnns_is_the_mean_of_its_members_and_round_trips(tmp_path):
    """`wsikit train cell-types --members 2` in small: two CNNs (seeds 0 and 1; the first the same as a single
    CNN of seed 0), written as one ensemble whose probabilities are the mean of the members' softmaxes."""
    from wsikit.classify.supervised import SupervisedTrainConfig, train_context_cnn, train_context_cnns
    from wsikit.models.infogan import CriticEnsemble
    from wsikit.pipeline.train_cell_types import train_cell_type_classifier

    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (60, 40, 40, 7), dtype=np.uint8)
    label = np.arange(60) % 3
    crops[label == 1, :, :, :3] //= 3  # something to learn
    cfg = SupervisedTrainConfig(steps=4, batch_size=12, width=8)
    net, states = train_context_cnns(crops, label, cfg, members=2)
    assert isinstance(net, CriticEnsemble) and len(states) == 2
    single = train_context_cnn(crops, label, cfg).model
    member0 = net.members[0].state_dict()
    assert all(torch.equal(member0[k], v) for k, v in single.state_dict().items())  # seed 0 is seed 0

    def softmax(model: torch.nn.Module) -> np.ndarray:
        clf = CellClassifier(
            model,
            cluster_names=list(CELL_TYPES),
            meta={"input": "context"},
            prior="uniform",
            precision="fp32",
        )  # float32: an exact identity (bf16 rounds the members' logits and the ensemble's differently)
        return clf.probabilities(crops)

    mean = (softmax(states[0].model) + softmax(states[1].model)) / 2
    np.testing.assert_allclose(softmax(net), mean, atol=1e-6)
    # through the training job and the weights file (fp16 on disk)
    data = {"crops": crops, "label": label, "unlabelled": crops[:0]}
    path, summary = train_cell_type_classifier(data, tmp_path / "ens.pt", model="cnn", steps=4, members=2)
    loaded = CellClassifier.from_weights(path, input="context")
    assert isinstance(loaded.critic, CriticEnsemble) and len(loaded.critic.members) == 2
    assert loaded.meta["arch"] == "context-cnn-ensemble-v1" and "ensemble of 2" in loaded.meta["method"]
    assert loaded.probabilities(crops).shape == (60, 3)
    with pytest.raises(ConfigError, match="members .* applies to the cnn model"):
        train_cell_type_classifier(data, tmp_path / "x.pt", model="infogan", steps=1, members=2)
    with pytest.raises(ConfigError, match="members must be a positive integer"):
        train_context_cnns(crops, label, cfg, members=0)


def test_stain_jitter_moves_colour_not_the_mask():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 7, 8, 8, generator=g) * 2 - 1
    y = stain_jitter(x, g)
    assert torch.equal(y[:, 3], x[:, 3]) and not torch.equal(y[:, :3], x[:, :3])
    assert y.min() >= -1 and y.max() <= 1
    with pytest.raises(ShapeError):
        stain_jitter(torch.zeros(2, 4, 8, 8), g)


def test_scale_jitter_zooms_every_channel_about_the_centre():
    """A centred 10 x 10 square (mask and colour alike) grows or shrinks by the drawn factor squared in area,
    stays centred, and within the drawn range; p = 0 leaves the crops as they are."""
    from wsikit.classify.crops import scale_jitter

    x = -torch.ones(64, 7, 40, 40)
    x[:, :, 15:25, 15:25] = 1
    y = scale_jitter(x, torch.Generator().manual_seed(0), max_scale=0.2, p=1.0)
    area = ((y[:, 3] + 1) / 2).sum((1, 2))  # the mask's area, bilinear edges counted by weight
    assert torch.allclose(area, ((y[:, 0] + 1) / 2).sum((1, 2)), atol=1e-4)  # every channel zooms alike
    assert area.min() >= 100 / 1.2**2 - 3 and area.max() <= 100 * 1.2**2 + 3
    assert area.min() < 85 and area.max() > 115  # both ways
    mass = (y[:, 3] + 1) / 2
    cy = (mass.sum(2) * torch.arange(40)).sum(1) / mass.sum((1, 2))
    assert torch.allclose(cy, torch.full_like(cy, 19.5), atol=0.05)
    assert torch.equal(scale_jitter(x, torch.Generator().manual_seed(0), p=0.0), x)
    with pytest.raises(ShapeError):
        scale_jitter(torch.zeros(7, 40, 40), torch.Generator())


@pytest.fixture(scope="module")
def brca_nuclei(data_dir):
    """Labelled context crops of 3 BRCA-M2C val images (segmented on the raw path, for speed)."""
    from wsikit.datasets import load_brca_m2c
    from wsikit.pipeline.labelled_nuclei import NucleusMatcher

    samples = load_brca_m2c(data_dir, "val")[:3]
    fields = [(s.name, s.image, s.mpp, None, list(zip(s.x, s.y, s.label, strict=True))) for s in samples]
    return NucleusMatcher(stain="none", unlabelled=True).match(fields)


@pytest.mark.slow
def test_matcher_counts_points_per_class_and_detection(brca_nuclei):
    d = brca_nuclei
    assert d.context is not None and d.context.shape == (len(d.truth), 40, 40, 7)
    assert d.unlabelled is not None and d.unlabelled.shape[1:] == (40, 40, 7)
    assert d.points == d.points_per_class.sum() and (d.matched_per_class <= d.points_per_class).all()
    assert d.unmatched == d.points - d.matched_per_class.sum()
    assert len(d.truth) == d.matched_per_class.sum() - d.duplicates
    recall = d.detection_recall()
    assert set(recall) == set(CELL_TYPES) and all(0.7 < v <= 1 for v in recall.values() if v is not None)


@pytest.mark.slow
def test_supervised_cnn_learns_from_labels_and_round_trips(brca_nuclei, tmp_path):
    from wsikit.pipeline.train_cell_types import train_cell_type_classifier

    d = brca_nuclei
    crops = {"crops": d.context, "label": d.truth, "unlabelled": d.unlabelled}
    path, summary = train_cell_type_classifier(
        crops, tmp_path / "cnn.pt", model="cnn", steps=60, members=1, command="test"
    )
    assert summary["steps"] == 60 and np.isfinite(summary["loss_last"])
    clf = CellClassifier.from_weights(path, input="context")
    assert clf.supervised and not clf.whiten and clf.cluster_names == list(CELL_TYPES)
    pred = clf.predict(d.context)
    # 60 steps on these nuclei: well above the majority class on the nuclei it trained on (a smoke floor)
    majority = np.bincount(d.truth).max() / len(d.truth)
    assert (pred.cell_type == d.truth).mean() > majority
    assert ((pred.probability > 1 / 3 - 1e-9) & (pred.probability <= 1)).all()
    again = CellClassifier.from_weights(path).predict(d.context)
    np.testing.assert_array_equal(again.probability, pred.probability)  # deterministic
    with pytest.raises(ShapeError, match=r"crops must be \(N, 40, 40, 7\)"):
        clf.predict(d.crops)


@pytest.mark.slow
def test_semi_supervised_infogan_smoke_and_wrong_kind_of_weights(brca_nuclei, tmp_path):
    from wsikit.classify.train import ClassifierTrainConfig, train_classifier
    from wsikit.pipeline.train_cell_types import train_cell_type_classifier

    d = brca_nuclei
    pool = np.concatenate([d.unlabelled, d.context])
    cfg = ClassifierTrainConfig(steps=3, batch_size=12, n_critic=2, width=8, channels=7, label_weight=1.0)
    state = train_classifier(pool, cfg, labelled=(d.context, d.truth))
    assert all(np.isfinite(r["label_ce"]) and np.isfinite(r["wasserstein"]) for r in state.history)
    with pytest.raises(ConfigError, match="label_weight > 0 needs labelled crops"):
        train_classifier(pool, cfg)
    with pytest.raises(ConfigError, match=r"labels must lie in 0..2"):
        train_classifier(pool, cfg, labelled=(d.context, d.truth + 5))
    crops = {"crops": d.context, "label": d.truth, "unlabelled": pool}
    path, summary = train_cell_type_classifier(crops, tmp_path / "gan.pt", model="infogan", steps=2)
    assert np.isfinite(summary["label_ce_last"]) and not (tmp_path / "gan.pt.ckpt").exists()
    gan = CellClassifier.from_weights(path, input="context")
    assert gan.meta["method"] == "semi-supervised InfoGAN" and len(gan.predict(d.context[:5])) == 5
    # the paper's unsupervised weights are not a labelled classifier, and the other way round
    old = CellClassifier.from_pretrained("infogan-cells").meta["weights"]
    with pytest.raises(WeightsError, match=r"infogan-cells.pt: weights are the unsupervised InfoGAN"):
        CellClassifier.from_weights(old, input="context")
    with pytest.raises(WeightsError, match="weights are a labelled context classifier"):
        CellClassifier.from_weights(path, input="nucleus")


def test_shipped_default_is_a_context_classifier_and_the_paper_model_stays():
    from wsikit.classify.infer import DEFAULT_CLASSIFIER

    clf = CellClassifier.from_pretrained()
    assert clf.input == "context" and clf.meta["weights"].endswith(f"{DEFAULT_CLASSIFIER}.pt")
    assert "command" in clf.meta and clf.meta["seconds"] > 0  # how it was trained, recorded with it
    paper = CellClassifier.from_pretrained("infogan-cells")
    assert paper.whiten and paper.n_clusters == 8 and not paper.supervised
    assert CellClassifier.from_pretrained("cells").meta["weights"] == paper.meta["weights"]


@pytest.mark.slow
def test_eval_classifier_scores_every_method_on_brca_points(data_dir, tmp_path, capsys):
    """`wsikit eval classifier` on 3 BRCA-M2C val images (points only, 0.5 um/px from the manifest)."""
    import json
    import shutil

    from wsikit.cli.main import run
    from wsikit.pipeline.eval_classifier import export_classification_dataset

    export_classification_dataset("brca_m2c", data_dir, tmp_path / "val", split="val")
    sub = tmp_path / "sub"
    sub.mkdir()
    shutil.copy(tmp_path / "val" / "manifest.json", sub)
    for png in sorted((tmp_path / "val").glob("*.png"))[:3]:
        shutil.copy(png, sub)
        shutil.copy(png.with_name(png.stem + ".points.csv"), sub)
    args = ["eval", "classifier", str(sub), "--json"]
    assert run([*args, "--method", "classifier", "--method", "infogan", "--method", "kmeans-morphology"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["mpp"] == 0.5 and res["segmentation"] == "stain=cnn"
    assert sum(res["points_per_class"].values()) == res["points"]
    assert all(0.7 < v <= 1 for v in res["detection_recall"].values())
    by = {r["method"]: r for r in res["results"]}
    for r in by.values():
        s = r["scores"]
        assert {"accuracy", "balanced_accuracy", "macro_f1", "precision", "sensitivity", "f1"} <= set(s)
        assert np.array(s["confusion"]).shape == (3, 3) and np.sum(s["confusion"]) == res["nuclei"]
    assert "hungarian" in by["infogan"] and "hungarian" not in by["classifier"]
    # these val patients chose the default's configuration and train its refit: a regression floor, not a result
    assert by["classifier"]["scores"]["accuracy"] > by["kmeans-morphology"]["scores"]["accuracy"] + 0.05
    assert by["classifier"]["scores"]["macro_f1"] > 0.6
    # another segmenter's weights (here the shipped one's file, named): the same nuclei, the same scores
    from wsikit.models.registry import weights_path

    unet = weights_path("unet-nuclei-cnn")
    assert run([*args, "--method", "classifier", "--segmenter-weights", str(unet)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["segmentation"] == "stain=cnn, segmenter=unet-nuclei-cnn.pt"
    assert again["results"][0]["scores"] == by["classifier"]["scores"]
    # the paper's weights given where the labelled classifier is expected: one line, exit 1
    old = CellClassifier.from_pretrained("infogan-cells").meta["weights"]
    assert run([*args, "--method", "classifier", "--weights", old]) == 1
    err = capsys.readouterr().err.strip()
    assert "infogan-cells.pt: weights are the unsupervised InfoGAN" in err and err.count("\n") == 0


@pytest.mark.slow
def test_train_neighbourhood_fits_the_stage_on_out_of_fold_predictions(data_dir, tmp_path, capsys):
    """`wsikit train neighbourhood` (a short real run: 6 BRCA-M2C fields, 2 patient folds, 3 steps per fold
    CNN): the weights gain a stage, keep the network's tensors, record command and seconds, and refine."""
    from wsikit.cli.main import run
    from wsikit.models.registry import load_checkpoint, weights_path

    src = weights_path("cells-context-cnn")
    out = tmp_path / "with-stage.pt"
    args = ["-q", "train", "neighbourhood", "--data", str(data_dir), "--weights", str(src), "--out", str(out)]
    assert run([*args, "--folds", "2", "--steps", "3", "--max-images", "6"]) == 0
    archs = ("context-cnn-v1", "context-cnn-ensemble-v1")
    a, b = load_checkpoint(src, arch=archs), load_checkpoint(out, arch=archs)
    assert a["arch"] == b["arch"] and a["config"] == b["config"]
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    stage = b["meta"]["neighbourhood"]
    assert "train neighbourhood" in stage["command"] and stage["seconds"] > 0
    assert stage["weight"] != a["meta"]["neighbourhood"]["weight"]
    clf = CellClassifier.load(out)
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3), 50)
    refined = clf.refine(p, rng.uniform(0, 200, (50, 2)))
    assert refined.cell_type.shape == (50,)
    capsys.readouterr()
    # bad input: more folds than patients; weights that are not a context CNN; one line each, no file
    assert run([*args[:-1], str(tmp_path / "x.pt"), "--folds", "9", "--steps", "3", "--max-images", "2"]) == 1
    assert "folds need at least" in capsys.readouterr().err and not (tmp_path / "x.pt").exists()
    paper = weights_path("infogan-cells")
    bad = [
        "-q",
        "train",
        "neighbourhood",
        "--data",
        str(data_dir),
        "--weights",
        str(paper),
        "--out",
        str(tmp_path / "y.pt"),
    ]
    assert run([*bad, "--folds", "2", "--steps", "3", "--max-images", "6"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "infogan-cells" in err[0] and not (tmp_path / "y.pt").exists()
