"""The call API: call, execute, acall, aexecute and the decorator, on plain and async functions."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from stoic.guard import Dependency, DependencyFailed, Fallback, ManualClock, Outcome, Registry

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
