"""Fixtures for the Simian Army tests: real child processes on 127.0.0.1."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # for `import _chaos_support` under importlib mode

from _chaos_support import HTTP_SERVER, SLEEPER

from stoic.chaos import Supervisor


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    sup = Supervisor(log_dir=tmp_path / "logs")
    try:
        yield sup
    finally:
        sup.close(timeout=3)


@pytest.fixture
def sleeper_argv() -> list[str]:
    return [sys.executable, "-c", SLEEPER]


@pytest.fixture
def http_argv() -> list[str]:
    return [sys.executable, "-c", HTTP_SERVER]


@pytest.fixture
def src_env() -> dict[str, str]:
    """Environment for children that import stoic from this checkout."""
    src = str(Path(__file__).resolve().parents[2] / "src")
    return {"PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
