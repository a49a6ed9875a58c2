"""Metrics and events: snapshot fields and counts, latency percentiles, the registry, listeners."""

from __future__ import annotations

import json
import random

import pytest

from stoic.guard import (
    BreakerPolicy,
    Dependency,
    DependencyFailed,
    Event,
    Fallback,
    ManualClock,
    Outcome,
    Registry,
    SemaphoreBulkhead,
    ThreadPoolBulkhead,
    registry,
)

from .helpers import Unavailable, boom, ok, taking


def test_snapshot_fields_and_counts(clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("ratings", timeout=0.5, owner="ratings-team", registry=reg, clock=clock,
                     breaker=BreakerPolicy(min_calls=100),
                     bulkhead=SemaphoreBulkhead(max_concurrent=7),
                     fallbacks=[Fallback(lambda: 1 / 0, name="snapshot"),
                                Fallback.value(3.5, name="average")])
    for _ in range(6):
        dep.call(ok)
    dep.call(taking(clock, 0.6))  # slow
    dep.execute(boom)
    dep.execute(boom)
    dep.breaker.force_open()
    dep.execute(ok)
    snap = dep.snapshot()
    json.dumps(snap)  # JSON-ready
    assert {k: snap[k] for k in ("name", "owner", "state", "isolation", "has_fallback", "timeout")} == {
        "name": "ratings", "owner": "ratings-team", "state": "open", "isolation": "semaphore",
        "has_fallback": True, "timeout": 0.5}
    assert snap["counts"] == {
        "success": 7, "failure": 2, "timeout": 0, "rejected": 0, "short_circuited": 1, "slow": 1,
        "fallback_success": 3, "fallback_failure": 3, "retry": 0, "injected": 0}
    assert snap["fallbacks"] == {"snapshot": 0, "average": 3}
    assert snap["requests"] == 10
    assert snap["error_percentage"] == 30.0
    assert (snap["concurrent"], snap["max_concurrent"]) == (0, 7)
    assert set(snap["latency_ms"]) == {"mean", "p50", "p90", "p99", "p999", "max"}
    assert snap["latency_ms"]["max"] == pytest.approx(600, rel=0.07)
    assert snap["window_s"] == 10.0


def test_isolation_names(reg: Registry) -> None:
    pooled = Dependency("a", bulkhead=ThreadPoolBulkhead(workers=3, queue=2), registry=reg)
    bare = Dependency("b", bulkhead=None, registry=reg)
    assert (pooled.snapshot()["isolation"], pooled.snapshot()["max_concurrent"]) == ("thread", 5)
    assert (bare.snapshot()["isolation"], bare.snapshot()["max_concurrent"]) == ("none", None)
    assert bare.snapshot()["has_fallback"] is False
    pooled.close()


def test_empty_snapshot(reg: Registry) -> None:
    snap = Dependency("quiet", registry=reg).snapshot()
    assert snap["requests"] == 0 and snap["error_percentage"] == 0.0
    assert set(snap["latency_ms"].values()) == {0.0}


# the calls below take minutes of manual-clock time in all: keep them all in the window
LONG_WINDOW = BreakerPolicy(window=3600.0, buckets=10)


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered)) - 1))]


@pytest.mark.parametrize("scale", [1e-5, 1e-3, 0.1])  # tens of microseconds to a tenth of a second
def test_latency_percentiles_within_the_bin_error(clock: ManualClock, reg: Registry, scale: float) -> None:
    dep = Dependency("svc", timeout=None, registry=reg, clock=clock, breaker=LONG_WINDOW)
    rng = random.Random(11)
    latencies = [scale * rng.lognormvariate(0, 0.8) for _ in range(5000)]
    for seconds in latencies:
        dep.call(taking(clock, seconds))
    got = dep.snapshot()["latency_ms"]
    for key, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)):
        assert got[key] == pytest.approx(exact(latencies, q) * 1000, rel=0.125), key
    assert got["max"] == pytest.approx(max(latencies) * 1000, rel=0.125)
    assert got["mean"] == pytest.approx(sum(latencies) / len(latencies) * 1000, rel=0.125)


def test_uniform_latencies(clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("svc", timeout=None, registry=reg, clock=clock, breaker=LONG_WINDOW)
    for ms in range(1, 1001):
        dep.call(taking(clock, ms / 1000))
    got = dep.snapshot()["latency_ms"]
    expected = {"p50": 500, "p90": 900, "p99": 990, "p999": 999, "max": 1000, "mean": 500.5}
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=0.125), key


def test_registry_get_all_snapshot(reg: Registry) -> None:
    b = Dependency("b", registry=reg)
    a = Dependency("a", registry=reg)
    assert reg.get("a") is a and reg.all() == [a, b] and reg.names() == ["a", "b"]
    assert [s["name"] for s in reg.snapshot()] == ["a", "b"]
    with pytest.raises(KeyError, match="no dependency named 'c'; known: a, b"):
        reg.get("c")
    newer = Dependency("a", registry=reg)  # a taken name is replaced
    assert reg.get("a") is newer
    newer.close()
    assert reg.names() == ["b"]
    assert Dependency("solo", registry=None).snapshot()["name"] == "solo"
    assert reg.names() == ["b"]


def test_the_process_registry_is_the_default() -> None:
    dep = Dependency("stoic-test-default-registry")
    try:
        assert registry.get("stoic-test-default-registry") is dep
        assert "stoic-test-default-registry" in [s["name"] for s in registry.snapshot()]
    finally:
        dep.close()
    assert "stoic-test-default-registry" not in registry.names()


def test_listeners_receive_every_outcome(clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("svc", timeout=None, registry=reg, clock=clock,
                     breaker=BreakerPolicy(min_calls=3, check_interval=0),
                     fallbacks=[Fallback.value("generic", name="generic")])
    events: list[Event] = []
    unsubscribe = dep.listen(events.append)
    dep.call(taking(clock, 0.25))
    dep.call(boom)
    dep.call(boom)  # opens the breaker
    dep.call(ok)  # short-circuited
    got = [(e.outcome, e.source, e.state) for e in events]
    assert got == [
        (Outcome.SUCCESS, "primary", None),
        (Outcome.FAILURE, "primary", None), (Outcome.FALLBACK_SUCCESS, "generic", None),
        (Outcome.STATE_CHANGE, "primary", "open"),  # told as the failure is recorded
        (Outcome.FAILURE, "primary", None),
        (Outcome.FALLBACK_SUCCESS, "generic", None),
        (Outcome.SHORT_CIRCUITED, "primary", None), (Outcome.FALLBACK_SUCCESS, "generic", None),
    ]
    assert events[0].latency == pytest.approx(0.25)
    assert isinstance(events[1].error, Unavailable)
    assert all(e.dependency == "svc" for e in events)
    unsubscribe()
    dep.call(ok)
    assert len(events) == 8


def test_registry_listeners_see_every_member(clock: ManualClock, reg: Registry) -> None:
    early = Dependency("early", timeout=None, registry=reg, clock=clock)
    events: list[tuple[str, Outcome]] = []
    unsubscribe = reg.listen(lambda e: events.append((e.dependency, e.outcome)))
    late = Dependency("late", timeout=None, registry=reg, clock=clock,
                      breaker=BreakerPolicy(min_calls=1, check_interval=0))
    early.call(ok)
    with pytest.raises(DependencyFailed):
        late.call(boom)
    assert ("early", Outcome.SUCCESS) in events
    assert ("late", Outcome.FAILURE) in events
    assert ("late", Outcome.STATE_CHANGE) in events
    unsubscribe()
    count = len(events)
    early.call(ok)
    assert len(events) == count


def test_a_broken_listener_never_breaks_the_call(clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("svc", registry=reg, clock=clock)
    seen: list[Outcome] = []

    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    dep.listen(broken)
    dep.listen(lambda e: seen.append(e.outcome))
    assert dep.call(ok) == "ok"
    assert seen == [Outcome.SUCCESS]


def test_outcome_labels() -> None:
    assert [o.label for o in Outcome][:8] == ["success", "failure", "timeout", "rejected", "short_circuited",
                                               "slow", "fallback_success", "fallback_failure"]
