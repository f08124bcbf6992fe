"""Library errors name Python parameters; the CLI prints them as its flags (issue 17)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsikit.cli.main import as_flags, run
from wsikit.errors import ConfigError
from wsikit.pipeline.run import run_slide


def test_parameters_become_flags() -> None:
    assert as_flags("x: give `mpp`") == "x: give --mpp"
    assert as_flags("use `overwrite`; `save_normalized` needs `stain`") == (
        "use --overwrite; --save-normalized needs --stain"
    )
    # a backticked command line or a name that is no option stays as it is
    assert as_flags("make one with `wsikit train crops --context`, not `nothing_here`") == (
        "make one with `wsikit train crops --context`, not `nothing_here`"
    )


def test_slide_without_mpp(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same error: a Python parameter for the library user, the flag for the CLI user."""
    image = tmp_path / "plain.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(image)
    with pytest.raises(ConfigError, match="give `mpp`"):
        run_slide(image, out=tmp_path / "a.wsikit")
    assert run(["-q", "run", str(image), "--out", str(tmp_path / "b.wsikit")]) == 1
    err = capsys.readouterr().err
    assert "give --mpp" in err and "`" not in err and err.count("\n") == 1
