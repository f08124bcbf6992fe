"""docs/api.md's example runs as written (the notebook API stays what the page says)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


@pytest.mark.slow
def test_api_page_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1
    exec(compile(blocks[0], str(DOC), "exec"), {"__name__": "api_doc"})  # noqa: S102 - our own page
    out = capsys.readouterr().out
    assert "nuclei in the field" in out and "lymphocytes" in out and "epithelial" in out
