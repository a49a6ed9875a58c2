"""No data is its own state: a gap or a stopped source is never judged as a drop, and says so once."""

from __future__ import annotations

import math
import random

import pytest

from stoic.signals import Signals

from .conftest import Clock
from .helpers import feed


def _metric(signals: Signals, clock: Clock, seconds: int, *, level: float = 50.0, seed: int = 3) -> None:
    rng = random.Random(seed + int(clock.now))
    for _ in range(seconds):
        signals.record("orders", level + 10 * math.sin(clock.now / 9.5) + rng.gauss(0, 1), "eu-west")
        clock.now += 1.0
        if int(clock.now) % 10 == 0:
            signals.evaluate()


def test_a_silent_metric_raises_one_no_data_alert_not_a_drop(clock: Clock) -> None:
    signals = Signals(interval=1.0, day=60.0, clock=clock)
    _metric(signals, clock, 180)
    signals.evaluate()
    silence = clock.now
    clock.now += 20.0  # the pipeline that sends "orders" stops for 20 buckets
    changed = signals.evaluate()
    assert [(a.kind, a.indicator, a.status) for a in changed] == [("no_data", "orders", "firing")]
    assert changed[0].summary.startswith("No data for orders in eu-west since ")
    assert "not judged as a drop" in changed[0].cause
    clock.now += 20.0
    assert signals.evaluate() == []  # once, not every bucket
    _metric(signals, clock, 5)
    signals.evaluate()
    after = [(a["kind"], a["status"]) for a in signals.alerts() if float(a["starts_at"]) >= silence]  # type: ignore[arg-type]
    assert after == [("no_data", "resolved")], after


def test_a_custom_metric_is_judged_in_both_directions(clock: Clock) -> None:
    signals = Signals(interval=1.0, day=60.0, clock=clock)
    _metric(signals, clock, 180)
    before = clock.now
    _metric(signals, clock, 6, level=2.5)  # a 95 % drop in orders
    signals.evaluate()
    drops = [a for a in signals.alerts() if a["kind"] == "drop" and float(a["starts_at"]) >= before]  # type: ignore[arg-type]
    assert drops and "orders in eu-west is " in str(drops[0]["summary"])
    assert "below expected" in str(drops[0]["summary"])


def test_a_stopped_source_is_no_data_while_a_dark_region_is_an_outage(clock: Clock) -> None:
    signals = Signals(interval=1.0, day=60.0, clock=clock)
    for region in ("eu-west", "us-east"):
        feed(signals, clock, 0, region)
    for _ in range(180):
        feed(signals, clock, 0, "us-east")
        feed(signals, clock, 1, "eu-west", evaluate_every=10)
        clock.now -= 1.0
        feed(signals, clock, 1, "us-east", evaluate_every=10)
    assert [a for a in signals.alerts() if a["kind"] == "drop"] == []
    clock.now += 30.0  # nothing arrives from anywhere: no data, not a drop to zero
    signals.evaluate()
    assert {(a["kind"], a["region"]) for a in signals.alerts()} == {
        ("no_data", "eu-west"),
        ("no_data", "us-east"),
    }
    feed(signals, clock, 6, "us-east")  # us-east comes back, eu-west stays dark: that is an outage
    signals.evaluate()
    kinds = {(a["kind"], a["region"], a["status"]) for a in signals.alerts()}
    assert ("drop", "eu-west", "firing") in kinds, kinds


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"value": math.nan}, r"^value: must be a finite number of magnitude at most 1e\+150, got nan$"),
        ({"value": 1e308}, r"^value: must be a finite number of magnitude at most 1e\+150, got 1e\+308$"),
        ({"value": 1.0, "at": 1_764_028_800_000.0}, r"^at: .* \(milliseconds\? divide by 1000\)$"),
        ({"value": 1.0, "at": -1.0}, r"^at: must be epoch seconds between 2000-01-01 and 2100-01-01"),
        ({"value": 1.0, "at": 1_764_028_800.0 + 3600}, r"^at: .* is more than 60 s ahead of now"),
    ],
)
def test_every_entry_refuses_what_would_poison_a_model(
    clock: Clock, kwargs: dict[str, float], message: str
) -> None:
    signals = Signals(interval=1.0, day=60.0, clock=clock)
    signals.record("orders", 5.0, "eu-west")
    with pytest.raises(ValueError, match=message):
        signals.record("orders", region="eu-west", **kwargs)  # type: ignore[arg-type]
    at = kwargs.get("at")
    if at is not None:
        with pytest.raises(ValueError, match=message):
            signals.observe_start("eu-west", at=at)
        with pytest.raises(ValueError, match=message):
            signals.observe_playback("eu-west", watched_s=10.0, at=at)
    clock.now += 5.0
    signals.evaluate()
    assert [p["value"] for p in signals.view(60.0)["series"][0]["points"]][:1] == [5.0]  # nothing lost
