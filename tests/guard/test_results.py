"""Result predicates, Retry-After, the cap on total retry time, Result.error and the transition log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from stoic.guard import (
    BreakerOpen,
    BreakerPolicy,
    Dependency,
    DependencyFailed,
    FailedResult,
    Fallback,
    ManualClock,
    Outcome,
    Registry,
    Retry,
    retry_after_seconds,
)

from .helpers import Unavailable, boom

T = TypeVar("T")
RunVirtual = Callable[[Coroutine[Any, Any, T]], T]


class Answer:
    """What an HTTP-like dependency returns: a status and the pause it asks for."""

    def __init__(self, status: int, wait: float | None = None) -> None:
        self.status = status
        self.wait = wait

    def __repr__(self) -> str:
        return f"Answer({self.status})"


def is_5xx(answer: Any) -> bool:
    return isinstance(answer, Answer) and answer.status >= 500


def scripted(clock: ManualClock, *answers: Answer) -> tuple[Callable[[], Answer], list[float]]:
    """A primary answering each of `answers` in turn (the last repeats); records when it was called."""
    calls: list[float] = []

    def primary() -> Answer:
        calls.append(clock.now_ns() / 1e9)
        return answers[min(len(calls), len(answers)) - 1]

    return primary, calls


def test_failure_when_counts_an_answer_as_a_failure_and_opens_the_breaker(
        clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("prices", timeout=None, clock=clock, registry=reg,
                     breaker=BreakerPolicy(min_calls=3, check_interval=0, failure_when=is_5xx),
                     fallbacks=[Fallback.value("cached", name="cache")])
    primary, _ = scripted(clock, Answer(503))
    results = [dep.execute(primary) for _ in range(3)]
    assert [r.source for r in results] == ["cache"] * 3
    assert results[0].outcome is Outcome.FAILURE
    assert isinstance(results[0].error, FailedResult) and results[0].error.value.status == 503
    assert dep.snapshot()["counts"]["failure"] == 3
    assert dep.breaker.state == "open"
    short = dep.execute(primary)
    assert short.outcome is Outcome.SHORT_CIRCUITED and isinstance(short.error, BreakerOpen)


def test_an_answer_counted_as_a_failure_is_still_the_best_when_nothing_else_answers(
        clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("prices", timeout=None, clock=clock, registry=reg,
                     breaker=BreakerPolicy(failure_when=is_5xx))
    primary, _ = scripted(clock, Answer(503))
    result = dep.execute(primary)
    assert result.value.status == 503 and result.source == "primary"
    assert result.outcome is Outcome.FAILURE and isinstance(result.error, FailedResult)
    assert dep.call(primary).status == 503
    # an answer that is not a failure is a plain success, and a raised error still fails the call
    assert dep.execute(lambda: Answer(404)).outcome is Outcome.SUCCESS
    with pytest.raises(DependencyFailed):
        dep.call(boom)
    assert dep.snapshot()["counts"]["failure"] == 3 and dep.snapshot()["counts"]["success"] == 1


def test_the_decorator_judges_answers_as_call_does(clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("prices", timeout=None, clock=clock, registry=reg,
                     breaker=BreakerPolicy(failure_when=is_5xx),
                     fallbacks=[Fallback.value("cached", name="cache")])
    guarded = dep(lambda status: Answer(status))
    assert guarded(503) == "cached"
    assert guarded(200).status == 200
    assert dep.snapshot()["counts"]["failure"] == 1 and dep.snapshot()["counts"]["success"] == 1


def test_a_failing_predicate_reaches_the_caller_and_frees_the_permit(
        clock: ManualClock, reg: Registry) -> None:
    def broken(answer: Any) -> bool:
        raise KeyError("status")

    dep = Dependency("prices", clock=clock, registry=reg, breaker=BreakerPolicy(failure_when=broken))
    with pytest.raises(KeyError):
        dep.call(lambda: Answer(200))
    assert dep.snapshot()["concurrent"] == 0 and dep.snapshot()["requests"] == 0


def test_failing_answers_are_retried_and_a_later_good_one_is_the_answer(
        clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("prices", timeout=None, clock=clock, registry=reg,
                     breaker=BreakerPolicy(failure_when=is_5xx),
                     retry=Retry(attempts=3, budget=None))
    primary, calls = scripted(clock, Answer(503), Answer(502), Answer(200))
    result = dep.execute(primary)
    assert result.value.status == 200 and result.error is None and len(calls) == 3


def test_retry_when_retries_an_answer_that_is_no_failure(clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("jobs", timeout=None, clock=clock, registry=reg,
                     retry=Retry(attempts=3, budget=None, retry_when=lambda a: a.status == 202))
    primary, calls = scripted(clock, Answer(202))
    result = dep.execute(primary)
    # every attempt answered: the last answer is returned, nothing counted as a failure
    assert len(calls) == 3 and result.value.status == 202 and result.outcome is Outcome.SUCCESS
    assert result.error is None and dep.snapshot()["counts"]["failure"] == 0


def test_retry_when_also_filters_errors(clock: ManualClock, reg: Registry) -> None:
    attempts: list[int] = []

    def fails() -> str:
        attempts.append(1)
        raise Unavailable("503")

    dep = Dependency("jobs", timeout=None, clock=clock, registry=reg,
                     retry=Retry(attempts=3, budget=None, retry_when=lambda seen: "retry" in str(seen)))
    with pytest.raises(DependencyFailed):
        dep.call(fails)
    assert len(attempts) == 1


def test_retry_after_sets_the_pause(clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("prices", timeout=None, clock=clock, registry=reg,
                     breaker=BreakerPolicy(failure_when=is_5xx),
                     retry=Retry(attempts=2, initial=0.01, maximum=5.0, budget=None,
                                 retry_after=lambda a: getattr(a, "wait", None)))
    primary, calls = scripted(clock, Answer(503, wait=3.0), Answer(200))
    assert dep.call(primary).status == 200
    assert calls == [0.0, 3.0]  # the asked 3 s, not the backoff's at most 10 ms


def test_a_retry_after_longer_than_the_policy_waits_goes_to_the_fallbacks_at_once(
        clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("prices", timeout=None, clock=clock, registry=reg,
                     breaker=BreakerPolicy(failure_when=is_5xx),
                     retry=Retry(attempts=3, maximum=1.0, budget=None, retry_after=lambda a: a.wait),
                     fallbacks=[Fallback.value("cached", name="cache")])
    primary, calls = scripted(clock, Answer(503, wait=120.0))
    result = dep.execute(primary)
    assert result.source == "cache" and len(calls) == 1 and clock.now_ns() == 0
    assert result.error.value.wait == 120.0  # type: ignore[union-attr]


def test_total_caps_the_time_across_retries(clock: ManualClock, reg: Registry) -> None:
    # each attempt may take its 1 s deadline; pauses are 0.5 s: the cap of 3 s leaves room for one retry
    dep = Dependency("prices", timeout=1.0, clock=clock, registry=reg,
                     breaker=BreakerPolicy(failure_when=is_5xx),
                     retry=Retry(attempts=5, initial=0.5, multiplier=1.0, jitter="none", budget=None,
                                 total=3.0))

    def slow_503() -> Answer:
        clock.advance(0.8)
        return Answer(503)

    attempts: list[float] = []

    def primary() -> Answer:
        attempts.append(clock.now_ns() / 1e9)
        return slow_503()

    dep.call(primary)
    # the cap counts from the first failure (0.8 s), so every retry must be able to end by 3.8 s:
    # retry 1 starts at 1.3 (may end at 2.3), retry 2 at 2.6 (may end at 3.6); retry 3 would start
    # at 3.9 and is never made
    assert attempts == pytest.approx([0.0, 1.3, 2.6])


def test_result_error_says_why_it_fell_back(clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("recs", timeout=None, clock=clock, registry=reg,
                     breaker=BreakerPolicy(min_calls=1, check_interval=0),
                     fallbacks=[Fallback.value([], name="empty")])
    assert dep.execute(lambda: ["r1"]).error is None
    failed = dep.execute(boom)
    assert isinstance(failed.error, Unavailable) and failed.source == "empty"
    short = dep.execute(lambda: ["r1"])
    assert isinstance(short.error, BreakerOpen) and short.outcome is Outcome.SHORT_CIRCUITED


def test_async_calls_judge_answers_and_honour_retry_after(
        clock: ManualClock, reg: Registry, run_virtual: RunVirtual[Any]) -> None:
    dep = Dependency("prices", timeout=2.0, clock=clock, registry=reg,
                     breaker=BreakerPolicy(failure_when=is_5xx),
                     retry=Retry(attempts=2, maximum=5.0, budget=None, retry_after=lambda a: a.wait),
                     fallbacks=[Fallback.value("cached", name="cache")])
    answers = iter([Answer(503, wait=2.5), Answer(503, wait=2.5)])
    seen: list[float] = []

    async def primary() -> Answer:
        seen.append(clock.now_ns() / 1e9)
        await asyncio.sleep(0)
        return next(answers)

    result = run_virtual(dep.aexecute(primary))
    assert result.source == "cache" and isinstance(result.error, FailedResult)
    assert seen == [0.0, 2.5]


def test_retry_after_seconds_reads_both_forms_and_ignores_garbage(caplog: pytest.LogCaptureFixture) -> None:
    assert retry_after_seconds(None) is None
    assert retry_after_seconds(" 7 ") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0  # past: now
    with caplog.at_level(logging.WARNING, logger="stoic.guard"):
        assert retry_after_seconds("-5") is None
        assert retry_after_seconds("soon") is None
        assert retry_after_seconds("1.5") is None
    assert [r.getMessage() for r in caplog.records] == [
        "ignoring Retry-After '-5': neither delta-seconds nor an HTTP-date",
        "ignoring Retry-After 'soon': neither delta-seconds nor an HTTP-date",
        "ignoring Retry-After '1.5': neither delta-seconds nor an HTTP-date",
    ]


def test_each_breaker_transition_is_one_log_line_with_its_figures(
        clock: ManualClock, reg: Registry, caplog: pytest.LogCaptureFixture) -> None:
    dep = Dependency("recs", timeout=1.0, clock=clock, registry=reg,
                     breaker=BreakerPolicy(min_calls=4, error_rate=0.5, check_interval=0, open_for=5.0),
                     fallbacks=[Fallback.value([], name="empty")])
    with caplog.at_level(logging.INFO, logger="stoic.guard"):
        dep.call(lambda: "ok")
        dep.call(lambda: "ok")
        dep.call(boom)
        dep.call(boom)                      # 2 of 4 failed: opens
        clock.advance(5.0)
        dep.call(boom)                      # the trial fails: opens again
        clock.advance(5.0)
        dep.call(lambda: "ok")              # the trial answers: closes
        dep.breaker.force_open()
        dep.breaker.reset()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "stoic.guard"]
    assert lines == [
        ("WARNING", "recs: circuit closed -> open: 4 calls in the last 10s (min_calls 4), error rate "
                    "50.0% (opens at 50%), slow rate 0.0% (opens at 100%; slow from 1s); short-circuits "
                    "for 5s"),
        ("INFO", "recs: circuit open -> half_open: open for 5s; letting 1 trial call(s) through"),
        ("WARNING", "recs: circuit half_open -> open: 1 of 1 trial call(s): 1 failed (opens at 50%), "
                    "0 slow (opens at 100%; slow from 1s); short-circuits for 5s"),
        ("INFO", "recs: circuit open -> half_open: open for 5s; letting 1 trial call(s) through"),
        ("INFO", "recs: circuit half_open -> closed: 1 of 1 trial call(s): 0 failed (opens at 50%), "
                 "0 slow (opens at 100%; slow from 1s); a fresh window"),
        ("WARNING", "recs: circuit closed -> open: forced open (until breaker.reset())"),
        ("INFO", "recs: circuit open -> closed: breaker.reset(): overrides removed, a fresh window"),
    ]


def test_a_retry_after_hook_that_answers_no_seconds_is_named(clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("prices", timeout=None, clock=clock, registry=reg,
                     breaker=BreakerPolicy(failure_when=is_5xx),
                     retry=Retry(attempts=2, budget=None, retry_after=lambda seen: "soon"))
    with pytest.raises(TypeError, match=r"Retry\.retry_after must return seconds or None, got 'soon'"):
        dep.call(lambda: Answer(503))


def test_configure_turns_predicates_on_for_decorated_functions(clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("prices", timeout=None, clock=clock, registry=reg,
                     fallbacks=[Fallback.value("cached", name="cache")])
    guarded = dep(lambda status: Answer(status))
    assert guarded(503).status == 503  # no predicate: an answer is an answer
    dep.configure(breaker=BreakerPolicy(failure_when=is_5xx))
    assert guarded(503) == "cached"
    dep.configure(breaker=BreakerPolicy())
    assert guarded(503).status == 503
    assert dep.snapshot()["counts"]["failure"] == 1
