"""Noise control on a real loopback webhook receiver: the burn-rate rules of one SLO are one
alert (group_wait, group_interval), a rule that flaps is one incident (its hold), a rule is
quiet until its long window has history, and a slow receiver never slows `ingest()`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stoic.signals import BurnRate, BurnRateRule, Signals, WebhookReceiver
from stoic.signals.burnrate import DEFAULT_RULES, BurnWindow
from stoic.signals.grouping import BurnGroup, Grouping
from stoic.signals.ownership import Ownership

from .conftest import Clock, Receiver

PAGE_FAST = BurnRateRule(3600.0, 300.0, 14.4, "page")


def _owners(receiver: str) -> Ownership:
    teams = {"playback-team": {"receivers": [receiver]}}
    return Ownership.from_dict({"teams": teams, "default": "playback-team"})


def _signals(clock: Clock, receiver: Receiver, rules: tuple[BurnRateRule, ...], scale: float) -> Signals:
    owners = _owners("hook")
    return Signals(
        interval=1.0,
        day=60.0,
        time_scale=scale,
        burn_rules=rules,
        clock=clock,
        ownership=owners,
        receivers=[WebhookReceiver("hook", receiver.url, timeout=30.0)],
        repeat_interval=3600.0,
    )


def _second(signals: Signals, clock: Clock, error_ratio: float, region: str = "eu-west") -> None:
    bad = round(100 * error_ratio)
    if bad < 100:
        signals.observe_start(region, ok=True, count=100 - bad)
    if bad:
        signals.observe_start(region, ok=False, count=bad)
    clock.now += 1.0
    signals.evaluate()


def _burn_notes(receiver: Receiver) -> list[dict[str, Any]]:
    alerts = [a for body in receiver.bodies for a in body["alerts"]]  # type: ignore[attr-defined]
    return [a for a in alerts if a["labels"]["alertname"] == "SLOBurnRate"]


def test_three_burn_rate_rules_of_one_slo_are_one_alert(clock: Clock, receiver: Receiver) -> None:
    # 1 h -> 60 s, 6 h -> 360 s, 3 d -> 4320 s: the three default rules, compressed 60 times
    signals = _signals(clock, receiver, DEFAULT_RULES, 60.0)
    for _ in range(3900):  # healthy, long enough for the 3-day window to have its history
        _second(signals, clock, 0.0)
    for _ in range(30):  # 50 % of starts fail: the rules fire seconds ("minutes") apart
        _second(signals, clock, 0.5)
    assert signals.router.flush(60.0) == 0
    notes = _burn_notes(receiver)
    assert {n["fingerprint"] for n in notes} == {notes[0]["fingerprint"]}  # one alert, not three
    assert [n["status"] for n in notes] == ["firing"] * len(notes)
    # the first waited group_wait; later ones are updates of it (a rule joined), one per change at most
    assert 1 <= len(notes) <= 3
    last = notes[-1]
    assert last["labels"]["severity"] == "critical"
    for window in ("1h/5m", "6h/30m", "3d/6h"):
        assert window in last["annotations"]["description"]  # every rule is in the one alert
    firing = [a for a in signals.alerts() if a["kind"] == "burn_rate" and a["status"] == "firing"]
    assert len(firing) == 1
    for _ in range(800):  # recovered: every rule clears (3d/6h after its 6 h), then its hold passes
        _second(signals, clock, 0.0)
    assert signals.router.flush(60.0) == 0
    notes = _burn_notes(receiver)
    assert [n["status"] for n in notes].count("resolved") == 1, [(n["status"], n["endsAt"]) for n in notes]
    assert notes[-1]["status"] == "resolved"
    signals.close()


def test_group_interval_holds_back_updates_and_group_wait_the_first_page() -> None:
    group = BurnGroup(Grouping(group_wait=30.0, group_interval=300.0))
    fast, slow = DEFAULT_RULES[0], DEFAULT_RULES[1]
    made: list[tuple[list[str], str, float]] = []

    def make(windows: list[BurnWindow], severity: str, starts_at: float) -> Any:
        from stoic.signals.alerts import Alert

        made.append(([f"{w.rule.long:g}" for w in windows], severity, starts_at))
        return Alert("g", "burn_rate", "firing", severity, "e", "eu", "t", (), "s", "c", "n", starts_at)

    def w(rule: BurnRateRule, burn: float) -> BurnWindow:
        return BurnWindow(rule, rule.long, rule.short, burn, burn)

    def sev(rule: BurnRateRule) -> str:
        return "critical" if rule.severity == "page" else "warning"

    assert group.step(0.0, [w(fast, 20.0), w(slow, 1.0)], make, sev) == []  # waits group_wait
    first = group.step(30.0, [w(fast, 20.0), w(slow, 1.0)], make, sev)
    assert [a.status for a in first] == ["firing"] and made[-1][0] == ["3600"]
    assert group.step(60.0, [w(fast, 20.0), w(slow, 7.0)], make, sev) == []  # joined: waits group_interval
    update = group.step(330.0, [w(fast, 20.0), w(slow, 7.0)], make, sev)
    assert [(a.status, a.revision, a.starts_at) for a in update] == [("firing", 1, 30.0)]
    assert made[-1][0] == ["3600", "21600"]


def test_a_flapping_rule_is_one_incident_until_it_has_been_clear_for_its_hold(
    clock: Clock, receiver: Receiver
) -> None:
    signals = _signals(clock, receiver, (PAGE_FAST,), 60.0)  # 1 h -> 60 s, 5 min -> 5 s (the hold)
    for _ in range(60):
        _second(signals, clock, 0.0)
    for _ in range(9):  # nine flaps: a burst of errors, then a calm just longer than the 5 s window
        for _ in range(2):
            _second(signals, clock, 0.5)
        for _ in range(6):
            _second(signals, clock, 0.0)
    assert signals.router.flush(60.0) == 0
    notes = _burn_notes(receiver)
    assert [n["status"] for n in notes] == ["firing"]  # one page for nine flaps
    for _ in range(15):
        _second(signals, clock, 0.0)
    assert signals.router.flush(60.0) == 0
    notes = _burn_notes(receiver)
    assert [n["status"] for n in notes] == ["firing", "resolved"]
    assert len({n["fingerprint"] for n in notes}) == 1
    assert "Fired and cleared 8 more times within its hold" in notes[1]["annotations"]["description"]
    signals.close()


def test_a_flap_is_counted_in_the_description() -> None:
    group = BurnGroup(Grouping(group_wait=0.0, group_interval=0.0, hold=10.0))
    from stoic.signals.alerts import Alert

    def make(windows: list[BurnWindow], severity: str, starts_at: float) -> Alert:
        return Alert("g", "burn_rate", "firing", severity, "e", "eu", "t", (), "s", "c", "n", starts_at)

    def w(burn: float) -> list[BurnWindow]:
        return [BurnWindow(PAGE_FAST, 60.0, 5.0, burn, burn)]

    out = [group.step(float(t), w(0.0 if t % 3 else 20.0), make, lambda r: "critical") for t in range(12)]
    statuses = [a.status for step in out for a in step]
    assert statuses == ["firing"]  # never resolved: each calm was shorter than the hold
    assert group.flaps == 3
    assert group.step(15.0, w(0.0), make, lambda r: "critical") == []  # clear since 10: held
    resolved = group.step(20.0, w(0.0), make, lambda r: "critical")
    assert [a.status for a in resolved] == ["resolved"]
    assert resolved[0].description == "Fired and cleared 3 more times within its hold; kept as one incident."


def test_a_burn_rate_rule_is_quiet_until_its_long_window_has_history(clock: Clock) -> None:
    slow = DEFAULT_RULES[2]  # 3 d / 6 h, compressed 60 times: 4320 s / 360 s
    burn = BurnRate(0.999, (slow,), time_scale=60.0, clock=clock)
    for _ in range(1000):  # its first "day": 1 % errors burn 10x, far above its 1x factor
        burn.observe(True, count=99)
        burn.observe(False, count=1)
        clock.now += 1.0
    (window,) = burn.status()
    assert window.long_burn > 1.0 and window.short_burn > 1.0
    assert not window.covered and not window.firing  # a 3-day rule cannot judge one day
    for _ in range(3000):
        burn.observe(True, count=99)
        burn.observe(False, count=1)
        clock.now += 1.0
    (window,) = burn.status()
    assert window.covered and window.firing


def test_grouping_values_are_checked() -> None:
    with pytest.raises(ValueError, match=r"^group_wait: must be >= 0, got -1"):
        Grouping(group_wait=-1.0)
    with pytest.raises(ValueError, match=r"^hold: must be <= 604800"):
        Grouping(hold=1e9)
    with pytest.raises(ValueError, match=r"^grouping: must be a Grouping, got dict"):
        Signals(grouping={"group_wait": 1})  # type: ignore[arg-type]


def test_a_slack_receiver_gets_one_text(clock: Clock, receiver: Receiver, tmp_path: Path) -> None:
    owners = _owners("chat")
    signals = Signals(
        interval=1.0,
        day=60.0,
        time_scale=60.0,
        burn_rules=(PAGE_FAST,),
        clock=clock,
        ownership=owners,
        receivers=[WebhookReceiver("chat", receiver.url, timeout=30.0, api="slack")],
        grouping=Grouping(group_wait=0.0),
    )
    for _ in range(60):
        _second(signals, clock, 0.0)
    for _ in range(5):
        _second(signals, clock, 0.5)
    assert signals.router.flush(60.0) == 0
    assert all(set(body) == {"text"} for body in receiver.bodies)  # the starts drop is a text too
    burns = [str(b["text"]) for b in receiver.bodies if "SLO" in str(b["text"])]
    assert len(burns) == 1
    text = burns[0]
    assert text.startswith("*[CRITICAL] Stream start errors in eu-west are burning the 99.90% SLO")
    assert "\nCause: No chaos experiment" in text and "\nNext: " in text
    signals.close()
