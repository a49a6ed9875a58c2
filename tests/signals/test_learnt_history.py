"""A hub that learns the weeks before it started: the first day is judged against them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stoic.demo.viewers import daily_shape
from stoic.signals import Signals

from .conftest import Clock

INTERVAL, DAY = 2.5, 120.0  # a compressed day of 48 buckets, as `stoic demo` has
PER_BUCKET = 15.0  # stream starts a region carries in a bucket at the evening peak


def _starts(rng: np.random.Generator, phase: float) -> int:
    """A region's stream starts in the bucket `phase` seconds into a day starting at 06:00."""
    return int(rng.poisson(PER_BUCKET * daily_shape(6.0 + 24.0 * phase / DAY)))


def _day_after_a_week(seed: int, *, outage: range | None) -> list[dict[str, object]]:
    """A week of two regions' starts learnt as history, then one live day in which us-east serves
    nothing during `outage` (bucket numbers); returns the drop alerts."""
    rng = np.random.default_rng(seed)
    clock = Clock()
    t0 = clock.now
    signals = Signals(interval=INTERVAL, day=DAY, clock=clock)
    first = math.floor(t0 / INTERVAL)
    for region in ("eu-west", "us-east"):
        week = range(first - 7 * 48, first)
        learnt = [(i * INTERVAL, _starts(rng, (i * INTERVAL - t0) % DAY) / INTERVAL) for i in week]
        assert signals.learn_history("sps", region, learnt) == 7 * 48
    for b in range(48):
        for region, at in (("eu-west", 0.5), ("us-east", 1.0)):
            clock.now = t0 + b * INTERVAL + at
            n = 0 if region == "us-east" and outage and b in outage else _starts(rng, b * INTERVAL)
            if n:
                signals.observe_start(region, ok=True, count=n)
        clock.now = t0 + b * INTERVAL + 2.0
        signals.evaluate()
    return [a for a in signals.alerts() if a["kind"] == "drop"]


def test_a_region_evacuated_at_the_evening_peak_pages_within_two_buckets() -> None:
    # Chaos Kong at 21:50: us-east's starts, about 14 a bucket, stop for four buckets.
    outage = range(32, 36)
    paged = 0
    for seed in range(10):
        drops = _day_after_a_week(seed, outage=outage)
        assert {a["region"] for a in drops} <= {"us-east"}, drops
        first = min((float(a["starts_at"]) for a in drops), default=math.inf)  # type: ignore[arg-type]
        paged += first <= Clock().now + (outage.start + 1) * INTERVAL
    assert paged >= 9


def test_a_calm_day_after_a_learnt_week_pages_nobody() -> None:
    # The evening's fall from the peak to the night (four fifths in five hours) is what every
    # learnt day did: it is not a drop, although the recent level alone would lag it.
    for seed in range(10):
        assert _day_after_a_week(seed, outage=None) == [], seed


def test_history_is_checked_point_by_point_and_keeps_what_came_before(clock: Clock) -> None:
    signals = Signals(interval=60.0, clock=clock)
    past = clock.now - 3600.0
    with pytest.raises(ValueError, match=r"^points\[2\]\.value: must be a finite number"):
        signals.learn_history("sps", "eu-west", [(past, 1.0), (past + 60, 2.0), (past + 120, math.nan)])
    with pytest.raises(ValueError, match=r"^points\[0\]\.at: points must come in time order"):
        signals.learn_history("sps", "eu-west", [(past, 1.0)])  # the first two were kept
    with pytest.raises(ValueError, match=r"^points\[0\]\.at: .* is after now"):
        signals.learn_history("sps", "eu-west", [(clock.now + 60.0, 1.0)])
    with pytest.raises(ValueError, match=r"^points\[0\]: must be an \(at, value\) pair"):
        signals.learn_history("sps", "eu-west", [[past + 180, 1.0]])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"^region: "):
        signals.learn_history("sps", "", [])
    assert signals.learn_history("sps", "eu-west", [(past + 180, 3.0), (past + 240, None)]) == 2
