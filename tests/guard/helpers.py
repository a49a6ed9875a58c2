"""Small callables the guard tests put behind a Dependency."""

from __future__ import annotations

import contextlib
from typing import Any

from stoic.guard import Dependency, DependencyFailed, ManualClock


class Unavailable(ConnectionError):
    """The remote side answered 503."""


class Ignored(Exception):
    """Passes to the caller untouched and counts as nothing (BreakerPolicy.ignore)."""


def fail_as(kind: str) -> None:
    """Raise what a primary of the twin tests raises for `kind` (nothing for an answer)."""
    if kind == "fail":
        raise Unavailable("503")
    if kind == "timeout":
        raise TimeoutError("no answer")
    if kind == "ignored":
        raise Ignored("not the dependency's fault")
    if kind == "caller_error":
        raise ValueError("bad request")


def ok(value: Any = "ok") -> Any:
    return value


def boom(*_args: Any, **_kwargs: Any) -> Any:
    raise Unavailable("503")


def taking(clock: ManualClock, seconds: float, value: Any = "ok") -> Any:
    """A call that takes `seconds` of manual-clock time and then answers."""

    def call() -> Any:
        clock.advance(seconds)
        return value

    return call


def fail_n(dep: Dependency, n: int) -> None:
    """Make `n` failing calls, swallowing the final error (no fallbacks configured)."""
    for _ in range(n):
        with contextlib.suppress(DependencyFailed):
            dep.call(boom)


def succeed_n(dep: Dependency, n: int) -> None:
    for _ in range(n):
        assert dep.call(ok) == "ok"
