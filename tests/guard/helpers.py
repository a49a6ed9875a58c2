"""Small callables the guard tests put behind a Dependency."""

from __future__ import annotations

import contextlib
from typing import Any

from stoic.guard import Dependency, DependencyFailed, ManualClock


class Unavailable(ConnectionError):
    """The remote side answered 503."""


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
