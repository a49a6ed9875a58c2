"""Experiments against the real demo platform (22 processes on loopback), with viewers' plays as traffic.

A play's request id picks its cohort; treatment plays carry the experiment's signed FIT header to the
edge, and every play's answer is observed in its cohort.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stoic.chaos import AuditLog, KillSwitch, free_port
from stoic.chaos.experiment import Experiment, Hypothesis, Verdict
from stoic.demo import Platform
from stoic.demo.topology import FIT_AUDIENCE
from stoic.demo.viewers import DailyPattern, PlayRecord, Viewers
from stoic.fit import HeaderCodec, Scenario
from stoic.signals import Signals
from stoic.signals.report import weekly_report

#: plays per second the viewers start (a 2-core machine runs the platform and the viewers); a 2.5 %
#: cohort then sees a play every 1.6 s or so
RATE = 25.0


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with Platform(tmp_path_factory.mktemp("platform"), restart_after=1.0) as running:
        running.start(timeout=90.0)
        # a few seconds of plays first: connections open and the snapshot caches fill, as in production
        warm = Viewers(running.edges, running.topology.regions, DailyPattern(86400.0, RATE, 21.0), seed=4)
        asyncio.run(warm.run(4.0, linger=1.0))
        yield running


def drive(platform: Platform, experiment: Experiment, seconds: float) -> list[PlayRecord]:
    """Viewers play at RATE per second for `seconds` while `experiment` runs; returns every play."""
    viewers = Viewers(
        platform.edges,
        platform.topology.regions,
        DailyPattern(duration=86400.0, peak=RATE, start_hour=21.0),  # a flat evening peak
        seed=5,
        members=400,
        watch_segments=(1, 1),
        fit_headers=experiment.headers,
        on_start=lambda rec: experiment.observe(rec.play_id, ok=rec.ok, latency=rec.latency),
    )
    experiment.start_background()
    # the viewers keep playing for the experiment's whole planned duration, as real traffic would
    records = asyncio.run(viewers.run(seconds, linger=2.0))
    experiment.wait(experiment.duration + 5.0)
    return records


def test_an_experiment_that_breaks_plays_is_aborted_by_its_kpi_check(
    platform: Platform, tmp_path: Path
) -> None:
    audit = AuditLog(tmp_path / "audit.db", actor="user:test")
    signals = Signals(interval=60.0, db=tmp_path / "signals.db")
    regions = list(platform.topology.regions)
    # the manifest fails in every region: no cross-region fallback can save a treatment play
    manifests = ["manifest", *(f"manifest@{r}" for r in regions)]
    exp = Experiment(
        "manifest-everywhere",
        Scenario("manifest-everywhere", manifests),
        [Hypothesis("error_rate", 0.05)],
        share=0.025,
        duration=30.0,
        min_samples=4,
        abort_alpha=0.01,
        check_every=0.2,
        audit=audit,
        kill_switch=KillSwitch(tmp_path / "kill-switch"),
        codec=HeaderCodec(platform.fit_secret, audience=FIT_AUDIENCE),
        context=signals,
        regions=regions,
        actor="user:test",
    )
    records = drive(platform, exp, 30.0)
    verdict = exp.verdict
    assert isinstance(verdict, Verdict), exp
    treated = [r for r in records if r.fit]
    failed = [r for r in records if not r.ok]
    print(f"\n{verdict.outcome} after {verdict.ended - verdict.started:.1f} s: {verdict.reason}")
    print(f"{len(records)} plays, {len(treated)} in treatment, {len(failed)} failed")
    assert verdict.outcome == "aborted", verdict.summary()
    assert "error_rate" in verdict.reason
    assert treated and all(not r.ok for r in treated)  # the fault really broke their plays
    assert len(treated) < 0.02 * len(records)  # the plays the experiment affected
    # nothing got the fault after the abort: every treated play started before the verdict
    assert max(r.at for r in treated) <= verdict.ended - verdict.started + 1.0
    entries = audit.entries(10, monkey="experiment")
    assert [e.outcome for e in entries[:2]] == ["aborted", "started"]
    assert entries[0].actor == "user:test" and entries[0].target == "manifest-everywhere"
    assert signals.history is not None
    html = weekly_report(signals.history)
    signals.close()
    assert "Chaos experiments" in html and "manifest-everywhere" in html and "aborted" in html


def dashboard_chaos(audit: AuditLog) -> list[dict[str, Any]]:
    """What the dashboard's chaos timeline serves for `audit`, from a real server on loopback."""
    import uvicorn

    from stoic.guard import Registry
    from stoic.web import create_app

    port = free_port()
    app = create_app(Registry(), chaos_log=audit)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(500):  # up to 5 s
            if server.started:
                break
            time.sleep(0.01)
        events: list[dict[str, Any]] = httpx.get(f"http://127.0.0.1:{port}/api/chaos", timeout=5).json()
        return events
    finally:
        server.should_exit = True
        thread.join(5)


def test_an_experiment_against_a_fallback_that_holds_passes(platform: Platform, tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.db", actor="user:test")
    signals = Signals(interval=60.0, db=tmp_path / "signals.db")
    regions = list(platform.topology.regions)
    exp = Experiment(
        "recs-fallback",
        # personalisation fails in every region (a play may cross over): its fallbacks answer
        Scenario("recs-fallback", ["personalisation", *(f"personalisation@{r}" for r in regions)]),
        [Hypothesis("error_rate", 0.05), Hypothesis("p50_latency", 1.0)],
        share=0.1,
        duration=12.0,
        min_samples=10,
        audit=audit,
        codec=HeaderCodec(platform.fit_secret, audience=FIT_AUDIENCE),
        context=signals,
        actor="user:test",
    )
    records = drive(platform, exp, 12.0)
    verdict = exp.verdict
    assert isinstance(verdict, Verdict), exp
    assert verdict.outcome == "passed", verdict.summary()
    treated = [r for r in records if r.fit]
    assert treated and all(r.ok for r in treated)
    # the fallback really answered the treated plays
    assert all(r.sources.get("personalisation") in ("snapshot", "popular") for r in treated)
    assert audit.entries(1, monkey="experiment")[0].outcome == "passed"
    assert signals.history is not None
    section = weekly_report(signals.history).split("<h2>Chaos experiments</h2>")[1]
    signals.close()
    assert "<td>recs-fallback</td><td>passed: " in section
    # and on the dashboard's chaos timeline, beside the start
    served = dashboard_chaos(audit)
    timeline = [(e["target"], e["outcome"]) for e in served if e.get("monkey") == "experiment"]
    assert timeline[-2:] == [("recs-fallback", "started"), ("recs-fallback", "passed")], timeline
