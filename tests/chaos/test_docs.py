"""The experiment and stop-condition examples in docs/chaos.md run as written, each in a fresh process."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "chaos.md"
BLOCKS = [
    b
    for b in re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    if "Experiment(" in b or "StopConditions(" in b
]


def run(block: str) -> str:
    done = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"example failed:\n{block}\n{done.stderr}"
    return done.stdout


def test_the_page_has_both_examples() -> None:
    assert len(BLOCKS) == 2


def test_the_experiment_example_passes_its_fallback() -> None:
    out = run(next(b for b in BLOCKS if "Experiment(" in b)).strip()
    assert out.startswith("experiment recs-fallback passed: error_rate 0.0% vs control 0.0%"), out


def test_the_stop_condition_example_names_the_alert() -> None:
    out = run(next(b for b in BLOCKS if "StopConditions(" in b)).strip()
    assert out == "stop condition: alert StreamStartsDrop is firing"
