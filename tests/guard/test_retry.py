"""Retries: attempts, jittered backoff, the retry budget, and what is never retried."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from stoic.guard import (
    BreakerPolicy,
    Dependency,
    DependencyFailed,
    Event,
    Fallback,
    Fault,
    ManualClock,
    Outcome,
    Registry,
    Retry,
    RetryBudget,
    SemaphoreBulkhead,
    inject,
)

from .helpers import Unavailable

Runner = Callable[[Coroutine[Any, Any, Any]], Any]


class Flaky:
    """Fails the first `failures` calls, then answers; remembers when each call started."""

    def __init__(self, clock: ManualClock, failures: int, error: type[Exception] = Unavailable) -> None:
        self.clock = clock
        self.failures = failures
        self.error = error
        self.started: list[float] = []

    def __call__(self) -> str:
        self.started.append(self.clock.now_ns() / 1e9)
        if len(self.started) <= self.failures:
            raise self.error("flaky")
        return "ok"


class NoBreaker:
    policy = BreakerPolicy(min_calls=10_000)


def make(clock: ManualClock, reg: Registry, retry: Retry, **kw: Any) -> Dependency:
    kw.setdefault("breaker", NoBreaker.policy)
    return Dependency("svc", timeout=None, retry=retry, registry=reg, clock=clock, seed=1, **kw)


def test_retries_until_an_attempt_answers(clock: ManualClock, reg: Registry) -> None:
    dep = make(clock, reg, Retry(attempts=3, budget=None))
    flaky = Flaky(clock, failures=2)
    result = dep.execute(flaky)
    assert (result.value, result.source, result.level) == ("ok", "primary", 0)
    assert result.outcome is Outcome.SUCCESS
    assert len(flaky.started) == 3
    counts = dep.snapshot()["counts"]
    assert (counts["failure"], counts["retry"], counts["success"]) == (2, 2, 1)


def test_attempts_count_the_first_call(clock: ManualClock, reg: Registry) -> None:
    dep = make(clock, reg, Retry(attempts=3, budget=None))
    flaky = Flaky(clock, failures=100)
    with pytest.raises(DependencyFailed) as info:
        dep.call(flaky)
    assert len(flaky.started) == 3
    assert [source for source, _ in info.value.causes] == ["primary"] * 3
    single = make(clock, Registry(), Retry(attempts=1, budget=None))
    once = Flaky(clock, failures=100)
    with pytest.raises(DependencyFailed):
        single.call(once)
    assert len(once.started) == 1


def test_backoff_is_exponential_with_full_jitter(clock: ManualClock, reg: Registry) -> None:
    retry = Retry(attempts=6, initial=0.1, maximum=0.5, multiplier=2.0, budget=None)
    ceilings = [0.1, 0.2, 0.4, 0.5, 0.5]  # before attempts 2..6
    rng = random.Random(3)
    for attempt, ceiling in enumerate(ceilings, start=2):
        samples = [retry.delay(attempt, rng) for _ in range(2000)]
        assert min(samples) >= 0.0 and max(samples) <= ceiling
        assert max(samples) > 0.9 * ceiling and min(samples) < 0.1 * ceiling  # spread over the range
    fixed = Retry(attempts=6, initial=0.1, maximum=0.5, jitter="none", budget=None)
    assert [fixed.delay(a, rng) for a in range(2, 7)] == pytest.approx(ceilings)
    # the waits a dependency really makes stay inside the same bounds
    dep = make(clock, reg, retry)
    flaky = Flaky(clock, failures=100)
    with pytest.raises(DependencyFailed):
        dep.call(flaky)
    gaps = [b - a for a, b in zip(flaky.started, flaky.started[1:], strict=False)]
    assert len(gaps) == 5
    assert all(0.0 <= gap <= ceiling + 1e-9 for gap, ceiling in zip(gaps, ceilings, strict=True))


def test_the_budget_refuses_once_spent(clock: ManualClock, reg: Registry) -> None:
    # floor of 0.3 retries per second over a 10 s window: 3 retries, then none
    dep = make(clock, reg, Retry(attempts=2, budget=RetryBudget(ratio=0.0, min_per_second=0.3)))
    flakies = [Flaky(clock, failures=100) for _ in range(6)]
    for flaky in flakies:
        with pytest.raises(DependencyFailed):
            dep.call(flaky)
    assert [len(f.started) for f in flakies] == [2, 2, 2, 1, 1, 1]
    assert dep.snapshot()["counts"]["retry"] == 3
    clock.advance(10.0)  # the spent retries leave the window: budget again
    again = Flaky(clock, failures=100)
    with pytest.raises(DependencyFailed):
        dep.call(again)
    assert len(again.started) == 2


def test_the_budget_scales_with_traffic(clock: ManualClock, reg: Registry) -> None:
    dep = make(clock, reg, Retry(attempts=2, budget=RetryBudget(ratio=0.1, min_per_second=0.0)))
    for _ in range(40):
        dep.call(lambda: "ok")
    retried = 0
    for _ in range(20):
        flaky = Flaky(clock, failures=100)
        with pytest.raises(DependencyFailed):
            dep.call(flaky)
        retried += len(flaky.started) - 1
    counts = dep.snapshot()["counts"]
    calls = counts["success"] + counts["failure"]
    assert retried == counts["retry"] > 0
    assert counts["retry"] <= 0.1 * calls  # never more than 10 % of the calls
    assert retried < 20  # and some failures were not retried at all


def test_never_retries_into_an_open_breaker(clock: ManualClock, reg: Registry) -> None:
    dep = make(clock, reg, Retry(attempts=5, budget=None),
               breaker=BreakerPolicy(min_calls=1, check_interval=0.0))
    flaky = Flaky(clock, failures=100)
    with pytest.raises(DependencyFailed):
        dep.call(flaky)
    assert len(flaky.started) == 1  # the failure opened the breaker: no retry
    assert dep.breaker.state == "open"
    assert dep.snapshot()["counts"]["retry"] == 0


def test_short_circuits_are_not_retried(clock: ManualClock, reg: Registry) -> None:
    dep = make(clock, reg, Retry(attempts=5, budget=None), fallbacks=[Fallback.value("fb", name="fb")])
    dep.breaker.force_open()
    flaky = Flaky(clock, failures=0)
    result = dep.execute(flaky)
    assert (result.value, result.outcome) == ("fb", Outcome.SHORT_CIRCUITED)
    assert flaky.started == []
    assert dep.snapshot()["counts"]["retry"] == 0


class RejectAll:
    def fault_for(self, dependency: str) -> Fault | None:
        return Fault("reject")


def test_rejections_are_not_retried(clock: ManualClock, reg: Registry, run_virtual: Runner) -> None:
    dep = make(clock, reg, Retry(attempts=5, budget=None), fallbacks=[Fallback.value("fb", name="fb")])
    flaky = Flaky(clock, failures=0)
    with inject(RejectAll()):
        result = dep.execute(flaky)
    assert (result.value, result.outcome) == ("fb", Outcome.REJECTED)
    # and a real full bulkhead
    full = make(clock, Registry(), Retry(attempts=5, budget=None),
                bulkhead=SemaphoreBulkhead(max_concurrent=1), fallbacks=[Fallback.value("fb", name="fb")])

    async def main() -> list[Outcome]:
        results = await asyncio.gather(full.aexecute(asyncio.sleep, 1.0, "a"),
                                       full.aexecute(asyncio.sleep, 1.0, "b"))
        return [r.outcome for r in results]

    assert sorted(run_virtual(main())) == [Outcome.SUCCESS, Outcome.REJECTED]
    for d in (dep, full):
        assert d.snapshot()["counts"]["retry"] == 0
    assert dep.snapshot()["counts"]["injected"] == 1  # the request's own rejection: counted apart
    assert full.snapshot()["counts"]["rejected"] == 1


def test_only_retry_on_errors_are_retried(clock: ManualClock, reg: Registry) -> None:
    dep = make(clock, reg, Retry(attempts=3, retry_on=(TimeoutError,), budget=None))
    flaky = Flaky(clock, failures=100)
    with pytest.raises(DependencyFailed):
        dep.call(flaky)
    assert len(flaky.started) == 1
    timing_out = Flaky(clock, failures=2, error=TimeoutError)
    assert dep.call(timing_out) == "ok"
    assert len(timing_out.started) == 3


def test_async_retries_and_retry_events(clock: ManualClock, reg: Registry, run_virtual: Runner) -> None:
    dep = make(clock, reg, Retry(attempts=3, initial=0.1, budget=None))
    events: list[Event] = []
    dep.listen(events.append)
    failures = [2]

    async def flaky() -> str:
        await asyncio.sleep(0.01)
        if failures[0]:
            failures[0] -= 1
            raise Unavailable("503")
        return "ok"

    assert run_virtual(dep.acall(flaky)) == "ok"
    assert [e.outcome for e in events] == [Outcome.FAILURE, Outcome.RETRY, Outcome.FAILURE, Outcome.RETRY,
                                           Outcome.SUCCESS]
    assert dep.snapshot()["counts"]["retry"] == 2
