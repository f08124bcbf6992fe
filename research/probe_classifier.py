"""How separable are the three labelled cell types at all? A supervised ceiling for the classifier benchmark.

The unsupervised methods of `wsikit eval classifier` never see labels. This script does: it trains
supervised classifiers on the same labelled nuclei (benchmarks/_work/classes_all, made by
bench_classifier.py) with stratified k-fold cross-validation, fixed seeds, each with a class-balanced and a
plain cross-entropy. The folds are **not** grouped by image: nuclei of one field can be in the training and
the test fold, so stain, scanner and neighbourhood leak and the figures are optimistic - an upper estimate of
what each input allows, not a method. (Grouping by image is not meaningful here: 13 fields, one MoNuSAC field
holds 314 of the 359 epithelial nuclei, and only NuCLS has fibroblasts.)

Inputs probed:
- ``morphology``: the 13 measurements of the morphology k-means baseline, softmax regression (L2);
- ``crops (whitened)``: the InfoGAN's input, 40x40 crops at 0.5 um/px with the background whitened, small CNN;
- ``crops (context)``: the same crops with the surrounding tissue kept, small CNN.

Usage::

    python research/probe_classifier.py [--folds 5] [--json research/results_probe_classifier.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent


def stratified_folds(truth: npt.NDArray[np.int64], k: int, seed: int) -> npt.NDArray[np.int64]:
    """Fold index per nucleus: each class shuffled and dealt round-robin over the folds."""
    rng = np.random.default_rng(seed)
    folds = np.empty(len(truth), np.int64)
    for c in np.unique(truth):
        idx = rng.permutation(np.flatnonzero(truth == c))
        folds[idx] = np.arange(len(idx)) % k
    return folds


BALANCED = True


def _weights(y: torch.Tensor) -> torch.Tensor | None:
    if not BALANCED:
        return None
    n = torch.bincount(y, minlength=3).float().clamp_min(1)
    return n.sum() / (3 * n)


def softmax_regression(
    xtr: npt.NDArray[np.float64], ytr: npt.NDArray[np.int64], xte: npt.NDArray[np.float64]
) -> npt.NDArray[np.int64]:
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-9
    a = torch.from_numpy((xtr - mu) / sd).float()
    b = torch.from_numpy((xte - mu) / sd).float()
    y = torch.from_numpy(ytr)
    lin = nn.Linear(a.shape[1], 3)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=500, line_search_fn="strong_wolfe")
    w = _weights(y)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(lin(a), y, weight=w) + 1e-2 * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        out: npt.NDArray[np.int64] = lin(b).argmax(1).numpy()
    return out


def small_cnn(
    xtr: npt.NDArray[np.uint8],
    ytr: npt.NDArray[np.int64],
    xte: npt.NDArray[np.uint8],
    seed: int,
    epochs: int = 40,
) -> npt.NDArray[np.int64]:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)

    def t(x: npt.NDArray[np.uint8]) -> torch.Tensor:
        return torch.from_numpy(x).permute(0, 3, 1, 2).float().div(127.5).sub(1)

    a, b, y = t(xtr), t(xte), torch.from_numpy(ytr)

    def block(cin: int, cout: int, pool: bool = True) -> list[nn.Module]:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]
        return layers + [nn.MaxPool2d(2)] if pool else layers

    net = nn.Sequential(
        *block(3, 32),
        *block(32, 64),
        *block(64, 128),
        *block(128, 128, pool=False),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(128, 3),
    )
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-3)
    w = _weights(y)
    steps = epochs * max(1, len(a) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(a), (64,), generator=g)
        x = a[idx]
        k = int(torch.randint(0, 4, (1,), generator=g))
        x = torch.rot90(x, k, dims=(2, 3))
        if torch.rand(1, generator=g) < 0.5:
            x = x.flip(3)
        loss = F.cross_entropy(net(x), y[idx], weight=w)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    with torch.no_grad():
        logits = sum(net(torch.rot90(b, k, dims=(2, 3))) for k in range(4))
    out: npt.NDArray[np.int64] = logits.argmax(1).numpy()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=HERE.parent / "benchmarks" / "_work" / "classes_all")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    global BALANCED
    from wsikit.classify.metrics import classification_report
    from wsikit.classify.naming import CELL_TYPES
    from wsikit.pipeline.eval_classifier import load_labelled_nuclei

    torch.set_num_threads(max(1, torch.get_num_threads()))
    whitened = load_labelled_nuclei(args.folder, context=True)
    assert whitened.context_crops is not None
    context_crops = whitened.context_crops
    truth = whitened.truth
    folds = stratified_folds(truth, args.folds, args.seed)
    print(f"{len(truth)} nuclei {np.bincount(truth, minlength=3).tolist()}, {args.folds} stratified folds")
    for f in range(args.folds):
        print(f"  fold {f}: {np.bincount(truth[folds == f], minlength=3).tolist()}")
    inputs = {
        "morphology (softmax regression)": lambda tr, te: softmax_regression(
            whitened.morphology[tr], truth[tr], whitened.morphology[te]
        ),
        "crops whitened (small CNN)": lambda tr, te: small_cnn(
            whitened.crops[tr], truth[tr], whitened.crops[te], args.seed
        ),
        "crops with context (small CNN)": lambda tr, te: small_cnn(
            context_crops[tr], truth[tr], context_crops[te], args.seed
        ),
    }
    results = []
    for balanced in (True, False):
        BALANCED = balanced
        loss = "class-balanced" if balanced else "plain"
        for name, fit_predict in inputs.items():
            t0 = time.perf_counter()
            pred = np.empty_like(truth)
            for f in range(args.folds):
                te = folds == f
                pred[te] = fit_predict(~te, te)
            rep = classification_report(truth, pred, CELL_TYPES).to_dict()
            results.append(
                {"input": name, "loss": loss, **rep, "seconds": round(time.perf_counter() - t0, 1)}
            )
            f1 = " / ".join(f"{v:.2f}" for v in rep["f1"].values())
            print(f"  {name:<32} {loss:<15} accuracy {rep['accuracy']:.3f}  F1 {f1}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "folder": args.folder.name,
                    "folds": args.folds,
                    "folds_kind": "stratified, not grouped by image (optimistic)",
                    "results": results,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
