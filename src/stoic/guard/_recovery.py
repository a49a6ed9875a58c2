"""After a failed primary: retries, then the fallback chain, decided once for sync and async callers.

`Dependency._recover` and `_recover_async` drive a `Recovery`; they differ only in how they wait
and how they call.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from ._errors import DependencyFailed, GuardError
from ._events import Event, Outcome, Result
from ._policies import Fallback

if TYPE_CHECKING:
    from ._dependency import Dependency


class Failed(Exception):
    """Internal: the primary attempt did not answer. Never escapes `Dependency`."""

    def __init__(self, outcome: int, error: BaseException) -> None:
        self.outcome = outcome
        self.error = error


# The dependencies whose fallback chain is running in this context (thread or task). A fallback
# that calls its own dependency again gets that call's primary attempt but not a second walk down
# the same chain: two such levels would otherwise branch into 2**depth calls.
in_fallbacks: ContextVar[tuple[Dependency, ...]] = ContextVar("stoic_in_fallbacks", default=())


class Recovery:
    """The decisions after one failed primary: whether to retry, which levels to walk, what to count."""

    __slots__ = ("attempt", "causes", "dep", "failed", "first", "levels", "start")

    def __init__(self, dep: Dependency, failed: Failed, start: int | None) -> None:
        self.dep = dep
        self.failed = failed
        self.first = Outcome(failed.outcome)
        self.start = dep._now() if start is None else start
        self.causes: list[tuple[str, BaseException]] = [("primary", failed.error)]
        self.attempt = 2
        self.levels: Sequence[tuple[int, tuple[Fallback, bool]]] = ()

    def next_retry(self) -> float | None:
        """The pause before the next primary attempt, or None when no retry is allowed."""
        if not self.dep._retry_allowed(self.failed, self.attempt):
            return None
        delay = self.dep._backoff(self.attempt, self.failed)
        self.attempt += 1
        return delay

    def primary_answered(self, value: Any) -> Result[Any]:
        return self.dep._primary_result(value, self.start)

    def primary_failed(self, failed: Failed) -> None:
        self.failed = failed
        self.causes.append(("primary", failed.error))

    def enter_fallbacks(self) -> Token[tuple[Dependency, ...]]:
        """Choose the levels to walk and mark this context as inside the chain; reset the token after."""
        dep = self.dep
        chain = in_fallbacks.get()
        if dep in chain:
            self.causes.append(("fallbacks", GuardError(
                f"{dep.name}: called again from its own fallback chain; the chain is not walked twice")))
        else:
            self.levels = tuple(enumerate(dep._levels))
        return in_fallbacks.set((*chain, dep))

    def level_failed(self, fallback: Fallback, exc: Exception) -> None:
        dep = self.dep
        dep._state.count(int(Outcome.FALLBACK_FAILURE))
        self.causes.append((fallback.name, exc))
        if dep._observed:
            dep._emit(Event(dep.name, Outcome.FALLBACK_FAILURE, 0.0, fallback.name, exc))

    def level_answered(self, level: int, fallback: Fallback, value: Any) -> Result[Any]:
        dep = self.dep
        dep._state.count(int(Outcome.FALLBACK_SUCCESS), level)
        latency = (dep._now() - self.start) / 1e9
        if dep._observed:
            dep._emit(Event(dep.name, Outcome.FALLBACK_SUCCESS, latency, fallback.name))
        return Result(value, fallback.name, level + 1, self.first, latency)

    def exhausted(self) -> DependencyFailed:
        return DependencyFailed(self.dep.name, self.causes)
