"""Indicators in fixed buckets: derived values, outage zeros, bounded memory."""

from __future__ import annotations

import pytest

from stoic.signals import Indicators

from .conftest import Clock


def test_derived_indicators_per_bucket(clock: Clock) -> None:
    ind = Indicators(10.0, clock=clock)
    ind.observe_start("eu-west", ok=True, count=95)
    ind.observe_start("eu-west", ok=False, count=5)
    ind.observe_playback("eu-west", watched_s=90.0, rebuffer_s=10.0)
    i = ind.index(clock.now)
    assert ind.value("sps", "eu-west", i) == 9.5
    assert ind.value("error_rate", "eu-west", i) == 0.05
    assert ind.value("rebuffer_ratio", "eu-west", i) == 0.1
    assert ind.names("eu-west") == ["sps", "error_rate", "rebuffer_ratio"]


def test_silence_is_an_outage_only_while_the_source_goes_on(clock: Clock) -> None:
    ind = Indicators(10.0, clock=clock)
    ind.observe_start("eu-west", count=50)
    ind.observe_start("us-east", count=50)
    first = ind.index(clock.now)
    clock.now += 35.0  # three buckets in which nothing arrives from anywhere
    assert ind.value("sps", "eu-west", first) == 5.0
    assert ind.value("sps", "eu-west", first + 2) is None  # the source stopped: no data, not zero
    ind.observe_start("us-east", count=40)  # the source goes on, eu-west stays silent
    assert ind.value("sps", "eu-west", first + 2) == 0.0  # now eu-west's silence is an outage
    assert ind.value("sps", "eu-west", first - 1) is None  # before the region existed
    assert ind.value("error_rate", "eu-west", first + 2) is None


def test_recorded_metric_overrides_and_averages(clock: Clock) -> None:
    ind = Indicators(60.0, clock=clock)
    ind.observe_start("us-east", count=600)
    ind.record("sps", 800.0, "us-east")
    ind.record("sps", 900.0, "us-east")
    ind.record("cdn_hit_ratio", 0.97, "us-east")
    i = ind.index(clock.now)
    assert ind.value("sps", "us-east", i) == 850.0
    assert ind.value("cdn_hit_ratio", "us-east", i) == 0.97
    assert "cdn_hit_ratio" in ind.names("us-east")


def test_memory_is_bounded(clock: Clock) -> None:
    ind = Indicators(1.0, retention=50, max_regions=2, clock=clock)
    for _ in range(1000):
        ind.observe_start("eu-west")
        clock.now += 1.0
    assert len(ind._buckets["eu-west"]) <= 51
    ind.observe_start("eu-west", at=clock.now - 500)  # too old: dropped, counted
    assert ind.dropped == 1
    ind.observe_start("us-east")
    with pytest.raises(ValueError, match=r"^region: at most 2 regions are tracked"):
        ind.observe_start("ap-south")


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"^interval: must be > 0"):
        Indicators(0.0)
    with pytest.raises(ValueError, match=r"^retention: must be between 2 and 1000000"):
        Indicators(1.0, retention=1)
