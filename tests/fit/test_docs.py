"""Every Python example in docs/fit.md runs as written (each in a fresh process) and prints what it shows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "fit.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_guide_has_examples() -> None:
    assert len(BLOCKS) >= 10


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_example_runs(index: int) -> None:
    done = subprocess.run([sys.executable, "-W", "error::Warning:__main__", "-c", BLOCKS[index]],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"example {index} failed:\n{BLOCKS[index]}\n{done.stderr}"
    assert done.stdout.strip(), "every example prints what it shows"
