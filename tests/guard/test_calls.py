"""The call API: call, execute, acall, aexecute and the decorator, on plain and async functions."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from stoic.guard import (
    BreakerPolicy,
    Dependency,
    DependencyFailed,
    Fallback,
    ManualClock,
    Outcome,
    Registry,
    ThreadPoolBulkhead,
)

from .helpers import Unavailable

Runner = Callable[[Coroutine[Any, Any, Any]], Any]


def test_call_and_execute(clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("profile", registry=reg, clock=clock)
    assert dep.call(lambda user, *, full: {"user": user, "full": full}, "u1", full=True) == {"user": "u1",
                                                                                           "full": True}
    result = dep.execute(len, "abc")
    assert (result.value, result.source, result.level, result.outcome) == (3, "primary", 0, Outcome.SUCCESS)
    assert repr(dep) == "Dependency('profile', state='closed')"


def test_decorator_on_a_function(clock: ManualClock, reg: Registry) -> None:
    profile = Dependency("profile", registry=reg, clock=clock, fallbacks=[Fallback.value({}, name="empty")])

    @profile
    def fetch(user: str) -> dict[str, str]:
        """Fetch a profile."""
        if user == "down":
            raise Unavailable("503")
        return {"user": user}

    assert fetch("u1") == {"user": "u1"}
    assert fetch("down") == {}
    assert (fetch.__name__, fetch.__doc__) == ("fetch", "Fetch a profile.")
    assert profile.snapshot()["counts"]["success"] == 1


def test_decorator_on_a_coroutine_function(clock: ManualClock, reg: Registry, run_virtual: Runner) -> None:
    profile = Dependency("profile", timeout=0.1, registry=reg, clock=clock,
                         fallbacks=[Fallback.value({}, name="empty")])

    @profile
    async def fetch(user: str, delay: float = 0.0) -> dict[str, str]:
        await asyncio.sleep(delay)
        return {"user": user}

    assert asyncio.iscoroutinefunction(fetch)
    assert run_virtual(fetch("u1")) == {"user": "u1"}
    assert run_virtual(fetch("u1", delay=1.0)) == {}  # cancelled at 0.1 s
    counts = profile.snapshot()["counts"]
    assert (counts["success"], counts["timeout"]) == (1, 1)


def test_async_callables_are_recognised(clock: ManualClock, reg: Registry, run_virtual: Runner) -> None:
    class Client:
        async def __call__(self, user: str) -> str:
            return f"client:{user}"

    async def fetch(user: str, suffix: str) -> str:
        return user + suffix

    dep = Dependency("profile", registry=reg, clock=clock)
    assert asyncio.iscoroutinefunction(dep(functools.partial(fetch, suffix="!")))
    assert run_virtual(dep(Client())("u1")) == "client:u1"
    assert run_virtual(dep(functools.partial(fetch, suffix="!"))("u2")) == "u2!"


def test_acall_without_fallbacks_raises_dependency_failed(clock: ManualClock, reg: Registry,
                                                           run_virtual: Runner) -> None:
    dep = Dependency("profile", registry=reg, clock=clock)

    async def broken() -> None:
        raise Unavailable("503")

    with pytest.raises(DependencyFailed) as info:
        run_virtual(dep.acall(broken))
    assert [source for source, _ in info.value.causes] == ["primary"]
    assert isinstance(info.value.causes[0][1], Unavailable)


# -- mistakes in the call are the caller's, never the dependency's --------------------------------
def untouched(dep: Dependency) -> None:
    snap = dep.snapshot()
    assert snap["requests"] == 0 and snap["concurrent"] == 0
    assert snap["counts"]["fallback_success"] == 0
    assert dep.breaker.state == "closed"


def guarded(clock: ManualClock, reg: Registry, **kw: Any) -> Dependency:
    return Dependency("profile", registry=reg, clock=clock, fallbacks=[Fallback.value({}, name="empty")],
                      breaker=BreakerPolicy(min_calls=1, check_interval=0.0), **kw)


async def fetch(user: str) -> str:
    return f"async:{user}"


def test_call_with_an_async_function_says_to_use_acall(clock: ManualClock, reg: Registry) -> None:
    dep = guarded(clock, reg)
    for entry in (dep.call, dep.execute):
        with pytest.raises(TypeError, match=r"profile: fetch returned a coroutine; use acall\(\)"):
            entry(fetch, "u1")
    untouched(dep)


def test_call_with_a_sync_function_returning_a_coroutine(clock: ManualClock, reg: Registry) -> None:
    dep = guarded(clock, reg)
    with pytest.raises(TypeError, match=r"use acall\(\) or aexecute\(\) for async functions"):
        dep.call(lambda: fetch("u1"))
    decorated = dep(lambda: fetch("u1"))
    with pytest.raises(TypeError, match=r"use acall\(\) or aexecute\(\) for async functions"):
        decorated()
    untouched(dep)


def test_thread_pool_call_with_an_async_function(clock: ManualClock, reg: Registry) -> None:
    dep = guarded(clock, reg, bulkhead=ThreadPoolBulkhead(workers=1))
    try:
        with pytest.raises(TypeError, match=r"use acall\(\)"):
            dep.call(fetch, "u1")
        untouched(dep)
    finally:
        dep.close()


def test_acall_with_a_sync_function_says_to_use_call(clock: ManualClock, reg: Registry,
                                                    run_virtual: Runner) -> None:
    dep = guarded(clock, reg, timeout=0.5)

    def lookup(user: str) -> str:
        return f"sync:{user}"

    for entry in (dep.acall, dep.aexecute):
        with pytest.raises(TypeError, match=r"lookup is not async .*; use call\(\) or execute\(\) for sync"):
            run_virtual(entry(lookup, "u1"))  # type: ignore[arg-type]
    untouched(dep)
    assert run_virtual(dep.acall(lambda user: fetch(user), "u2")) == "async:u2"  # returns an awaitable: fine


def test_a_coroutine_object_or_a_non_callable_is_refused(clock: ManualClock, reg: Registry,
                                                         run_virtual: Runner) -> None:
    dep = guarded(clock, reg, timeout=0.5)
    coroutine = fetch("u1")
    with pytest.raises(TypeError, match=r"got a coroutine object; pass the coroutine function and its "
                                        r"arguments, as in acall\(fetch, \*args\)"):
        run_virtual(dep.acall(coroutine))  # type: ignore[arg-type]
    coroutine.close()
    with pytest.raises(TypeError, match=r"profile: expected a function and its arguments, got 'u1'"):
        dep.call("u1")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"decorates a function or a coroutine function, got 5"):
        dep(5)  # type: ignore[call-overload]
    untouched(dep)


def test_wrong_arguments_are_the_callers_mistake(clock: ManualClock, reg: Registry,
                                                 run_virtual: Runner) -> None:
    dep = guarded(clock, reg, timeout=0.5)

    def lookup(user: str) -> str:
        return user

    with pytest.raises(TypeError, match=r"a mistake in the call, not a failure of the dependency"):
        dep.call(lookup, "u1", "extra")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"a mistake in the call"):
        run_virtual(dep.acall(fetch))  # type: ignore[call-arg]
    untouched(dep)


def test_a_type_error_inside_the_dependency_is_still_its_failure(clock: ManualClock, reg: Registry) -> None:
    dep = guarded(clock, reg)

    def broken() -> str:
        raise TypeError("the client library choked on the reply")

    assert dep.execute(broken).source == "empty"
    assert dep.snapshot()["counts"]["failure"] == 1
