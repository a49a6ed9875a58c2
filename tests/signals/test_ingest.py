"""The JSON ingest body and the view the web layer draws."""

from __future__ import annotations

import json

import pytest

from stoic.signals import IngestError, Signals

from .conftest import Clock
from .helpers import feed


def test_ingest_records_every_type(clock: Clock) -> None:
    clock.now += 5.0  # mid-bucket, so "a second ago" is the same bucket
    signals = Signals(interval=10.0, day=600.0, clock=clock)
    body = {
        "observations": [
            {"type": "start", "region": "eu-west", "ok": True, "account": "acct-1"},
            {"type": "start", "region": "eu-west", "ok": False, "account": "acct-1", "at": clock.now - 1},
            {"type": "playback", "region": "eu-west", "watched_s": 30.0, "rebuffer_s": 3.0},
            {"type": "metric", "name": "sps", "region": "us-east", "value": 812.5},
            {
                "type": "event",
                "kind": "chaos",
                "target": "eu-west-1a",
                "region": "eu-west",
                "description": "Chaos Gorilla took down zone eu-west-1a",
            },
        ]
    }
    assert signals.ingest(json.loads(json.dumps(body))) == {"accepted": 5}
    idx = signals.indicators.index(clock.now)
    assert signals.indicators.counts("eu-west", idx) == (1, 1)
    assert signals.indicators.value("error_rate", "eu-west", idx) == 0.5
    assert signals.indicators.value("rebuffer_ratio", "eu-west", idx) == pytest.approx(3.0 / 33.0)
    assert signals.indicators.value("sps", "us-east", idx) == 812.5
    view = signals.view(600.0)
    assert view["events"][0]["target"] == "eu-west-1a"  # type: ignore[index]
    assert view["churn"][0]["account"] == "acct-1"  # type: ignore[index]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ([], "body", "body: must be a JSON object"),
        (
            {"observations": []},
            "observations",
            "observations: must be a list of 1..1000 items, got a list of 0",
        ),
        ({"observations": [{"type": "start"}] * 1001}, "observations", "1..1000 items, got a list of 1001"),
        ({"obs": []}, "obs", "obs: unknown field; allowed: observations"),
        (
            {"observations": [{"type": "view"}]},
            "observations[0].type",
            "observations[0].type: must be one of start, playback, metric, event, got 'view'",
        ),
        ({"observations": [{"type": "start", "ok": "yes"}]}, "observations[0].ok", "must be true or false"),
        (
            {"observations": [{"type": "start"}, {"type": "playback", "watched_s": -3}]},
            "observations[1].watched_s",
            "observations[1].watched_s: must be >= 0, got -3",
        ),
        (
            {"observations": [{"type": "start", "region": "eu west"}]},
            "observations[0].region",
            "observations[0].region: must be 1..64 characters",
        ),
        (
            {"observations": [{"type": "metric", "name": "SPS!", "value": 1}]},
            "observations[0].name",
            "must be 1..64 characters of a-z 0-9 _",
        ),
        (
            {"observations": [{"type": "metric", "name": "sps", "value": float("nan")}]},
            "observations[0].value",
            "observations[0].value: must be a finite number",
        ),
        (
            {"observations": [{"type": "start", "at": 1.0}]},
            "observations[0].at",
            "observations[0].at: must be epoch seconds between 2000-01-01 and 2100-01-01, got 1.0",
        ),
        (
            {"observations": [{"type": "start", "at": 1_764_028_800_000}]},
            "observations[0].at",
            "(milliseconds? divide by 1000)",
        ),
        (
            {"observations": [{"type": "start", "at": 1_700_000_000}]},
            "observations[0].at",
            "observations[0].at: must be within the last 7 days and at most 60 s ahead of now",
        ),
        (
            {"observations": [{"type": "metric", "name": "orders", "value": 1e308}]},
            "observations[0].value",
            "observations[0].value: must be a finite number of magnitude at most 1e+150, got 1e+308",
        ),
        (
            {"observations": [{"type": "event", "kind": "meteor", "target": "x"}]},
            "observations[0].kind",
            "must be one of chaos, experiment, zone_outage, breaker, deploy, note",
        ),
        (
            {"observations": [{"type": "start", "colour": "red"}]},
            "observations[0].colour",
            "observations[0].colour: unknown field for type start; allowed: account, at, ok, region, type",
        ),
    ],
)
def test_bad_bodies_name_the_field_and_record_nothing(
    clock: Clock, body: object, field: str, message: str
) -> None:
    signals = Signals(interval=10.0, day=600.0, clock=clock)
    with pytest.raises(IngestError) as info:
        signals.ingest(body)
    assert info.value.field == field
    assert message in str(info.value)
    assert signals.indicators.regions() == []  # all or nothing


def test_view_returns_series_predictions_and_alerts_as_json(clock: Clock) -> None:
    signals = Signals(interval=1.0, day=60.0, clock=clock)
    feed(signals, clock, 180)
    feed(signals, clock, 6, factor=0.4)
    view = signals.view(window=30.0)
    assert json.loads(json.dumps(view)) == view  # JSON-ready as it is
    assert view["interval"] == 1.0 and view["now"] == clock.now
    series = {(s["indicator"], s["region"]): s for s in view["series"]}  # type: ignore[union-attr,index]
    assert set(series) == {("sps", "eu-west"), ("error_rate", "eu-west"), ("rebuffer_ratio", "eu-west")}
    sps = series[("sps", "eu-west")]
    assert (
        sps["label"] == "Stream starts per second"
        and sps["unit"] == "starts/s"
        and sps["direction"] == "down"
    )
    points = sps["points"]
    assert 28 <= len(points) <= 31
    assert all(
        p["expected"] is not None and p["lower"] is not None and p["lower"] < p["expected"] for p in points
    )
    assert points[-1]["value"] < points[-1]["lower"]
    assert view["alerts"][0]["status"] == "firing" and view["alerts"][0]["indicator"] == "sps"  # type: ignore[index]
    assert view["burn_rate"][0]["region"] == "eu-west"  # type: ignore[index]
    with pytest.raises(ValueError, match=r"^window: must be > 0"):
        signals.view(window=0)
