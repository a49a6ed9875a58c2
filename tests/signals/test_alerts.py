"""Alerts in plain language: what happened, likely cause, next step, owning team."""

from __future__ import annotations

import re

import pytest

from stoic.guard import BreakerPolicy, Dependency, Fallback, Registry
from stoic.signals import ContextEvent, Ownership, Signals, likely_cause

from .conftest import Clock
from .helpers import feed

OWNERS = {
    "teams": {
        "edge-eu": {"receivers": ["edge-eu-pager"]},
        "playback-team": {"receivers": ["playback-pager"]},
        "sre": {"receivers": ["sre-chat"]},
    },
    "regions": {"eu-west": "edge-eu"},
    "default": "sre",
}


def _learnt(clock: Clock, **kw: object) -> Signals:
    signals = Signals(interval=1.0, day=60.0, ownership=Ownership.from_dict(OWNERS), clock=clock, **kw)  # type: ignore[arg-type]
    feed(signals, clock, 180)  # three compressed days of normal traffic
    assert signals.evaluate() == []  # nothing to report on a normal day
    return signals


def test_drop_alert_names_what_cause_next_step_and_team(clock: Clock) -> None:
    signals = _learnt(clock)
    signals.add_event(
        "zone_outage",
        target="eu-west-1a",
        region="eu-west",
        description="Chaos Gorilla took down zone eu-west-1a",
    )
    feed(signals, clock, 2)
    feed(signals, clock, 6, factor=0.6)  # 40 % fewer starts
    alerts = [a for a in signals.evaluate() if a.indicator == "sps"]
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.status == "firing" and alert.severity == "critical"
    assert alert.summary.startswith("Stream starts in eu-west are ")
    assert "% below expected for " in alert.summary and alert.summary.endswith(" UTC")
    drop = int(alert.summary.split(" are ")[1].split("%")[0])
    assert 30 <= drop <= 50
    assert alert.cause.startswith("Chaos Gorilla took down zone eu-west-1a at ")
    assert "min before" in alert.cause
    assert "evacuate eu-west" in alert.next_step and "other eu-west zones" in alert.next_step
    assert alert.team == "edge-eu" and alert.receivers == ("edge-eu-pager",)
    as_dict = alert.to_dict()
    assert as_dict["summary"] == alert.summary and as_dict["team"] == "edge-eu"


def test_breaker_from_stoic_guard_is_the_cause_and_its_owner_is_paged(clock: Clock) -> None:
    registry = Registry()
    playback = Dependency(
        "playback-api",
        timeout=None,
        owner="playback-team",
        registry=registry,
        breaker=BreakerPolicy(min_calls=5, check_interval=0.0, open_for=60.0),
        fallbacks=[Fallback.value("cached", name="cached-manifest")],
    )
    signals = _learnt(clock)
    signals.watch(registry)

    def broken() -> str:
        raise ConnectionError("playback-api is down")

    answers = [playback.call(broken) for _ in range(10)]
    assert answers == ["cached"] * 10 and playback.breaker.state == "open"
    assert signals.fallback_counts() == {"playback-api": {"cached-manifest": 10}}
    feed(signals, clock, 6, factor=0.5)
    alert = next(a for a in signals.evaluate() if a.indicator == "sps")
    assert alert.cause.startswith("The circuit breaker for playback-api opened; fallbacks answered ")
    assert "Check the health and recent changes of playback-api" in alert.next_step
    assert alert.team == "playback-team" and alert.receivers == ("playback-pager",)


def test_without_a_cause_the_alert_says_so_and_points_to_the_region_owner(clock: Clock) -> None:
    signals = _learnt(clock)
    feed(signals, clock, 6, factor=0.5)
    alert = next(a for a in signals.evaluate() if a.indicator == "sps")
    assert alert.cause.startswith(
        "No chaos experiment, breaker change, zone outage or deploy was reported in eu-west"
    )
    assert "edge-eu" in alert.next_step
    assert alert.team == "edge-eu"


def test_alert_resolves_when_the_signal_recovers(clock: Clock) -> None:
    signals = _learnt(clock)
    feed(signals, clock, 6, factor=0.5)
    fired = [a for a in signals.evaluate() if a.indicator == "sps"]
    feed(signals, clock, 5)
    resolved = [a for a in signals.evaluate() if a.indicator == "sps"]
    assert [a.status for a in resolved] == ["resolved"]
    assert resolved[0].id == fired[0].id and resolved[0].ends_at is not None
    listed = signals.alerts()
    assert listed[0]["status"] == "resolved" and listed[0]["id"] == fired[0].id


def test_rising_errors_get_their_own_alert(clock: Clock) -> None:
    signals = _learnt(clock)
    feed(signals, clock, 5, error_ratio=0.2)
    alert = next(a for a in signals.evaluate() if a.indicator == "error_rate")
    assert re.match(
        r"The stream start error rate in eu-west is (19|20|21)\.\d%, expected 0\.\d%, for \d\d:\d\d UTC$",
        alert.summary,
    ), alert.summary
    assert alert.severity == "critical"


def test_likely_cause_prefers_a_zone_outage_in_the_region_over_a_deploy() -> None:
    events = [
        ContextEvent(100.0, "deploy", "catalog", "catalog v42"),
        ContextEvent(90.0, "zone_outage", "eu-west-1b", "zone down", region="eu-west"),
        ContextEvent(95.0, "chaos", "us-east-1a", "elsewhere", region="us-east"),
        ContextEvent(10.0, "zone_outage", "eu-west-1c", "too long ago", region="eu-west"),
    ]
    cause = likely_cause(events, "eu-west", 110.0, lookback=60.0)
    assert cause is not None and cause.target == "eu-west-1b"
    assert likely_cause(events, "ap-south", 110.0, lookback=60.0) == events[0]  # global kinds only
    assert likely_cause(events, "eu-west", 500.0, lookback=60.0) is None


def test_ownership_config_errors_name_the_field() -> None:
    with pytest.raises(
        ValueError, match=r"^ownership.regions.eu-west: team 'ghosts' is not in ownership.teams"
    ):
        Ownership.from_dict({"teams": {"sre": {}}, "regions": {"eu-west": "ghosts"}})
    with pytest.raises(ValueError, match=r"^ownership.colour: unknown field"):
        Ownership.from_dict({"colour": "red"})
    with pytest.raises(ValueError, match=r"^ownership.teams.sre.receivers: must be a list"):
        Ownership.from_dict({"teams": {"sre": {"receivers": "pager"}}})
