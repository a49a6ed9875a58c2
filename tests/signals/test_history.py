"""History in SQLite survives a restart; the weekly report draws charts from it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from stoic.cli import main
from stoic.signals import History, Ownership, Signals
from stoic.signals.report import weekly_report

from .conftest import Clock
from .helpers import feed


def _week(db: Path, clock: Clock) -> float:
    owners = Ownership.from_dict({"teams": {"edge-eu": {}}, "regions": {"eu-west": "edge-eu"}})
    signals = Signals(interval=1.0, day=60.0, db=db, ownership=owners, clock=clock)
    feed(signals, clock, 180)
    signals.add_event(
        "chaos",
        target="eu-west/edge",
        region="eu-west",
        description="Latency Monkey added 800 ms to eu-west edge",
    )
    feed(signals, clock, 1)
    feed(signals, clock, 8, factor=0.4)
    feed(signals, clock, 20)
    signals.add_event(
        "chaos",
        target="eu-west/recs",
        region="eu-west",
        description="Chaos Monkey terminated a recommendations instance",
    )
    feed(signals, clock, 20)
    signals.count_fallback("personalisation", "snapshot", 42)
    signals.churn.observe("acct-7", "failed start", at=clock.now)
    signals.close()
    return clock.now


def test_history_survives_reopen(tmp_path: Path, clock: Clock) -> None:
    db = tmp_path / "signals.db"
    end = _week(db, clock)
    with History(db) as history:  # a new connection: what was written is on disk
        points = history.points("sps", "eu-west", 0.0, end + 1)
        assert len(points) >= 225
        assert all(p[1] is not None for p in points)
        assert sum(p[2] is not None for p in points) >= 200  # expectations were stored too
        alerts = history.alerts(0.0, end + 1)
        sps = [a for a in alerts if a["indicator"] == "sps"]
        assert len(sps) == 1 and sps[0]["status"] == "resolved" and sps[0]["ends_at"]
        assert "Latency Monkey added 800 ms" in str(sps[0]["cause"])
        incidents = history.incidents(0.0, end + 1)
        assert len(incidents) == 1 and incidents[0].ended is not None and incidents[0].alerts >= 1
        assert [e.kind for e in history.events(0.0, end + 1)] == ["chaos", "chaos"]
        assert sum(n for *_, n in history.fallbacks(0.0, end + 1)) == 42
        assert [a.account for a in history.churn(end + 1)] == ["acct-7"]
        assert history.latest() is not None

    # a restarted process appends to the same file
    clock.now += 5
    again = Signals(interval=1.0, day=60.0, db=db, clock=clock)
    feed(again, clock, 5)
    again.close()
    with History(db) as history:
        assert len(history.points("sps", "eu-west", 0.0, clock.now + 1)) > len(points)


def test_weekly_report_has_charts_and_every_audience(tmp_path: Path, clock: Clock) -> None:
    db = tmp_path / "signals.db"
    end = _week(db, clock)
    with History(db) as history:
        page = weekly_report(history, end=end + 1, days=1.0)
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert page.count("<svg") >= 3  # sps, error rate, rebuffering, fallbacks
    assert "<path" in page  # lines were really drawn
    for heading in ("For leadership", "For operations", "For support", "chaos survived and fallbacks"):
        assert heading in page
    assert "1 of 2" in page  # one experiment caused an incident, one was absorbed
    assert "Latency Monkey added 800 ms" in page and "acct-7" in page
    assert not re.search(r"(src|href)=\"https?://", page)  # self-contained: nothing to fetch
    assert not re.search(r"<(script|link|img)\b", page)


def test_cli_report_and_bad_flags(tmp_path: Path, clock: Clock, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "signals.db"
    _week(db, clock)
    out = tmp_path / "week.html"
    args = ["signals", "report", "--db", str(db), "--out", str(out)]
    assert main([*args, "--days", "1"]) == 0
    assert "<svg" in out.read_text() and "wrote" in capsys.readouterr().out
    assert main([*args, "--days", "365"]) == 2
    assert "--days: must be between 0 and 90, got 365" in capsys.readouterr().err
    assert main(["signals", "report", "--db", str(tmp_path / "no.db"), "--out", str(out)]) == 2
    assert "--db: no such file" in capsys.readouterr().err
    assert main([*args[:-1], str(tmp_path / "missing-dir" / "week.html")]) == 2
    assert "--out: directory" in capsys.readouterr().err


def test_cli_simulate_then_report(tmp_path: Path) -> None:
    db, out = tmp_path / "week.db", tmp_path / "week.html"
    run = [sys.executable, "-m", "stoic", "signals"]
    sim = subprocess.run(
        [*run, "simulate", "--db", str(db), "--days", "3"], capture_output=True, text=True, timeout=120
    )
    assert sim.returncode == 0, sim.stderr
    assert "3 days, 2 regions" in sim.stdout
    with History(db) as history:
        alerts = history.alerts(0.0, 4e9)
        assert any("Chaos Gorilla took down zone" in str(a["cause"]) for a in alerts)
        assert {a["region"] for a in alerts} == {"us-east", "eu-west"}
    rep = subprocess.run(
        [*run, "report", "--db", str(db), "--out", str(out), "--days", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rep.returncode == 0, rep.stderr
    page = out.read_text()
    assert page.count("<svg") >= 6 and "Stream starts per second, eu-west" in page
    again = subprocess.run([*run, "simulate", "--db", str(db)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "already exists" in again.stderr
