"""After a failed primary: retries, then the fallback chain, decided once for sync and async callers.

`Dependency._recover` and `_recover_async` drive a `Recovery`; they differ only in how they wait
and how they call. Every decision (retry or not, how long to pause, which levels to walk, what the
caller gets when nothing answers) is made here.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from ._errors import DeadlineExceeded, DependencyFailed, FailedResult, GuardError
from ._events import Event, Outcome, Result
from ._policies import Fallback, Retry
from ._travel import time_left, travelling

if TYPE_CHECKING:
    from ._dependency import Dependency

_SUCCESS, _FAILURE, _TIMEOUT = int(Outcome.SUCCESS), int(Outcome.FAILURE), int(Outcome.TIMEOUT)


class Failed(Exception):
    """Internal: the primary attempt did not answer (or answered with a value worth another try).
    Never escapes `Dependency`."""

    def __init__(self, outcome: int, error: BaseException) -> None:
        self.outcome = outcome
        self.error = error


# The dependencies whose fallback chain is running in this context (thread or task). A fallback
# that calls its own dependency again gets that call's primary attempt but not a second walk down
# the same chain: two such levels would otherwise branch into 2**depth calls.
in_fallbacks: ContextVar[tuple[Dependency, ...]] = ContextVar("stoic_in_fallbacks", default=())


class Recovery:
    """The decisions after one failed primary: whether to retry, which levels to walk, what to count."""

    __slots__ = ("attempt", "causes", "dep", "failed", "failed_at", "first", "last_took", "levels",
                 "retried_at", "start")

    def __init__(self, dep: Dependency, failed: Failed, start: int | None) -> None:
        self.dep = dep
        self.failed = failed
        self.first = Outcome(failed.outcome)
        self.failed_at = dep._now()
        self.start = self.failed_at if start is None else start
        self.causes: list[tuple[str, BaseException]] = [("primary", failed.error)]
        self.attempt = 2
        self.levels: Sequence[tuple[int, tuple[Fallback, bool]]] = ()
        # how long the last attempt took (0 when unknown): a retry needs about as long again
        self.last_took = self.failed_at - start if start is not None else 0
        self.retried_at = 0

    def next_retry(self) -> float | None:
        """The pause before the next primary attempt, or None when no retry is allowed.

        Checked in this order, cheapest and least committal first: attempts left, an outcome the
        policy retries, the pause the dependency asked for, the total time, the breaker, and last
        the budget (the only check that spends something).
        """
        dep, failed = self.dep, self.failed
        retry = dep._retry
        if retry is None or self.attempt > retry.attempts or not _wanted(retry, failed):
            return None
        error = failed.error
        delay = retry.delay(self.attempt, dep._rng)
        if retry.retry_after is not None:
            asked = retry.retry_after(error.value if isinstance(error, FailedResult) else error)
            if asked is not None:
                if isinstance(asked, bool) or not isinstance(asked, int | float):
                    raise TypeError(f"{dep.name}: Retry.retry_after must return seconds or None, "
                                    f"got {asked!r}")
                if asked > retry.maximum:
                    return None  # longer than this policy ever waits: the fallbacks answer now
                delay = max(delay, asked)
        now = dep._now()
        # the pause and the whole next attempt must end within the cap
        ends = (now - self.failed_at) / 1e9 + delay + (dep._timeout or 0.0)
        if retry.total is not None and ends > retry.total:
            return None
        if travelling[0]:
            left = time_left()
            # the pause and an attempt as long as the last one must end before the request's deadline
            if left is not None and left - delay <= max(self.last_took / 1e9, 0.0):
                dep._skipped("retry")
                self.causes.append(("retry", DeadlineExceeded(
                    f"{dep.name}: retry skipped: a {delay:.3f}s pause and another attempt do not fit "
                    f"in the {max(left, 0.0):.3f}s left before the request's deadline")))
                return None
        state = dep._state
        if not state.allows(now):  # never retry into an open breaker
            return None
        budget = retry.budget
        if budget is not None:
            if not state.retry_allowed(now, budget.ratio, budget.min_per_second):
                return None
        else:
            state.count(int(Outcome.RETRY))
        dep._emit_outcome(Outcome.RETRY, 0, error)
        self.attempt += 1
        self.retried_at = now + int(delay * 1e9)
        return delay

    def primary_answered(self, value: Any) -> Result[Any]:
        return self.dep._primary_result(value, self.start)

    def primary_failed(self, failed: Failed) -> None:
        self.failed = failed
        self.last_took = self.dep._now() - self.retried_at
        self.causes.append(("primary", failed.error))

    def kept_answer(self) -> Result[Any] | None:
        """The last answer, when it was only worth another try (not a failure) and none is left."""
        error = self.failed.error
        if self.failed.outcome == _SUCCESS and isinstance(error, FailedResult):
            return self._answer(error.value, None)
        return None

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

    def level_timeout(self, fallback: Fallback, is_async: bool) -> float | None:
        """The level's timeout cut to the request's deadline (None: unbounded); 0 or less when the
        level cannot fit and is skipped. A sync level without a timeout is taken for a local answer
        (a constant, a cache) and always runs: it cannot be stopped anyway."""
        timeout = fallback.timeout
        if not travelling[0] or (timeout is None and not is_async):
            return timeout
        left = time_left()
        if left is None:
            return timeout
        return left if timeout is None else min(timeout, left)

    def level_skipped(self, fallback: Fallback) -> None:
        dep = self.dep
        dep._skipped("fallback")
        self.causes.append((fallback.name, DeadlineExceeded(
            f"{dep.name}: fallback {fallback.name!r} skipped: no time left before the request's deadline")))

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
        return Result(value, fallback.name, level + 1, self.first, latency, self.failed.error)

    def last_resort(self) -> Result[Any]:
        """No level answered: the primary's own answer if it gave one (a value counted as a
        failure is still the best there is), else `DependencyFailed` with every cause."""
        error = self.failed.error
        if isinstance(error, FailedResult):
            return self._answer(error.value, error)
        raise DependencyFailed(self.dep.name, self.causes)

    def _answer(self, value: Any, error: BaseException | None) -> Result[Any]:
        outcome = self.first if error is not None else Outcome.SUCCESS
        return Result(value, "primary", 0, outcome, (self.dep._now() - self.start) / 1e9, error)


def _wanted(retry: Retry, failed: Failed) -> bool:
    """Does the policy retry this outcome?"""
    error = failed.error
    if isinstance(error, FailedResult):
        if failed.outcome == _SUCCESS:
            return True  # not a failure: it reached recovery only because retry_when asked
        return retry.retry_when(error.value) if retry.retry_when is not None else True
    if failed.outcome not in (_FAILURE, _TIMEOUT) or not isinstance(error, retry.retry_on):
        return False
    return retry.retry_when is None or bool(retry.retry_when(error))
