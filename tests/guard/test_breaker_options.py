"""Breaker options beside the time window: the last N calls, failures in a row, a growing open time."""

from __future__ import annotations

import contextlib

from stoic.guard import BreakerPolicy, Dependency, DependencyFailed, ManualClock, Registry

from .helpers import boom, fail_n, ok, succeed_n, taking


def test_the_count_window_judges_the_last_calls_on_every_call(clock: ManualClock, reg: Registry) -> None:
    policy = BreakerPolicy(window_calls=10, min_calls=10, error_rate=0.5, check_interval=60.0)
    dep = Dependency("orders", breaker=policy, clock=clock, registry=reg)
    succeed_n(dep, 20)  # old successes leave the window as new calls come in
    fail_n(dep, 4)
    succeed_n(dep, 1)
    assert dep.breaker.state == "closed"  # 4 of the last 10 failed
    fail_n(dep, 1)
    assert dep.breaker.state == "open"  # 5 of the last 10: judged on that call, check_interval aside


def test_the_count_window_ignores_the_time_window_rates(clock: ManualClock, reg: Registry) -> None:
    policy = BreakerPolicy(window_calls=100, min_calls=5, error_rate=0.5, check_interval=0.0)
    dep = Dependency("orders", breaker=policy, clock=clock, registry=reg)
    succeed_n(dep, 60)
    clock.advance(20.0)  # the time window forgets the successes; the count window does not
    fail_n(dep, 10)
    assert dep.breaker.state == "closed"  # 10 of the last 70
    fail_n(dep, 50)
    assert dep.breaker.state == "open"  # 60 of the last 100


def test_the_count_window_opens_on_slow_calls(clock: ManualClock, reg: Registry) -> None:
    policy = BreakerPolicy(window_calls=4, min_calls=4, slow_call=0.1, slow_rate=0.5)
    dep = Dependency("orders", breaker=policy, clock=clock, registry=reg)
    succeed_n(dep, 3)
    dep.call(taking(clock, 0.2))
    assert dep.breaker.state == "closed"
    dep.call(taking(clock, 0.2))
    assert dep.breaker.state == "open"


def test_failures_in_a_row_open_before_min_calls(clock: ManualClock, reg: Registry) -> None:
    policy = BreakerPolicy(consecutive_failures=3, min_calls=100)
    dep = Dependency("payments", breaker=policy, clock=clock, registry=reg)
    fail_n(dep, 2)
    succeed_n(dep, 1)  # the streak starts again
    fail_n(dep, 2)
    assert dep.breaker.state == "closed"
    fail_n(dep, 1)
    assert dep.breaker.state == "open"


def test_failures_in_a_row_count_through_the_decorator(clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("payments", breaker=BreakerPolicy(consecutive_failures=2), clock=clock, registry=reg)
    guarded_ok, guarded_boom = dep(ok), dep(boom)
    with contextlib.suppress(DependencyFailed):
        guarded_boom()
    assert guarded_ok() == "ok"  # the decorator's fast path must reset the streak too
    with contextlib.suppress(DependencyFailed):
        guarded_boom()
    assert dep.breaker.state == "closed"
    with contextlib.suppress(DependencyFailed):
        guarded_boom()
    assert dep.breaker.state == "open"


def test_the_open_time_grows_on_each_reopen_up_to_the_cap(clock: ManualClock, reg: Registry) -> None:
    policy = BreakerPolicy(consecutive_failures=1, open_for=1.0, open_for_max=5.0, open_backoff=2.0)
    dep = Dependency("search", breaker=policy, clock=clock, registry=reg)
    fail_n(dep, 1)
    waits = []
    for _ in range(5):  # each time: wait until half-open, then the trial fails and it opens again
        waited = 0.0
        while dep.breaker.state == "open" and waited < 100:
            clock.advance(0.5)
            waited += 0.5
            if dep._state.allows(clock.now_ns()):
                break
        waits.append(waited)
        fail_n(dep, 1)
        assert dep.breaker.state == "open"
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]
    clock.advance(5.0)
    succeed_n(dep, 1)  # the trial passes: closed, and the open time is back to 1 s
    assert dep.breaker.state == "closed"
    fail_n(dep, 1)
    clock.advance(1.0)
    succeed_n(dep, 1)
    assert dep.breaker.state == "closed"


def test_without_a_cap_the_open_time_stays(clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("search", breaker=BreakerPolicy(consecutive_failures=1, open_for=1.0), clock=clock,
                     registry=reg)
    fail_n(dep, 1)
    for _ in range(3):
        clock.advance(0.99)
        assert not dep._state.allows(clock.now_ns())
        clock.advance(0.01)
        assert dep._state.allows(clock.now_ns())
        fail_n(dep, 1)  # the trial fails: open again, for the same second


def test_a_reset_starts_the_per_call_rules_afresh(clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("search", breaker=BreakerPolicy(consecutive_failures=3), clock=clock, registry=reg)
    fail_n(dep, 2)
    dep.breaker.reset()
    fail_n(dep, 2)
    assert dep.breaker.state == "closed"
