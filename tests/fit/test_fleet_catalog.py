"""The fleet-wide catalogue: several real processes follow one fault board file.

A scenario added once reaches every process; the chaos kill switch halts every scenario in every
process (header scenarios too); bad board entries are ignored with a log line; concurrent writers
of the board's two sections never lose each other's entries.
"""

from __future__ import annotations

import json
import logging
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stoic.chaos import FaultBoard, KillSwitch
from stoic.fit import Catalog, HeaderCodec, InvalidScenario, Scenario

SECRET = "fleet-test-secret-0123456789"
WORKER = Path(__file__).with_name("_fleet_worker.py")
FLEET_SIZE = 3


class Fleet:
    """Worker processes serving on loopback, each following `board`."""

    def __init__(self, board: Path) -> None:
        self.board = board
        self.procs: list[subprocess.Popen[str]] = []
        self.urls: list[str] = []

    def start(self, count: int) -> None:
        for _ in range(count):
            proc = subprocess.Popen(
                [sys.executable, str(WORKER), str(self.board), SECRET],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )
            self.procs.append(proc)
        for proc in self.procs:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 30.0)  # bounded: a worker that hangs fails
            line = proc.stdout.readline() if ready else ""
            assert line.startswith("PORT "), f"worker did not start: {line!r}"
            self.urls.append(f"http://127.0.0.1:{int(line.split()[1])}/")

    def ask(self, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """One request to every process."""
        return [httpx.get(url, headers=headers, timeout=5.0).json() for url in self.urls]

    def until(self, done: Callable[[list[dict[str, Any]]], bool], headers: dict[str, str] | None = None,
              ) -> list[dict[str, Any]]:
        """Ask every process until `done` holds for the answers (at most 200 rounds or 20 s)."""
        deadline = time.monotonic() + 20.0
        answers = self.ask(headers)
        for _ in range(200):
            if done(answers) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
            answers = self.ask(headers)
        return answers

    def stop(self) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.close()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    running = Fleet(tmp_path / "chaos" / "faults.json")
    try:
        running.start(FLEET_SIZE)
        yield running
    finally:
        running.stop()


def _all(key: str, value: object) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda answers: all(a[key] == value for a in answers)


def test_a_scenario_added_once_applies_in_every_process(fleet: Fleet) -> None:
    assert fleet.ask() == [{"ratings": "primary", "reviews-eu": "primary", "halted": False}] * FLEET_SIZE
    console = Catalog(board=fleet.board, registry=None)  # the operator's view: a separate process's
    console.add(Scenario("no-reviews", "reviews-*", kind="error", ttl=600))  # a glob, as on the board

    answers = fleet.until(_all("reviews-eu", "fallback"))
    assert [a["reviews-eu"] for a in answers] == ["fallback"] * FLEET_SIZE
    assert [a["ratings"] for a in answers] == ["primary"] * FLEET_SIZE  # the glob does not reach it

    assert console.remove("no-reviews") is True
    answers = fleet.until(_all("reviews-eu", "primary"))
    assert [a["reviews-eu"] for a in answers] == ["primary"] * FLEET_SIZE


def test_the_kill_switch_halts_every_scenario_in_every_process(fleet: Fleet) -> None:
    console = Catalog(board=fleet.board, registry=None)
    console.add(Scenario("everything", "*", kind="status", status=503, retry_after=1))
    answers = fleet.until(_all("ratings", "fallback"))
    assert [(a["ratings"], a["reviews-eu"]) for a in answers] == [("fallback", "fallback")] * FLEET_SIZE

    # the chaos kill switch (the file next to the board), thrown from anywhere
    switch = KillSwitch(fleet.board.parent / "kill-switch")
    switch.engage("halt all failures")
    answers = fleet.until(_all("ratings", "primary"))
    assert answers == [{"ratings": "primary", "reviews-eu": "primary", "halted": True}] * FLEET_SIZE

    # while halted, a signed header's scenarios inject nothing either
    header = HeaderCodec(SECRET).sign([Scenario("by-header", "ratings")], audience="worker")
    answers = fleet.ask({"x-stoic-fit": header})
    assert [a["ratings"] for a in answers] == ["primary"] * FLEET_SIZE
    assert console.halted() is True
    assert console.status()["scenarios"][0]["name"] == "everything"  # kept, to resume with the switch

    switch.release()
    answers = fleet.until(_all("ratings", "fallback"))
    assert [(a["ratings"], a["halted"]) for a in answers] == [("fallback", False)] * FLEET_SIZE


def test_bad_board_entries_are_ignored_with_a_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                       ) -> None:
    board = tmp_path / "faults.json"
    board.write_text(json.dumps({"rules": [], "scenarios": [
        {"name": "bad-kind", "dependencies": ["ratings"], "kind": "explode"},
        {"name": "bad-status", "dependencies": ["ratings"], "kind": "status", "status": 200},
        "not an object",
        {"name": "good", "dependencies": ["ratings"], "kind": "error"},
    ]}))
    with caplog.at_level(logging.WARNING, logger="stoic.fit"):
        catalog = Catalog(board=board, registry=None)
    assert [s.name for s in catalog.active()] == ["good"]
    lines = [r.getMessage() for r in caplog.records]
    assert any("scenario 0 ignored: kind: must be one of error, delay, timeout, reject, status, result" in
               line for line in lines), lines
    assert any("scenario 1 ignored: status: must be an HTTP error status, an integer in [400, 599]" in
               line for line in lines), lines
    assert any("scenario 2 ignored: scenario: must be an object" in line for line in lines), lines

    # writing keeps what this version cannot read (another version may have written it)
    catalog.add(Scenario("second", "reviews"))
    on_board = json.loads(board.read_text())["scenarios"]
    assert [item["name"] if isinstance(item, dict) else item for item in on_board] == [
        "bad-kind", "bad-status", "not an object", "good", "second"
    ]

    board.write_text("{ half a file")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="stoic.fit"):
        reader = Catalog(board=board, registry=None)
    assert reader.active() == ()  # an unreadable board injects nothing
    assert any("scenarios ignored: Expecting" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match="Expecting"):  # ... and is refused, not overwritten
        reader.add(Scenario("third", "reviews"))
    assert board.read_text() == "{ half a file"


def test_bad_scenarios_are_refused_when_written_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = Catalog(board=tmp_path / "faults.json", registry=None)
    cases = [
        (dict(kind="status"), "status: is required when kind is 'status': an HTTP status in [400, 599]"),
        (dict(kind="status", status=302), "status: must be an HTTP error status, an integer in [400, 599]"),
        (dict(kind="error", retry_after=5), "retry_after: is for kind 'status' only"),
        (dict(kind="result"), "result: is required when kind is 'result'"),
        (dict(kind="result", result={1, 2}), "result: must be a JSON value"),
        (dict(kind="result", result="x" * 2000), "result: must be at most 1024 characters as JSON"),
    ]
    for fields, message in cases:
        with pytest.raises(InvalidScenario) as caught:
            catalog.add(Scenario("s", "ratings", **fields))
        assert str(caught.value).startswith(message), str(caught.value)
    with pytest.raises(ValueError, match=r"check_every: must be seconds in \(0, 1\]"):
        Catalog(board=tmp_path / "faults.json", check_every=5)
    monkeypatch.delenv("STOIC_FAULT_BOARD", raising=False)
    with pytest.raises(ValueError, match="board: give the fault board's path, or set the STOIC_FAULT_BOARD"):
        Catalog(registry=None).follow()
    assert not (tmp_path / "faults.json").exists()  # nothing bad was written


_ADD_SCENARIOS = """
import sys
from stoic.fit import Catalog, Scenario
catalog = Catalog(board=sys.argv[1], registry=None)
for i in range(25):
    catalog.add(Scenario(f"s-{i}", "ratings"))
"""
_POST_RULES = """
import sys
from stoic.chaos import FaultBoard, FaultRule
board = FaultBoard(sys.argv[1])
for i in range(25):
    board.post(FaultRule(dependency=f"dep-{i}", kind="error", monkey=f"m-{i}"))
"""


def test_concurrent_writers_of_both_sections_lose_nothing(tmp_path: Path) -> None:
    board = tmp_path / "faults.json"
    writers = [
        subprocess.Popen([sys.executable, "-c", code, str(board)])
        for code in (_ADD_SCENARIOS, _POST_RULES, _ADD_SCENARIOS.replace('f"s-{i}"', 'f"t-{i}"'))
    ]
    assert [w.wait(timeout=60) for w in writers] == [0, 0, 0]
    assert len(FaultBoard(board).rules()) == 25
    names = {s.name for s in Catalog(board=board, registry=None).active()}
    assert names == {f"s-{i}" for i in range(25)} | {f"t-{i}" for i in range(25)}
