"""Each CLI option that sets a config field has that field's default: the two cannot disagree (issue 17)."""

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
    }
}


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
