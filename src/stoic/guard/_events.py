"""Outcomes, events and results: failure is data."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

T = TypeVar("T")


class Outcome(enum.IntEnum):
    """What happened to one call (or to the breaker). The value indexes the rolling counters."""

    SUCCESS = 0
    FAILURE = 1
    TIMEOUT = 2
    REJECTED = 3
    SHORT_CIRCUITED = 4
    SLOW = 5
    FALLBACK_SUCCESS = 6
    FALLBACK_FAILURE = 7
    RETRY = 8
    STATE_CHANGE = 9
    INJECTED = 10  # a failure injected for one request (FIT): shown, but never judged by the breaker

    @property
    def label(self) -> str:
        return self.name.lower()


COUNTED = tuple(o for o in Outcome if o is not Outcome.STATE_CHANGE)


class Event(NamedTuple):
    """One thing that happened to a dependency, delivered to listeners (immutable).

    `source` is "primary" or the name of the fallback level; `state` is set on state changes.
    A named tuple, not a frozen dataclass: one is built per call while anyone listens, and a frozen
    dataclass takes about a microsecond to build.
    """

    dependency: str
    outcome: Outcome
    latency: float = 0.0
    source: str = "primary"
    error: BaseException | None = None
    state: str | None = None


@dataclass(frozen=True, slots=True)
class Result(Generic[T]):
    """The answer to a guarded call and where it came from.

    `level` is 0 for the primary, 1 for the first fallback and so on; `outcome` is what happened to
    the primary attempt (SUCCESS, FAILURE, TIMEOUT, REJECTED or SHORT_CIRCUITED); `error` says why
    the primary did not answer: its last error (`BreakerOpen`, `DeadlineExceeded`, what it raised,
    or a `FailedResult` holding the value it returned), None when it answered.
    """

    value: T
    source: str
    level: int
    outcome: Outcome
    latency: float
    error: BaseException | None = None

    @property
    def degraded(self) -> bool:
        return self.level > 0
