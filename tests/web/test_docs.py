"""Every Python example in docs/web.md runs as written (each in a fresh process)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "web.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_page_has_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_example_runs(index: int, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCKS[index]], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, f"example {index} failed:\n{BLOCKS[index]}\n{done.stderr}"
    assert done.stdout.strip(), "every example prints what it shows"


def test_the_merge_example_prints_what_its_comment_says() -> None:
    block = next(b for b in BLOCKS if "merge_hystrix" in b)
    done = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["2", "40", "25"]


def test_every_flag_of_stoic_web_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "stoic", "web", "--help"], capture_output=True, text=True, timeout=60
    )
    flags = set(re.findall(r"(--[a-z][a-z-]+)", done.stdout)) - {"--help"}
    assert flags, done.stdout
    assert {f for f in flags if f"`{f}" not in text} == set()
