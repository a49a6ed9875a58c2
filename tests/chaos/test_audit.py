"""The audit log keeps every decision and termination across restarts, and the CLI reads it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stoic.chaos import (
    AuditLog,
    BlastRadius,
    ChaosMonkey,
    CompressedClock,
    ProcessTarget,
    Schedule,
    SimianArmy,
    Supervisor,
)
from stoic.cli import main as stoic_main

MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def run_army(sup: Supervisor, db: Path, minutes: float) -> tuple[SimianArmy, list[str]]:
    monkey = ChaosMonkey(grouping="app+zone", mean_time_between_kills=None, min_time_between_kills=3600)
    clock = CompressedClock(speed=1, start=MONDAY_10.replace(minute=int(minutes)))
    army = SimianArmy(
        ProcessTarget(sup),
        [monkey],
        audit=AuditLog(db),
        schedule=Schedule.always(),
        limits=BlastRadius.unlimited(),
        clock=clock,
        seed=5,
    )
    report = army.run_once()
    return army, [e.target for e in report.entries if e.outcome == "terminated"]


def test_terminations_survive_a_restart(tmp_path: Path, sleeper_argv: list[str]) -> None:
    db = tmp_path / "audit.db"
    with Supervisor() as first:
        for zone in ("a", "b"):
            first.start(sleeper_argv, app="api", zone=zone, restart_after=0.05)
        first.wait_healthy(first.instances)
        army, killed = run_army(first, db, 0)
        assert sorted(killed) == ["api-a-1", "api-b-1"]
        army.audit.close()
    # a new process life: new supervisor, new army, same file
    with Supervisor() as second:
        fresh = [second.start(sleeper_argv, app="api", zone=zone) for zone in ("a", "b")]
        second.wait_healthy(fresh)
        army, killed = run_army(second, db, 30)
        # the persisted kills 30 minutes ago still count: min_time_between_kills (1 h) holds
        assert killed == [] and all(i.alive for i in fresh)
        entries = army.audit.entries(None)
        assert [e.outcome for e in reversed(entries)] == ["terminated", "terminated", "skipped", "skipped"]
        first_kill = entries[-1]
        assert first_kill.monkey == "chaos-monkey" and first_kill.app == "api" and first_kill.zone == "a"
        assert abs((first_kill.when - MONDAY_10).total_seconds()) < 5 and first_kill.reason.startswith(
            "random pick of 1 in 1"
        )
        army.audit.close()
    with AuditLog(db) as audit:
        assert len(audit.terminations()) == 2 and len(audit) == 4


def test_cli_log_prints_the_audit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "audit.db"
    with AuditLog(db) as audit:
        audit.record("chaos-monkey", "terminate", "terminated", target="api-a-1", app="api", reason="picked")
        audit.record("chaos-monkey", "terminate", "skipped", target="api-b-1", reason="blast radius")
    assert stoic_main(["chaos", "log", "--db", str(db)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "terminated" in lines[0] and "api-a-1" in lines[0] and "blast radius" in lines[1]
    assert stoic_main(["chaos", "log", "--db", str(db), "--json", "--outcome", "terminated"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["target"] for r in rows] == ["api-a-1"]
    chart = tmp_path / "timeline.png"
    assert stoic_main(["chaos", "log", "--db", str(db), "--chart", str(chart)]) == 0
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert stoic_main(["chaos", "log", "--db", str(tmp_path / "missing.db")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_audit_refuses_unknown_outcomes(tmp_path: Path) -> None:
    with (
        AuditLog(tmp_path / "a.db") as audit,
        pytest.raises(ValueError, match="outcome must be one of terminated"),
    ):
        audit.record("m", "terminate", "exploded")
