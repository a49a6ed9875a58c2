"""Shared fixtures for the guard tests: a manual clock, a private registry, a virtual-time loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from stoic.guard import ManualClock, Registry, VirtualTimeLoop, set_process_injector

T = TypeVar("T")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def reg() -> Registry:
    """A registry of this test's own, so tests never see each other's dependencies."""
    return Registry()


@pytest.fixture
def run_virtual(clock: ManualClock) -> Iterator[Callable[[Coroutine[Any, Any, T]], T]]:
    """Run a coroutine on an event loop whose time is `clock`: sleeps and deadlines pass instantly."""
    loop = VirtualTimeLoop(clock)

    def run(coro: Coroutine[Any, Any, T]) -> T:
        return loop.run_until_complete(coro)

    yield run
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
    asyncio.set_event_loop(None)


@pytest.fixture(autouse=True)
def _no_process_injector() -> Iterator[None]:
    """A process-wide injector left behind by a failing test must not leak into the next one."""
    yield
    set_process_injector(None)
