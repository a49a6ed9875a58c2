"""Settings of a running dependency: read-only attributes, `configure()` validated and applied together."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from stoic.guard import (
    BreakerPolicy,
    BulkheadFull,
    ConfigError,
    Dependency,
    DependencyFailed,
    Fallback,
    ManualClock,
    Outcome,
    Registry,
    Retry,
    SemaphoreBulkhead,
    ThreadPoolBulkhead,
)

from .helpers import boom, fail_n, ok

Runner = Callable[[Coroutine[Any, Any, Any]], Any]


def breaking(clock: ManualClock, reg: Registry, **kw: Any) -> Dependency:
    kw.setdefault("breaker", BreakerPolicy(min_calls=2, check_interval=0.0, open_for=5.0))
    return Dependency("svc", registry=reg, clock=clock, **kw)


@pytest.mark.parametrize(("attribute", "setting", "value"), [
    ("timeout", "timeout", 1.0),
    ("breaker_policy", "breaker", BreakerPolicy()),
    ("bulkhead", "bulkhead", SemaphoreBulkhead()),
    ("retry", "retry", Retry()),
    ("fallbacks", "fallbacks", ()),
])
def test_assigning_a_setting_points_to_configure(clock: ManualClock, reg: Registry, attribute: str,
                                                 setting: str, value: object) -> None:
    dep = breaking(clock, reg, timeout=0.2)
    before = getattr(dep, attribute)
    with pytest.raises(AttributeError, match=rf"Dependency\.{attribute} is read-only; "
                                             rf"use configure\({setting}=\.\.\.\) to change it"):
        setattr(dep, attribute, value)
    assert getattr(dep, attribute) == before


def test_a_new_timeout_takes_effect(clock: ManualClock, reg: Registry, run_virtual: Runner) -> None:
    dep = breaking(clock, reg, timeout=0.2, fallbacks=[Fallback.value("late", name="late")],
                   breaker=BreakerPolicy(min_calls=20))
    assert run_virtual(dep.acall(asyncio.sleep, 0.5, "fresh")) == "late"
    dep.configure(timeout=1.0)
    assert run_virtual(dep.acall(asyncio.sleep, 0.5, "fresh")) == "fresh"
    assert (dep.timeout, dep.snapshot()["timeout"]) == (1.0, 1.0)
    counts = dep.snapshot()["counts"]
    assert (counts["timeout"], counts["success"]) == (1, 1)  # the window was kept
    dep.configure(timeout=None)
    assert run_virtual(dep.acall(asyncio.sleep, 30.0, "patient")) == "patient"


def test_a_new_timeout_moves_the_slow_call_line(clock: ManualClock, reg: Registry) -> None:
    dep = breaking(clock, reg, timeout=0.2)

    def takes(seconds: float) -> str:
        clock.advance(seconds)
        return "ok"

    dep.call(takes, 0.5)
    dep.configure(timeout=1.0)
    dep.call(takes, 0.5)
    assert dep.snapshot()["counts"]["slow"] == 1


def test_a_bad_setting_changes_nothing(clock: ManualClock, reg: Registry) -> None:
    dep = breaking(clock, reg, timeout=0.2)
    policy = dep.breaker_policy
    with pytest.raises(ConfigError, match=r"Dependency\.timeout must be in \(0\.0, 3600\.0\], got 0"):
        dep.configure(breaker=BreakerPolicy(min_calls=50), retry=Retry(), timeout=0)
    assert (dep.timeout, dep.breaker_policy, dep.retry) == (0.2, policy, None)
    with pytest.raises(ConfigError, match=r"Dependency\.retry must be a Retry or None, got 3"):
        dep.configure(retry=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"Dependency\.fallbacks must be a sequence of Fallback"):
        dep.configure(fallbacks="popular")
    with pytest.raises(ConfigError, match=r"Fallback\.fn must be callable"):
        dep.configure(fallbacks=["popular"])  # type: ignore[list-item]


def test_the_breaker_state_is_kept_by_a_policy_with_the_same_window(clock: ManualClock,
                                                                     reg: Registry) -> None:
    dep = breaking(clock, reg)
    fail_n(dep, 2)
    assert dep.breaker.state == "open"
    dep.configure(breaker=BreakerPolicy(min_calls=2, check_interval=0.0, open_for=1.0))
    assert dep.breaker.state == "open"
    assert dep.snapshot()["counts"]["failure"] == 2
    clock.advance(1.0)  # the new open_for applies
    assert dep.call(ok) == "ok"
    assert dep.breaker.state == "closed"


def test_another_window_starts_empty(clock: ManualClock, reg: Registry) -> None:
    dep = breaking(clock, reg, breaker=BreakerPolicy(min_calls=3, check_interval=0.0))
    guarded = dep(boom)
    for _ in range(2):
        with pytest.raises(DependencyFailed):
            guarded()
    dep.configure(breaker=BreakerPolicy(window=20.0, buckets=20, min_calls=3, check_interval=0.0))
    assert dep.snapshot()["window_s"] == 20.0 and dep.snapshot()["requests"] == 0
    for _ in range(2):  # the decorator records into the new window
        with pytest.raises(DependencyFailed):
            guarded()
    assert dep.snapshot()["counts"]["failure"] == 2
    assert dep.breaker.state == "closed"
    fail_n(dep, 1)
    assert dep.breaker.state == "open"


def test_without_a_breaker_an_open_circuit_closes(clock: ManualClock, reg: Registry) -> None:
    dep = breaking(clock, reg)
    fail_n(dep, 2)
    dep.configure(breaker=None)
    assert dep.breaker.state == "closed"
    fail_n(dep, 10)
    assert dep.breaker.state == "closed"
    assert dep.call(ok) == "ok"


def test_a_breaker_with_other_failure_rules(clock: ManualClock, reg: Registry) -> None:
    dep = breaking(clock, reg)
    dep.configure(breaker=BreakerPolicy(min_calls=2, check_interval=0.0, ignore=(ConnectionError,)))
    with pytest.raises(ConnectionError):
        dep.call(boom)  # ignored now: straight to the caller, counted as nothing
    assert dep.snapshot()["requests"] == 0


def test_a_new_retry_and_fallback_chain(clock: ManualClock, reg: Registry) -> None:
    dep = breaking(clock, reg, breaker=None, fallbacks=[Fallback.value("old", name="old")])
    assert dep.execute(boom).source == "old"
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 2:
            raise ConnectionError("reset")
        return "fresh"

    dep.configure(retry=Retry(attempts=2, budget=None), fallbacks=[Fallback.value("new", name="new"), ok])
    assert dep.call(flaky) == "fresh"
    assert dep.execute(boom).source == "new"
    snap = dep.snapshot()
    assert snap["fallbacks"] == {"new": 1, "ok": 0}  # the old chain's counts went with it
    assert [f.name for f in dep.fallbacks] == ["new", "ok"]


def test_a_bulkhead_grows_and_shrinks(clock: ManualClock, reg: Registry) -> None:
    dep = breaking(clock, reg, bulkhead=SemaphoreBulkhead(max_concurrent=1))
    seen: list[Any] = []

    def nested(depth: int) -> int:  # holds its permit while the next level asks for one
        if depth == 0:
            return 0
        try:
            return dep.call(nested, depth - 1) + 1
        except DependencyFailed as exc:
            seen.append(type(exc.causes[0][1]))
            return -100

    assert dep.call(nested, 1) < 0 and seen == [BulkheadFull]
    dep.configure(bulkhead=SemaphoreBulkhead(max_concurrent=3))
    assert dep.call(nested, 2) == 2
    assert dep.snapshot()["max_concurrent"] == 3
    grown = dep(nested)
    assert grown(2) == 2  # the decorator sees the same permits

    def shrink_inside(depth: int) -> int:
        # two permits held while the bulkhead shrinks to one: they come home, one is kept
        if depth == 0:
            dep.configure(bulkhead=SemaphoreBulkhead(max_concurrent=1))
            assert dep.snapshot()["concurrent"] == 2
            return 0
        return dep.call(shrink_inside, depth - 1) + 1

    assert dep.call(shrink_inside, 1) == 1
    assert dep.snapshot()["concurrent"] == 0
    seen.clear()
    assert dep.call(nested, 1) < 0 and seen == [BulkheadFull]
    assert grown(0) == 0 and dep.snapshot()["concurrent"] == 0


def test_a_grown_bulkhead_lets_a_waiter_in(reg: Registry) -> None:
    dep = Dependency("svc", timeout=None, registry=reg,
                     bulkhead=SemaphoreBulkhead(max_concurrent=1, max_wait=30.0))
    gate, holding = threading.Event(), threading.Event()
    answers: list[str] = []

    def hold() -> str:
        holding.set()
        gate.wait(30)
        return "held"

    holder = threading.Thread(target=lambda: answers.append(dep.call(hold)))
    holder.start()
    try:
        assert holding.wait(30)
        waiter = threading.Thread(target=lambda: answers.append(dep.call(ok, "waited")))
        waiter.start()
        slots = dep._state.slots
        assert slots is not None
        while slots.waiting == 0 and waiter.is_alive():  # bounded by the waiter's own max_wait
            waiter.join(0.001)
        dep.configure(bulkhead=SemaphoreBulkhead(max_concurrent=2, max_wait=30.0))
        waiter.join(30)
        assert answers == ["waited"]  # it did not wait for the holder
    finally:
        gate.set()
        holder.join(30)
    assert answers == ["waited", "held"]


def test_a_thread_pool_is_resized_not_swapped(clock: ManualClock, reg: Registry) -> None:
    dep = breaking(clock, reg, timeout=5.0, bulkhead=ThreadPoolBulkhead(workers=1))
    try:
        dep.configure(bulkhead=ThreadPoolBulkhead(workers=2, queue=1))
        assert dep.snapshot()["max_concurrent"] == 3
        barrier = threading.Barrier(2, timeout=10)
        answers: list[int] = []
        other = threading.Thread(target=lambda: answers.append(dep.call(barrier.wait)))
        other.start()
        answers.append(dep.call(barrier.wait))  # both run at once on the two workers
        other.join(10)
        assert sorted(answers) == [0, 1]
        with pytest.raises(ConfigError, match=r"Dependency\.bulkhead: configure\(\) can resize a "
                                              r"ThreadPoolBulkhead but not change it to SemaphoreBulkhead"):
            dep.configure(bulkhead=SemaphoreBulkhead())
        with pytest.raises(ConfigError, match=r"not change it to no bulkhead"):
            dep.configure(bulkhead=None)
    finally:
        dep.close()


def test_configure_keeps_outcomes_flowing_to_listeners(clock: ManualClock, reg: Registry) -> None:
    dep = breaking(clock, reg)
    seen: list[Outcome] = []
    dep.listen(lambda event: seen.append(event.outcome))
    dep.configure(timeout=2.0)
    dep.call(ok)
    assert seen == [Outcome.SUCCESS]
