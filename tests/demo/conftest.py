"""Fixtures for the demo tests: one real platform (22 processes on loopback) shared by a module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stoic.chaos import FaultBoard
from stoic.demo import Platform


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> FaultBoard:
    board = FaultBoard(tmp_path_factory.mktemp("board") / "faults.json")
    board.clear()
    return board


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, board: FaultBoard) -> Iterator[Platform]:
    workdir: Path = tmp_path_factory.mktemp("platform")
    with Platform(workdir, fault_board=board.path, restart_after=1.0) as running:
        running.start(timeout=60.0)
        yield running
