"""`Dependency`: one outbound dependency and the straight call path through its protections.

call -> fault check -> breaker -> bulkhead -> deadline -> fn -> record -> (retry) -> fallback chain
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import random
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, NoReturn, ParamSpec, TypeVar, overload

from ._clock import SYSTEM_CLOCK, Clock
from ._deadline import DONE, EXPIRED, RUNNING, Deadlines
from ._errors import (
    BreakerOpen,
    BulkheadFull,
    ConfigError,
    DeadlineExceeded,
    DependencyFailed,
    InjectedFailure,
)
from ._events import Event, Outcome, Result
from ._inject import Fault, armed, current_fault
from ._policies import BreakerPolicy, Bulkhead, Fallback, Retry, SemaphoreBulkhead, ThreadPoolBulkhead
from ._pool import WorkerPool
from ._registry import Registry
from ._registry import registry as default_registry
from ._state import ADMITTED, STATE_NAMES, UNBOUNDED, DependencyState
from ._validate import number
from ._window import FOLD_AFTER

P = ParamSpec("P")
T = TypeVar("T")

_SUCCESS, _FAILURE, _TIMEOUT = int(Outcome.SUCCESS), int(Outcome.FAILURE), int(Outcome.TIMEOUT)
_REJECTED, _SHORT = int(Outcome.REJECTED), int(Outcome.SHORT_CIRCUITED)
_RETRYABLE = (_FAILURE, _TIMEOUT)
_DEFAULT_BREAKER = BreakerPolicy()
_running_loop, _current_task = asyncio.get_running_loop, asyncio.current_task  # read once per call
_DEFAULT_BULKHEAD = SemaphoreBulkhead()


class _Failed(Exception):
    """Internal: the primary attempt did not answer. Never escapes `Dependency`."""

    def __init__(self, outcome: int, error: BaseException) -> None:
        self.outcome = outcome
        self.error = error


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
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"Dependency.name must be a non-empty string, got {name!r}")
        if timeout is not None:
            timeout = number("Dependency", "timeout", timeout, low=0.0, high=3600.0, low_open=True)
        if bulkhead is not None and not isinstance(bulkhead, SemaphoreBulkhead | ThreadPoolBulkhead):
            raise ConfigError(f"Dependency.bulkhead must be SemaphoreBulkhead, ThreadPoolBulkhead or None, "
                              f"got {bulkhead!r}")
        if breaker is not None and not isinstance(breaker, BreakerPolicy):
            raise ConfigError(f"Dependency.breaker must be a BreakerPolicy or None, got {breaker!r}")
        if retry is not None and not isinstance(retry, Retry):
            raise ConfigError(f"Dependency.retry must be a Retry or None, got {retry!r}")
        self.name = name
        self.owner = owner
        self.timeout = timeout
        self.breaker_policy = breaker
        self.bulkhead = bulkhead
        self.retry = retry
        self.fallbacks = tuple(f if isinstance(f, Fallback) else Fallback(f) for f in fallbacks)
        self._async_fallback = tuple(_is_async(f.fn) for f in self.fallbacks)
        self._clock = clock
        self._now = clock.now_ns
        self._rng = random.Random(seed)
        self._listeners: list[Callable[[Event], None]] = []
        self._registry = registry
        self._shared_listeners: list[Callable[[Event], None]] = registry.listeners if registry else []
        self._observed = bool(self._shared_listeners)
        self._failure_on = breaker.failure_on if breaker else (Exception,)
        self._ignore = breaker.ignore if breaker else ()
        self._pool: WorkerPool | None = None
        self._deadlines: dict[asyncio.AbstractEventLoop, Deadlines] = {}
        self._timeout_ns = int(timeout * 1e9) if timeout is not None else 0
        if isinstance(bulkhead, ThreadPoolBulkhead):
            self._pool = WorkerPool(name, bulkhead.workers)
            max_active, max_wait, slow_after = bulkhead.workers + bulkhead.queue, 0.0, None
        elif isinstance(bulkhead, SemaphoreBulkhead):
            max_active, max_wait, slow_after = bulkhead.max_concurrent, bulkhead.max_wait, timeout
        else:
            max_active, max_wait, slow_after = UNBOUNDED, 0.0, timeout
        self._state = DependencyState(name, breaker, max_active, max_wait, slow_after,
                                      len(self.fallbacks), clock, self._emit)
        self.breaker = BreakerControl(self._state)
        if registry is not None:
            registry.add(self)

    # -- public call API ---------------------------------------------------------------------
    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call sync `fn` through the guard; returns its value or a fallback's."""
        try:
            return self._attempt(fn, args, kwargs)  # type: ignore[no-any-return]
        except _Failed as exc:
            failed = exc  # recover outside the handler, so the caller's traceback has no `_Failed`
        return self._recover(fn, args, kwargs, failed).value  # type: ignore[no-any-return]

    def execute(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Result[T]:
        """Like `call`, but the `Result` also says which level answered."""
        start = self._now()
        try:
            value = self._attempt(fn, args, kwargs)
        except _Failed as failed:
            return self._recover(fn, args, kwargs, failed, start)
        return self._primary_result(value, start)

    async def acall(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await coroutine function `fn` through the guard, cancelled at the deadline."""
        try:
            return await self._attempt_async(fn, args, kwargs)  # type: ignore[no-any-return]
        except _Failed as failed:
            return (await self._recover_async(fn, args, kwargs, failed)).value  # type: ignore[no-any-return]

    async def aexecute(self, fn: Callable[P, Awaitable[T]], /,
                       *args: P.args, **kwargs: P.kwargs) -> Result[T]:
        """Like `acall`, but the `Result` also says which level answered."""
        start = self._now()
        try:
            value = await self._attempt_async(fn, args, kwargs)
        except _Failed as failed:
            return await self._recover_async(fn, args, kwargs, failed, start)
        return self._primary_result(value, start)

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]: ...

    @overload
    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate a function or coroutine function so every call goes through this dependency."""
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
        state, now, pool = self._state, self._now, self._pool
        permits, window, settle = state.permits, state.window, self._settle
        if pool is not None:
            return functools.partial(self.call, fn)

        def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            if not state.gate_open or armed[0] or self._observed:
                return self.call(fn, *args, **kwargs)
            if permits is not None:
                try:
                    permits.pop()
                except IndexError:  # the bulkhead is full: `call` waits or refuses
                    return self.call(fn, *args, **kwargs)
            start = now()
            try:
                value = fn(*args, **kwargs)
            except BaseException as exc:
                end = now()
                try:
                    settle(exc, end, end - start, ADMITTED, True)
                except _Failed as error:
                    failed = error  # recover outside the handler, as `call` does
            else:
                end = now()
                latency_ns = end - start
                if end >= window.current_end or not 8 <= latency_ns < state.plain_below:
                    state.leave(end, _SUCCESS, latency_ns, ADMITTED)  # a new bucket, or slow
                    return value
                if permits is not None:
                    permits.append(1)
                    if state.waiters:
                        state.wake_one()
                log = window.current_log
                bits = latency_ns.bit_length()
                log.append((bits - 3) * 8 + (latency_ns >> (bits - 4)) - 8)  # as DependencyState.succeeded
                if len(log) > FOLD_AFTER:
                    with state.lock:
                        window.fold(window.current)
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
        }

    # -- the primary attempt -------------------------------------------------------------------
    def _attempt(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if armed[0]:
            fault = current_fault(self.name)
            if fault is not None:
                fn = self._faulty(fault, fn)
        state = self._state
        start = self._now()
        # Fast path: breaker closed and a permit free, no lock taken.
        permits = state.permits
        if state.gate_open and permits:
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
            raise _Failed(admitted, self._refusal(admitted))
        if self._pool is not None:
            return self._attempt_pooled(fn, args, kwargs, start, admitted)
        try:
            value = fn(*args, **kwargs)
        except BaseException as exc:
            end = self._now()
            self._settle(exc, end, end - start, admitted, True)
        end = self._now()
        if admitted:  # a half-open trial
            state.leave(end, 0, end - start, admitted)  # 0: Outcome.SUCCESS
        else:
            state.succeeded(end, end - start)
        if self._observed:
            self._emit(Event(self.name, Outcome.SUCCESS, (end - start) / 1e9))
        return value

    def _attempt_pooled(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                        start: int, admitted: int) -> Any:
        assert self._pool is not None
        job = self._pool.submit(fn, args, kwargs, self._state.release)
        finished = job.wait(self.timeout)
        end = self._now()
        if not finished:  # abandoned: the worker keeps its slot until the call really ends
            self._state.leave(end, _TIMEOUT, end - start, admitted, release=False)
            error = DeadlineExceeded(f"{self.name}: no answer within {self.timeout}s")
            self._emit_outcome(Outcome.TIMEOUT, end - start, error)
            raise _Failed(_TIMEOUT, error)
        if job.error is not None:
            self._settle(job.error, end, end - start, admitted, False)
        self._state.leave(end, _SUCCESS, end - start, admitted, release=False)
        if self._observed:
            self._emit(Event(self.name, Outcome.SUCCESS, (end - start) / 1e9))
        return job.value

    async def _attempt_async(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...],
                             kwargs: dict[str, Any]) -> Any:
        if armed[0]:
            fault = current_fault(self.name)
            if fault is not None:
                fn = self._faulty_async(fault, fn)
        state = self._state
        start = self._now()
        # The same lock-free admission as `_attempt`, inlined: a helper would cost a call per call.
        permits = state.permits
        if state.gate_open and permits:
            try:
                permits.pop()
                admitted = ADMITTED
            except IndexError:
                admitted = state.enter(start) if state.max_wait_s <= 0 else await state.enter_async(start)
        elif state.gate_open and permits is None:
            admitted = ADMITTED
        else:
            admitted = state.enter(start) if state.max_wait_s <= 0 else await state.enter_async(start)
        if admitted > 0:
            raise _Failed(admitted, self._refusal(admitted))
        if self.timeout is None:
            try:
                value = await fn(*args, **kwargs)
            except BaseException as exc:
                end = self._now()
                self._settle(exc, end, end - start, admitted, True)
        else:
            loop = _running_loop()
            deadlines = self._deadlines.get(loop)
            if deadlines is None:
                deadlines = self._deadlines_for(loop, self.timeout)
            task = _current_task(loop)  # passing the loop skips a second lookup
            assert task is not None, "acall needs a running task"
            entry = deadlines.start(task, start)
            try:
                value = await fn(*args, **kwargs)
            except asyncio.CancelledError as exc:
                end = self._now()
                if entry[2] == EXPIRED and task.uncancel() == 0:
                    error = DeadlineExceeded(f"{self.name}: no answer within {self.timeout}s")
                    self._settle(error, end, end - start, admitted, True)
                state.leave(end, -1, 0, admitted)  # cancelled from outside: not the dependency's doing
                raise exc
            except BaseException as exc:
                end = self._now()
                self._settle(exc, end, end - start, admitted, True)
            finally:
                if entry[2] == RUNNING:
                    entry[2] = DONE
                    pending = deadlines.pending
                    if pending[0] is entry:  # calls mostly end in the order they began: keep the queue short
                        pending.popleft()
        end = self._now()
        if admitted:  # a half-open trial
            state.leave(end, 0, end - start, admitted)  # 0: Outcome.SUCCESS
        else:
            state.succeeded(end, end - start)
        if self._observed:
            self._emit(Event(self.name, Outcome.SUCCESS, (end - start) / 1e9))
        return value

    def _deadlines_for(self, loop: asyncio.AbstractEventLoop, timeout: float) -> Deadlines:
        # forget closed loops (tests and asyncio.run create many) so they can be collected
        for old in [lp for lp in list(self._deadlines) if lp.is_closed()]:  # list(): atomic copy
            self._deadlines.pop(old, None)
        deadlines = self._deadlines[loop] = Deadlines(loop, timeout, self._clock)
        return deadlines

    def _settle(self, exc: BaseException, end: int, elapsed: int, admitted: int, release: bool) -> NoReturn:
        """Record a primary that raised, then raise `_Failed` (or the caller's own error)."""
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
        self._state.leave(end, outcome, elapsed, admitted, release)
        self._emit_outcome(Outcome(outcome), elapsed, exc)
        raise _Failed(outcome, exc) from None

    def _refusal(self, outcome: int) -> BaseException:
        error: BaseException
        if outcome == _SHORT:
            error = BreakerOpen(f"{self.name}: circuit {self._state.state_name}")
        else:
            error = BulkheadFull(f"{self.name}: bulkhead full ({self._state.max_active} in use)")
        self._emit_outcome(Outcome(outcome), 0, error)
        return error

    def _faulty(self, fault: Fault, fn: Callable[..., Any]) -> Callable[..., Any]:
        if fault.kind == "reject":
            self._state.count(_REJECTED)
            raise _Failed(_REJECTED, self._refusal_injected())
        clock = self._clock

        def injected(*args: Any, **kwargs: Any) -> Any:
            if fault.kind == "delay":
                clock.sleep(fault.delay)
                return fn(*args, **kwargs)
            if fault.kind == "timeout":
                raise DeadlineExceeded(f"{self.name}: {fault.message} timeout")
            raise InjectedFailure(f"{self.name}: {fault.message}")

        return injected

    def _faulty_async(self, fault: Fault, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        if fault.kind == "reject":
            self._state.count(_REJECTED)
            raise _Failed(_REJECTED, self._refusal_injected())
        clock = self._clock

        async def injected(*args: Any, **kwargs: Any) -> Any:
            if fault.kind == "delay":
                await clock.asleep(fault.delay)
                return await fn(*args, **kwargs)
            if fault.kind == "timeout":
                raise DeadlineExceeded(f"{self.name}: {fault.message} timeout")
            raise InjectedFailure(f"{self.name}: {fault.message}")

        return injected

    def _refusal_injected(self) -> BaseException:
        error = BulkheadFull(f"{self.name}: injected rejection")
        self._emit_outcome(Outcome.REJECTED, 0, error)
        return error

    # -- recovery: retries, then the fallback chain ----------------------------------------------
    def _retry_allowed(self, failed: _Failed, attempt: int) -> bool:
        retry = self.retry
        if retry is None or attempt > retry.attempts or failed.outcome not in _RETRYABLE:
            return False
        if not isinstance(failed.error, retry.retry_on):
            return False
        now = self._now()
        if not self._state.allows(now):  # never retry into an open breaker
            return False
        budget = retry.budget
        if budget is not None:
            return self._state.retry_allowed(now, budget.ratio, budget.min_per_second)
        self._state.count(int(Outcome.RETRY))
        return True

    def _recover(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                 failed: _Failed, start: int | None = None) -> Result[Any]:
        start = self._now() if start is None else start
        first = Outcome(failed.outcome)
        causes: list[tuple[str, BaseException]] = [("primary", failed.error)]
        attempt = 2
        while self._retry_allowed(failed, attempt):
            self._clock.sleep(self._backoff(attempt, failed))
            attempt += 1
            try:
                return self._primary_result(self._attempt(fn, args, kwargs), start)
            except _Failed as again:
                failed = again
                causes.append(("primary", again.error))
        for level, fallback in enumerate(self.fallbacks):
            t0 = self._now()
            try:
                if self._async_fallback[level]:
                    raise ConfigError(f"{self.name}: fallback {fallback.name!r} is async; use acall/aexecute")
                value = self._in_time(fallback, t0, fallback.fn(*args, **kwargs))
            except Exception as exc:
                self._fallback_failed(level, fallback, exc, causes)
                continue
            return self._fallback_answered(level, fallback, value, first, start)
        raise DependencyFailed(self.name, causes)

    async def _recover_async(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...],
                             kwargs: dict[str, Any], failed: _Failed,
                             start: int | None = None) -> Result[Any]:
        start = self._now() if start is None else start
        first = Outcome(failed.outcome)
        causes: list[tuple[str, BaseException]] = [("primary", failed.error)]
        attempt = 2
        while self._retry_allowed(failed, attempt):
            await self._clock.asleep(self._backoff(attempt, failed))
            attempt += 1
            try:
                return self._primary_result(await self._attempt_async(fn, args, kwargs), start)
            except _Failed as again:
                failed = again
                causes.append(("primary", again.error))
        for level, fallback in enumerate(self.fallbacks):
            t0 = self._now()
            try:
                value = fallback.fn(*args, **kwargs)
                if inspect.isawaitable(value):
                    value = await asyncio.wait_for(value, fallback.timeout)  # cancelled at its deadline
                else:
                    value = self._in_time(fallback, t0, value)
            except Exception as exc:
                self._fallback_failed(level, fallback, exc, causes)
                continue
            return self._fallback_answered(level, fallback, value, first, start)
        raise DependencyFailed(self.name, causes)

    def _backoff(self, attempt: int, failed: _Failed) -> float:
        """The pause before retry number `attempt`, announced as a RETRY event."""
        assert self.retry is not None
        self._emit_outcome(Outcome.RETRY, 0, failed.error)
        return self.retry.delay(attempt, self._rng)

    def _in_time(self, fallback: Fallback, t0: int, value: Any) -> Any:
        """`value`, unless the sync fallback that produced it overran its deadline."""
        if fallback.timeout is not None and self._now() - t0 > fallback.timeout * 1e9:
            raise DeadlineExceeded(f"{self.name}: fallback {fallback.name!r} missed its "
                                   f"{fallback.timeout}s deadline")
        return value

    def _primary_result(self, value: Any, start: int) -> Result[Any]:
        return Result(value, "primary", 0, Outcome.SUCCESS, (self._now() - start) / 1e9)

    def _fallback_failed(self, level: int, fallback: Fallback, exc: Exception,
                         causes: list[tuple[str, BaseException]]) -> None:
        self._state.count(int(Outcome.FALLBACK_FAILURE))
        causes.append((fallback.name, exc))
        if self._observed:
            self._emit(Event(self.name, Outcome.FALLBACK_FAILURE, 0.0, fallback.name, exc))

    def _fallback_answered(self, level: int, fallback: Fallback, value: Any, first: Outcome,
                           start: int) -> Result[Any]:
        self._state.count(int(Outcome.FALLBACK_SUCCESS), level)
        latency = (self._now() - start) / 1e9
        if self._observed:
            self._emit(Event(self.name, Outcome.FALLBACK_SUCCESS, latency, fallback.name))
        return Result(value, fallback.name, level + 1, first, latency)

    # -- events ------------------------------------------------------------------------------
    def _emit_outcome(self, outcome: Outcome, elapsed_ns: int, error: BaseException | None) -> None:
        if self._observed:
            self._emit(Event(self.name, outcome, elapsed_ns / 1e9, "primary", error))

    def _emit(self, event: Event) -> None:
        for listener in (*self._listeners, *self._shared_listeners):
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


def _is_async(fn: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    # an object whose __call__ is a coroutine function (functools.partial is unwrapped by inspect)
    return not inspect.isroutine(fn) and inspect.iscoroutinefunction(type(fn).__call__)


__all__ = ["BreakerControl", "Dependency"]
