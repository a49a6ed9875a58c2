"""Policies: immutable, validated once at construction (a bad value raises ConfigError)."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from . import _validate as v
from ._errors import ConfigError


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When the circuit opens and how it recovers. Defaults are Hystrix's.

    - `window` seconds of history in `buckets` buckets;
    - opens when at least `min_calls` calls in the window and `error_rate` of them failed or timed out,
      or `slow_rate` of them took at least `slow_call` seconds (default: the dependency's timeout);
    - the error rate is checked at most every `check_interval` seconds (Hystrix's health snapshot),
      so a burst of early failures in a thin window does not trip it; 0 checks on every failure;
    - stays open `open_for` seconds, then lets `trial_calls` through (half-open) and closes if their
      error rate stays under `error_rate`;
    - `failure_on` exceptions count as failures; `ignore` exceptions pass to the caller untouched,
      count as nothing and skip the fallbacks (a bad request is not the dependency's fault);
    - `failure_when(value)`, when given, judges what the call returned: true counts the answer as a
      failure (an HTTP 503, say), which goes to the retries and fallbacks as a raised failure does;
      if none of them answers, the caller gets the value itself.

    >>> BreakerPolicy(error_rate=0.25, open_for=2.0).min_calls
    20
    """

    window: float = 10.0
    buckets: int = 10
    min_calls: int = 20
    error_rate: float = 0.5
    open_for: float = 5.0
    trial_calls: int = 1
    slow_call: float | None = None
    slow_rate: float = 1.0
    check_interval: float = 0.5
    failure_on: tuple[type[BaseException], ...] = (Exception,)
    ignore: tuple[type[BaseException], ...] = ()
    failure_when: Callable[[Any], bool] | None = None

    def __post_init__(self) -> None:
        n = "BreakerPolicy"
        v.predicate(n, "failure_when", self.failure_when)
        v.number(n, "window", self.window, low=0.0, high=3600.0, low_open=True)
        v.integer(n, "buckets", self.buckets, low=1, high=1000)
        v.integer(n, "min_calls", self.min_calls, low=1)
        v.number(n, "error_rate", self.error_rate, low=0.0, high=1.0, low_open=True)
        v.number(n, "open_for", self.open_for, low=0.0, high=86400.0, low_open=True)
        v.integer(n, "trial_calls", self.trial_calls, low=1, high=10_000)
        if self.slow_call is not None:
            v.number(n, "slow_call", self.slow_call, low=0.0, high=3600.0, low_open=True)
        v.number(n, "slow_rate", self.slow_rate, low=0.0, high=1.0, low_open=True)
        v.number(n, "check_interval", self.check_interval, low=0.0, high=60.0)
        object.__setattr__(self, "failure_on", v.exceptions(n, "failure_on", self.failure_on))
        object.__setattr__(self, "ignore", v.exceptions(n, "ignore", self.ignore))
        if self.window * 1e9 / self.buckets < 1e6:
            raise ConfigError(f"{n}.buckets: window / buckets must be >= 1 ms, "
                              f"got {self.window}/{self.buckets}")


@dataclass(frozen=True, slots=True)
class SemaphoreBulkhead:
    """Isolation by counting: the call runs on the caller's thread or task.

    Cheapest isolation. Full means rejected at once, or after waiting up to `max_wait` seconds.
    A sync call cannot be interrupted here, so one that runs past its deadline is counted as slow.
    """

    max_concurrent: int = 10
    max_wait: float = 0.0

    def __post_init__(self) -> None:
        v.integer("SemaphoreBulkhead", "max_concurrent", self.max_concurrent, low=1, high=1_000_000)
        v.number("SemaphoreBulkhead", "max_wait", self.max_wait, low=0.0, high=3600.0)


@dataclass(frozen=True, slots=True)
class ThreadPoolBulkhead:
    """Isolation on a pool of `workers` threads with a bounded `queue` of waiting calls.

    The caller waits at most until the deadline, then abandons the call (the worker finishes it
    in the background and stays counted until then). Sync calls only; coroutines use the semaphore.
    """

    workers: int = 10
    queue: int = 0

    def __post_init__(self) -> None:
        v.integer("ThreadPoolBulkhead", "workers", self.workers, low=1, high=10_000)
        v.integer("ThreadPoolBulkhead", "queue", self.queue, low=0, high=1_000_000)


Bulkhead = SemaphoreBulkhead | ThreadPoolBulkhead


@dataclass(frozen=True, slots=True)
class RetryBudget:
    """Caps retries to a share of recent calls, so retries cannot multiply an outage's load.

    Over the dependency's rolling window, retries may be at most `ratio` x calls plus
    `min_per_second` x the window's length (a floor for quiet dependencies).
    """

    ratio: float = 0.2
    min_per_second: float = 1.0

    def __post_init__(self) -> None:
        v.number("RetryBudget", "ratio", self.ratio, low=0.0, high=1000.0)
        v.number("RetryBudget", "min_per_second", self.min_per_second, low=0.0, high=1e9)


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again after failures and timeouts, with exponential backoff and full jitter.

    `attempts` counts the first call. Rejections and open circuits are never retried, and no retry
    is made once the breaker opens or the budget is spent.

    - `retry_on`: the exception classes retried (after failures and timeouts);
    - `retry_when(value_or_error)`, when given, must also be true for an error to be retried, and
      decides alone for a returned value; without it, the values `BreakerPolicy.failure_when`
      counts as failures are retried;
    - `retry_after(value_or_error)`, when given, reads how long the dependency asked to be left
      alone (an HTTP `Retry-After`), in seconds or None: the pause is at least that long, and a
      request to wait longer than `maximum` is not honoured by retrying (the fallbacks answer now);
    - `total`: no retry starts unless its pause and its whole deadline end within `total` seconds
      of the first attempt (None: no cap).

    >>> Retry(attempts=3).delay(2, random.Random(1)) <= 0.1
    True
    """

    attempts: int = 3
    initial: float = 0.05
    maximum: float = 1.0
    multiplier: float = 2.0
    jitter: Literal["full", "none"] = "full"
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    budget: RetryBudget | None = field(default_factory=RetryBudget)
    retry_when: Callable[[Any], bool] | None = None
    retry_after: Callable[[Any], float | None] | None = None
    total: float | None = None

    def __post_init__(self) -> None:
        n = "Retry"
        v.predicate(n, "retry_when", self.retry_when)
        v.predicate(n, "retry_after", self.retry_after)
        if self.total is not None:
            v.number(n, "total", self.total, low=0.0, high=86400.0, low_open=True)
        if self.budget is not None and not isinstance(self.budget, RetryBudget):
            raise ConfigError(f"{n}.budget must be a RetryBudget or None, got {self.budget!r}")
        v.integer(n, "attempts", self.attempts, low=1, high=100)
        v.number(n, "initial", self.initial, low=0.0, high=3600.0)
        v.number(n, "maximum", self.maximum, low=0.0, high=3600.0)
        v.number(n, "multiplier", self.multiplier, low=1.0, high=100.0)
        if self.jitter not in ("full", "none"):
            raise ConfigError(f"{n}.jitter must be one of 'full', 'none', got {self.jitter!r}")
        object.__setattr__(self, "retry_on", v.exceptions(n, "retry_on", self.retry_on))

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before `attempt` (2 = the first retry)."""
        ceiling = min(self.maximum, self.initial * self.multiplier ** (attempt - 2))
        return rng.uniform(0.0, ceiling) if self.jitter == "full" else ceiling


@dataclass(frozen=True, slots=True)
class Fallback:
    """One level of the fallback chain: called with the primary's arguments.

    `timeout` bounds the level: a coroutine is cancelled at it; a sync function that overruns it
    does not answer, and the chain moves on to the next level.

    >>> Fallback.value(["popular"], name="popular").name
    'popular'
    """

    fn: Callable[..., Any]
    name: str = ""
    timeout: float | None = None

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise ConfigError(f"Fallback.fn must be callable, got {self.fn!r}")
        if not self.name:
            object.__setattr__(self, "name", getattr(self.fn, "__name__", "fallback"))
        if self.timeout is not None:
            v.number("Fallback", "timeout", self.timeout, low=0.0, high=3600.0, low_open=True)

    @classmethod
    def value(cls, value: Any, name: str = "static") -> Fallback:
        """A level that always answers `value` (a generic response)."""

        def constant(*_args: Any, **_kwargs: Any) -> Any:
            return value

        return cls(constant, name=name)


AsyncFn = Callable[..., Awaitable[Any]]
