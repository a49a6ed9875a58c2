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
      if none of them answers, the caller gets the value itself;
    - `window_calls`, when given, judges the last that many calls instead of the last `window`
      seconds (resilience4j's count-based window), on every call that ends; `min_calls` and the
      rates apply to them alike;
    - `consecutive_failures`, when given, also opens after that many failures or timeouts in a
      row, whatever the window says (a dependency that is down, found out before `min_calls`);
    - `open_for_max`, when given, makes the open time grow: each time the half-open trials fail
      and the circuit opens again, it stays open `open_backoff` times longer, up to `open_for_max`
      seconds; it is back to `open_for` once the circuit closes.

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
    window_calls: int | None = None
    consecutive_failures: int | None = None
    open_for_max: float | None = None
    open_backoff: float = 2.0

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
        if self.window_calls is not None:
            v.integer(n, "window_calls", self.window_calls, low=1, high=1_000_000)
        if self.consecutive_failures is not None:
            v.integer(n, "consecutive_failures", self.consecutive_failures, low=1, high=1_000_000)
        if self.open_for_max is not None:
            v.number(n, "open_for_max", self.open_for_max, low=self.open_for, high=86400.0)
        v.number(n, "open_backoff", self.open_backoff, low=1.0, high=100.0)
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


@dataclass(frozen=True, slots=True)
class AdaptiveBulkhead:
    """Isolation by counting, like the semaphore, with a limit that follows measured latency.

    The limit starts at `initial` and moves between `min_limit` and `max_limit` after every
    batch of finished calls (`samples` of them, over at least `window` seconds: below), by one of
    two rules (Netflix concurrency-limits' families):

    - `"gradient"`: compares the batch's mean latency with the dependency's latency when not
      loaded (its baseline). While latency stays within `tolerance` x the baseline the limit grows
      by about its square root (room for a queue), never past the calls in flight it measured plus
      that room; past it the limit shrinks in proportion (at most
      by half per batch), smoothed by `smoothing`. The baseline is the lowest batch latency seen,
      re-measured whenever the callers leave half the limit unused and, every `probe_every`
      batches (0: never), by one batch at a low limit (the square root of the limit) after which
      the limit returns to where it was: a baseline first measured under load, or a dependency
      that became slower for good, is corrected within one probe;
    - `"aimd"`: grows by one while the calls use at least half the limit, and is multiplied by
      `backoff` when a call times out or takes `slow` seconds or more (default: the breaker's
      slow-call threshold, else the dependency's timeout), or when calls fail.

    Failures lower both: a batch whose calls fail (by the breaker's rules: a 503 or a 429 through
    the HTTP integrations, "too busy", connection refused) more often than the dependency does in
    the gradient's probes, while the calls used the limit or with more calls in flight than its
    answers had, was refused for overload; the gradient then drops to the concurrency its answers
    came at, less its square root. The caller's own mistakes (ignored exceptions, a 404) never
    lower the limit.

    Batches are windows of time, as in concurrency-limits' `WindowedLimit`: a batch of answers
    ends once it holds `samples` answers and has lasted at least `window` seconds (since the last
    batch ended); until then it goes on collecting, and all its answers count in its verdict. A
    queue needs a few round trips to build, so a limit decided more often only re-measures the
    queue its last decision left. The default 5 ms is many round trips of a fast dependency (where
    10 answers can come in 50 us and deciding on each batch would cost more than the calls), while
    callers getting fewer than 2,000 answers a second (10 per 5 ms) fill `samples` in more than
    5 ms anyway and are decided on exactly as with no window; it still lets the limit move 200
    times a second. 0 decides on every `samples` answers; at most 1 s (as concurrency-limits'
    longest window: a window's answers wait in memory until it ends). A batch that holds a
    failure or a timeout, and a probe, end on their counts alone, as soon as those allow.

    A call over the limit is refused at once (counted as rejected) and the fallback chain answers.

    >>> AdaptiveBulkhead(algorithm="aimd", initial=10).max_limit
    200
    """

    algorithm: Literal["gradient", "aimd"] = "gradient"
    initial: int = 20
    min_limit: int = 1
    max_limit: int = 200
    samples: int = 10
    tolerance: float = 1.0
    smoothing: float = 0.2
    backoff: float = 0.9
    slow: float | None = None
    probe_every: int = 200
    window: float = 0.005

    def __post_init__(self) -> None:
        n = "AdaptiveBulkhead"
        if self.algorithm not in ("gradient", "aimd"):
            raise ConfigError(f"{n}.algorithm must be one of 'gradient', 'aimd', got {self.algorithm!r}")
        v.integer(n, "min_limit", self.min_limit, low=1, high=1_000_000)
        v.integer(n, "max_limit", self.max_limit, low=self.min_limit, high=1_000_000)
        v.integer(n, "initial", self.initial, low=self.min_limit, high=self.max_limit)
        v.integer(n, "samples", self.samples, low=1, high=100_000)
        v.number(n, "tolerance", self.tolerance, low=1.0, high=100.0)
        v.number(n, "smoothing", self.smoothing, low=0.0, high=1.0, low_open=True)
        v.number(n, "backoff", self.backoff, low=0.0, high=1.0, low_open=True)
        if self.backoff >= 1.0:
            raise ConfigError(f"{n}.backoff must be in (0.0, 1.0), got {self.backoff!r}")
        if self.slow is not None:
            v.number(n, "slow", self.slow, low=0.0, high=3600.0, low_open=True)
        v.integer(n, "probe_every", self.probe_every, low=0, high=1_000_000)
        v.number(n, "window", self.window, low=0.0, high=1.0)  # (a window's answers wait in a list)


Bulkhead = SemaphoreBulkhead | ThreadPoolBulkhead | AdaptiveBulkhead


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
class Hedge:
    """A second attempt when the first is slower than usual; the first answer wins.

    The second attempt starts once the first has run for the dependency's live `percentile`
    latency (p90 by default, from its rolling window, refreshed every 100 ms), and never sooner
    than `floor` seconds; it waits for `min_samples` calls in the window before the first hedge.
    The loser is cancelled (asyncio) or abandoned to its worker (thread pool), and counted.
    A hedge spends from the retry budget (the retry policy's, else a default `RetryBudget`), and
    starts only while the breaker is closed, a permit is free and the deadline leaves time.
    Coroutines, and sync calls under a `ThreadPoolBulkhead`; a sync call on the caller's own
    thread cannot run twice at once, so it is refused with ConfigError.

    >>> Hedge(percentile=0.95).floor
    0.001
    """

    percentile: float = 0.9
    floor: float = 0.001
    min_samples: int = 20

    def __post_init__(self) -> None:
        v.number("Hedge", "percentile", self.percentile, low=0.0, high=1.0, low_open=True)
        v.number("Hedge", "floor", self.floor, low=0.0, high=3600.0)
        v.integer("Hedge", "min_samples", self.min_samples, low=1, high=1_000_000)


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
