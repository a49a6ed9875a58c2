"""The Latency Monkey's faults reach guarded calls, in this process and in other real processes."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from _chaos_support import GUARDED_SERVICE, wait_until

from stoic.chaos import (
    BoardInjector,
    ChaosConfigError,
    FaultBoard,
    FaultRule,
    KillSwitch,
    LatencyMonkey,
    ProcessTarget,
    Schedule,
    SimianArmy,
    Supervisor,
)
from stoic.cli import main as stoic_main
from stoic.guard import Dependency, Fallback, Registry, set_process_injector


@pytest.fixture(autouse=True)
def no_process_injector() -> Iterator[None]:
    yield
    set_process_injector(None)


def ask(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
        return dict(json.loads(resp.read()))


def start_guarded(supervisor: Supervisor, board: FaultBoard, src_env: dict[str, str]) -> int:
    """Start GUARDED_SERVICE reading `board`; returns its port."""
    svc = supervisor.start(
        [sys.executable, "-c", GUARDED_SERVICE],
        app="catalog",
        port=0,
        env={**src_env, "STOIC_FAULT_BOARD": str(board.path)},
        health_url="http://127.0.0.1:{port}/",
        wait=True,
        timeout=20,
    )
    return svc.port or 0


def test_delay_reaches_a_guarded_dependency_in_another_process(
    tmp_path: Path, supervisor: Supervisor, src_env: dict[str, str]
) -> None:
    board = FaultBoard(tmp_path / "state" / "faults.json")
    port = start_guarded(supervisor, board, src_env)
    assert float(ask(port)["ms"]) < 100  # type: ignore[arg-type]
    monkey = LatencyMonkey(
        delay=0.3, dependencies=["recommend*"], duration=60, mean_time_between=None, board=board
    )
    switch = KillSwitch(board.kill_switch_path)
    army = SimianArmy(ProcessTarget(supervisor), [monkey], schedule=Schedule.always(), kill_switch=switch)
    report = army.run_once()
    assert report.count("injected") == 1 and "300 ms delay" in report.entries[0].reason
    # the other process re-reads the board within ~100 ms
    assert wait_until(lambda: float(ask(port)["ms"]) >= 290, timeout=5)  # type: ignore[arg-type]
    answer = ask(port)
    assert answer["source"] == "primary" and answer["value"] == "fresh"
    # the kill switch file alone silences the fleet, even before the army withdraws anything
    switch.engage("incident")
    assert wait_until(lambda: float(ask(port)["ms"]) < 100, timeout=5)  # type: ignore[arg-type]
    switch.release()
    assert wait_until(lambda: float(ask(port)["ms"]) >= 290, timeout=5)  # type: ignore[arg-type]
    army.stop()  # withdraws the monkey's faults from the board
    assert board.rules() == []
    assert wait_until(lambda: float(ask(port)["ms"]) < 100, timeout=5)  # type: ignore[arg-type]


def test_errors_through_the_board_make_the_fallback_answer(
    tmp_path: Path, supervisor: Supervisor, src_env: dict[str, str]
) -> None:
    board = FaultBoard(tmp_path / "faults.json")
    port = start_guarded(supervisor, board, src_env)
    board.post(FaultRule(dependency="recommendations", kind="error", app="catalog"))
    assert wait_until(lambda: ask(port)["source"] == "cache", timeout=5)
    board.clear()
    board.post(FaultRule(dependency="recommendations", kind="error", app="other-app"))
    assert wait_until(lambda: ask(port)["source"] == "primary", timeout=5)


def test_in_process_delay_and_calm(supervisor: Supervisor) -> None:
    reg = Registry()
    dep = Dependency("search", timeout=None, breaker=None, registry=reg)
    monkey = LatencyMonkey(delay=0.2, dependencies=["search"], duration=60, mean_time_between=None)
    assert monkey.in_process and monkey.board is None
    army = SimianArmy(ProcessTarget(supervisor), [monkey], schedule=Schedule.always())
    assert army.run_once().count("injected") == 1
    t = time.perf_counter()
    assert dep.call(lambda: 42) == 42
    assert time.perf_counter() - t >= 0.19
    other = Dependency("billing", timeout=None, breaker=None, registry=reg)
    t = time.perf_counter()
    other.call(lambda: 1)
    assert time.perf_counter() - t < 0.1  # only the matching dependency is slowed
    assert army.run_once().entries == []  # one active injection at a time
    army.calm()
    t = time.perf_counter()
    dep.call(lambda: 42)
    assert time.perf_counter() - t < 0.1


def test_in_process_error_rate_uses_the_fallback(supervisor: Supervisor) -> None:
    dep = Dependency(
        "ratings", timeout=None, breaker=None, registry=Registry(), fallbacks=[Fallback.value(0, name="zero")]
    )
    monkey = LatencyMonkey(kind="error", rate=1.0, dependencies=["ratings"], mean_time_between=None)
    SimianArmy(ProcessTarget(supervisor), [monkey], schedule=Schedule.always()).run_once()
    result = dep.execute(lambda: 5)
    assert result.source == "zero" and result.value == 0


def test_leashed_latency_monkey_posts_nothing(tmp_path: Path, supervisor: Supervisor) -> None:
    board = FaultBoard(tmp_path / "faults.json")
    monkey = LatencyMonkey(delay=0.3, mean_time_between=None, board=board)
    report = SimianArmy(
        ProcessTarget(supervisor), [monkey], schedule=Schedule.always(), leashed=True
    ).run_once()
    assert report.count("leashed") == 1 and board.rules() == []


def test_injector_rereads_the_board_only_after_its_check_interval(tmp_path: Path) -> None:
    board = FaultBoard(tmp_path / "faults.json")
    injector = BoardInjector(board.path, app="api", check_every=1.0)
    assert injector.fault_for("db") is None
    board.post(FaultRule(dependency="db", kind="delay", delay=0.05))
    assert injector.fault_for("db") is None  # not re-read yet: the file is stat'ed at most once a second
    time.sleep(1.05)
    fault = injector.fault_for("db")
    assert fault is not None and fault.kind == "delay" and fault.delay == 0.05
    assert injector.fault_for("cache") is None
    board.post(FaultRule(dependency="*", kind="error", expires=time.time() - 1))
    assert len(board.rules()) == 1  # an expired rule is never served


def test_bad_faults_are_refused_with_the_field_name() -> None:
    with pytest.raises(ChaosConfigError, match=r"fault.kind must be one of delay, error, timeout, reject"):
        LatencyMonkey(kind="slow")
    with pytest.raises(ChaosConfigError, match=r"fault.rate must be in \(0, 1\]"):
        LatencyMonkey(rate=2)
    with pytest.raises(ChaosConfigError, match=r"fault.delay must be seconds in \[0, 3600\]"):
        FaultRule(delay=-1)


BAD_EXPIRES = {"dependency": "recommendations", "kind": "error", "expires": "2026-12-01T00:00:00Z"}


def test_a_bad_rule_is_refused_when_written_and_ignored_when_read(
    tmp_path: Path,
    supervisor: Supervisor,
    src_env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(
        ChaosConfigError,
        match=r"fault\.expires must be epoch seconds >= 0 \(a number\) or null; "
        r"got '2026-12-01T00:00:00Z'",
    ):
        FaultRule.from_dict(BAD_EXPIRES)
    with pytest.raises(ChaosConfigError, match=r"fault\.monkey must be a non-empty string"):
        FaultRule(monkey="")
    # written by hand next to a good rule: the bad one is skipped, the good one still applies
    board = FaultBoard(tmp_path / "state" / "faults.json")
    good = {"dependency": "recommendations", "kind": "delay", "delay": 0.2}
    board.path.parent.mkdir(parents=True)
    board.path.write_text(json.dumps({"version": 1, "rules": [BAD_EXPIRES, good, "junk"]}))
    with caplog.at_level("WARNING", logger="stoic.chaos.board"):
        assert [r.kind for r in board.rules()] == ["delay"]
    assert "rule 0 ignored: fault.expires must be epoch seconds" in caplog.text
    assert "rule 2 ignored: fault must be a JSON object" in caplog.text
    # every guarded call in another process still answers, and sees the good rule's delay
    answer = ask(start_guarded(supervisor, board, src_env))
    assert answer["value"] == "fresh" and float(answer["ms"]) >= 200  # type: ignore[arg-type]
    # and the command line shows the board instead of crashing
    assert stoic_main(["chaos", "faults", "show", "--state-dir", str(board.path.parent)]) == 0
    assert "200 ms delay for dependency 'recommendations'" in capsys.readouterr().out
    # in this process too: the injector serves the good rule only
    injector = BoardInjector(board.path, app="catalog")
    fault = injector.fault_for("recommendations")
    assert fault is not None and fault.delay == 0.2
