"""CLI of the stain-normalization issue: normalize, train normalizer, eval normalizer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsikit.cli.main import run
from wsikit.io.omezarr import IMAGE, OmeZarrStore


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def target(data_dir: Path) -> Path:
    return data_dir / "stain" / "tiatoolbox" / "target_image.png"


def test_normalize_image_each_method(
    sample_slide: Path, target: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    src = data_dir / "nucls" / "images" / "train_3.png"
    for method in ("macenko", "reinhard", "cnn"):
        out = tmp_path / f"{method}.png"
        extra = ["--target", str(target)] if method != "cnn" else []
        code, text, err = _run(
            ["-q", "normalize", str(src), "--out", str(out), "--method", method, *extra], capsys
        )
        assert code == 0, err
        img = np.asarray(Image.open(out))
        assert img.shape == (260, 288, 3)


def test_normalize_slide_to_omezarr(
    sample_slide: Path, target: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "norm.zarr"
    code, text, _ = _run(
        ["normalize", str(sample_slide), "--out", str(out), "--method", "macenko", "--target", str(target)],
        capsys,
    )
    assert code == 0 and f"wrote {out}" in text
    store = OmeZarrStore.open(out)
    assert (store.width, store.height) == (2220, 2967) and store.mpp == (0.499, 0.499) and store.levels == 3
    region = store.read_region(IMAGE, x=1000, y=1500, width=200, height=200)
    assert region.shape == (3, 200, 200) and region.std() > 5  # tissue was written
    # slide-level statistics: the same pixels come out whether read through one chunk or another
    code, _, err = _run(
        ["normalize", str(sample_slide), "--out", str(out), "--method", "macenko", "--target", str(target)],
        capsys,
    )
    assert code == 1 and "already exists" in err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--method", "macenko"], "needs a target image"),
        (["--method", "cnn", "--weights", "/no/such/weights.pt"], "no such weights file"),
        (["--method", "reinhard", "--target", "/no/such/target.png"], "no such file"),
    ],
)
def test_normalize_errors(
    args: list[str], words: str, sample_slide: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.png"
    code, _, err = _run(["normalize", str(sample_slide), "--out", str(out), *args], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1 and words in err
    assert not out.exists()


def test_normalize_with_weights_of_another_architecture(
    sample_slide: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wsikit.models.registry import save_checkpoint

    weights = tmp_path / "unet.pt"
    save_checkpoint(weights, arch="unet-v1", config={}, state={})
    code, _, err = _run(
        ["normalize", str(sample_slide), "--out", str(tmp_path / "o.png"), "--weights", str(weights)], capsys
    )
    assert code == 1 and "architecture 'unet-v1'" in err


def test_train_normalizer_smoke(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "style.pt"
    nucls = data_dir / "nucls" / "images"
    code, text, err = _run(
        [
            "train",
            "normalizer",
            "--style",
            str(nucls / "train_1.png"),
            "--style",
            str(nucls / "train_2.png"),
            "--out",
            str(out),
            "--steps",
            "4",
            "--batch-size",
            "4",
            "--crop",
            "64",
            "--width",
            "4",
            "--name",
            "smoke",
        ],
        capsys,
    )
    assert code == 0, err
    assert "wrote" in text and out.exists() and not Path(str(out) + ".ckpt").exists()
    from wsikit.stain.cnn import CnnNormalizer

    norm = CnnNormalizer.from_weights(out)
    assert norm.meta["style"] == "smoke" and norm.meta["classes"] == 2
    assert norm.meta["command"].startswith("wsikit train normalizer")


def test_train_normalizer_bad_pool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _run(
        ["train", "normalizer", "--style", str(empty), "--out", str(tmp_path / "w.pt")], capsys
    )
    assert code == 1 and "no images in this folder" in err


def test_eval_normalizer_json(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, tgt = tmp_path / "src", tmp_path / "tgt"
    src.mkdir()
    tgt.mkdir()
    img = np.asarray(Image.open(data_dir / "monuseg" / "test" / "TCGA-2Z-A9J9-01A-01-TS1.tif").convert("RGB"))
    Image.fromarray(img[:256, :256]).save(src / "a.png")
    for i in (9, 10):
        Image.open(data_dir / "nucls" / "images" / f"train_{i}.png").save(tgt / f"t{i}.png")
    code, text, err = _run(
        [
            "eval",
            "normalizer",
            "--source",
            str(src),
            "--target",
            str(tgt),
            "--json",
            "--method",
            "none",
            "--method",
            "macenko",
            "--method",
            "cnn",
            "--method",
            "tiatoolbox-vahadane",
        ],
        capsys,
    )
    assert code == 0, err
    data = json.loads(text)
    rows = {r["method"]: r for r in data["results"]}
    assert rows["none"]["ssim_luminance"] == pytest.approx(1.0)
    assert rows["cnn"]["ssim_luminance"] > 0.99
    assert rows["macenko"]["megapixels_per_s"] > 0
    assert rows["tiatoolbox-vahadane"]["skipped"] is not None or "hellinger" in rows["tiatoolbox-vahadane"]
    code, text, _ = _run(
        ["eval", "normalizer", "--source", str(src), "--target", str(tgt), "--method", "reinhard"], capsys
    )
    assert code == 0 and "Reinhard" in text and "Hellinger" in text


def test_min_ssim_sets_the_structure_bound(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--min-ssim reaches the bounded CNN through `eval normalizer` and `normalize`: a looser bound lets the
    lightness move further (lower SSIM, still above the bound), a tighter one keeps it closer."""
    from skimage.metrics import structural_similarity

    from wsikit.stain.color import rgb_to_lab

    src, tgt = tmp_path / "src", tmp_path / "tgt"
    src.mkdir()
    tgt.mkdir()
    img = np.asarray(Image.open(data_dir / "monuseg" / "test" / "TCGA-2Z-A9J9-01A-01-TS1.tif").convert("RGB"))
    Image.fromarray(img[:256, :256]).save(src / "a.png")
    Image.open(data_dir / "nucls" / "images" / "train_9.png").save(tgt / "t.png")
    ssim = {}
    for bound in ("0.99", "0.95"):
        code, text, err = _run(
            ["eval", "normalizer", "--source", str(src), "--target", str(tgt), "--json"]
            + ["--method", "cnn-bounded", "--min-ssim", bound],
            capsys,
        )
        assert code == 0, err
        data = json.loads(text)
        assert data["min_ssim"] == float(bound)
        ssim[bound] = data["results"][0]["ssim_luminance"]
        assert ssim[bound] >= float(bound)
    assert ssim["0.95"] < 0.985 < ssim["0.99"]

    def light(p: Path) -> np.ndarray:
        import torch

        rgb = torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1)[None].float()
        return rgb_to_lab(rgb)[0, 0].numpy()

    out = tmp_path / "loose.png"
    code, _, err = _run(
        [
            "-q",
            "normalize",
            str(src / "a.png"),
            "--out",
            str(out),
            "--lightness",
            "bounded",
            "--min-ssim",
            "0.95",
        ],
        capsys,
    )
    assert code == 0, err
    s = structural_similarity(light(out), light(src / "a.png"), data_range=100.0)
    assert 0.95 <= s < 0.985
    code, _, err = _run(
        ["normalize", str(src / "a.png"), "--out", str(tmp_path / "x.png"), "--min-ssim", "2"], capsys
    )
    assert code != 0 and "min-ssim" in err


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["normalize", "IMG", "--method", "macenko", "--target", "IMG", "--min-ssim", "0.9"], "--min-ssim"),
        (["normalize", "IMG", "--lightness", "match", "--min-ssim", "0.9"], "--min-ssim"),
        (
            ["normalize", "IMG", "--method", "reinhard", "--target", "IMG", "--lightness", "bounded"],
            "--lightness",
        ),
        (
            [
                "eval",
                "normalizer",
                "--source",
                "DIR",
                "--target",
                "DIR",
                "--method",
                "macenko",
                "--min-ssim",
                "0.9",
            ],
            "--min-ssim",
        ),
    ],
)
def test_options_the_method_would_ignore_are_refused(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], flag: str
) -> None:
    """An option typed for another method is refused (one line naming it, exit 2, nothing written), not
    silently ignored."""
    img = data_dir / "nucls" / "images" / "train_9.png"
    out = tmp_path / "out.png"
    args = [str(img) if a == "IMG" else str(img.parent) if a == "DIR" else a for a in args]
    if args[0] == "normalize":
        args += ["--out", str(out)]
    code, _, err = _run(args, capsys)
    assert code == 2
    assert flag in err and "no effect" in err
    assert not out.exists()
