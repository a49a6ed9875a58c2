"""Every Python example in docs/cache.md runs as written (each in a fresh process) and prints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "cache.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
# What some examples must print: (a text that picks the example, lines its output must hold).
SHOWN = [
    ("def top_titles", ["1", "['Stoic', 'Chaos']", "['Stoic', 'Chaos']", "v1"]),
    ('cache.incr("plays:42", initial=1)', ["1 True", "11", "0", "[0, 0, 0]"]),
    ("hash_keys=True", ["key must be 1..250 bytes long (UTF-8), got 366 bytes", "['Stoic']"]),
    ("def similar", ["computing 42 eu", "[43, 44]", "[43, 44]"]),
    ("cache.promote", ["['zone-c']", "['zone-a', 'zone-c'] 7"]),
    ("AsyncZonalCache(zones", ["True", "{'name': 'Stoic'}", "0", "[4.5, 4.5]"]),
]


def test_the_guide_has_examples() -> None:
    assert len(BLOCKS) >= 13


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_example_runs(index: int) -> None:
    done = subprocess.run([sys.executable, "-c", BLOCKS[index]], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, f"example {index} failed:\n{BLOCKS[index]}\n{done.stderr}"
    assert done.stdout.strip(), "every example prints what it shows"
    for marker, lines in SHOWN:
        if marker in BLOCKS[index]:
            printed = [line for line in done.stdout.splitlines() if "warmed" not in line]
            assert printed == lines, done.stdout


def test_every_shown_output_belongs_to_an_example() -> None:
    for marker, _ in SHOWN:
        assert sum(marker in block for block in BLOCKS) == 1, marker
