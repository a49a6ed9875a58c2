"""The report's arithmetic on hand-made plays: percentiles, fallback counts, event windows, files."""

from __future__ import annotations

from pathlib import Path

from stoic.demo import ChaosEvent, DailyPattern, PlayRecord, Report
from stoic.demo.report import fallback_counts, percentile


def record(at: float, ok: bool = True, latency: float = 0.1, **sources: str) -> PlayRecord:
    rec = PlayRecord(
        f"p{at}", "u00001", "us-east", at, ok=ok, latency=latency, status="ok" if ok else "unavailable"
    )
    rec.sources = {"personalisation": "primary", "manifest": "primary", **sources}
    rec.watched, rec.rebuffer = (4.0, 1.0) if ok else (0.0, 0.0)
    if not ok:
        rec.error = "edge.us-east: no zone answered"
    return rec


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile([], 0.99) == 0.0


def test_fallbacks_count_every_non_primary_source() -> None:
    recs = [record(1, personalisation="snapshot"), record(2, personalisation="snapshot", edge="other-zone")]
    assert fallback_counts(recs) == {"personalisation: snapshot": 2, "edge: other-zone": 1}


def test_an_event_is_judged_on_the_plays_that_started_while_it_lasted(tmp_path: Path) -> None:
    pattern = DailyPattern(duration=40.0, peak=2.0)
    plays = [record(t) for t in (1.0, 2.0, 3.0)]
    plays += [
        record(10.0, region="other-region"),
        record(11.0, latency=0.9, region="other-region"),
        record(12.0, ok=False),
    ]
    event = ChaosEvent(
        "chaos-kong",
        "us-east",
        at=10.0,
        description="Chaos Kong takes down region us-east",
        ends=14.0,
        outcome="terminated",
        victims=["edge-us-east-1a"],
    )
    report = Report(plays, [event], pattern, duration=40.0, seed=3)
    impact = report.impact(event)
    assert (impact.plays, impact.failed, impact.degraded) == (3, 1, 2)
    assert impact.sps == 2 / 4.0
    assert impact.fallbacks == {"region: other-region": 2}
    assert impact.p99_ms == 900.0
    assert report.rebuffer_ratio == 5.0 / 25.0

    text = report.summary()
    assert "plays: 6 started, 5 ok, 1 user-visible failures (16.67%)" in text
    assert "1 x unavailable: edge.us-east: no zone answered" in text
    assert "region: other-region" in text and "failover" in text
    paths = report.write(tmp_path)
    assert paths["chart"].read_bytes()[:4] == b"\x89PNG"
    assert '"failed": 1' in paths["json"].read_text()


def test_alerts_are_stamped_like_events_and_errors_are_reported_not_dropped() -> None:
    from stoic.demo._progress import ProgressLine
    from stoic.demo.run import _Errors

    said: list[str] = []
    progress = ProgressLine(enabled=False)
    progress.say = said.append  # type: ignore[method-assign]
    errors = _Errors("stoic.signals", progress)
    for _ in range(3):
        with errors.caught():
            raise ValueError("region: must be a short name")
    assert said == ["stoic.signals: ValueError: region: must be a short name"]  # said once, counted thrice

    pattern = DailyPattern(duration=120.0, peak=2.0)
    started = 1_764_028_800.0
    alert = {
        "severity": "critical",
        "summary": "Stream starts in us-east are 100% below expected",
        "team": "sre",
        "starts_at": started + 80.0,
    }
    report = Report(
        [], [], pattern, duration=120.0, seed=1, alerts=[alert], started_at=started, errors=dict(errors.seen)
    )
    text = report.summary()
    assert "  [ 80.0s, 22:00] [critical] Stream starts in us-east are 100% below expected -> sre" in text
    assert "error: stoic.signals: ValueError: region: must be a short name (x3)" in text
    assert report.to_dict()["errors"] == {"stoic.signals: ValueError: region: must be a short name": 3}
