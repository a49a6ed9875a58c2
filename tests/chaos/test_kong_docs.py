"""The scheduled Chaos Kong drill example in docs/chaos.md runs as written, in a fresh process."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "chaos.md"
BLOCKS = [
    b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S) if "KongDrill(" in b
]


def test_the_kong_drill_example_passes_restores_and_rotates() -> None:
    (block,) = BLOCKS
    done = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"example failed:\n{done.stderr}"
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "kong-weekly eu"
    assert lines[1] == "['eu-a', 'eu-b']"
    assert lines[2].startswith("experiment kong-weekly passed: error_rate 0.0% vs control 0.0% (+0.0 points")
    assert lines[3] == "[('passed', 'region:eu'), ('started', 'region:eu')]"
    assert lines[4] == "['us']"
