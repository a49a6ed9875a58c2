"""The audit log keeps every decision and termination across restarts, and the CLI reads it."""

from __future__ import annotations

import getpass
import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stoic.chaos import (
    AuditError,
    AuditLog,
    BlastRadius,
    ChaosMonkey,
    CompressedClock,
    ProcessTarget,
    Schedule,
    SimianArmy,
    Supervisor,
)
from stoic.chaos.audit import SCHEMA_VERSION, default_actor
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


# A second process that holds the audit file's write lock until its stdin closes (at most 60 s).
HOLD_LOCK = """
import sqlite3, sys, signal
signal.alarm(60)
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
"""


def one_instance_army(sup: Supervisor, audit: AuditLog, sleeper_argv: list[str]) -> tuple[SimianArmy, Any]:
    inst = sup.start(sleeper_argv, app="api", zone="a", restart_after=0.05, wait=True)
    monkey = ChaosMonkey(mean_time_between_kills=None, min_time_between_kills=0)
    army = SimianArmy(
        ProcessTarget(sup),
        [monkey],
        audit=audit,
        schedule=Schedule.always(),
        limits=BlastRadius(max_instances=2, max_share=None),
    )
    return army, inst


def test_no_kill_without_its_audit_record_when_the_log_is_locked(
    tmp_path: Path, supervisor: Supervisor, sleeper_argv: list[str]
) -> None:
    db = tmp_path / "audit.db"
    army, inst = one_instance_army(supervisor, AuditLog(db, busy_timeout=0.2), sleeper_argv)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        report = army.run_once()
        assert inst.alive and inst.restarts == 0 and report.entries == []
        assert len(report.errors) == 1 and "database is locked" in report.errors[0]
        assert str(db) in report.errors[0] and "not audited, so not done" in report.summary()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
    # the lock is gone: the same army strikes, and the kill is in the log
    assert army.run_once().count("terminated") == 1 and [e.outcome for e in army.audit.entries()] == [
        "terminated"
    ]


def test_no_kill_without_its_audit_record_when_the_log_is_full(
    tmp_path: Path, supervisor: Supervisor, sleeper_argv: list[str]
) -> None:
    db = tmp_path / "audit.db"
    with AuditLog(db, max_bytes=64 * 1024) as filling:
        for size in (1000, 100, 0):  # big rows first, then small ones into what is left of each page
            with pytest.raises(AuditError, match="database or disk is full"):
                for i in range(10_000):  # bounded: 64 KiB holds far fewer rows
                    filling.record("filler", "army", "paused", reason="x" * size + str(i))
        kept = len(filling)
    # three restarts of the runner against the full log: every strike is refused, none happens
    for _ in range(3):
        army, inst = one_instance_army(supervisor, AuditLog(db, max_bytes=64 * 1024), sleeper_argv)
        report = army.run_once()
        assert inst.alive and inst.restarts == 0
        assert "database or disk is full" in report.errors[0] and "free disk space" in report.errors[0]
        army.audit.close()
        supervisor.remove(inst)
    with AuditLog(db) as audit:
        assert audit.terminations() == [] and len(audit) == kept


# A process that claims a kill and holds its transaction half a second before committing.
SLOW_CLAIM = """
import sys, time
from stoic.chaos import AuditLog
audit = AuditLog(sys.argv[1])
def check(kills_since):
    print("checking", flush=True)
    time.sleep(0.5)
    return None
audit.claim("chaos-monkey", "terminate", time.time(), [{"target": "api-a-1", "app": "api"}], check)
"""


def test_the_cap_check_and_the_intent_are_one_transaction_across_processes(
    tmp_path: Path, src_env: dict[str, str]
) -> None:
    db = tmp_path / "audit.db"
    audit = AuditLog(db)
    other = subprocess.Popen(
        [sys.executable, "-c", SLOW_CLAIM, str(db)],
        stdout=subprocess.PIPE,
        env={**os.environ, **src_env},
        text=True,
    )
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "checking"
        # the other process is between its check and its commit: this claim waits for it, then sees it
        seen: list[int] = []

        def check(kills_since: Any) -> str | None:
            seen.append(len(kills_since(0.0)))
            return "over the cap" if seen[-1] >= 1 else None

        entries, refusal = audit.claim("chaos-monkey", "terminate", 1.0, [{"target": "api-b-1"}], check)
        assert seen == [1] and refusal == "over the cap" and entries[0].outcome == "skipped"
    finally:
        assert other.wait(timeout=30) == 0
    assert [e.outcome for e in sorted(audit.entries(None), key=lambda e: e.id)] == ["intended", "skipped"]
    audit.close()


def test_cli_runs_sharing_one_audit_file_hold_one_cap(tmp_path: Path, src_env: dict[str, str]) -> None:
    config = tmp_path / "chaos.toml"
    config.write_text(
        'state_dir = "state"\n[schedule]\nalways = true\n[limits]\nmax_instances = 1\nmax_share = 1.0\n'
        '[[instances]]\napp = "api"\nzone = "a"\nargv = ["{python}", "-c", "import time; time.sleep(60)"]\n'
        '[monkeys.chaos]\nmean_time_between_kills = "none"\nmin_time_between_kills = 0\n'
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "stoic", "chaos", "run", "--config", str(config), "--once"],
            env={**os.environ, **src_env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    for run in runs:
        assert run.wait(timeout=60) == 0, run.stderr.read() if run.stderr else ""
        if run.stderr:
            run.stderr.close()
    with AuditLog(tmp_path / "state" / "audit.db") as audit:
        assert len(audit.terminations()) == 1
        assert len(audit.entries(None, outcome="skipped")) == 2


OLD_SCHEMA = """
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, wall REAL NOT NULL, monkey TEXT NOT NULL,
    action TEXT NOT NULL, target TEXT NOT NULL DEFAULT '', app TEXT NOT NULL DEFAULT '',
    region TEXT NOT NULL DEFAULT '', zone TEXT NOT NULL DEFAULT '', grp TEXT NOT NULL DEFAULT '',
    outcome TEXT NOT NULL, reason TEXT NOT NULL DEFAULT ''
);
INSERT INTO audit (at, wall, monkey, action, target, outcome) VALUES (1, 1, 'chaos-monkey', 'terminate',
    'api-a-1', 'terminated');
"""


def test_every_entry_names_its_actor_and_old_files_are_migrated(
    tmp_path: Path, supervisor: Supervisor, sleeper_argv: list[str]
) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as old:  # a log written before entries had an actor
        old.executescript(OLD_SCHEMA)
    with AuditLog(db, readonly=True) as before:  # reading needs no migration
        assert [(e.target, e.actor) for e in before.entries()] == [("api-a-1", "")]
    audit = AuditLog(db)
    army, _ = one_instance_army(supervisor, audit, sleeper_argv)
    army.actor = "experiment:zone-drill"
    army.run_once()
    assert [(e.outcome, e.actor) for e in audit.entries()] == [
        ("terminated", "experiment:zone-drill"),
        ("terminated", ""),
    ]
    audit.record("simian-army", "army", "paused", reason="by hand")
    assert audit.entries(1)[0].actor == default_actor() == f"user:{getpass.getuser()}"
    audit.close()
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_cli_names_a_corrupt_audit_file_and_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "state" / "audit.db"
    db.parent.mkdir()
    db.write_bytes(b"these are not the pages you are looking for\n" * 200)
    config = tmp_path / "chaos.toml"
    config.write_text('state_dir = "state"\n[monkeys.chaos]\n')
    assert stoic_main(["chaos", "run", "--config", str(config), "--once"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(db) in err
    assert "not a SQLite audit log: move it aside or set audit_db to a new file" in err
    assert stoic_main(["chaos", "log", "--db", str(db)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(db) in err and "move it aside" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="file modes do not stop root")
def test_cli_names_a_read_only_audit_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "state" / "audit.db"
    AuditLog(db).close()
    for f in db.parent.iterdir():
        f.chmod(0o444)
    db.parent.chmod(0o555)
    config = tmp_path / "chaos.toml"
    config.write_text('state_dir = "state"\n[monkeys.chaos]\n')
    try:
        assert stoic_main(["chaos", "run", "--config", str(config), "--once"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(db) in err and "writable" in err
    finally:
        db.parent.chmod(0o755)
