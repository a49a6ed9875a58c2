"""Every breaker state transition, on a manual clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from stoic.guard import (
    BreakerOpen,
    BreakerPolicy,
    Dependency,
    DependencyFailed,
    Event,
    Fallback,
    ManualClock,
    Outcome,
    Registry,
)

from .helpers import boom, fail_n, ok, succeed_n, taking


def make(clock: ManualClock, reg: Registry, **policy: object) -> Dependency:
    settings: dict[str, object] = {"min_calls": 4, "check_interval": 0.0}
    settings.update(policy)
    return Dependency("svc", timeout=None, breaker=BreakerPolicy(**settings),  # type: ignore[arg-type]
                      bulkhead=None, registry=reg, clock=clock)


def states(dep: Dependency) -> list[str | None]:
    seen: list[str | None] = []
    dep.listen(lambda e: seen.append(e.state) if e.outcome is Outcome.STATE_CHANGE else None)
    return seen


def test_opens_once_min_calls_reached_at_the_error_rate(clock: ManualClock, reg: Registry) -> None:
    dep = make(clock, reg, min_calls=20, error_rate=0.5)
    changes = states(dep)
    fail_n(dep, 19)
    assert dep.breaker.state == "closed"  # 19 calls: under min_calls, whatever the rate
    fail_n(dep, 1)
    assert dep.breaker.state == "open"
    assert changes == ["open"]


def test_error_rate_below_threshold_stays_closed(clock: ManualClock, reg: Registry) -> None:
    dep = make(clock, reg, min_calls=10, error_rate=0.5)
    succeed_n(dep, 11)
    fail_n(dep, 9)  # 9 of 20 = 45 %
    assert dep.breaker.state == "closed"
    fail_n(dep, 2)  # 11 of 22 = 50 %
    assert dep.breaker.state == "open"


def test_slow_call_rate_opens(clock: ManualClock, reg: Registry) -> None:
    dep = make(clock, reg, slow_call=0.1, slow_rate=0.5)
    slow = taking(clock, 0.2)
    assert dep.call(ok) == "ok"
    assert dep.call(slow) == "ok"
    assert dep.call(ok) == "ok"
    assert dep.breaker.state == "closed"  # 1 slow of 3: under min_calls
    assert dep.call(slow) == "ok"  # 2 slow of 4 = 50 %
    assert dep.breaker.state == "open"
    assert dep.snapshot()["counts"]["slow"] == 2
    assert dep.snapshot()["counts"]["success"] == 4


def test_slow_call_defaults_to_the_timeout(clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("svc", timeout=0.1, breaker=BreakerPolicy(min_calls=2, check_interval=0, slow_rate=1.0),
                     registry=reg, clock=clock)
    dep.call(taking(clock, 0.15))
    assert dep.breaker.state == "closed"
    dep.call(taking(clock, 0.15))
    assert dep.breaker.state == "open"


def test_short_circuits_while_open(clock: ManualClock, reg: Registry) -> None:
    dep = make(clock, reg)
    fail_n(dep, 4)
    calls: list[int] = []
    with pytest.raises(DependencyFailed) as info:
        dep.call(lambda: calls.append(1))
    assert calls == []  # the primary was not attempted
    assert isinstance(info.value.causes[0][1], BreakerOpen)
    assert "circuit open" in str(info.value.causes[0][1])
    assert dep.snapshot()["counts"]["short_circuited"] == 1


def test_open_to_half_open_after_open_for_then_closed(clock: ManualClock, reg: Registry) -> None:
    dep = make(clock, reg, open_for=5.0)
    changes = states(dep)
    fail_n(dep, 4)
    clock.advance(4.9)
    fail_n(dep, 1)
    assert dep.snapshot()["counts"]["short_circuited"] == 1
    assert dep.breaker.state == "open"
    clock.advance(0.1)
    assert dep.breaker.state == "open"  # the move to half-open happens on the next call
    assert dep.call(ok) == "ok"
    assert dep.breaker.state == "closed"
    assert changes == ["open", "half_open", "closed"]
    assert dep.snapshot()["requests"] == 0  # closing starts a fresh window


def test_half_open_trial_failure_reopens(clock: ManualClock, reg: Registry) -> None:
    dep = make(clock, reg, open_for=2.0)
    changes = states(dep)
    fail_n(dep, 4)
    clock.advance(2.0)
    fail_n(dep, 1)
    assert dep.breaker.state == "open"
    assert changes == ["open", "half_open", "open"]
    clock.advance(1.9)  # the open period restarted at the failed trial
    fail_n(dep, 1)
    assert dep.snapshot()["counts"]["short_circuited"] == 1
    clock.advance(0.1)
    succeed_n(dep, 1)
    assert dep.breaker.state == "closed"


def test_half_open_needs_every_trial(clock: ManualClock, reg: Registry) -> None:
    dep = make(clock, reg, open_for=1.0, trial_calls=3, error_rate=0.5)
    fail_n(dep, 4)
    clock.advance(1.0)
    succeed_n(dep, 2)
    assert dep.breaker.state == "half_open"
    fail_n(dep, 1)  # 1 error of 3 trials: under 50 %
    assert dep.breaker.state == "closed"


def test_half_open_lets_only_trial_calls_through(clock: ManualClock, reg: Registry) -> None:
    dep = make(clock, reg, open_for=1.0, trial_calls=1)
    fail_n(dep, 4)
    clock.advance(1.0)
    seen: list[str] = []

    def trial() -> str:
        # while the single trial is in flight, a second call is short-circuited
        with pytest.raises(DependencyFailed) as info:
            dep.call(ok)
        seen.append(type(info.value.causes[0][1]).__name__)
        return "trial"

    assert dep.call(trial) == "trial"
    assert seen == ["BreakerOpen"]
    assert dep.breaker.state == "closed"


def test_force_open_force_closed_and_reset(clock: ManualClock, reg: Registry) -> None:
    dep = make(clock, reg)
    dep.breaker.force_open()
    assert dep.breaker.state == "open" and dep.breaker.forced
    with pytest.raises(DependencyFailed):
        dep.call(ok)
    clock.advance(3600)
    with pytest.raises(DependencyFailed):  # forced open never moves to half-open
        dep.call(ok)
    dep.breaker.force_closed()
    assert dep.breaker.state == "closed" and dep.breaker.forced
    fail_n(dep, 50)
    assert dep.breaker.state == "closed"  # forced closed ignores the error rate
    assert dep.snapshot()["counts"]["failure"] == 50
    dep.breaker.reset()
    assert dep.breaker.state == "closed" and not dep.breaker.forced
    assert dep.snapshot()["requests"] == 0  # reset empties the window
    fail_n(dep, 4)
    assert dep.breaker.state == "open"  # and the breaker judges again
    dep.breaker.reset()
    assert dep.call(ok) == "ok"


def test_check_interval_delays_the_judgement(clock: ManualClock, reg: Registry) -> None:
    dep = make(clock, reg, min_calls=5, check_interval=1.0)
    fail_n(dep, 1)  # judged at once (too few calls), and the next judgement waits a second
    fail_n(dep, 20)
    assert dep.breaker.state == "closed"
    clock.advance(0.99)
    fail_n(dep, 1)
    assert dep.breaker.state == "closed"
    clock.advance(0.01)
    fail_n(dep, 1)
    assert dep.breaker.state == "open"


def test_check_interval_zero_judges_every_failure(clock: ManualClock, reg: Registry) -> None:
    dep = make(clock, reg, min_calls=5, check_interval=0.0)
    fail_n(dep, 5)
    assert dep.breaker.state == "open"


class BadRequest(ValueError):
    pass


def test_ignored_exceptions_count_as_nothing_and_skip_fallbacks(clock: ManualClock, reg: Registry) -> None:
    fallback_calls: list[int] = []
    dep = Dependency("svc", timeout=None, bulkhead=None, registry=reg, clock=clock,
                     breaker=BreakerPolicy(min_calls=2, check_interval=0, ignore=(BadRequest,)),
                     fallbacks=[Fallback(lambda: fallback_calls.append(1), name="fb")])

    def bad() -> None:
        raise BadRequest("no such title")

    for _ in range(10):
        with pytest.raises(BadRequest):
            dep.call(bad)
    snap = dep.snapshot()
    assert fallback_calls == []
    assert snap["requests"] == 0
    assert all(n == 0 for n in snap["counts"].values())
    assert dep.breaker.state == "closed"


def test_ignored_exception_in_a_trial_does_not_wedge_half_open(clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("svc", timeout=None, bulkhead=None, registry=reg, clock=clock,
                     breaker=BreakerPolicy(min_calls=2, check_interval=0, open_for=1.0, ignore=(BadRequest,)))
    fail_n(dep, 2)
    clock.advance(1.0)

    def bad() -> None:
        raise BadRequest("no such title")

    with pytest.raises(BadRequest):
        dep.call(bad)
    assert dep.call(ok) == "ok"  # the trial slot came back: the next call is the trial
    assert dep.breaker.state == "closed"


def test_exceptions_outside_failure_on_reach_the_caller_and_do_not_trip(clock: ManualClock,
                                                                         reg: Registry) -> None:
    fallback_calls: list[int] = []
    dep = Dependency("svc", timeout=None, bulkhead=None, registry=reg, clock=clock,
                     breaker=BreakerPolicy(min_calls=2, check_interval=0, failure_on=(ConnectionError,)),
                     fallbacks=[Fallback(lambda: fallback_calls.append(1) or "fb", name="fb")])

    def key_error() -> None:
        raise KeyError("x")

    for _ in range(10):
        with pytest.raises(KeyError):
            dep.call(key_error)
    assert dep.breaker.state == "closed"
    assert fallback_calls == []
    assert dep.snapshot()["counts"]["failure"] == 0
    # a failure_on exception still fails over and counts
    result = dep.execute(boom)
    assert result.source == "fb"  # boom raises Unavailable, a ConnectionError
    assert dep.snapshot()["counts"]["failure"] == 1


def test_old_buckets_leave_the_window(clock: ManualClock, reg: Registry) -> None:
    dep = make(clock, reg, min_calls=6, window=10.0, buckets=10)
    fail_n(dep, 3)
    clock.advance(5.0)
    fail_n(dep, 2)
    assert dep.snapshot()["counts"]["failure"] == 5
    clock.advance(5.0)  # the first three are now 10 s old: out of the window
    snap = dep.snapshot()
    assert snap["counts"]["failure"] == 2
    assert snap["requests"] == 2
    fail_n(dep, 3)  # 5 in the window: under min_calls, so still closed
    assert dep.breaker.state == "closed"
    fail_n(dep, 1)
    assert dep.breaker.state == "open"
    clock.advance(20.0)
    assert dep.snapshot()["counts"]["failure"] == 0


def test_no_breaker_never_opens(clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("svc", timeout=None, breaker=None, registry=reg, clock=clock)
    fail_n(dep, 100)
    assert dep.breaker.state == "closed"
    assert dep.snapshot()["counts"]["failure"] == 100


def test_state_change_events_carry_the_state(clock: ManualClock, reg: Registry) -> None:
    dep = make(clock, reg)
    events: list[Event] = []
    dep.listen(events.append)
    fail_n(dep, 4)
    change = [e for e in events if e.outcome is Outcome.STATE_CHANGE]
    assert [(e.dependency, e.state) for e in change] == [("svc", "open")]


def test_a_listener_may_read_the_snapshot_on_a_state_change(clock: ManualClock, reg: Registry) -> None:
    dep = make(clock, reg)
    seen: list[str] = []
    dep.listen(lambda e: seen.append(dep.snapshot()["state"]) if e.outcome is Outcome.STATE_CHANGE else None)
    fail_n(dep, 4)
    assert seen == ["open"]


def test_a_trial_cancelled_from_outside_frees_its_slot(clock: ManualClock, reg: Registry,
                                                       run_virtual: Callable[[Any], Any]) -> None:
    dep = Dependency("svc", timeout=1.0, bulkhead=None, registry=reg, clock=clock,
                     breaker=BreakerPolicy(min_calls=2, check_interval=0, open_for=1.0))
    fail_n(dep, 2)
    clock.advance(1.0)

    async def main() -> str:
        trial = asyncio.ensure_future(dep.acall(asyncio.sleep, 0.5, "trial"))
        await asyncio.sleep(0.1)
        assert dep.breaker.state == "half_open"
        trial.cancel()  # the caller went away: no verdict on the dependency
        with pytest.raises(asyncio.CancelledError):
            await trial
        return await dep.acall(asyncio.sleep, 0.1, "next")  # so the next call is the trial

    assert run_virtual(main()) == "next"
    assert dep.breaker.state == "closed"


class Interrupted(BaseException):
    """Like KeyboardInterrupt: not an Exception, nothing to do with the dependency."""


def test_base_exceptions_pass_through_uncounted(clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("svc", timeout=None, bulkhead=None, registry=reg, clock=clock,
                     breaker=BreakerPolicy(min_calls=1, check_interval=0),
                     fallbacks=[Fallback.value("fb", name="fb")])

    def interrupted() -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        dep.call(interrupted)
    snap = dep.snapshot()
    assert snap["requests"] == 0 and snap["counts"]["fallback_success"] == 0
    assert dep.breaker.state == "closed"


# -- the verdict is due whatever the last outcome ----------------------------------------------
def test_a_success_after_a_failure_burst_trips_it(clock: ManualClock, reg: Registry) -> None:
    # Hystrix's health snapshot: once the window holds min_calls at the error rate, the next
    # recorded outcome trips the breaker, even a success
    dep = make(clock, reg, min_calls=5, error_rate=0.5, check_interval=0.0)
    reached: list[int] = []
    fail_n(dep, 3)
    succeed_n(dep, 2)  # 3 failures of 5 calls
    assert dep.breaker.state == "open"
    with pytest.raises(DependencyFailed) as info:
        dep.call(lambda: reached.append(1))
    assert reached == []
    assert isinstance(info.value.causes[0][1], BreakerOpen)


def test_a_success_once_the_check_interval_passed_judges_the_burst(clock: ManualClock,
                                                                     reg: Registry) -> None:
    dep = make(clock, reg, min_calls=5, error_rate=0.5, check_interval=1.0)
    fail_n(dep, 1)  # judged at once: too few calls; the next verdict is due in a second
    fail_n(dep, 5)  # inside the interval: waiting in the log
    succeed_n(dep, 1)
    assert dep.breaker.state == "closed"
    clock.advance(1.0)
    succeed_n(dep, 1)  # the first outcome after the interval judges 6 failures of 8 calls
    assert dep.breaker.state == "open"


def test_the_decorator_trips_on_a_success_too(clock: ManualClock, reg: Registry) -> None:
    dep = make(clock, reg, min_calls=4, error_rate=0.5)
    guarded_ok, guarded_boom = dep(ok), dep(boom)
    for _ in range(2):
        with pytest.raises(DependencyFailed):
            guarded_boom()
    assert guarded_ok() == "ok"
    assert dep.breaker.state == "closed"  # 3 calls: under min_calls
    assert guarded_ok() == "ok"  # 2 failures of 4
    assert dep.breaker.state == "open"


def test_successes_past_min_calls_stay_on_the_plain_path(clock: ManualClock, reg: Registry) -> None:
    # at or above min_calls a success can only lower the error rate: no verdict is taken for it
    dep = make(clock, reg, min_calls=4, error_rate=0.5)
    succeed_n(dep, 4)
    fail_n(dep, 1)
    assert dep._state.window.attention_at > clock.now_ns()
    succeed_n(dep, 3)
    assert dep.breaker.state == "closed"


def test_calls_leaving_the_window_bring_a_verdict(clock: ManualClock, reg: Registry) -> None:
    # old successes leave the window: the failures that stay are judged on the next outcome
    dep = make(clock, reg, min_calls=4, error_rate=0.5, window=10.0, buckets=10)
    succeed_n(dep, 6)
    clock.advance(5.0)
    fail_n(dep, 3)  # 3 of 9
    succeed_n(dep, 1)  # 3 of 10
    assert dep.breaker.state == "closed"
    clock.advance(5.5)  # the first six successes leave the window
    succeed_n(dep, 1)  # 3 failures of 5 calls
    assert dep.breaker.state == "open"


# -- half-open trials are judged by the rules that opened the breaker --------------------------
def test_slow_trials_reopen_it(clock: ManualClock, reg: Registry) -> None:
    dep = make(clock, reg, slow_call=0.1, slow_rate=0.5, open_for=1.0, trial_calls=4)
    slow = taking(clock, 0.2)
    for _ in range(4):
        assert dep.call(slow) == "ok"
    assert dep.breaker.state == "open"  # opened on the slow-call rate
    clock.advance(1.0)
    changes = states(dep)
    assert dep.call(ok) == "ok"
    assert dep.call(slow) == "ok"
    assert dep.breaker.state == "half_open"  # 1 slow of 4 trials
    assert dep.call(slow) == "ok"  # 2 slow of 4 trials: the slow-call rate again
    assert dep.breaker.state == "open"
    assert changes == ["half_open", "open"]


def test_fast_trials_close_a_breaker_opened_on_slow_calls(clock: ManualClock, reg: Registry) -> None:
    dep = make(clock, reg, slow_call=0.1, slow_rate=0.5, open_for=1.0, trial_calls=4)
    for _ in range(4):
        dep.call(taking(clock, 0.2))
    clock.advance(1.0)
    assert dep.call(taking(clock, 0.2)) == "ok"  # 1 slow of 4: under the slow-call rate
    succeed_n(dep, 3)
    assert dep.breaker.state == "closed"
