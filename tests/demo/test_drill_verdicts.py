"""Every strike of the demo's drill ends in a verdict: audited, and shown in the report."""

from __future__ import annotations

import json
from pathlib import Path

from stoic.chaos import KONG, AuditLog
from stoic.demo import ChaosEvent, DemoOptions, Strike, run_demo
from stoic.demo._progress import ProgressLine
from stoic.demo.drill import judge_strike
from stoic.demo.viewers import PlayRecord


def test_a_region_kill_in_the_demo_is_judged_audited_and_reported(tmp_path: Path) -> None:
    options = DemoOptions(
        duration=30.0, seed=7, out=tmp_path, peak=15.0, start_hour=13.0,
        strikes=[Strike("chaos-kong", 0.45, "eu-west")],
    )
    report = run_demo(options, progress=ProgressLine(enabled=False))

    (kong,) = report.events
    assert kong.outcome == "terminated" and kong.verdict is not None
    assert kong.verdict.outcome == "passed", kong.verdict  # us-east held: no play failed
    (check,) = kong.verdict.checks
    assert check.kpi == "error_rate" and check.deviation == 0.0 and min(check.samples) >= 10
    note = f"verdict passed: {kong.verdict.reason}"
    assert note in kong.notes and note.startswith("verdict passed: error_rate 0.0% vs control 0.0%")

    with AuditLog(tmp_path / "chaos" / "audit.sqlite") as audit:
        (entry,) = audit.entries(None, monkey=KONG, action="experiment")
    assert (entry.outcome, entry.target, entry.region) == ("passed", "eu-west", "eu-west")
    assert entry.reason == kong.verdict.reason

    assert f"then: {note}" in (tmp_path / "report.txt").read_text()
    (event,) = json.loads((tmp_path / "report.json").read_text())["events"]
    assert event["verdict"]["outcome"] == "passed" and event["verdict"]["checks"][0]["deviation"] == 0.0


def _play(i: int, at: float, ok: bool, region: str) -> PlayRecord:
    return PlayRecord(f"p{i}", f"u{i}", region, at, ok=ok, latency=0.05, region=region if ok else "")


def test_a_strike_the_survivors_did_not_absorb_fails_with_its_deviation() -> None:
    event = ChaosEvent("chaos-kong", "eu-west", at=10.0, description="Kong", ends=20.0, outcome="terminated")
    before = [_play(i, 0.5 * i, True, "us-east" if i % 2 else "eu-west") for i in range(20)]
    # during: eu-west's viewers are not moved; nobody answers them; us-east keeps serving its own
    during = [
        _play(100 + i, 10.0 + 0.5 * i, i % 2 == 1, "us-east" if i % 2 else "eu-west") for i in range(20)
    ]
    verdict = judge_strike(event, before + during, end=30.0)
    assert verdict.outcome == "failed"
    (check,) = verdict.checks
    assert check.samples == (20, 10)  # eu-west's own answers before the strike are left out
    assert check.treatment == 0.5 and check.control == 0.0 and check.deviation == 0.5
    assert verdict.reason.startswith("error_rate 50.0% vs control 0.0% (+50.0 points")
    assert verdict.reason.endswith("beyond tolerance 5 points")

    few = judge_strike(event, during[:4], end=30.0)
    assert few.outcome == "inconclusive"
    assert few.reason == "too few plays: 4 during / 0 before; 10 each needed"
