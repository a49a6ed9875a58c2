"""Every Python example in docs/guard.md runs as written (each in a fresh process)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "guard.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_guide_has_examples() -> None:
    assert len(BLOCKS) >= 10


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_example_runs(index: int) -> None:
    done = subprocess.run([sys.executable, "-c", BLOCKS[index]], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, f"example {index} failed:\n{BLOCKS[index]}\n{done.stderr}"
    assert done.stdout.strip(), "every example prints what it shows"


def test_the_readme_quick_start_runs() -> None:
    readme = DOC.parents[1] / "README.md"
    block = re.findall(r"```python\n(.*?)```", readme.read_text(encoding="utf-8"), re.S)[0]
    done = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("'stale'") == 5


def test_the_http_quick_start_falls_back_and_honours_retry_after() -> None:
    """The FastAPI + httpx quick start, with its real uvicorn servers: the 503's Retry-After is
    waited once, then the fallback answers; after configure() it answers without waiting; the
    review gate catches a raw httpx.get and nothing the guarded client does."""
    block = next(b for b in BLOCKS if "AsyncGuardedTransport" in b and "FastAPI" in b)
    done = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    first, retried, after, reviewed = done.stdout.strip().splitlines()
    assert "'stars': 3.5, 'answered_by': 'average'" in first
    assert "answered <Response [503 Service Unavailable]>, counted as a failure" in first
    assert retried == "2"
    assert after == "average 3"
    assert reviewed == "True", "the review gate caught the raw httpx.get and only it"
