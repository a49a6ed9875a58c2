"""A dependency's settings, validated in one place for the constructor and for `configure()`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ._errors import ConfigError
from ._policies import (
    AdaptiveBulkhead,
    BreakerPolicy,
    Bulkhead,
    Fallback,
    Hedge,
    Retry,
    SemaphoreBulkhead,
    ThreadPoolBulkhead,
)
from ._state import UNBOUNDED
from ._validate import number


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a dependency's call path is configured with, checked together."""

    timeout: float | None
    breaker: BreakerPolicy | None
    bulkhead: Bulkhead | None
    retry: Retry | None
    fallbacks: tuple[Fallback, ...]
    hedge: Hedge | None = None

    @classmethod
    def checked(cls, timeout: object, breaker: object, bulkhead: object, retry: object,
                fallbacks: object, owner: str = "Dependency", hedge: object = None) -> Settings:
        """Validate each field as the constructor always has; ConfigError names `owner.field`."""
        if timeout is not None:
            timeout = number(owner, "timeout", timeout, low=0.0, high=3600.0, low_open=True)
        if bulkhead is not None and not isinstance(bulkhead, SemaphoreBulkhead | ThreadPoolBulkhead
                                                   | AdaptiveBulkhead):
            raise ConfigError(f"{owner}.bulkhead must be SemaphoreBulkhead, ThreadPoolBulkhead, "
                              f"AdaptiveBulkhead or None, got {bulkhead!r}")
        if breaker is not None and not isinstance(breaker, BreakerPolicy):
            raise ConfigError(f"{owner}.breaker must be a BreakerPolicy or None, got {breaker!r}")
        if retry is not None and not isinstance(retry, Retry):
            raise ConfigError(f"{owner}.retry must be a Retry or None, got {retry!r}")
        if isinstance(fallbacks, str | bytes) or not isinstance(fallbacks, Iterable):
            raise ConfigError(f"{owner}.fallbacks must be a sequence of Fallback or callables, "
                              f"got {fallbacks!r}")
        if hedge is not None and not isinstance(hedge, Hedge):
            raise ConfigError(f"{owner}.hedge must be a Hedge or None, got {hedge!r}")
        levels = tuple(f if isinstance(f, Fallback) else Fallback(f) for f in fallbacks)
        return cls(timeout, breaker, bulkhead, retry, levels, hedge)

    def admission(self) -> tuple[int, float, float | None]:
        """(calls in flight allowed, seconds a call may wait for room, latency from which a call is slow).

        Under thread isolation a call past its deadline is abandoned (a timeout), so none is slow
        by the deadline; under a semaphore (or none) a sync call cannot be stopped, so it is slow.
        """
        bulkhead = self.bulkhead
        if isinstance(bulkhead, ThreadPoolBulkhead):
            return bulkhead.workers + bulkhead.queue, 0.0, None
        if isinstance(bulkhead, SemaphoreBulkhead):
            return bulkhead.max_concurrent, bulkhead.max_wait, self.timeout
        if isinstance(bulkhead, AdaptiveBulkhead):  # over the limit: refused at once, the fallbacks answer
            return bulkhead.initial, 0.0, self.timeout
        return UNBOUNDED, 0.0, self.timeout

    def check_change(self, new: Settings) -> None:
        """A running dependency can resize its bulkhead, not swap its kind (calls in flight hold
        permits of the old kind, and decorated functions chose their path for it)."""
        old_kind, new_kind = _kind(self.bulkhead), _kind(new.bulkhead)
        if old_kind != new_kind:
            raise ConfigError(f"Dependency.bulkhead: configure() can resize a {old_kind} but not change it "
                              f"to {new_kind}; create a new Dependency for that")


def _kind(bulkhead: Bulkhead | None) -> str:
    return "no bulkhead" if bulkhead is None else type(bulkhead).__name__
