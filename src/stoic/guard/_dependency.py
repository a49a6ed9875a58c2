"""`Dependency`: one outbound dependency and the straight call path through its protections.

call -> fault check -> breaker -> bulkhead -> deadline -> fn -> record -> (retry) -> fallback chain
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import queue
import random
import sys
import threading
import types
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Generic, NoReturn, ParamSpec, TypeVar, cast, overload

from ._adaptive import Limiter
from ._clock import SYSTEM_CLOCK, Clock
from ._deadline import DONE, EXPIRED, RUNNING, Deadlines, HedgeTimers
from ._errors import (
    BreakerOpen,
    BulkheadFull,
    ConfigError,
    DeadlineExceeded,
    FailedResult,
    InjectedFailure,
)
from ._events import Event, Outcome, Result
from ._inject import ANSWERING_KINDS, Fault, armed, find_fault
from ._permits import Permits
from ._policies import (
    AdaptiveBulkhead,
    BreakerPolicy,
    Bulkhead,
    Fallback,
    Hedge,
    Retry,
    RetryBudget,
    SemaphoreBulkhead,
    ThreadPoolBulkhead,
)
from ._pool import Job, WorkerPool
from ._recovery import Failed, Recovery, in_fallbacks
from ._registry import Registry
from ._registry import registry as default_registry
from ._reviewed import marked, reviewing
from ._settings import Settings
from ._stand_in import stand_in
from ._state import ADMITTED, INJECTED, STATE_NAMES, DependencyState
from ._travel import _deadline as _request_deadline
from ._travel import _override as _call_override
from ._travel import call_limit, overdue, overriding, time_left, travelling
from ._window import FOLD_AFTER, quantile

P = ParamSpec("P")
T = TypeVar("T")

_SUCCESS, _FAILURE, _TIMEOUT = int(Outcome.SUCCESS), int(Outcome.FAILURE), int(Outcome.TIMEOUT)
_REJECTED, _SHORT, _INJECTED = int(Outcome.REJECTED), int(Outcome.SHORT_CIRCUITED), int(Outcome.INJECTED)
SUCCESS = Outcome.SUCCESS  # a module global: read on the decorator's path while anyone listens
_new_tuple = tuple.__new__  # builds an Event from a tuple: a class attribute costs a lookup per call
_DEFAULT_BREAKER = BreakerPolicy()
_running_loop, _current_task = asyncio.get_running_loop, asyncio.current_task  # read once per call
if sys.version_info < (3, 12) and isinstance(getattr(asyncio.tasks, "_current_tasks", None), dict):
    # there asyncio.current_task is a Python function around this dict (C from 3.12 on): a frame
    # less on every async call with a deadline
    _current_task = asyncio.tasks._current_tasks.get  # type: ignore[attr-defined]
_DEFAULT_BULKHEAD = SemaphoreBulkhead()
_COROUTINE = types.CoroutineType
_HEDGE_BUDGET = RetryBudget()  # what hedges may spend when the dependency has no retry budget
_HEDGE_REFRESH_NS = 100_000_000  # how often the hedge delay is read again from the window


class _Keep:
    """The default of each `configure()` argument: keep the current setting."""

    def __repr__(self) -> str:
        return "unchanged"


_KEEP = _Keep()


S = TypeVar("S")


class _Setting(Generic[S]):
    """A setting read from the dependency's current settings; it changes only through
    `configure(...)`, validated and applied with the others, never by assignment."""

    def __init__(self, keyword: str, doc: str) -> None:
        self.keyword = keyword
        self.__doc__ = f"{doc} Change it with `configure({keyword}=...)`."

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> _Setting[S]: ...
    @overload
    def __get__(self, obj: Dependency, owner: type) -> S: ...
    def __get__(self, obj: Dependency | None, owner: type) -> S | _Setting[S]:
        if obj is None:
            return self
        value: S = getattr(obj._settings, self.keyword)
        return value

    def __set__(self, obj: Dependency, value: object) -> NoReturn:
        raise AttributeError(
            f"Dependency.{self.name} is read-only; use configure({self.keyword}=...) to change it, "
            f"validated and applied with the other settings"
        )


class Dependency:
    """An outbound dependency with a deadline, a bulkhead, a breaker, retries and fallbacks.

    >>> profile = Dependency("profile", timeout=0.5, fallbacks=[Fallback.value({}, name="empty")])
    >>> profile.call(lambda user: {"user": user}, "u1")
    {'user': 'u1'}
    >>> profile.execute(lambda user: 1 / 0, "u1").source
    'empty'
    """

    def __init__(
        self,
        name: str,
        *,
        timeout: float | None = 1.0,
        breaker: BreakerPolicy | None = _DEFAULT_BREAKER,
        bulkhead: Bulkhead | None = _DEFAULT_BULKHEAD,
        retry: Retry | None = None,
        fallbacks: Sequence[Fallback | Callable[..., Any]] = (),
        owner: str | None = None,
        registry: Registry | None = default_registry,
        clock: Clock = SYSTEM_CLOCK,
        seed: int | None = None,
        hedge: Hedge | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"Dependency.name must be a non-empty string, got {name!r}")
        settings = Settings.checked(timeout, breaker, bulkhead, retry, fallbacks, hedge=hedge)
        self.name = name
        self.owner = owner
        self._clock = clock
        self._now = clock.now_ns
        self._rng = random.Random(seed)
        self._listeners: list[Callable[[Event], None]] = []
        self._registry = registry
        self._shared_listeners: list[Callable[[Event], None]] = registry.listeners if registry else []
        self._observed = bool(self._shared_listeners)
        self._listening = tuple(self._shared_listeners)  # both lists, read on every event
        self._only_listener = self._listening[0] if len(self._listening) == 1 else None
        self._configuring = threading.Lock()
        self._pool: WorkerPool | None = None
        if isinstance(settings.bulkhead, ThreadPoolBulkhead):
            self._pool = WorkerPool(name, settings.bulkhead.workers)
        max_active, max_wait, slow_after = settings.admission()
        self._state = DependencyState(name, settings.breaker, max_active, max_wait, slow_after,
                                      len(settings.fallbacks), clock, self._emit)
        self._skips = {"call": 0, "retry": 0, "fallback": 0, "hedge": 0}  # what a request's deadline left out
        self._hedges = {"started": 0, "won": 0, "cancelled": 0}
        self._hedge_read_at = -_HEDGE_REFRESH_NS
        self._hedge_after: float | None = None
        self._hedge_timers: dict[asyncio.AbstractEventLoop, HedgeTimers] = {}
        self._limiter: Limiter | None = None
        if isinstance(settings.bulkhead, AdaptiveBulkhead):
            self._limiter = Limiter(settings.bulkhead, cast(Permits, self._state.slots),
                                    _limit_slow_ns(settings), self._limit_moved, clock.now_ns)
        self._take(settings)
        self.breaker = BreakerControl(self._state)
        if registry is not None:
            registry.add(self)

    def _take(self, settings: Settings) -> None:
        """Set the fields the call path reads (never assigned anywhere else)."""
        self._settings = settings
        self._timeout = settings.timeout
        self._retry = settings.retry
        self._levels = tuple((f, _is_async(f.fn)) for f in settings.fallbacks)
        breaker = settings.breaker
        self._failure_on = breaker.failure_on if breaker else (Exception,)
        self._ignore = breaker.ignore if breaker else ()
        self._failure_when = breaker.failure_when if breaker else None
        self._retry_when = settings.retry.retry_when if settings.retry else None
        self._hedge = settings.hedge
        self._hedge_read_at = -_HEDGE_REFRESH_NS  # read the delay afresh with the new settings
        # Hedging swaps the entry points on this instance, so a dependency without it pays nothing.
        for entry in ("call", "execute", "acall", "aexecute"):
            self.__dict__.pop(entry, None)
        if settings.hedge is not None:
            self.__dict__.update(acall=self._acall_hedged, aexecute=self._aexecute_hedged)
            if self._pool is None:  # on the caller's own thread a call cannot race itself
                self.__dict__.update(call=self._sync_hedge_refused, execute=self._sync_hedge_refused)
            else:
                self.__dict__.update(call=self._call_hedged, execute=self._execute_hedged)
        self._refresh_detour()
        # deadlines keep one timeout per loop: calls under way keep theirs, new calls get the new one
        self._deadlines: dict[asyncio.AbstractEventLoop, Deadlines] = {}

    # -- settings ------------------------------------------------------------------------------
    def configure(self, *, timeout: float | _Keep | None = _KEEP,
                  breaker: BreakerPolicy | _Keep | None = _KEEP,
                  bulkhead: Bulkhead | _Keep | None = _KEEP,
                  retry: Retry | _Keep | None = _KEEP,
                  fallbacks: Sequence[Fallback | Callable[..., Any]] | _Keep = _KEEP,
                  hedge: Hedge | _Keep | None = _KEEP) -> None:
        """Change settings of a running dependency, validated as the constructor validates them.

        Every given setting is checked before any is applied (a bad one raises ConfigError and
        changes nothing); then all are applied together. The rolling window and the breaker's state
        stay while they still apply: a policy with another window or bucket count starts an empty
        window, and without a breaker the circuit closes. A bulkhead can be resized, not swapped
        for another kind; a smaller one takes permits back as the calls in flight end.

        >>> search = Dependency("search", timeout=0.2, registry=None)
        >>> search.configure(timeout=1.0)
        >>> search.timeout
        1.0
        """
        with self._configuring:
            old = self._settings
            new = Settings.checked(
                old.timeout if isinstance(timeout, _Keep) else timeout,
                old.breaker if isinstance(breaker, _Keep) else breaker,
                old.bulkhead if isinstance(bulkhead, _Keep) else bulkhead,
                old.retry if isinstance(retry, _Keep) else retry,
                old.fallbacks if isinstance(fallbacks, _Keep) else fallbacks,
                hedge=old.hedge if isinstance(hedge, _Keep) else hedge,
            )
            old.check_change(new)
            max_active, max_wait, slow_after = new.admission()
            if self._limiter is not None and isinstance(new.bulkhead, AdaptiveBulkhead):
                max_active = self._limiter.follow(new.bulkhead, _limit_slow_ns(new))
            self._state.reconfigure(new.breaker, max_active, max_wait, slow_after, len(new.fallbacks))
            if self._pool is not None and isinstance(new.bulkhead, ThreadPoolBulkhead):
                self._pool.resize(new.bulkhead.workers)
            self._take(new)

    timeout: _Setting[float | None] = _Setting("timeout", "Seconds each call may take (None: no deadline).")
    breaker_policy: _Setting[BreakerPolicy | None] = _Setting("breaker", "When the circuit opens, recovers.")
    bulkhead: _Setting[Bulkhead | None] = _Setting("bulkhead", "The concurrency budget.")
    retry: _Setting[Retry | None] = _Setting("retry", "The retry policy.")
    fallbacks: _Setting[tuple[Fallback, ...]] = _Setting("fallbacks", "The fallback chain, in order.")
    hedge: _Setting[Hedge | None] = _Setting("hedge", "The hedging policy.")

    # -- public call API ---------------------------------------------------------------------
    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call sync `fn` through the guard; returns its value or a fallback's."""
        # The common case (breaker closed, a permit free, nothing judging the answer, no fault armed,
        # no pool) runs in this one frame, as the decorator's does; anything else, and anything
        # that goes wrong, takes `_call`, the reference path (test_decorator_twin holds them equal).
        state = self._state
        if not state.gate_open or armed[0] or not self._straight:
            return self._call(fn, args, kwargs)  # type: ignore[no-any-return]
        now = self._now
        start = now()
        if travelling[0] and overdue(self._clock, start):  # `_call` refuses it, counted
            return self._call(fn, args, kwargs)  # type: ignore[no-any-return]
        permits = state.permits
        if permits is not None:
            try:
                permits.pop()
            except IndexError:  # the bulkhead is full: `_call` waits or refuses
                return self._call(fn, args, kwargs)  # type: ignore[no-any-return]
        try:
            # spreading no keywords copies no dict (P.kwargs is empty there)
            value = fn(*args, **kwargs) if kwargs else fn(*args)  # type: ignore[call-arg]
        except BaseException as exc:
            end = now()
            try:
                self._settle(exc, end, end - start, ADMITTED, True, fn)
            except Failed as error:
                failed = error  # recover outside the handler, as `_call` does
        else:
            end = now()
            if type(value) is _COROUTINE:  # an async function given to call(): not a success
                self._unawaited(value, fn, end, ADMITTED, True)
            latency_ns = end - start
            limiter = self._limiter
            if limiter is not None:  # Limiter.answered, inlined; the call still holds its permit
                slots: Permits = state.slots  # type: ignore[assignment]  # an adaptive bulkhead has permits
                log = limiter.log
                log += (latency_ns, slots.held - len(permits), limiter.limit)  # type: ignore[arg-type]
                if len(log) >= limiter.due:
                    limiter.reached(end)
            window = state.window  # state.succeeded, inlined: a frame costs more than its steps
            if end >= window.current_end or not 8 <= latency_ns < state.plain_below:
                state.leave(end, _SUCCESS, latency_ns, ADMITTED)  # a new bucket, or slow
            else:
                if permits is not None:
                    permits.append(1)
                    slots = state.slots  # type: ignore[assignment]  # permits are slots.tokens
                    if slots.waiting:
                        slots.wake_one()
                log = window.current_log
                bits = latency_ns.bit_length()
                log.append((bits - 3) * 8 + (latency_ns >> (bits - 4)) - 8)  # as state.succeeded
                if len(log) > FOLD_AFTER:
                    with state.lock:
                        window.fold(window.current)
            if self._observed:  # as _emit, inlined; a bare tuple: Event's own __new__ costs twice as much
                event = _new_tuple(Event, (self.name, SUCCESS, latency_ns / 1e9, "primary", None, None))
                only = self._only_listener
                if only is not None:  # one listener, the usual case: no iterator to build per call
                    try:  # noqa: SIM105 (a plain try is cheaper than contextlib.suppress)
                        only(event)
                    except Exception:  # a broken listener must never break the call path
                        pass
                else:
                    for listener in self._listening:
                        try:  # noqa: SIM105
                            listener(event)
                        except Exception:
                            pass
            return value
        return self._recover(fn, args, kwargs, failed).value  # type: ignore[no-any-return]

    def _call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """`call`, every case: the reference the fast paths of `call` and the decorator must equal."""
        try:
            return self._attempt(fn, args, kwargs)
        except Failed as exc:
            failed = exc  # recover outside the handler, so the caller's traceback has no `Failed`
        return self._recover(fn, args, kwargs, failed).value

    def execute(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Result[T]:
        """Like `call`, but the `Result` also says which level answered."""
        start = self._now()
        try:
            value = self._attempt(fn, args, kwargs)
        except Failed as failed:
            return self._recover(fn, args, kwargs, failed, start)
        return self._primary_result(value, start)

    async def acall(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await coroutine function `fn` through the guard, cancelled at the deadline."""
        try:
            return await self._attempt_async(fn, args, kwargs)  # type: ignore[no-any-return]
        except Failed as failed:
            return (await self._recover_async(fn, args, kwargs, failed)).value  # type: ignore[no-any-return]

    async def aexecute(self, fn: Callable[P, Awaitable[T]], /,
                       *args: P.args, **kwargs: P.kwargs) -> Result[T]:
        """Like `acall`, but the `Result` also says which level answered."""
        start = self._now()
        try:
            value = await self._attempt_async(fn, args, kwargs)
        except Failed as failed:
            return await self._recover_async(fn, args, kwargs, failed, start)
        return self._primary_result(value, start)

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]: ...

    @overload
    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate a function or coroutine function so every call goes through this dependency."""
        if not callable(fn):
            raise TypeError(f"{self.name}: a Dependency decorates a function or a coroutine function, "
                            f"got {fn!r}")
        if _is_async(fn):
            @functools.wraps(fn)
            async def guarded_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await self.acall(fn, *args, **kwargs)

            return guarded_async

        return functools.wraps(fn)(self._bind(fn))

    def _bind(self, fn: Callable[P, T]) -> Callable[P, T]:
        """`call(fn, ...)` as a function, with the common case compiled in.

        Breaker closed, a semaphore permit free (or no bulkhead), no fault armed and nobody
        listening: admission, the call and its success record run in this one frame, reading what
        they need from closure cells. Anything else goes through `call`. Between two system calls
        the interpreter runs on cold caches, where the frames this saves cost 0.5-1 us per call.
        """
        state, now, pool, name, clock = self._state, self._now, self._pool, self.name, self._clock
        new_tuple = tuple.__new__
        permits, settle = state.permits, self._settle  # configure() resizes the permit list in place
        limiter = self._limiter  # a bulkhead keeps its kind for good: so does the limiter
        slots = cast(Permits, state.slots)  # read only where `permits` is not None, so never None there
        if pool is not None:
            def pooled(*args: P.args, **kwargs: P.kwargs) -> T:
                return self.call(fn, *args, **kwargs)  # looked up per call: configure() may add a hedge

            return pooled

        def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            if not state.gate_open or armed[0] or not self._straight:
                return self.call(fn, *args, **kwargs)  # looked up per call: configure() may add a hedge
            start = now()
            if travelling[0] and overdue(clock, start):  # `call` refuses it, counted
                return self.call(fn, *args, **kwargs)
            if permits is not None:
                try:
                    permits.pop()
                except IndexError:  # the bulkhead is full: `call` waits or refuses
                    return self.call(fn, *args, **kwargs)
            try:
                # spreading no keywords copies no dict (P.kwargs is empty there)
                value = fn(*args, **kwargs) if kwargs else fn(*args)  # type: ignore[call-arg]
            except BaseException as exc:
                end = now()
                try:
                    settle(exc, end, end - start, ADMITTED, True, fn)
                except Failed as error:
                    failed = error  # recover outside the handler, as `call` does
            else:
                end = now()
                if type(value) is _COROUTINE:  # a sync function that returned a coroutine
                    self._unawaited(value, fn, end, ADMITTED, True)
                latency_ns = end - start
                if limiter is not None:  # Limiter.answered, inlined; the call still holds its permit
                    log = limiter.log
                    log += (latency_ns, slots.held - len(permits), limiter.limit)  # type: ignore[arg-type]
                    if len(log) >= limiter.due:
                        limiter.reached(end)
                window = state.window  # read per call: configure() may give it a new window
                if end >= window.current_end or not 8 <= latency_ns < state.plain_below:
                    state.leave(end, _SUCCESS, latency_ns, ADMITTED)  # a new bucket, or slow
                else:
                    if permits is not None:
                        permits.append(1)
                        if slots.waiting:
                            slots.wake_one()
                    log = window.current_log
                    bits = latency_ns.bit_length()
                    log.append((bits - 3) * 8 + (latency_ns >> (bits - 4)) - 8)  # as state.succeeded
                    if len(log) > FOLD_AFTER:
                        with state.lock:
                            window.fold(window.current)
                if self._observed:  # as _emit, inlined; a bare tuple: Event's own __new__ costs twice as much
                    event = new_tuple(Event, (name, SUCCESS, latency_ns / 1e9, "primary", None, None))
                    only = self._only_listener
                    if only is not None:  # one listener, the usual case: no iterator to build per call
                        try:  # noqa: SIM105 (a plain try is cheaper than contextlib.suppress)
                            only(event)
                        except Exception:  # a broken listener must never break the call path
                            pass
                    else:
                        for listener in self._listening:
                            try:  # noqa: SIM105
                                listener(event)
                            except Exception:
                                pass
                return value
            return self._recover(fn, args, kwargs, failed).value  # type: ignore[no-any-return]

        return guarded

    # -- observation ---------------------------------------------------------------------------
    def listen(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Call `listener(event)` for every outcome of this dependency; returns an unsubscribe."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            self._listeners.remove(listener)
            self.refresh_observed()

        self.refresh_observed()
        return unsubscribe

    def refresh_observed(self) -> None:
        """Re-read whether anyone listens (the hot path checks one attribute)."""
        self._observed = bool(self._listeners or self._shared_listeners)
        self._listening = (*self._listeners, *self._shared_listeners)
        self._only_listener = self._listening[0] if len(self._listening) == 1 else None
        self._refresh_detour()

    def _refresh_detour(self) -> None:
        # One flag for "an answer must be looked at before it is recorded" (a result predicate, a
        # per-call breaker rule): the plain path reads it once, so predicates cost nothing while
        # unused. A listener alone only needs to hear of each call, and the adaptive limit only
        # needs each success's latency: every path tells them itself (see `_answered_to_limiter`).
        self._judging = (self._failure_when is not None or self._retry_when is not None
                         or self._state.counting)
        self._detour = self._observed or self._judging
        # The fast paths of `call` and the decorator run a call only when nothing above looks at
        # it, no hedge races it and no pool runs it (a hedge swaps the entry points: see `_take`).
        self._straight = not self._judging and self._hedge is None and self._pool is None

    def _answered_to_limiter(self, latency_ns: int) -> None:
        """Tell the adaptive limit of a success; the call still holds its permit, so it counts itself."""
        slots = cast(Permits, self._state.slots)
        cast(Limiter, self._limiter).answered(latency_ns, slots.limit + slots.debt - len(slots.tokens))

    def _limit_moved(self, limit: int) -> None:
        state = self._state
        with state.lock:
            state.max_active = limit
            # a smaller limit is owed permits: successes then go the way that repays them (see _state)
            state._attend(state.window.attention_at)

    def _skipped(self, what: str) -> None:
        """Count a call, retry or fallback level left out because the request's deadline had no room."""
        with self._configuring:
            self._skips[what] += 1

    def snapshot(self) -> dict[str, Any]:
        """Rolling-window metrics and state as a JSON-ready dict."""
        state = self._state
        with state.lock:
            counts, per_level, latency = state.window.snapshot(self._now())
            state_name = state.state_name
        requests = counts[_SUCCESS] + counts[_FAILURE] + counts[_TIMEOUT] + counts[_REJECTED] + counts[_SHORT]
        errors = counts[_FAILURE] + counts[_TIMEOUT] + counts[_REJECTED] + counts[_SHORT]
        isolation = "thread" if self._pool else "semaphore" if self.bulkhead else "none"
        return {
            "name": self.name,
            "owner": self.owner,
            "state": state_name,
            "isolation": isolation,
            "timeout": self.timeout,
            "has_fallback": bool(self.fallbacks),
            "requests": requests,
            "error_percentage": round(100.0 * errors / requests, 2) if requests else 0.0,
            "counts": {o.label: counts[o] for o in Outcome if o is not Outcome.STATE_CHANGE},
            "fallbacks": {f.name: per_level[i] for i, f in enumerate(self.fallbacks)},
            "latency_ms": latency,
            "concurrent": state.active,
            "max_concurrent": state.max_active if self.bulkhead else None,
            "window_s": state.window.bucket_ns * state.window.n / 1e9,
            "limit": None if self._limiter is None else {
                "algorithm": self._limiter.policy.algorithm, "current": self._limiter.limit,
                "min": self._limiter.policy.min_limit, "max": self._limiter.policy.max_limit},
            "deadline_skipped": dict(self._skips),
            "hedges": dict(self._hedges) if self._hedge is not None else None,
        }

    # -- hedging ---------------------------------------------------------------------------------
    def _sync_hedge_refused(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> NoReturn:
        raise ConfigError(f"{self.name}: Dependency.hedge races two attempts, which needs coroutines "
                          f"(acall/aexecute) or a ThreadPoolBulkhead; a sync call under a "
                          f"{_kind_of(self.bulkhead)} runs on the caller's thread and cannot race itself, "
                          f"so call() and execute() are refused while a hedge is set")

    def _call_hedged(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._pool_race(fn, args, kwargs)
        except Failed as exc:
            failed = exc  # recover outside the handler, as `call` does
        return self._recover(fn, args, kwargs, failed).value

    def _execute_hedged(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Result[Any]:
        start = self._now()
        try:
            value = self._pool_race(fn, args, kwargs)
        except Failed as failed:
            return self._recover(fn, args, kwargs, failed, start)
        return self._primary_result(value, start)

    def _pool_race(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """`_race` on the thread pool: the primary on a worker, a hedge on another once it is late;
        the first answer wins and the loser is abandoned to its worker (which keeps its permit until
        it is done), or withdrawn if it has not started. Waits no longer than the primary's deadline."""
        pool, now = self._pool, self._now()
        delay = self._hedge_after if now - self._hedge_read_at < _HEDGE_REFRESH_NS else self._hedge_delay(now)
        if delay is None or pool is None or armed[0]:  # an injected fault takes the plain path
            return self._attempt(fn, args, kwargs)
        state = self._state
        start = self._now()
        timeout = self._timeout
        if travelling[0]:
            timeout = self._time_allowed(start)
        admitted = state.enter(start)
        if admitted > 0:
            raise Failed(admitted, self._refusal(admitted))
        finished: queue.SimpleQueue[int] = queue.SimpleQueue()
        give_back = cast(Permits, state.slots).give_back

        def submit(tag: int, within: float | None) -> Job:
            def after() -> None:
                give_back()
                finished.put(tag)

            return pool.submit(fn, args, kwargs, after, within)

        racers = [(submit(0, timeout), admitted, start)]
        ends = None if timeout is None else start + int(timeout * 1e9)
        failure: Failed | None = None
        pending = {0}
        deadline_passed = False
        try:
            tag = _next(finished, delay if ends is None else min(delay, (ends - start) / 1e9))
            if tag is None and self._may_hedge():
                now = self._now()
                second = state.enter(now)
                if second <= 0:
                    racers.append((submit(1, None if ends is None else (ends - now) / 1e9), second, now))
                    pending.add(1)
                    self._count_hedge("started")
            while pending:
                if tag is None:
                    tag = _next(finished, None if ends is None else (ends - self._now()) / 1e9)
                    if tag is None:
                        deadline_passed = True  # nobody answered in time
                        break
                job, admitted, t0 = racers[tag]
                pending.discard(tag)
                job.wait(None)  # the worker signals just before it lets go of the job
                end = self._now()
                if not job.started:  # dropped by its worker at its deadline: no answer
                    if tag == 0:
                        failure = failure or self._timed_out(end, start, admitted, timeout)
                    else:
                        state.leave(end, -1, 0, admitted, release=False)
                    tag = None
                    continue
                tag = None
                try:
                    if job.error is not None:
                        self._settle(job.error, end, end - t0, admitted, False, fn)
                    if type(job.value) is _COROUTINE:
                        self._unawaited(job.value, fn, end, admitted, False)
                    value = self._judged(job.value, t0, end, admitted, False)
                except Failed as failed:
                    failure = failure or failed
                    if failed.outcome == _TIMEOUT:
                        break
                    continue
                if job is not racers[0][0]:
                    self._count_hedge("won")
                return value
        finally:
            for tag in pending:  # the loser, or every racer still out at the deadline
                job, admitted, t0 = racers[tag]
                job.withdraw()  # a job still queued must not start; a running one is abandoned
                if tag == 0 and deadline_passed:
                    continue  # the primary timed out: counted below
                state.leave(self._now(), -1, 0, admitted, release=False)
                if len(racers) > 1:
                    self._count_hedge("cancelled")
        if deadline_passed and 0 in pending:
            raise self._timed_out(self._now(), start, racers[0][1], timeout)
        assert failure is not None  # every racer ended without an answer
        raise failure

    def _timed_out(self, end: int, start: int, admitted: int, timeout: float | None) -> Failed:
        """Record a pooled primary that gave no answer by its deadline; the `Failed` to raise."""
        self._state.leave(end, _TIMEOUT, end - start, admitted, release=False)
        error = DeadlineExceeded(f"{self.name}: no answer within {timeout}s")
        self._emit_outcome(Outcome.TIMEOUT, end - start, error)
        return Failed(_TIMEOUT, error)

    async def _aexecute_hedged(self, fn: Callable[..., Awaitable[Any]], /,
                               *args: Any, **kwargs: Any) -> Result[Any]:
        result: Result[Any] = await self._race(fn, args, kwargs, self._now())
        return result

    def _hedge_delay(self, now: int) -> float | None:
        """Seconds after which a second attempt starts (None: no hedge for this call), read again
        from the window's latency every _HEDGE_REFRESH_NS (the callers check that time themselves:
        the common case costs no call)."""
        hedge, state = self._hedge, self._state
        after = None
        if hedge is not None:
            with state.lock:
                latency, calls = quantile(state.window, now, hedge.percentile)
            after = max(hedge.floor, latency) if calls >= hedge.min_samples else None
        if after is not None and self._timeout is not None and after >= self._timeout:
            after = None  # the first attempt times out before a hedge would start
        self._hedge_after = after
        self._hedge_read_at = now
        return after

    def _may_hedge(self) -> bool:
        """Breaker closed, a permit free, time left before the deadline, and budget to spend."""
        state = self._state
        if not state.gate_open or (state.permits is not None and not state.permits):
            return False
        if travelling[0]:
            left = time_left()
            if left is not None and left <= 0:
                self._skipped("hedge")
                return False
        budget = self._retry.budget if self._retry is not None and self._retry.budget is not None \
            else _HEDGE_BUDGET
        return state.retry_allowed(self._now(), budget.ratio, budget.min_per_second)

    async def _race(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...],
                    kwargs: dict[str, Any], start: int | None) -> Any:
        """`acall` with a hedge (or `aexecute`, given its `start`: the answer is then a `Result`).

        The primary attempt runs in the caller's task, and a hedge in a task of its own once the
        primary is late: the first answer wins, the loser is cancelled. A primary that fails lets a
        running hedge answer; a timeout ends the race at once, so a hedge never keeps the caller
        past the primary's deadline. No task, no timer handle and no object per call: the hedge
        times share one queue and one armed timer per event loop (as deadlines do), and only a call
        still running when its timer fires becomes a `_Race` (see `_begin_race`)."""
        now = self._now()
        delay = self._hedge_after if now - self._hedge_read_at < _HEDGE_REFRESH_NS else self._hedge_delay(now)
        try:
            if delay is None:
                value = await self._attempt_async(fn, args, kwargs)
            else:
                loop = _running_loop()
                task = _current_task(loop)
                assert task is not None, "acall needs a running task"
                timers = self._hedge_timers.get(loop)
                if timers is None:
                    timers = self._hedge_timers_for(loop, delay)
                due = now / 1e9 + delay  # in the loop's time, when it keeps the guard's clock
                pending = timers.pending
                if (timers.shared_clock and timers.timer is not None and due >= timers.timer_at
                        and (not pending or pending[-1][0] <= due)):
                    # Deadlines.start's usual case, inlined (in order, the timer armed): a call per call less
                    entry: list[Any] = [due, (task, fn, args, kwargs, now), RUNNING]
                    pending.append(entry)
                else:
                    entry = timers.start((task, fn, args, kwargs, now), now, delay)  # type: ignore[arg-type]
                try:
                    value = await self._attempt_async(fn, args, kwargs)
                except asyncio.CancelledError:
                    race = entry[1] if entry[2] == EXPIRED else None
                    if race is None or not race.won or task.uncancel() != 0:
                        raise
                    self._count_hedge("won")  # the hedge answered and cancelled the primary
                    self._count_hedge("cancelled")
                    value = race.value
                except Failed as lost:
                    second = entry[1].hedge if entry[2] == EXPIRED else None
                    if second is None or lost.outcome == _TIMEOUT:
                        raise
                    entry[1].settled = True  # the hedge is still running: it may answer yet
                    value = await second
                    self._count_hedge("won")
                finally:
                    if entry[2] == RUNNING:  # the primary ended before its hedge time: no race
                        entry[2] = DONE
                        if pending and pending[0] is entry:
                            pending.popleft()
                    elif entry[2] == EXPIRED:
                        race = entry[1]
                        race.settled = True
                        second = race.hedge
                        if second is not None and not second.done():
                            second.cancel()
                            self._count_hedge("cancelled")
        except Failed as exc:
            failed = exc  # recover outside the handler, so the caller's traceback has no `Failed`
        else:
            return value if start is None else self._primary_result(value, start)
        result = await self._recover_async(fn, args, kwargs, failed, start)
        return result.value if start is None else result

    def _acall_hedged(self, fn: Callable[..., Awaitable[Any]], /, *args: Any,
                      **kwargs: Any) -> Coroutine[Any, Any, Any]:
        # a plain function handing back the coroutine: cheaper than a coroutine taking *args itself
        return self._hedged(fn, args, kwargs)

    async def _hedged(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any:
        """`acall` with a hedge, the common case in one frame: `_race` with `_attempt_async` folded
        in (no coroutine between the caller and the function), so the call reads the clock, the
        running loop and its task once, for its hedge time, its deadline and its latency. Breaker
        closed, a permit free (or no bulkhead), no fault armed, no request deadline in force;
        anything else takes `_race`, the reference path (test_hedge_twin holds them equal). Until
        its hedge time comes, a hedge costs its call one entry in a queue (see `_race`)."""
        state = self._state
        if not state.gate_open or armed[0] or travelling[0]:
            return await self._race(fn, args, kwargs, None)
        start = self._now()
        fresh = start - self._hedge_read_at < _HEDGE_REFRESH_NS
        delay = self._hedge_after if fresh else self._hedge_delay(start)
        permits = state.permits
        if permits is not None:
            try:
                permits.pop()
            except IndexError:  # the bulkhead is full: `_race` waits or refuses
                return await self._race(fn, args, kwargs, None)
        timeout = self._timeout
        loop = task = None
        if delay is not None or timeout is not None:
            loop = _running_loop()
            task = _current_task(loop)  # passing the loop skips a second lookup
            assert task is not None, "acall needs a running task"
        race: list[Any] | None = None  # the hedge's entry: [hedge time, the call, RUNNING | DONE | EXPIRED]
        if delay is not None:
            timers = self._hedge_timers.get(loop)  # type: ignore[arg-type]  # looked up with delay
            if timers is None:
                timers = self._hedge_timers_for(loop, delay)  # type: ignore[arg-type]
            due = start / 1e9 + delay  # in the loop's time, when it keeps the guard's clock
            waiting = timers.pending
            if (timers.shared_clock and timers.timer is not None and due >= timers.timer_at
                    and (not waiting or waiting[-1][0] <= due)):
                race = [due, (task, fn, args, kwargs, start), RUNNING]  # Deadlines.start's usual case
                waiting.append(race)
            else:
                race = timers.start((task, fn, args, kwargs, start), start, delay)  # type: ignore[arg-type]
        try:
            try:  # the primary attempt, as `_attempt_async` makes it
                if timeout is None:
                    try:
                        value = await (fn(*args, **kwargs) if not reviewing[0] else marked(fn, args, kwargs))
                    except BaseException as exc:
                        end = self._now()
                        self._settle(exc, end, end - start, ADMITTED, True, fn, True)
                else:
                    deadlines = self._deadlines.get(loop)  # type: ignore[arg-type]  # looked up with a timeout
                    if deadlines is None:
                        deadlines = self._deadlines_for(loop, timeout)  # type: ignore[arg-type]
                    entry = deadlines.start(task, start, timeout)  # type: ignore[arg-type]
                    try:
                        value = await (fn(*args, **kwargs) if not reviewing[0] else marked(fn, args, kwargs))
                    except asyncio.CancelledError as exc:
                        end = self._now()
                        if entry[2] == EXPIRED and task.uncancel() == 0:  # type: ignore[union-attr]
                            error = DeadlineExceeded(f"{self.name}: no answer within {timeout}s")
                            self._settle(error, end, end - start, ADMITTED, True)
                        state.leave(end, -1, 0, ADMITTED)  # cancelled from outside (or by the hedge that won)
                        raise exc
                    except BaseException as exc:
                        end = self._now()
                        self._settle(exc, end, end - start, ADMITTED, True, fn, True)
                    finally:
                        if entry[2] == RUNNING:
                            entry[2] = DONE
                            pending = deadlines.pending
                            if pending[0] is entry:  # calls mostly end in the order they began
                                pending.popleft()
                end = self._now()
                if self._detour:
                    value = self._judged(value, start, end, ADMITTED, True)
                else:
                    limiter = self._limiter
                    if limiter is not None:  # Limiter.answered, inlined
                        slots: Permits = state.slots  # type: ignore[assignment]  # an adaptive bulkhead has permits
                        log = limiter.log
                        log += (end - start, slots.held - len(permits), limiter.limit)  # type: ignore[arg-type]
                        if len(log) >= limiter.due:
                            limiter.reached(end)
                    state.succeeded(end, end - start)
            except asyncio.CancelledError:  # the race, as `_race` runs it
                won = race[1] if race is not None and race[2] == EXPIRED else None
                if won is None or not won.won or task.uncancel() != 0:  # type: ignore[union-attr]
                    raise
                self._count_hedge("won")  # the hedge answered and cancelled the primary
                self._count_hedge("cancelled")
                value = won.value
            except Failed as lost:
                second = race[1].hedge if race is not None and race[2] == EXPIRED else None
                if second is None or lost.outcome == _TIMEOUT:
                    raise
                race[1].settled = True  # type: ignore[index]  # the hedge is still running: it may answer yet
                value = await second
                self._count_hedge("won")
            finally:
                if race is None:
                    pass
                elif race[2] == RUNNING:  # the primary ended before its hedge time: no race
                    if waiting[0] is race:  # (still queued while running) calls mostly end in order
                        waiting.popleft()
                    else:
                        race[2] = DONE  # the timer drops it when it comes to it
                elif race[2] == EXPIRED:
                    started = race[1]
                    started.settled = True
                    if started.hedge is not None and not started.hedge.done():
                        started.hedge.cancel()
                        self._count_hedge("cancelled")
        except Failed as exc:
            failed = exc  # recover outside the handler, so the caller's traceback has no `Failed`
        else:
            return value
        return (await self._recover_async(fn, args, kwargs, failed)).value

    def _hedge_timers_for(self, loop: asyncio.AbstractEventLoop, delay: float) -> HedgeTimers:
        # forget closed loops (tests and asyncio.run create many) so they can be collected
        for old in [lp for lp in list(self._hedge_timers) if lp.is_closed()]:  # list(): atomic copy
            self._hedge_timers.pop(old, None)
        timers = self._hedge_timers[loop] = HedgeTimers(loop, delay, self._clock, self._begin_race)
        return timers

    def _begin_race(self, call: tuple[asyncio.Task[Any], Callable[..., Awaitable[Any]], tuple[Any, ...],
                                      dict[str, Any], int]) -> _Race:
        """A call still running at its hedge time: the race begins, and starts a hedge if it may."""
        race = _Race(self, *call)
        race.start()
        return race

    def _count_hedge(self, what: str) -> None:
        with self._configuring:
            self._hedges[what] += 1

    # -- the primary attempt -------------------------------------------------------------------
    def _attempt(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        admitted = 0  # ADMITTED, unless a fault for this request says otherwise
        if armed[0]:
            found = find_fault(self.name)
            if found is not None:
                admitted = self._injecting(*found)
                fn = self._faulty(found[0], fn)
        state = self._state
        start = self._now()
        if travelling[0] and overdue(self._clock, start):  # a request deadline is in force somewhere
            self._late()  # and has passed: the call is not made
        # Fast path: breaker closed and a permit free, no lock taken.
        permits = state.permits
        if admitted:
            admitted = state.enter_injected(start)
        elif state.gate_open and permits:
            try:
                permits.pop()
                admitted = ADMITTED
            except IndexError:  # lost the last permit to another thread
                admitted = state.enter(start)
        elif state.gate_open and permits is None:  # no bulkhead
            admitted = ADMITTED
        else:
            admitted = state.enter(start)
        if admitted > 0:
            raise Failed(admitted, self._refusal(admitted))
        if self._pool is not None:
            # a sync call on the caller's thread cannot be stopped; a pooled one is abandoned in time
            timeout = call_limit(self._timeout) if travelling[0] else self._timeout
            return self._attempt_pooled(fn, args, kwargs, start, admitted, timeout)
        try:
            value = fn(*args, **kwargs)
        except BaseException as exc:
            end = self._now()
            self._settle(exc, end, end - start, admitted, True, fn)
        end = self._now()
        if type(value) is _COROUTINE:  # an async function given to call(): not a success
            self._unawaited(value, fn, end, admitted, True)
        if self._judging:
            return self._judged(value, start, end, admitted, True)
        if self._limiter is not None and admitted != INJECTED:
            self._answered_to_limiter(end - start)
        if admitted:  # a half-open trial, or a call carrying its request's injected delay
            state.leave(end, 0, end - start, admitted)  # 0: Outcome.SUCCESS
        else:
            state.succeeded(end, end - start)
        if self._observed:  # as in _judged, without its checks: nobody judges the answer
            self._emit(_new_tuple(Event, (self.name, SUCCESS, (end - start) / 1e9, "primary", None, None)))
        return value

    def _attempt_pooled(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                        start: int, admitted: int, timeout: float | None) -> Any:
        assert self._pool is not None
        state = self._state
        job: Job | None = None
        try:
            job = self._pool.submit(fn, args, kwargs, cast(Permits, state.slots).give_back, timeout)
            finished = job.wait(timeout)
        except BaseException:  # the caller was interrupted (KeyboardInterrupt, ...): not a verdict
            if job is not None:
                job.withdraw()  # nobody waits for it any more
            # the worker gives the permit back when it is done with (or drops) the job; a trial
            # call gives its slot back now, or half-open would wait for a verdict that never comes
            state.leave(self._now(), -1, 0, admitted, release=False)
            raise
        end = self._now()
        if not finished:  # abandoned: the worker keeps its slot until the call really ends
            job.withdraw()  # or, if it is still queued, drops it: it must not start after its deadline
            self._state.leave(end, _TIMEOUT, end - start, admitted, release=False)
            error = DeadlineExceeded(f"{self.name}: no answer within {timeout}s")
            self._emit_outcome(Outcome.TIMEOUT, end - start, error)
            raise Failed(_TIMEOUT, error)
        if job.error is not None:
            self._settle(job.error, end, end - start, admitted, False, fn)
        if type(job.value) is _COROUTINE:
            self._unawaited(job.value, fn, end, admitted, False)
        if self._detour:
            return self._judged(job.value, start, end, admitted, False)
        self._state.leave(end, _SUCCESS, end - start, admitted, release=False)
        return job.value

    async def _attempt_async(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...],
                             kwargs: dict[str, Any], begun: int | None = None) -> Any:
        # `begun`: for a hedge, when its call began. Its answer goes into the window with the
        # caller's wait, not its own time: a window of hedges' own times would lose the slow
        # calls they answered for, and the hedge delay read from it would fall under its percentile.
        admitted = 0  # ADMITTED, unless a fault for this request says otherwise
        if armed[0]:
            found = find_fault(self.name)
            if found is not None:
                admitted = self._injecting(*found)
                fn = self._faulty_async(found[0], fn)
        timeout = self._timeout
        state = self._state
        start = self._now()
        if travelling[0]:  # call_limit, inlined: this runs on every call under a deadline
            if overriding[0]:
                override = _call_override.get()
                if override is not None:
                    timeout = override
            current = _request_deadline.get()
            if current is not None:
                left_ns = current[0] - (start if current[1] is self._clock else current[1].now_ns())
                if timeout is None or left_ns < timeout * 1e9:  # the request's deadline comes first
                    if left_ns <= 0:  # and has passed: the call is not made
                        self._late()
                    timeout = left_ns / 1e9
        # The same lock-free admission as `_attempt`, inlined: a helper would cost a call per call.
        permits = state.permits
        if admitted:
            admitted = state.enter_injected(start)
        elif state.gate_open and permits:
            try:
                permits.pop()
                admitted = ADMITTED
            except IndexError:
                admitted = await self._enter_async(state, start, timeout)
        elif state.gate_open and permits is None:
            admitted = ADMITTED
        else:
            admitted = await self._enter_async(state, start, timeout)
        if admitted > 0:
            raise Failed(admitted, self._refusal(admitted))
        if timeout is None:
            try:
                value = await (fn(*args, **kwargs) if not reviewing[0] else marked(fn, args, kwargs))
            except BaseException as exc:
                end = self._now()
                self._settle(exc, end, end - start, admitted, True, fn, True)
        else:
            loop = _running_loop()
            deadlines = self._deadlines.get(loop)
            if deadlines is None:
                deadlines = self._deadlines_for(loop, self._timeout or timeout)
            task = _current_task(loop)  # passing the loop skips a second lookup
            assert task is not None, "acall needs a running task"
            entry = deadlines.start(task, start, timeout)
            try:
                value = await (fn(*args, **kwargs) if not reviewing[0] else marked(fn, args, kwargs))
            except asyncio.CancelledError as exc:
                end = self._now()
                if entry[2] == EXPIRED and task.uncancel() == 0:
                    error = DeadlineExceeded(f"{self.name}: no answer within {timeout}s")
                    self._settle(error, end, end - start, admitted, True)
                state.leave(end, -1, 0, admitted)  # cancelled from outside: not the dependency's doing
                raise exc
            except BaseException as exc:
                end = self._now()
                self._settle(exc, end, end - start, admitted, True, fn, True)
            finally:
                if entry[2] == RUNNING:
                    entry[2] = DONE
                    pending = deadlines.pending
                    if pending[0] is entry:  # calls mostly end in the order they began: keep the queue short
                        pending.popleft()
        end = self._now()
        since = start if begun is None else begun  # a clock may read 0: no falsy sentinel
        if self._detour:
            return self._judged(value, since, end, admitted, True)
        if admitted:  # a half-open trial, or a call carrying its request's injected delay
            if self._limiter is not None and admitted != INJECTED:  # (an injected delay is not its latency)
                self._answered_to_limiter(end - start)
            state.leave(end, 0, end - since, admitted)  # 0: Outcome.SUCCESS
            return value
        limiter = self._limiter
        if limiter is not None:  # Limiter.answered, inlined; the call still holds its permit
            slots: Permits = state.slots  # type: ignore[assignment]  # an adaptive bulkhead has permits
            log = limiter.log
            log += (end - start, slots.held - len(permits), limiter.limit)  # type: ignore[arg-type]
            if len(log) >= limiter.due:
                limiter.reached(end)
        state.succeeded(end, end - since)
        return value

    def _judged(self, value: Any, start: int, end: int, admitted: int, release: bool) -> Any:
        """Record a primary that returned, when someone looks at answers: the result predicates
        (a value counted as a failure is `Failed` into the recovery like a raised error; one worth
        another try is recorded as the success it is, then `Failed` so the recovery may retry it)
        and the listeners."""
        state = self._state
        failure_when, retry_when = self._failure_when, self._retry_when
        try:
            failed = failure_when is not None and bool(failure_when(value))
            again = not failed and retry_when is not None and bool(retry_when(value))
        except BaseException:  # the predicate's own bug: raised to the caller, the call counts as nothing
            state.leave(end, -1, 0, admitted, release)
            raise
        elapsed = end - start
        if failed:
            error = FailedResult(self.name, value)
            if self._limiter is not None and admitted != INJECTED:  # a refusal (503, 429): a drop
                self._limiter.sample(elapsed, state.active, True, True)
            state.leave(end, _FAILURE, elapsed, admitted, release)
            self._emit_outcome(Outcome.FAILURE if admitted != INJECTED else Outcome.INJECTED, elapsed, error)
            raise Failed(_FAILURE, error)
        limiter = self._limiter
        if limiter is not None and admitted != INJECTED:  # an injected delay is not the dependency's latency
            limiter.answered(elapsed, state.active)  # still holding its permit: counts itself
        if admitted or not release or state.counting:  # a trial, an injected delay, a pooled call (its
            state.leave(end, _SUCCESS, elapsed, admitted, release)  # worker frees it), a per-call rule
        else:
            state.succeeded(end, elapsed)
        if self._observed:
            self._emit(Event(self.name, Outcome.SUCCESS, elapsed / 1e9))
        if again:
            raise Failed(_SUCCESS, FailedResult(self.name, value, "worth another try (retry_when)"))
        return value

    async def _enter_async(self, state: DependencyState, start: int, within: float | None) -> int:
        """Admission when the lock-free fast path could not decide; a wait counts against the deadline."""
        if state.max_wait_s <= 0:
            return state.enter(start)
        return await state.enter_async(start, within)

    def _time_allowed(self, now_ns: int) -> float | None:
        """This call's timeout under a request deadline or `call_timeout`; when the deadline has
        already passed the call is not made: counted as rejected and skipped, the fallbacks answer."""
        timeout = call_limit(self._timeout, self._clock, now_ns)
        if timeout is not None and timeout <= 0:
            self._late()
        return timeout

    def _late(self) -> NoReturn:
        """The request's deadline has passed before the call: counted as rejected and skipped."""
        self._skipped("call")
        self._state.count(_REJECTED)
        error = DeadlineExceeded(f"{self.name}: the request's deadline has passed; not called")
        self._emit_outcome(Outcome.REJECTED, 0, error)
        raise Failed(_REJECTED, error)

    def _deadlines_for(self, loop: asyncio.AbstractEventLoop, timeout: float) -> Deadlines:
        # forget closed loops (tests and asyncio.run create many) so they can be collected
        for old in [lp for lp in list(self._deadlines) if lp.is_closed()]:  # list(): atomic copy
            self._deadlines.pop(old, None)
        deadlines = self._deadlines[loop] = Deadlines(loop, timeout, self._clock)
        return deadlines

    def _settle(self, exc: BaseException, end: int, elapsed: int, admitted: int, release: bool,
                fn: Callable[..., Any] | None = None, in_acall: bool = False) -> NoReturn:
        """Record a primary that raised, then raise `Failed` (or the caller's own error)."""
        tb = exc.__traceback__
        if fn is not None and type(exc) is TypeError and tb is not None and tb.tb_next is None:
            # raised where the guard made the call, not inside the function: a mistake in the call
            # (not callable, wrong arguments, a sync function awaited), not the dependency failing
            self._state.leave(end, -1, 0, admitted, release)
            raise TypeError(_misuse(self.name, fn, in_acall, exc)) from exc
        if isinstance(exc, self._ignore):
            self._state.leave(end, -1, 0, admitted, release)  # counts as nothing
            raise exc
        if isinstance(exc, TimeoutError):
            outcome = _TIMEOUT
        elif isinstance(exc, self._failure_on):
            outcome = _FAILURE
        else:  # not a failure of the dependency: it answered, the caller gets its error (as resilience4j);
            # KeyboardInterrupt and other non-Exceptions say nothing about it and count as nothing
            self._state.leave(end, _SUCCESS if isinstance(exc, Exception) else -1, elapsed, admitted, release)
            raise exc
        if self._limiter is not None and admitted != INJECTED:  # a drop: the limit backs off
            self._limiter.sample(elapsed, self._state.active, True, outcome == _FAILURE)
        self._state.leave(end, outcome, elapsed, admitted, release)
        self._emit_outcome(Outcome(outcome) if admitted != INJECTED else Outcome.INJECTED, elapsed, exc)
        raise Failed(outcome, exc) from None

    def _unawaited(self, value: Any, fn: Callable[..., Any], end: int, admitted: int,
                   release: bool) -> NoReturn:
        """call() was given an async function: nothing ran, so nothing is counted."""
        value.close()  # never awaited, never will be: close it rather than leave a warning behind
        self._state.leave(end, -1, 0, admitted, release)
        raise TypeError(f"{self.name}: {_named(fn)} returned a coroutine; use acall() or aexecute() "
                        f"for async functions")

    def _refusal(self, outcome: int) -> BaseException:
        error: BaseException
        if outcome == _SHORT:
            error = BreakerOpen(f"{self.name}: circuit {self._state.state_name}")
        else:
            error = BulkheadFull(f"{self.name}: bulkhead full ({self._state.max_active} in use)")
        self._emit_outcome(Outcome(outcome), 0, error)
        return error

    def _injecting(self, fault: Fault, per_request: bool) -> int:
        """ADMITTED for a process-wide fault that lets the call run (it counts like a real
        failure); INJECTED for the request's own delay (the call runs, counted apart). A rejection,
        and any failing fault of the request's own, is `Failed` into the fallbacks at once: a
        process-wide one counted as rejected, the request's own as injected. A fault that answers
        (`status`, `result`) runs like a delay: its stand-in answer is judged as a real one would be."""
        if fault.kind in ANSWERING_KINDS or (not per_request and fault.kind != "reject"):
            return INJECTED if per_request else ADMITTED
        outcome, error = self._fault_error(fault)
        shown = _INJECTED if per_request else outcome
        self._state.count(shown)
        self._emit_outcome(Outcome(shown), 0, error)
        raise Failed(outcome, error)

    def _fault_error(self, fault: Fault) -> tuple[int, BaseException]:
        """What a failing fault simulates: the outcome, and the error the primary would have raised."""
        if fault.kind == "reject":
            return _REJECTED, BulkheadFull(f"{self.name}: injected rejection")
        if fault.kind == "timeout":
            return _TIMEOUT, DeadlineExceeded(f"{self.name}: {fault.message} timeout")
        return _FAILURE, InjectedFailure(f"{self.name}: {fault.message}")

    def _faulty(self, fault: Fault, fn: Callable[..., Any]) -> Callable[..., Any]:
        clock = self._clock

        def injected(*args: Any, **kwargs: Any) -> Any:
            if fault.kind in ANSWERING_KINDS:
                if fault.delay:
                    clock.sleep(fault.delay)
                return fn(*args, **kwargs) if fault.kind == "delay" else stand_in(fault, args)
            raise self._fault_error(fault)[1]

        return injected

    def _faulty_async(self, fault: Fault, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        clock = self._clock

        async def injected(*args: Any, **kwargs: Any) -> Any:
            if fault.kind in ANSWERING_KINDS:
                if fault.delay:
                    await clock.asleep(fault.delay)
                return await fn(*args, **kwargs) if fault.kind == "delay" else stand_in(fault, args)
            raise self._fault_error(fault)[1]

        return injected

    # -- recovery: retries, then the fallback chain ----------------------------------------------
    def _recover(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                 failed: Failed, start: int | None = None) -> Result[Any]:
        plan = Recovery(self, failed, start)
        while (delay := plan.next_retry()) is not None:
            self._clock.sleep(delay)
            try:
                return plan.primary_answered(self._attempt(fn, args, kwargs))
            except Failed as again:
                plan.primary_failed(again)
        kept = plan.kept_answer()
        if kept is not None:
            return kept
        token = plan.enter_fallbacks()
        try:
            for level, (fallback, is_async) in plan.levels:
                t0 = self._now()
                limit = plan.level_timeout(fallback, is_async)
                if limit is not None and limit <= 0:
                    plan.level_skipped(fallback)
                    continue
                try:
                    if is_async:
                        raise ConfigError(f"{self.name}: fallback {fallback.name!r} is async; "
                                          "use acall/aexecute")
                    value = self._in_time(fallback, t0, fallback.fn(*args, **kwargs), limit)
                except Exception as exc:
                    plan.level_failed(fallback, exc)
                    continue
                return plan.level_answered(level, fallback, value)
        finally:
            in_fallbacks.reset(token)
        return plan.last_resort()

    async def _recover_async(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...],
                             kwargs: dict[str, Any], failed: Failed,
                             start: int | None = None) -> Result[Any]:
        plan = Recovery(self, failed, start)
        while (delay := plan.next_retry()) is not None:
            await self._clock.asleep(delay)
            try:
                return plan.primary_answered(await self._attempt_async(fn, args, kwargs))
            except Failed as again:
                plan.primary_failed(again)
        kept = plan.kept_answer()
        if kept is not None:
            return kept
        token = plan.enter_fallbacks()
        try:
            for level, (fallback, is_async) in plan.levels:
                t0 = self._now()
                limit = plan.level_timeout(fallback, is_async)
                if limit is not None and limit <= 0:
                    plan.level_skipped(fallback)
                    continue
                try:
                    value = fallback.fn(*args, **kwargs)
                    if inspect.isawaitable(value):
                        value = await asyncio.wait_for(value, limit)  # cancelled at its deadline
                    else:
                        value = self._in_time(fallback, t0, value, limit)
                except Exception as exc:
                    plan.level_failed(fallback, exc)
                    continue
                return plan.level_answered(level, fallback, value)
        finally:
            in_fallbacks.reset(token)
        return plan.last_resort()

    def _in_time(self, fallback: Fallback, t0: int, value: Any, limit: float | None) -> Any:
        """`value`, unless the sync fallback that produced it overran its deadline."""
        if limit is not None and self._now() - t0 > limit * 1e9:
            raise DeadlineExceeded(f"{self.name}: fallback {fallback.name!r} missed its "
                                   f"{limit:g}s deadline")
        return value

    def _primary_result(self, value: Any, start: int) -> Result[Any]:
        return Result(value, "primary", 0, Outcome.SUCCESS, (self._now() - start) / 1e9)

    # -- events ------------------------------------------------------------------------------
    def _emit_outcome(self, outcome: Outcome, elapsed_ns: int, error: BaseException | None) -> None:
        if self._observed:
            self._emit(Event(self.name, outcome, elapsed_ns / 1e9, "primary", error))

    def _emit(self, event: Event) -> None:
        for listener in self._listening:
            try:  # noqa: SIM105 (a plain try is cheaper than contextlib.suppress on the hot path)
                listener(event)
            except Exception:  # a broken listener must never break the call path
                pass

    def close(self) -> None:
        """Stop the thread pool (if any) and leave the registry."""
        if self._pool is not None:
            self._pool.shutdown()
        if self._registry is not None:
            self._registry.remove(self)

    def __repr__(self) -> str:
        return f"Dependency({self.name!r}, state={self._state.state_name!r})"


class _Race:
    """One hedged call: started by its timer, it runs the hedge if the primary is still at it, and
    when the hedge answers first it cancels the primary (the caller's own task)."""

    __slots__ = ("args", "begun", "dep", "fn", "hedge", "kwargs", "settled", "task", "value", "won")

    def __init__(self, dep: Dependency, task: asyncio.Task[Any], fn: Callable[..., Awaitable[Any]],
                 args: tuple[Any, ...], kwargs: dict[str, Any], begun: int) -> None:
        self.dep, self.task, self.fn, self.args, self.kwargs = dep, task, fn, args, kwargs
        self.begun = begun  # when the call began: the hedge's answer is recorded with the caller's wait
        self.hedge: asyncio.Task[Any] | None = None
        self.settled = False  # the caller has its answer (or waits for the hedge itself)
        self.won = False
        self.value: Any = None

    def start(self) -> None:
        if self.settled or self.task.done() or not self.dep._may_hedge():
            return
        attempt = self.dep._attempt_async(self.fn, self.args, self.kwargs, self.begun)
        self.hedge = asyncio.ensure_future(attempt)
        self.dep._count_hedge("started")
        self.hedge.add_done_callback(self._hedge_done)

    def _hedge_done(self, hedge: asyncio.Task[Any]) -> None:
        if self.settled or hedge.cancelled() or hedge.exception() is not None:
            return  # too late, or it failed: the primary goes on
        self.won = self.settled = True
        self.value = hedge.result()
        self.task.cancel()


class BreakerControl:
    """The breaker's state and manual overrides, as `dependency.breaker`."""

    def __init__(self, state: DependencyState) -> None:
        self._state = state

    @property
    def state(self) -> str:
        """"closed", "open" or "half_open" (forced states read as what they force)."""
        return self._state.state_name

    @property
    def forced(self) -> bool:
        return self._state.forced is not None

    def force_open(self) -> None:
        """Short-circuit every call until `reset()`."""
        self._state.force(STATE_NAMES.index("open"))

    def force_closed(self) -> None:
        """Let every call through until `reset()`, whatever the error rate."""
        self._state.force(STATE_NAMES.index("closed"))

    def reset(self) -> None:
        """Back to closed with an empty window, overrides removed."""
        self._state.force(None)


def _next(finished: queue.SimpleQueue[int], within: float | None) -> int | None:
    """The tag of the next racer to finish within `within` seconds (None: wait for ever), or None."""
    if within is not None and within <= 0:
        return None
    try:
        return finished.get(timeout=within)
    except queue.Empty:
        return None


def _kind_of(bulkhead: Bulkhead | None) -> str:
    return "no bulkhead" if bulkhead is None else type(bulkhead).__name__


def _limit_slow_ns(settings: Settings) -> int:
    """The latency from which an AIMD limit backs off: its own `slow`, else the breaker's slow-call
    threshold, else the timeout (0: only timeouts count)."""
    bulkhead, breaker = settings.bulkhead, settings.breaker
    if isinstance(bulkhead, AdaptiveBulkhead) and bulkhead.slow is not None:
        return int(bulkhead.slow * 1e9)
    slow = breaker.slow_call if breaker is not None and breaker.slow_call is not None else settings.timeout
    return int(slow * 1e9) if slow is not None else 0


def _named(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def _misuse(name: str, fn: object, in_acall: bool, error: TypeError) -> str:
    """What went wrong in the call itself, and what to use instead."""
    if inspect.iscoroutine(fn):
        return (f"{name}: got a coroutine object; pass the coroutine function and its arguments, "
                f"as in acall({fn.__qualname__}, *args)")
    if not callable(fn):
        return f"{name}: expected a function and its arguments, got {fn!r}"
    if in_acall and not _is_async(fn):
        return (f"{name}: acall() and aexecute() await what the function returns, and "
                f"{_named(fn)} is not async ({error}); use call() or execute() for sync functions")
    return f"{name}: {error} (a mistake in the call, not a failure of the dependency)"


def _is_async(fn: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    # an object whose __call__ is a coroutine function (functools.partial is unwrapped by inspect)
    return not inspect.isroutine(fn) and inspect.iscoroutinefunction(type(fn).__call__)


__all__ = ["BreakerControl", "Dependency"]
