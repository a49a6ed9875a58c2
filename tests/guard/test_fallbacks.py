"""The fallback chain: levels in order, per-level deadlines, async levels, one cause per level."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from stoic.guard import (
    BreakerPolicy,
    ConfigError,
    DeadlineExceeded,
    Dependency,
    DependencyFailed,
    Fallback,
    ManualClock,
    Outcome,
    Registry,
)

from .helpers import Unavailable, boom, ok

Runner = Callable[[Coroutine[Any, Any, Any]], Any]


class Miss(LookupError):
    pass


def test_levels_answer_in_order_with_the_primary_arguments(clock: ManualClock, reg: Registry) -> None:
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def snapshot(user: str, *, region: str) -> list[str]:
        calls.append(("snapshot", (user,), {"region": region}))
        raise Miss(user)

    def regional(user: str, *, region: str) -> list[str]:
        calls.append(("regional", (user,), {"region": region}))
        return [f"popular-in-{region}"]

    def never(user: str, *, region: str) -> list[str]:
        calls.append(("never", (user,), {"region": region}))
        return []

    dep = Dependency("rows", timeout=None, registry=reg, clock=clock,
                     fallbacks=[Fallback(snapshot, name="snapshot"), regional, Fallback(never, name="never")])
    result = dep.execute(boom, "u1", region="eu")
    assert result.value == ["popular-in-eu"]
    assert (result.source, result.level, result.outcome) == ("regional", 2, Outcome.FAILURE)
    assert result.degraded
    assert calls == [("snapshot", ("u1",), {"region": "eu"}), ("regional", ("u1",), {"region": "eu"})]
    assert dep.call(boom, "u2", region="us") == ["popular-in-us"]
    snap = dep.snapshot()
    assert snap["fallbacks"] == {"snapshot": 0, "regional": 2, "never": 0}
    counts = snap["counts"]
    assert (counts["failure"], counts["fallback_failure"], counts["fallback_success"]) == (2, 2, 2)
    assert snap["has_fallback"] is True


def test_primary_answer_is_level_zero(clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("rows", registry=reg, clock=clock, fallbacks=[Fallback.value([], name="empty")])
    result = dep.execute(ok, "fresh")
    assert (result.value, result.source, result.level, result.outcome, result.degraded) == \
        ("fresh", "primary", 0, Outcome.SUCCESS, False)


def test_every_level_failing_raises_one_cause_per_level(clock: ManualClock, reg: Registry) -> None:
    def snapshot() -> None:
        raise Miss("cold")

    def generic() -> None:
        raise RuntimeError("no generic rows either")

    dep = Dependency("rows", timeout=None, registry=reg, clock=clock, fallbacks=[snapshot, generic])
    with pytest.raises(DependencyFailed) as info:
        dep.call(boom)
    failed = info.value
    assert failed.dependency == "rows"
    assert [(source, type(err)) for source, err in failed.causes] == [
        ("primary", Unavailable), ("snapshot", Miss), ("generic", RuntimeError)]
    assert "rows: every level failed" in str(failed) and "Miss: cold" in str(failed)
    assert dep.snapshot()["counts"]["fallback_failure"] == 2


def test_a_sync_level_that_overruns_its_deadline_does_not_answer(clock: ManualClock, reg: Registry) -> None:
    def slow_snapshot() -> str:
        clock.advance(0.2)
        return "too late"

    def quick_snapshot() -> str:
        clock.advance(0.04)
        return "in time"

    dep = Dependency("rows", timeout=None, registry=reg, clock=clock, fallbacks=[
        Fallback(slow_snapshot, name="slow", timeout=0.05),
        Fallback(quick_snapshot, name="quick", timeout=0.05),
    ])
    result = dep.execute(boom)
    assert (result.value, result.source) == ("in time", "quick")
    assert dep.snapshot()["fallbacks"] == {"slow": 0, "quick": 1}


def test_overrun_cause_is_a_deadline(clock: ManualClock, reg: Registry) -> None:
    def slow_snapshot() -> str:
        clock.advance(0.2)
        return "too late"

    dep = Dependency("rows", timeout=None, registry=reg, clock=clock,
                     fallbacks=[Fallback(slow_snapshot, name="slow", timeout=0.05)])
    with pytest.raises(DependencyFailed) as info:
        dep.call(boom)
    source, error = info.value.causes[1]
    assert source == "slow" and isinstance(error, DeadlineExceeded)
    assert "0.05" in str(error)


def test_async_fallbacks_with_deadlines(clock: ManualClock, reg: Registry, run_virtual: Runner) -> None:
    cancelled: list[str] = []

    async def remote_snapshot(user: str) -> str:
        try:
            await asyncio.sleep(1.0)
        except asyncio.CancelledError:
            cancelled.append(user)
            raise
        return "never"

    async def local_snapshot(user: str) -> str:
        await asyncio.sleep(0.01)
        return f"local-{user}"

    async def failing(user: str) -> str:
        await asyncio.sleep(0.01)
        raise Unavailable(user)

    dep = Dependency("rows", timeout=0.5, registry=reg, clock=clock, fallbacks=[
        Fallback(remote_snapshot, name="remote", timeout=0.05),
        Fallback(local_snapshot, name="local", timeout=0.05),
    ])
    result = run_virtual(dep.aexecute(failing, "u1"))
    assert (result.value, result.source, result.level) == ("local-u1", "local", 2)
    assert result.outcome is Outcome.FAILURE
    assert cancelled == ["u1"]  # the slow level was cancelled at its own deadline
    assert clock.now_ns() == pytest.approx(0.07e9, abs=1e3)  # 10 ms primary + 50 ms + 10 ms
    assert run_virtual(dep.acall(failing, "u2")) == "local-u2"


def test_async_call_with_sync_fallback(clock: ManualClock, reg: Registry, run_virtual: Runner) -> None:
    async def failing() -> str:
        raise Unavailable("503")

    dep = Dependency("rows", registry=reg, clock=clock, fallbacks=[Fallback.value("generic", name="generic")])
    assert run_virtual(dep.acall(failing)) == "generic"


def test_async_fallback_in_a_sync_call_is_skipped_with_a_clear_cause(clock: ManualClock,
                                                                     reg: Registry) -> None:
    async def remote() -> str:
        return "x"

    dep = Dependency("rows", registry=reg, clock=clock,
                     fallbacks=[Fallback(remote, name="remote"), Fallback.value("generic", name="generic")])
    assert dep.execute(boom).source == "generic"
    dep2 = Dependency("rows2", registry=reg, clock=clock, fallbacks=[Fallback(remote, name="remote")])
    with pytest.raises(DependencyFailed) as info:
        dep2.call(boom)
    error = info.value.causes[1][1]
    assert isinstance(error, ConfigError) and "acall" in str(error)


def test_short_circuit_and_rejection_fall_back(clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("rows", timeout=None, registry=reg, clock=clock,
                     breaker=BreakerPolicy(min_calls=1, check_interval=0),
                     fallbacks=[Fallback.value("generic", name="generic")])
    assert dep.execute(boom).outcome is Outcome.FAILURE
    result = dep.execute(ok)
    assert (result.value, result.outcome, result.level) == ("generic", Outcome.SHORT_CIRCUITED, 1)


def test_fallback_name_defaults_to_the_function_name(clock: ManualClock, reg: Registry) -> None:
    def from_snapshot() -> str:
        return "s"

    assert Fallback(from_snapshot).name == "from_snapshot"
    assert Fallback.value(1).name == "static"
    assert Fallback.value([1, 2], name="popular").fn("any", key="arg") == [1, 2]


# -- a fallback that calls its own dependency --------------------------------------------------
class Runaway(BaseException):
    """Stops a test whose calls multiply: a BaseException passes every level untouched."""


def test_a_fallback_calling_its_own_dependency_does_not_walk_the_chain_again(clock: ManualClock,
                                                                              reg: Registry) -> None:
    primary_calls: list[int] = []

    def primary() -> str:
        primary_calls.append(1)
        if len(primary_calls) > 20:
            raise Runaway
        raise Unavailable("503")

    # both levels ask the dependency again (for example through a shared client)
    dep = Dependency("svc", timeout=None, bulkhead=None, breaker=None, registry=reg, clock=clock,
                     fallbacks=[Fallback(lambda: dep.call(primary), name="again"),
                                Fallback(lambda: dep.call(primary), name="once_more")])
    with pytest.raises(DependencyFailed) as info:
        dep.call(primary)
    assert len(primary_calls) == 3  # the call, then one primary attempt per level
    assert [source for source, _ in info.value.causes] == ["primary", "again", "once_more"]
    inner = info.value.causes[1][1]
    assert isinstance(inner, DependencyFailed)
    assert "called again from its own fallback chain" in str(inner)
    # the mark ends with the chain: the next call walks it again
    primary_calls.clear()
    with pytest.raises(DependencyFailed):
        dep.call(primary)
    assert len(primary_calls) == 3


def test_a_re_entrant_call_may_still_be_answered_by_the_primary(clock: ManualClock, reg: Registry) -> None:
    answers = iter([Unavailable("503"), "fresh"])

    def flaky() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    dep = Dependency("svc", timeout=None, bulkhead=None, registry=reg, clock=clock,
                     fallbacks=[Fallback(lambda: dep.call(flaky), name="again")])
    result = dep.execute(flaky)
    assert (result.value, result.source) == ("fresh", "again")


def test_async_fallbacks_calling_their_own_dependency_are_bounded(clock: ManualClock, reg: Registry,
                                                                  run_virtual: Runner) -> None:
    primary_calls: list[int] = []

    async def primary() -> str:
        primary_calls.append(1)
        if len(primary_calls) > 20:
            raise Runaway
        raise Unavailable("503")

    async def again() -> str:
        return await dep.acall(primary)

    dep = Dependency("svc", timeout=1.0, bulkhead=None, breaker=None, registry=reg, clock=clock,
                     fallbacks=[Fallback(again, name="again"), Fallback(again, name="once_more")])
    with pytest.raises(DependencyFailed) as info:
        run_virtual(dep.acall(primary))
    assert len(primary_calls) == 3
    assert [source for source, _ in info.value.causes] == ["primary", "again", "once_more"]


def test_another_dependency_in_a_fallback_keeps_its_own_chain(clock: ManualClock, reg: Registry) -> None:
    cache = Dependency("cache", timeout=None, bulkhead=None, registry=reg, clock=clock,
                       fallbacks=[Fallback.value("cached-default", name="default")])
    dep = Dependency("svc", timeout=None, bulkhead=None, registry=reg, clock=clock,
                     fallbacks=[Fallback(lambda: cache.call(boom), name="cache")])
    assert dep.execute(boom).value == "cached-default"
