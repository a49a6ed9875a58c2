"""Multi-window, multi-burn-rate SLO alerts (SRE workbook), with time compression."""

from __future__ import annotations

import pytest

from stoic.signals import BurnRate, BurnRateRule, Signals

from .conftest import Clock

PAGE_FAST = BurnRateRule(3600.0, 300.0, 14.4, "page")
PAGE_SLOW = BurnRateRule(21600.0, 1800.0, 6.0, "page")


def _traffic(burn: BurnRate, clock: Clock, seconds: int, error_ratio: float, per_second: int = 100) -> None:
    bad = round(per_second * error_ratio)
    for _ in range(seconds):
        burn.observe(True, at=clock.now, count=per_second - bad)
        if bad:
            burn.observe(False, at=clock.now, count=bad)
        clock.now += 1.0


def test_fast_burn_fires_only_when_long_and_short_windows_agree(clock: Clock) -> None:
    burn = BurnRate(0.999, (PAGE_FAST, PAGE_SLOW), time_scale=60.0, clock=clock)  # 1 h -> 60 s
    _traffic(burn, clock, 400, 0.0)  # healthy: burn 0
    assert not any(w.firing for w in burn.status())
    _traffic(burn, clock, 20, 0.05)  # 5 % errors = burn 50, for 20 "minutes"
    fast, slow = burn.status()
    assert fast.short_burn == pytest.approx(50.0, rel=0.01)
    assert fast.long_burn > 14.4 and fast.firing
    assert fast.long == 60.0 and fast.short == 5.0  # compressed windows
    assert slow.short_burn > 6.0 and slow.long_burn < 6.0 and not slow.firing  # 6 h window not burnt yet


def test_short_window_resets_the_alert_after_recovery(clock: Clock) -> None:
    burn = BurnRate(0.999, (PAGE_FAST,), time_scale=60.0, clock=clock)
    _traffic(burn, clock, 30, 0.0)  # half the long window: not enough history to judge yet
    _traffic(burn, clock, 30, 0.05)
    assert burn.status()[0].firing
    _traffic(burn, clock, 6, 0.0)  # recovered for one short window
    window = burn.status()[0]
    assert window.long_burn > 14.4  # the hour still looks bad...
    assert window.short_burn == 0.0 and not window.firing  # ...but it is over: no page


def test_short_spike_alone_does_not_page(clock: Clock) -> None:
    burn = BurnRate(0.999, (PAGE_FAST,), time_scale=60.0, clock=clock)
    _traffic(burn, clock, 60, 0.0)
    _traffic(burn, clock, 3, 0.2)  # 3 s of 20 % errors
    window = burn.status()[0]
    assert window.short_burn > 14.4 and window.long_burn < 14.4 and not window.firing


def test_signals_raises_and_resolves_a_burn_rate_alert(clock: Clock) -> None:
    signals = Signals(
        interval=1.0,
        day=60.0,
        time_scale=60.0,
        clock=clock,  # 1 h -> 60 s, 5 min -> 5 s
        burn_rules=(PAGE_FAST,),
    )
    for _ in range(60):  # the long window (1 h -> 60 s) needs history before it judges
        signals.observe_start("eu-west", ok=True, count=98)
        signals.observe_start("eu-west", ok=False, count=2)
        clock.now += 1.0
    assert [a for a in signals.evaluate() if a.kind == "burn_rate"] == []  # group_wait (30 s -> 0.5 s)
    clock.now += 1.0
    fired = [a for a in signals.evaluate() if a.kind == "burn_rate"]
    assert len(fired) == 1 and fired[0].status == "firing" and fired[0].severity == "critical"
    assert "burning the 99.90% SLO error budget 20.0x faster" in fired[0].summary
    assert "eu-west" in fired[0].summary and "over 1h and 5m" in fired[0].summary
    for _ in range(6):
        signals.observe_start("eu-west", ok=True, count=100)
        clock.now += 1.0
    assert [a for a in signals.evaluate() if a.kind == "burn_rate"] == []  # cleared, held 5 m -> 5 s
    for _ in range(6):
        signals.observe_start("eu-west", ok=True, count=100)
        clock.now += 1.0
    resolved = [a for a in signals.evaluate() if a.kind == "burn_rate"]
    assert [a.status for a in resolved] == ["resolved"] and resolved[0].id == fired[0].id


def test_bad_slo_and_rules_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"^slo: must be below 1"):
        BurnRate(1.0)
    with pytest.raises(ValueError, match=r"^short: must be <= 3600"):
        BurnRateRule(3600.0, 7200.0, 14.4)
    with pytest.raises(ValueError, match=r"^severity: must be one of page, ticket"):
        BurnRateRule(3600.0, 300.0, 14.4, "sms")
    with pytest.raises(ValueError, match=r"^time_scale: must be > 0"):
        Signals(time_scale=0.0)
