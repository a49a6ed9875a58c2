"""Every self-contained Python example in docs/signals.md (one that imports what it uses) runs as
written, each in a fresh process; the detector's example finds its outage."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "signals.md"
BLOCKS = [
    b
    for b in re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    if re.match(r"(import|from) ", b)
]


def test_the_page_has_examples() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_example_runs(index: int) -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCKS[index]], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"example {index} failed:\n{BLOCKS[index]}\n{done.stderr}"


def test_the_detector_example_finds_the_outage_and_nothing_else() -> None:
    block = next(b for b in BLOCKS if "Detector(" in b)
    done = subprocess.run(
        [sys.executable, "-c", block], capture_output=True, text=True, timeout=120, check=True
    )
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("point 1828: ") and " down from " in lines[0], lines


def test_the_noise_control_example_shows_one_alert_for_two_rules() -> None:
    block = next(b for b in BLOCKS if "Grouping(group_wait" in b)
    done = subprocess.run(
        [sys.executable, "-c", block], capture_output=True, text=True, timeout=120, check=True
    )
    first, second = done.stdout.splitlines()
    assert first == "1 critical"
    assert second.startswith("Burn rates: 1h/5m: ") and "; 6h/30m: " in second
