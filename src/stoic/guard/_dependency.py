"""`Dependency`: one outbound dependency and the straight call path through its protections.

call -> fault check -> breaker -> bulkhead -> deadline -> fn -> record -> (retry) -> fallback chain
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import random
import threading
import types
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Generic, NoReturn, ParamSpec, TypeVar, cast, overload

from ._clock import SYSTEM_CLOCK, Clock
from ._deadline import DONE, EXPIRED, RUNNING, Deadlines
from ._errors import (
    BreakerOpen,
    BulkheadFull,
    ConfigError,
    DeadlineExceeded,
    FailedResult,
    InjectedFailure,
)
from ._events import Event, Outcome, Result
from ._inject import Fault, armed, find_fault
from ._permits import Permits
from ._policies import BreakerPolicy, Bulkhead, Fallback, Retry, SemaphoreBulkhead, ThreadPoolBulkhead
from ._pool import Job, WorkerPool
from ._recovery import Failed, Recovery, in_fallbacks
from ._registry import Registry
from ._registry import registry as default_registry
from ._settings import Settings
from ._state import ADMITTED, INJECTED, STATE_NAMES, DependencyState
from ._window import FOLD_AFTER

P = ParamSpec("P")
T = TypeVar("T")

_SUCCESS, _FAILURE, _TIMEOUT = int(Outcome.SUCCESS), int(Outcome.FAILURE), int(Outcome.TIMEOUT)
_REJECTED, _SHORT, _INJECTED = int(Outcome.REJECTED), int(Outcome.SHORT_CIRCUITED), int(Outcome.INJECTED)
_DEFAULT_BREAKER = BreakerPolicy()
_running_loop, _current_task = asyncio.get_running_loop, asyncio.current_task  # read once per call
_DEFAULT_BULKHEAD = SemaphoreBulkhead()
_COROUTINE = types.CoroutineType


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
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"Dependency.name must be a non-empty string, got {name!r}")
        settings = Settings.checked(timeout, breaker, bulkhead, retry, fallbacks)
        self.name = name
        self.owner = owner
        self._clock = clock
        self._now = clock.now_ns
        self._rng = random.Random(seed)
        self._listeners: list[Callable[[Event], None]] = []
        self._registry = registry
        self._shared_listeners: list[Callable[[Event], None]] = registry.listeners if registry else []
        self._observed = bool(self._shared_listeners)
        self._configuring = threading.Lock()
        self._pool: WorkerPool | None = None
        if isinstance(settings.bulkhead, ThreadPoolBulkhead):
            self._pool = WorkerPool(name, settings.bulkhead.workers)
        max_active, max_wait, slow_after = settings.admission()
        self._state = DependencyState(name, settings.breaker, max_active, max_wait, slow_after,
                                      len(settings.fallbacks), clock, self._emit)
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
        self._refresh_detour()
        # deadlines keep one timeout per loop: calls under way keep theirs, new calls get the new one
        self._deadlines: dict[asyncio.AbstractEventLoop, Deadlines] = {}

    # -- settings ------------------------------------------------------------------------------
    def configure(self, *, timeout: float | _Keep | None = _KEEP,
                  breaker: BreakerPolicy | _Keep | None = _KEEP,
                  bulkhead: Bulkhead | _Keep | None = _KEEP,
                  retry: Retry | _Keep | None = _KEEP,
                  fallbacks: Sequence[Fallback | Callable[..., Any]] | _Keep = _KEEP) -> None:
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
            )
            old.check_change(new)
            max_active, max_wait, slow_after = new.admission()
            self._state.reconfigure(new.breaker, max_active, max_wait, slow_after, len(new.fallbacks))
            if self._pool is not None and isinstance(new.bulkhead, ThreadPoolBulkhead):
                self._pool.resize(new.bulkhead.workers)
            self._take(new)

    timeout: _Setting[float | None] = _Setting("timeout", "Seconds each call may take (None: no deadline).")
    breaker_policy: _Setting[BreakerPolicy | None] = _Setting("breaker", "When the circuit opens, recovers.")
    bulkhead: _Setting[Bulkhead | None] = _Setting("bulkhead", "The concurrency budget.")
    retry: _Setting[Retry | None] = _Setting("retry", "The retry policy.")
    fallbacks: _Setting[tuple[Fallback, ...]] = _Setting("fallbacks", "The fallback chain, in order.")

    # -- public call API ---------------------------------------------------------------------
    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call sync `fn` through the guard; returns its value or a fallback's."""
        try:
            return self._attempt(fn, args, kwargs)  # type: ignore[no-any-return]
        except Failed as exc:
            failed = exc  # recover outside the handler, so the caller's traceback has no `Failed`
        return self._recover(fn, args, kwargs, failed).value  # type: ignore[no-any-return]

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
        state, now, pool = self._state, self._now, self._pool
        permits, settle = state.permits, self._settle  # configure() resizes the permit list in place
        slots = cast(Permits, state.slots)  # read only where `permits` is not None, so never None there
        if pool is not None:
            return functools.partial(self.call, fn)

        def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            if not state.gate_open or armed[0] or self._detour:
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
                    settle(exc, end, end - start, ADMITTED, True, fn)
                except Failed as error:
                    failed = error  # recover outside the handler, as `call` does
            else:
                end = now()
                if type(value) is _COROUTINE:  # a sync function that returned a coroutine
                    self._unawaited(value, fn, end, ADMITTED, True)
                latency_ns = end - start
                window = state.window  # read per call: configure() may give it a new window
                if end >= window.current_end or not 8 <= latency_ns < state.plain_below:
                    state.leave(end, _SUCCESS, latency_ns, ADMITTED)  # a new bucket, or slow
                    return value
                if permits is not None:
                    permits.append(1)
                    if slots.waiting:
                        slots.wake_one()
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
        self._refresh_detour()

    def _refresh_detour(self) -> None:
        # One flag for "an answer must be looked at before it is recorded" (a listener, a result
        # predicate): the plain path reads it once, so predicates cost nothing while unused.
        self._detour = self._observed or self._failure_when is not None or self._retry_when is not None

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
        admitted = 0  # ADMITTED, unless a fault for this request says otherwise
        if armed[0]:
            found = find_fault(self.name)
            if found is not None:
                admitted = self._injecting(*found)
                fn = self._faulty(found[0], fn)
        state = self._state
        start = self._now()
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
            return self._attempt_pooled(fn, args, kwargs, start, admitted)
        try:
            value = fn(*args, **kwargs)
        except BaseException as exc:
            end = self._now()
            self._settle(exc, end, end - start, admitted, True, fn)
        end = self._now()
        if type(value) is _COROUTINE:  # an async function given to call(): not a success
            self._unawaited(value, fn, end, admitted, True)
        if self._detour:
            return self._judged(value, start, end, admitted, True)
        if admitted:  # a half-open trial, or a call carrying its request's injected delay
            state.leave(end, 0, end - start, admitted)  # 0: Outcome.SUCCESS
        else:
            state.succeeded(end, end - start)
        return value

    def _attempt_pooled(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                        start: int, admitted: int) -> Any:
        assert self._pool is not None
        state = self._state
        job: Job | None = None
        try:
            timeout = self._timeout
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
                             kwargs: dict[str, Any]) -> Any:
        admitted = 0  # ADMITTED, unless a fault for this request says otherwise
        if armed[0]:
            found = find_fault(self.name)
            if found is not None:
                admitted = self._injecting(*found)
                fn = self._faulty_async(found[0], fn)
        state = self._state
        start = self._now()
        # The same lock-free admission as `_attempt`, inlined: a helper would cost a call per call.
        permits = state.permits
        if admitted:
            admitted = state.enter_injected(start)
        elif state.gate_open and permits:
            try:
                permits.pop()
                admitted = ADMITTED
            except IndexError:
                admitted = await self._enter_async(state, start)
        elif state.gate_open and permits is None:
            admitted = ADMITTED
        else:
            admitted = await self._enter_async(state, start)
        if admitted > 0:
            raise Failed(admitted, self._refusal(admitted))
        timeout = self._timeout
        if timeout is None:
            try:
                value = await fn(*args, **kwargs)
            except BaseException as exc:
                end = self._now()
                self._settle(exc, end, end - start, admitted, True, fn, True)
        else:
            loop = _running_loop()
            deadlines = self._deadlines.get(loop)
            if deadlines is None:
                deadlines = self._deadlines_for(loop, timeout)
            task = _current_task(loop)  # passing the loop skips a second lookup
            assert task is not None, "acall needs a running task"
            entry = deadlines.start(task, start)
            try:
                value = await fn(*args, **kwargs)
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
        if self._detour:
            return self._judged(value, start, end, admitted, True)
        if admitted:  # a half-open trial, or a call carrying its request's injected delay
            state.leave(end, 0, end - start, admitted)  # 0: Outcome.SUCCESS
        else:
            state.succeeded(end, end - start)
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
            state.leave(end, _FAILURE, elapsed, admitted, release)
            self._emit_outcome(Outcome.FAILURE if admitted != INJECTED else Outcome.INJECTED, elapsed, error)
            raise Failed(_FAILURE, error)
        if admitted or not release:  # a trial, an injected delay, a pooled call (its worker frees it)
            state.leave(end, _SUCCESS, elapsed, admitted, release)
        else:
            state.succeeded(end, elapsed)
        if self._observed:
            self._emit(Event(self.name, Outcome.SUCCESS, elapsed / 1e9))
        if again:
            raise Failed(_SUCCESS, FailedResult(self.name, value, "worth another try (retry_when)"))
        return value

    async def _enter_async(self, state: DependencyState, start: int) -> int:
        """Admission when the lock-free fast path could not decide; a wait counts against the deadline."""
        if state.max_wait_s <= 0:
            return state.enter(start)
        return await state.enter_async(start, self._timeout)

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
        process-wide one counted as rejected, the request's own as injected."""
        if fault.kind == "delay" or (not per_request and fault.kind != "reject"):
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
            if fault.kind == "delay":
                clock.sleep(fault.delay)
                return fn(*args, **kwargs)
            raise self._fault_error(fault)[1]

        return injected

    def _faulty_async(self, fault: Fault, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        clock = self._clock

        async def injected(*args: Any, **kwargs: Any) -> Any:
            if fault.kind == "delay":
                await clock.asleep(fault.delay)
                return await fn(*args, **kwargs)
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
                try:
                    if is_async:
                        raise ConfigError(f"{self.name}: fallback {fallback.name!r} is async; "
                                          "use acall/aexecute")
                    value = self._in_time(fallback, t0, fallback.fn(*args, **kwargs))
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
            for level, (fallback, _) in plan.levels:
                t0 = self._now()
                try:
                    value = fallback.fn(*args, **kwargs)
                    if inspect.isawaitable(value):
                        value = await asyncio.wait_for(value, fallback.timeout)  # cancelled at its deadline
                    else:
                        value = self._in_time(fallback, t0, value)
                except Exception as exc:
                    plan.level_failed(fallback, exc)
                    continue
                return plan.level_answered(level, fallback, value)
        finally:
            in_fallbacks.reset(token)
        return plan.last_resort()

    def _in_time(self, fallback: Fallback, t0: int, value: Any) -> Any:
        """`value`, unless the sync fallback that produced it overran its deadline."""
        if fallback.timeout is not None and self._now() - t0 > fallback.timeout * 1e9:
            raise DeadlineExceeded(f"{self.name}: fallback {fallback.name!r} missed its "
                                   f"{fallback.timeout}s deadline")
        return value

    def _primary_result(self, value: Any, start: int) -> Result[Any]:
        return Result(value, "primary", 0, Outcome.SUCCESS, (self._now() - start) / 1e9)

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
