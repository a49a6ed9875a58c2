"""`SignalsService` in process, with a settable clock and a real HTTP receiver on 127.0.0.1 that
stands in for Alertmanager's `/api/v2/alerts`: a custom metric with two dimensions is judged per
label set, bad bodies record nothing, late data and one label set too many are refused by name,
files backfill, ratios burn their SLO budget."""

from __future__ import annotations

import json
import math
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stoic.signals.config import parse
from stoic.signals.ingest import IngestError
from stoic.signals.outbox import Notification, Outbox
from stoic.signals.service import SignalsService

from .conftest import Clock, Receiver

MINUTE = 60.0


def latency(t: float, rng: random.Random, base: float) -> float:
    """A p99 latency in seconds with a daily wave and a little noise."""
    return base * (1.0 + 0.3 * math.sin(2 * math.pi * (t % 86400) / 86400)) * rng.uniform(0.95, 1.05)


def config(tmp_path: Path, body: str, receiver: Receiver | None = None) -> Any:
    am = f'[receivers]\nalertmanager = ["{receiver.url}"]\nresend = "30s"\n' if receiver else ""
    return parse(f'[service]\nhistory = "{tmp_path / "signals.db"}"\n{am}{body}')


LATENCY = """
[[indicators]]
name = "checkout_latency"
source = "push"
kind = "latency"
labels = ["region", "method"]
direction = "up"
team = "payments"
severity = "critical"
summary = "{method} checkout in {region} takes {value:.2f} s, expected {expected:.2f} s"
next_step = "Look at the slowest dependency of checkout in {region}."
runbook_url = "https://runbooks.example/latency"
"""

FILE_INDICATOR = """
[[indicators]]
name = "latency"
source = "file"
file = "{file}"
kind = "latency"
labels = ["region"]
team = "payments"
"""

SERIES = (("eu", "GET", 0.2), ("us", "POST", 0.5))


@pytest.fixture
def make(tmp_path: Path, clock: Clock) -> Iterator[Any]:
    made: list[SignalsService] = []

    def build(body: str, receiver: Receiver | None = None) -> SignalsService:
        service = SignalsService(config(tmp_path, body, receiver), clock=clock)
        made.append(service)
        return service

    yield build
    for s in made:
        s.close()


def metric(name: str, labels: dict[str, str], value: float, at: float) -> dict[str, Any]:
    return {"type": "metric", "name": name, "labels": labels, "value": value, "at": at}


def feed(
    service: SignalsService, clock: Clock, minutes: int, *, spike: dict[str, float] | None = None
) -> None:
    """`minutes` one-minute points of both label sets, sent in bodies of up to 1000."""
    rng = random.Random(int(clock.now))
    batch: list[dict[str, Any]] = []
    for _ in range(minutes):
        for region, method, base in SERIES:
            value = (spike or {}).get(region) or latency(clock.now, rng, base)
            batch.append(metric("checkout_latency", {"region": region, "method": method}, value, clock.now))
        clock.now += MINUTE
        if len(batch) >= 998:
            service.ingest({"observations": batch})
            batch = []
    if batch:
        service.ingest({"observations": batch})


def test_a_custom_metric_with_two_dimensions_is_judged_and_pages_alertmanager(
    make: Any, clock: Clock, receiver: Receiver
) -> None:
    service = make(LATENCY, receiver)
    feed(service, clock, 2 * 1440)  # two days learnt
    assert service.alerts() == []
    view = service.view(window=3600.0)
    assert sorted(s["region"] for s in view["series"]) == [
        '{region="eu",method="GET"}',
        '{region="us",method="POST"}',
    ]
    feed(service, clock, 3, spike={"eu": 2.0})  # eu's GET checkout ten times slower
    firing = [a for a in service.alerts() if a["status"] == "firing"]
    assert [(a["labels"], a["kind"]) for a in firing] == [({"region": "eu", "method": "GET"}, "drop")]
    assert service.router.flush(10.0) == 0
    posts = [(path, body) for path, body in zip(receiver.paths, receiver.bodies, strict=True)]
    assert [p for p, _ in posts] == ["/hook/api/v2/alerts"]
    [sent] = posts[0][1]  # Alertmanager's API takes a list of alerts
    assert sent["labels"] == {
        "alertname": "IndicatorAnomaly",
        "team": "payments",
        "severity": "critical",
        "indicator": "checkout_latency",
        "region": "eu",
        "method": "GET",
    }
    notes = sent["annotations"]
    assert notes["summary"].startswith("GET checkout in eu takes 2.00 s, expected 0.")
    assert notes["next_step"].startswith("Look at the slowest dependency")
    assert notes["runbook_url"] == "https://runbooks.example/latency"
    assert "checkout_latency{region=\"eu\",method=\"GET\"} is 2 seconds" in notes["description"]
    assert notes["cause"].startswith("No chaos experiment, breaker change, zone outage or deploy")
    assert "endsAt" not in sent

    feed(service, clock, 10)  # back to normal: resolved once, with its end
    assert service.router.flush(10.0) == 0
    resolved = [b[0] for b in receiver.bodies[1:] if "endsAt" in b[0]]
    assert len(resolved) == 1 and resolved[0]["labels"]["region"] == "eu"
    assert resolved[0]["startsAt"] == sent["startsAt"] and resolved[0]["endsAt"] > sent["startsAt"]
    with sqlite3.connect(service.config.path(service.config.history)) as db:
        kinds = db.execute("SELECT status FROM alerts WHERE indicator = 'checkout_latency'").fetchall()
        points = db.execute("SELECT COUNT(*) FROM rollups WHERE indicator = 'checkout_latency'").fetchone()[0]
    assert kinds == [("resolved",)]
    assert points >= 2 * 2 * 1440


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            {"labels": {"region": "eu", "zone": "a"}},
            "observations[1].labels.zone: not a label of checkout_latency; declared: region, method",
        ),
        (
            {"labels": {"region": "eu"}},
            "observations[1].labels.method: required for checkout_latency (declared: region, method)",
        ),
        (
            {"name": "checkout_latencies"},
            "observations[1].name: must be a declared indicator (checkout_latency), got 'checkout_latencies'",
        ),
        (
            {"value": -1.0},
            "observations[1].value: checkout_latency is a latency, cannot be negative, got -1.0",
        ),
        ({"value": "fast"}, "observations[1].value: must be a number, got 'fast'"),
        (
            {"at": 1764028800000.0},
            "observations[1].at: must be epoch seconds between 2000-01-01 and 2100-01-01, got "
            "1764028800000.0 (milliseconds? divide by 1000)",
        ),
        ({"at": 1_764_028_800.0 + 3600}, "observations[1].at: at most 60 s ahead of now"),
        (
            {"at": 1_764_028_800.0 - 40 * 86400},
            "observations[1].at: older than the retention (30 days, service.keep_days)",
        ),
        (
            {"colour": "red"},
            "observations[1].colour: unknown field for type metric; allowed: at, labels, name, type, value",
        ),
        ({"type": "gauge"}, "observations[1].type: must be one of metric, event, got 'gauge'"),
    ],
    ids=lambda x: x if isinstance(x, str) else None,
)
def test_a_rejected_body_records_nothing(make: Any, clock: Clock, bad: dict[str, Any], message: str) -> None:
    service = make(LATENCY)
    good = metric("checkout_latency", {"region": "eu", "method": "GET"}, 0.2, clock.now)
    with pytest.raises(IngestError) as caught:
        service.ingest({"observations": [good, {**good, **bad}]})
    assert str(caught.value).startswith(message), str(caught.value)
    assert caught.value.field == message.split(":")[0]
    assert service.store.series["checkout_latency"] == {}
    assert service.accepted == 0
    clock.now += 10 * MINUTE
    service.evaluate()
    with sqlite3.connect(service.config.path(service.config.history)) as db:
        assert db.execute("SELECT COUNT(*) FROM rollups").fetchone()[0] == 0


def test_data_later_than_the_lateness_is_refused_and_what_was_taken_stays(make: Any, clock: Clock) -> None:
    service = make(LATENCY)
    labels = {"region": "eu", "method": "GET"}
    start = clock.now
    service.ingest({"observations": [metric("checkout_latency", labels, 0.2, start)]})
    clock.now += 3 * MINUTE  # past the lateness (one interval): the first minute is judged
    service.evaluate()
    with pytest.raises(IngestError) as caught:
        service.ingest({"observations": [metric("checkout_latency", labels, 0.3, start + 1)]})
    assert str(caught.value).startswith(
        "observations[0].at: arrived later than the allowed lateness (60 s): "
        'checkout_latency{region="eu",method="GET"} is judged up to '
    )
    point = service.view(window=3600.0)["series"][0]["points"][0]
    assert (point["t"], point["value"]) == (start, 0.2)


def test_one_label_set_more_than_max_series_is_refused_until_one_expires(make: Any, clock: Clock) -> None:
    service = make(LATENCY + 'max_series = 2\nexpire_after = "10m"\n')
    for region in ("eu", "us"):
        labels = {"region": region, "method": "GET"}
        service.ingest({"observations": [metric("checkout_latency", labels, 0.2, clock.now)]})
    third = {"observations": [metric("checkout_latency", {"region": "ap", "method": "GET"}, 0.2, clock.now)]}
    too_many = r"observations\[0\]\.labels: checkout_latency already tracks 2 label sets \(max_series\); "
    with pytest.raises(IngestError, match=too_many):
        service.ingest(third)
    clock.now += 11 * MINUTE  # both silent longer than expire_after: forgotten
    service.evaluate()
    later = {"observations": [{**third["observations"][0], "at": clock.now}]}
    assert service.ingest(later) == {"accepted": 1}
    kept = [s.labels for s in service.store.series["checkout_latency"].values()]
    assert kept == [(("region", "ap"), ("method", "GET"))]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_file_backfills_history_and_pages_nothing_that_is_over(
    make: Any, clock: Clock, receiver: Receiver, tmp_path: Path, fmt: str
) -> None:
    rng = random.Random(5)
    rows = []
    start = clock.now - 2 * 86400
    for i in range(2 * 1440):
        t = start + i * MINUTE
        value = 3.0 if 2000 <= i < 2005 else latency(t, rng, 0.2)  # an episode, long over
        rows.append((t, value))
    file = tmp_path / f"latency.{fmt}"
    if fmt == "csv":
        file.write_text("at,value,region\n" + "".join(f"{t},{v},eu\n" for t, v in rows))
    else:
        lines = (json.dumps({"at": t, "value": v, "labels": {"region": "eu"}}) for t, v in rows)
        file.write_text("".join(line + "\n" for line in lines))
    body = FILE_INDICATOR.format(file=file) + 'direction = "up"\n'
    service = make(body, receiver)
    service.start(background=False)
    assert service.accepted == len(rows)
    assert service.router.flush(5.0) == 0
    assert receiver.bodies == []  # the episode began and ended in history: not paged
    with sqlite3.connect(service.config.path(service.config.history)) as db:
        assert db.execute("SELECT COUNT(*) FROM rollups").fetchone()[0] >= len(rows) - 2
        assert db.execute("SELECT status FROM alerts").fetchall() == [("resolved",)]


def test_a_bad_file_row_is_named_by_file_and_line(make: Any, tmp_path: Path) -> None:
    file = tmp_path / "bad.csv"
    file.write_text("at,value,region\n1764028000,0.2,eu\n1764028060,-0.5,eu\n")
    body = FILE_INDICATOR.format(file=file)
    service = make(body)
    negative = rf"^{file}:3\.value: latency is a latency, cannot be negative, got -0\.5$"
    with pytest.raises(IngestError, match=negative):
        service.start(background=False)
    assert service.store.series["latency"] == {}


def test_a_ratio_burns_its_slo_budget(make: Any, clock: Clock) -> None:
    body = (
        '[[indicators]]\nname = "payment_errors"\nsource = "push"\nkind = "ratio"\n'
        'direction = "up"\nslo = 0.999\nteam = "payments"\n'
    )
    service = make(body)

    def minutes(n: int, ratio: float) -> None:
        for _ in range(n):
            service.ingest({"observations": [metric("payment_errors", {}, ratio, clock.now)]})
            clock.now += MINUTE

    minutes(120, 0.0005)  # half the budget: fine
    assert [a for a in service.alerts() if a["kind"] == "burn_rate"] == []
    minutes(25, 0.05)  # 50x the budget
    burns = [a for a in service.alerts() if a["kind"] == "burn_rate"]
    assert len(burns) == 1  # the rules of one SLO are one alert; only 1h/5m has its history
    assert burns[0]["severity"] == "critical" and burns[0]["value"] >= 14.4
    assert "SLO error budget" in burns[0]["summary"] and "over 1h and 5m)" in burns[0]["summary"]
    assert burns[0]["description"].startswith("Burn rates: 1h/5m: ")


def test_a_restarted_process_takes_over_the_resends_of_an_episode_still_firing(tmp_path: Path) -> None:
    note = Notification("am", "alert-1", "firing", 100.0, "http://127.0.0.1:1/api/v2/alerts", 1.0, {}, 30.0)
    first = Outbox(tmp_path / "outbox")
    first.put([note], owner="first", now=100.0)
    first.delivered(first.due(100.0, owner="first")[0].seq, 101.0)
    first.close()
    second = Outbox(tmp_path / "outbox")
    second.restart(200.0, owner="second")
    assert second.due(200.0, owner="second") == []  # the dead process's re-sends stopped
    second.put([note], owner="second", now=200.0)  # re-detected after the restart
    assert [r.notification.key for r in second.due(200.0, owner="second")] == [note.key]
    resolved = Notification("am", "alert-1", "resolved", 100.0, note.url, 1.0, {}, None)
    second.put([resolved], owner="second", now=210.0)
    # the resolve ends the re-sends; only it is due
    assert [r.notification.status for r in second.due(210.0, owner="second")] == ["resolved"]
    second.close()


def test_an_indicator_pulled_from_prometheus_refuses_pushes(make: Any, clock: Clock) -> None:
    service = make(
        '[prometheus]\nurl = "http://127.0.0.1:9"\n[[indicators]]\nname = "errors"\nsource = "prometheus"\n'
        'query = "sum(rate(errors_total[1m]))"\nkind = "count"\nteam = "shop"\n'
    )
    pulled = r"^observations\[0\]\.name: errors is pulled from Prometheus; push is for "
    with pytest.raises(IngestError, match=pulled):
        service.ingest({"observations": [metric("errors", {}, 1.0, clock.now)]})
    assert service.store.series["errors"] == {}


def test_history_pushed_in_many_bodies_is_all_taken(make: Any, clock: Clock) -> None:
    service = make(LATENCY)
    labels = {"region": "eu", "method": "GET"}
    start = clock.now - 2 * 86400
    for body in range(3):  # 1500 old points, 500 per body, sent one right after the other
        times = [start + (body * 500 + i) * MINUTE for i in range(500)]
        points = [metric("checkout_latency", labels, 0.2, t) for t in times]
        assert service.ingest({"observations": points}) == {"accepted": 500}
    clock.now += 2 * MINUTE  # the sender went quiet: the rest is judged
    service.evaluate()
    with sqlite3.connect(service.config.path(service.config.history)) as db:
        query = "SELECT COUNT(value) FROM rollups WHERE indicator = 'checkout_latency'"
        assert db.execute(query).fetchone() == (1500,)


def test_a_label_set_that_goes_silent_says_so_and_recovers(make: Any, clock: Clock) -> None:
    service = make(LATENCY)
    feed(service, clock, 120)
    for _ in range(5):  # nothing arrives for five minutes
        clock.now += MINUTE
        service.evaluate()
    silent = [a for a in service.alerts() if a["kind"] == "no_data"]
    assert sorted(a["labels"]["region"] for a in silent) == ["eu", "us"]
    assert all(a["status"] == "firing" and a["severity"] == "warning" for a in silent)
    assert silent[0]["summary"].startswith("No data for checkout_latency{")
    feed(service, clock, 3)
    now_silent = [a for a in service.alerts() if a["kind"] == "no_data"]
    assert sorted(a["status"] for a in now_silent) == ["resolved", "resolved"]


ORDERS = """
[[indicators]]
name = "orders"
source = "push"
kind = "count"
labels = ["region"]
direction = "down"
team = "shop"
"""


@pytest.mark.parametrize("events", [True, False])
def test_a_count_declared_as_events_sees_an_hour_without_orders(
    make: Any, clock: Clock, events: bool
) -> None:
    # One or two orders a minute, then none for an hour: no minute alone is surprising (a zero
    # comes every few minutes), the hour is, once the file says each unit is one order.
    service = make(ORDERS + f"events = {'true' if events else 'false'}\n")
    rng = random.Random(7)
    silent = range(3 * 1440 + 600, 3 * 1440 + 660)
    batch: list[dict[str, Any]] = []
    drops: list[int] = []  # the minute each drop alert was first seen
    for i in range(3 * 1440 + 700):
        rate = 1.0 + 0.5 * math.sin(2 * math.pi * i / 1440)
        orders = 0 if i in silent else sum(1 for _ in range(8) if rng.random() < rate / 8)
        batch.append(metric("orders", {"region": "eu"}, orders / MINUTE, clock.now))  # per second
        clock.now += MINUTE
        if len(batch) >= 60 or i >= silent.start:
            service.ingest({"observations": batch})
            batch = []
            seen = sum(1 for a in service.alerts() if a["kind"] == "drop")
            drops += [i] * (seen - len(drops))
    assert [i for i in drops if i < silent.start] == []  # three calm days page nobody
    if events:
        assert any(i in silent for i in drops), drops
    else:
        assert drops == []  # the same hour, read as a rate of anything, is not told from noise
