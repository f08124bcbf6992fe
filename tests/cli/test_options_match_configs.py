"""Each CLI option that sets a config field has that field's default, and each config field has an option or is
listed as left to the Python API: the two cannot disagree or drift apart (issue 17)."""

from __future__ import annotations

import dataclasses

import click
import pytest

from wsikit.classify.supervised import SupervisedTrainConfig
from wsikit.classify.train import ClassifierTrainConfig
from wsikit.cli.main import cli
from wsikit.pipeline.run import RunConfig
from wsikit.segment.train import SegmenterTrainConfig
from wsikit.stain.train import ColorizerTrainConfig

COMMANDS = {
    ("run",): RunConfig,
    ("train", "normalizer"): ColorizerTrainConfig,
    ("train", "segmenter"): SegmenterTrainConfig,
    ("train", "classifier"): ClassifierTrainConfig,
    ("train", "cell-types"): SupervisedTrainConfig,
}
# options whose CLI form differs from the field on purpose: (option name) -> (field, CLI value -> field value)
CONVERTED = {
    ("run",): {
        "device": ("device", lambda v: "cpu" if v == "auto" else v),  # auto resolves to cpu without a GPU
        "max_damaged": ("max_damaged", lambda v: v / 100.0),  # percent on the command line
        "mpp": ("slide_mpp", lambda v: v),
        "min_nucleus_area": ("min_nucleus_um2", lambda v: v),
        "max_nucleus_area": ("max_nucleus_um2", lambda v: v),
        "chroma_downsample": ("chroma_downsample", int),  # a click Choice of strings
    },
    ("train", "classifier"): {"classes": ("n_classes", lambda v: v)},
}
# config fields deliberately left to the Python API (no command-line option): a new field must get an option
# or be listed here
LIBRARY_ONLY = {
    ("run",): {"min_tissue", "normalizer_weights"},
    ("train", "normalizer"): {"checkpoint_every", "eps", "lr", "rho"},
    ("train", "segmenter"): {"boundary_weight", "checkpoint_every", "crop", "eval_every", "touch_sigma", "val_fraction"},
    ("train", "classifier"): {
        "channels", "checkpoint_every", "gp_weight", "info_weight", "jitter", "label_weight", "lr_d", "lr_g",
        "lr_q", "noise_dim", "width",
    },
    # scanner is --scanner-jitter, whose default depends on --model (cnn: on)
    # scale (scale jitter, session 15) did not pass its val rule and stays in the Python API, as width does
    ("train", "cell-types"): {"balanced", "batch_size", "jitter", "lr", "scale", "scanner", "weight_decay", "width"},
}  # fmt: skip


@pytest.mark.parametrize("path", list(COMMANDS), ids=" ".join)
def test_cli_defaults_are_the_config_defaults(path: tuple[str, ...]) -> None:
    cmd: click.Command = cli
    for name in path:
        cmd = cmd.commands[name]  # type: ignore[attr-defined]
    fields = {
        f.name: f.default for f in dataclasses.fields(COMMANDS[path]) if f.default is not dataclasses.MISSING
    }
    checked = 0
    for param in cmd.params:
        if not isinstance(param, click.Option) or param.name is None:
            continue
        default = param.default
        if param.is_flag and not isinstance(default, bool):  # click's "unset" sentinel: a flag left off
            default = False
        field, convert = CONVERTED.get(path, {}).get(param.name, (param.name, lambda v: v))
        if field in fields:
            assert convert(default) == fields[field], (
                f"{' '.join(path)} --{param.name}: {default} vs {fields[field]}"
            )
            checked += 1
    assert checked >= 2


@pytest.mark.parametrize("path", list(COMMANDS), ids=" ".join)
def test_every_config_field_has_an_option_or_is_library_only(path: tuple[str, ...]) -> None:
    cmd: click.Command = cli
    for name in path:
        cmd = cmd.commands[name]  # type: ignore[attr-defined]
    converted = CONVERTED.get(path, {})
    options = {converted.get(p.name, (p.name,))[0] for p in cmd.params if isinstance(p, click.Option)}
    fields = {f.name for f in dataclasses.fields(COMMANDS[path])}
    assert fields - options == LIBRARY_ONLY[path], f"{' '.join(path)}: fields without an option"
