"""Bulkheads and deadlines: semaphore and thread-pool isolation, sync threads and asyncio."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from stoic.guard import (
    BreakerPolicy,
    BulkheadFull,
    DeadlineExceeded,
    Dependency,
    DependencyFailed,
    Fallback,
    ManualClock,
    Outcome,
    Registry,
    SemaphoreBulkhead,
    ThreadPoolBulkhead,
)

from .helpers import Unavailable, boom, ok, taking

Runner = Callable[[Coroutine[Any, Any, Any]], Any]


def wait_until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


@pytest.fixture
def threads() -> Iterator[Callable[[Callable[[], Any]], threading.Thread]]:
    """Start callables on threads; every thread is joined at teardown and its error reported."""
    started: list[threading.Thread] = []
    errors: list[BaseException] = []

    def start(fn: Callable[[], Any]) -> threading.Thread:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        started.append(thread)
        return thread

    yield start
    for thread in started:
        thread.join(10)
    assert not errors, f"a helper thread failed: {errors[0]!r}"


def first_cause(call: Callable[[], Any]) -> BaseException:
    with pytest.raises(DependencyFailed) as info:
        call()
    return info.value.causes[0][1]


# -- semaphore, sync threads --------------------------------------------------------------------
def test_semaphore_fails_fast_when_full(reg: Registry, threads: Any) -> None:
    dep = Dependency("svc", timeout=None, bulkhead=SemaphoreBulkhead(max_concurrent=2), registry=reg)
    gate = threading.Event()
    for _ in range(2):
        threads(lambda: dep.call(gate.wait, 10))
    wait_until(lambda: dep.snapshot()["concurrent"] == 2)
    ran: list[int] = []
    assert isinstance(first_cause(lambda: dep.call(ran.append, 1)), BulkheadFull)
    assert ran == []
    gate.set()
    wait_until(lambda: dep.snapshot()["concurrent"] == 0)
    assert dep.call(ok) == "ok"
    counts = dep.snapshot()["counts"]
    assert (counts["rejected"], counts["success"]) == (1, 3)
    assert dep.snapshot()["max_concurrent"] == 2


def test_semaphore_bounded_wait_gets_the_freed_slot(reg: Registry, threads: Any) -> None:
    dep = Dependency("svc", timeout=None, bulkhead=SemaphoreBulkhead(max_concurrent=1, max_wait=10.0),
                     registry=reg)
    gate = threading.Event()
    threads(lambda: dep.call(gate.wait, 10))
    wait_until(lambda: dep.snapshot()["concurrent"] == 1)
    threads(lambda: (time.sleep(0.05), gate.set()))
    assert dep.call(ok, "waited") == "waited"  # waited for the slot instead of failing
    assert dep.snapshot()["counts"]["rejected"] == 0


def test_semaphore_bounded_wait_gives_up(reg: Registry, threads: Any) -> None:
    dep = Dependency("svc", timeout=None, bulkhead=SemaphoreBulkhead(max_concurrent=1, max_wait=0.05),
                     registry=reg)
    gate = threading.Event()
    threads(lambda: dep.call(gate.wait, 10))
    wait_until(lambda: dep.snapshot()["concurrent"] == 1)
    assert isinstance(first_cause(lambda: dep.call(ok)), BulkheadFull)
    gate.set()
    assert dep.snapshot()["counts"]["rejected"] == 1


def test_bounded_wait_is_real_time_even_on_a_manual_clock(clock: ManualClock, reg: Registry,
                                                          threads: Any) -> None:
    # a thread blocked on a condition cannot see a manual clock move: the wait bound is real time
    dep = Dependency("svc", timeout=None, bulkhead=SemaphoreBulkhead(max_concurrent=1, max_wait=0.05),
                     registry=reg, clock=clock)
    gate = threading.Event()
    threads(lambda: dep.call(gate.wait, 10))
    wait_until(lambda: dep.snapshot()["concurrent"] == 1)
    try:
        assert isinstance(first_cause(lambda: dep.call(ok)), BulkheadFull)
        assert not gate.is_set()  # refused while the holder still held the slot
    finally:
        gate.set()


def test_sync_overrun_under_semaphore_is_slow_not_timeout(clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("svc", timeout=0.1, registry=reg, clock=clock)
    assert dep.execute(taking(clock, 0.3, "late")).value == "late"  # a sync call cannot be interrupted
    counts = dep.snapshot()["counts"]
    assert (counts["success"], counts["slow"], counts["timeout"]) == (1, 1, 0)
    assert dep.snapshot()["isolation"] == "semaphore"


# -- thread pool -------------------------------------------------------------------------------
def test_thread_pool_queue_is_bounded(reg: Registry, threads: Any) -> None:
    dep = Dependency("svc", timeout=None, bulkhead=ThreadPoolBulkhead(workers=1, queue=1), registry=reg)
    gate = threading.Event()
    answers: list[str] = []
    for _ in range(2):  # one runs, one waits in the queue
        threads(lambda: answers.append(dep.call(lambda: gate.wait(10) and "done")))
    wait_until(lambda: dep.snapshot()["concurrent"] == 2)
    assert isinstance(first_cause(lambda: dep.call(ok)), BulkheadFull)
    gate.set()
    wait_until(lambda: len(answers) == 2)
    assert answers == ["done", "done"]
    snap = dep.snapshot()
    assert (snap["counts"]["rejected"], snap["counts"]["success"], snap["isolation"]) == (1, 2, "thread")
    dep.close()


def test_thread_pool_runs_calls_side_by_side(reg: Registry, threads: Any) -> None:
    dep = Dependency("svc", timeout=None, bulkhead=ThreadPoolBulkhead(workers=3), registry=reg)
    assert dep.call(ok) == "ok"  # a worker now idles
    barrier = threading.Barrier(3, timeout=10)
    answers: list[int] = []
    for _ in range(3):  # three workers: every call runs at once, so the barrier lets them all through
        threads(lambda: answers.append(dep.call(barrier.wait)))
    wait_until(lambda: len(answers) == 3)
    assert sorted(answers) == [0, 1, 2]
    dep.close()


def test_thread_pool_never_queues_behind_a_busy_worker_while_it_has_room(reg: Registry) -> None:
    # Two calls arriving together on a two-worker pool with one idle worker must both run at once.
    for _ in range(20):
        dep = Dependency("svc", timeout=5.0, bulkhead=ThreadPoolBulkhead(workers=2), registry=reg)
        assert dep.call(ok) == "ok"
        together = threading.Barrier(2, timeout=2)
        start = threading.Barrier(2, timeout=10)
        answers: list[object] = []

        def go(dep: Dependency = dep, together: threading.Barrier = together,
               start: threading.Barrier = start, answers: list[object] = answers) -> None:
            start.wait()
            try:
                answers.append(dep.call(together.wait))
            except DependencyFailed as exc:
                answers.append(exc)

        pair = [threading.Thread(target=go) for _ in range(2)]
        for thread in pair:
            thread.start()
        for thread in pair:
            thread.join(10)
        dep.close()
        assert sorted(answers) == [0, 1]  # type: ignore[type-var]


def test_thread_pool_abandons_at_the_deadline_and_keeps_the_slot(reg: Registry) -> None:
    dep = Dependency("svc", timeout=0.2, bulkhead=ThreadPoolBulkhead(workers=1), registry=reg,
                     fallbacks=[Fallback.value("stale", name="stale")])
    # a started worker picks the call up at once (a call it could not start by the deadline
    # would never start at all)
    assert dep.execute(ok).source == "primary"
    gate = threading.Event()
    finished = threading.Event()

    def stuck() -> str:
        gate.wait(10)
        finished.set()
        return "fresh"

    try:
        result = dep.execute(stuck)
        assert (result.value, result.outcome) == ("stale", Outcome.TIMEOUT)
        assert not finished.is_set()  # the caller moved on; the worker is still in the call
        assert dep.snapshot()["concurrent"] == 1
        refused = dep.execute(ok)  # the only worker is still busy: its slot is held
        assert refused.outcome is Outcome.REJECTED
    finally:
        gate.set()
    wait_until(lambda: dep.snapshot()["concurrent"] == 0)
    assert finished.is_set()
    assert dep.execute(ok).source == "primary"
    counts = dep.snapshot()["counts"]
    # the abandoned call finishing later is not a success
    assert (counts["timeout"], counts["rejected"], counts["success"]) == (1, 1, 2)
    dep.close()


def test_thread_pool_deadline_error_is_typed(reg: Registry) -> None:
    dep = Dependency("svc", timeout=0.02, bulkhead=ThreadPoolBulkhead(workers=1), registry=reg)
    gate = threading.Event()
    try:
        cause = first_cause(lambda: dep.call(gate.wait, 10))
    finally:
        gate.set()
    assert isinstance(cause, DeadlineExceeded) and isinstance(cause, TimeoutError)
    dep.close()


def test_thread_pool_passes_errors_back(reg: Registry) -> None:
    dep = Dependency("svc", timeout=5.0, bulkhead=ThreadPoolBulkhead(workers=2), registry=reg)

    def broken() -> None:
        raise ConnectionResetError("peer reset")

    assert isinstance(first_cause(lambda: dep.call(broken)), ConnectionResetError)
    assert dep.snapshot()["counts"]["failure"] == 1
    wait_until(lambda: dep.snapshot()["concurrent"] == 0)
    dep.close()


def test_a_queued_call_past_its_deadline_never_starts(reg: Registry) -> None:
    dep = Dependency("svc", timeout=0.2, bulkhead=ThreadPoolBulkhead(workers=1, queue=1), registry=reg,
                     fallbacks=[Fallback.value("stale", name="stale")])
    assert dep.execute(ok).source == "primary"  # the worker is started and idle
    gate = threading.Event()
    ran: list[str] = []
    try:
        assert dep.execute(gate.wait, 10).outcome is Outcome.TIMEOUT  # abandoned; the worker stays busy
        queued = dep.execute(ran.append, "late")  # waits in the queue behind it, past its deadline
        assert (queued.value, queued.outcome) == ("stale", Outcome.TIMEOUT)
    finally:
        gate.set()
    wait_until(lambda: dep.snapshot()["concurrent"] == 0)  # the worker has dropped the queued call
    assert ran == []
    assert dep.execute(ran.append, "next").source == "primary"
    assert ran == ["next"]
    counts = dep.snapshot()["counts"]
    assert (counts["timeout"], counts["success"]) == (2, 2)
    dep.close()


class Interrupted(BaseException):
    """Raised in the caller's thread by a signal handler, as KeyboardInterrupt would be."""


def test_an_interrupted_pool_trial_gives_its_slot_back(clock: ManualClock, reg: Registry) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    dep = Dependency("svc", timeout=10.0, bulkhead=ThreadPoolBulkhead(workers=1), registry=reg, clock=clock,
                     breaker=BreakerPolicy(min_calls=1, open_for=1.0, check_interval=0.0))
    assert isinstance(first_cause(lambda: dep.call(boom)), Unavailable)  # opens; a worker now idles
    assert dep.breaker.state == "open"
    clock.advance(1.0)
    main = threading.main_thread().ident
    assert main is not None
    gate = threading.Event()

    def trial() -> str:
        signal.pthread_kill(main, signal.SIGUSR1)  # interrupts the caller waiting for this job
        gate.wait(10)
        return "late"

    def interrupt(_signum: int, _frame: object) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGUSR1, interrupt)
    try:
        with pytest.raises(Interrupted):
            dep.call(trial)
    finally:
        signal.signal(signal.SIGUSR1, previous)
        gate.set()
    wait_until(lambda: dep.snapshot()["concurrent"] == 0)
    assert dep.breaker.state == "half_open"
    assert dep.call(ok) == "ok"  # the trial slot came back: the next call is the trial
    assert dep.breaker.state == "closed"
    dep.close()


# -- asyncio -----------------------------------------------------------------------------------
def test_async_semaphore_fails_fast(clock: ManualClock, reg: Registry, run_virtual: Runner) -> None:
    dep = Dependency("svc", timeout=None, bulkhead=SemaphoreBulkhead(max_concurrent=2), registry=reg,
                     clock=clock, fallbacks=[Fallback.value("full", name="full")])

    async def main() -> list[Any]:
        calls = [dep.aexecute(asyncio.sleep, 1.0, "slow") for _ in range(3)]
        return await asyncio.gather(*calls)

    results = run_virtual(main())
    assert sorted(r.value for r in results) == ["full", "slow", "slow"]
    assert dep.snapshot()["counts"]["rejected"] == 1


def test_async_semaphore_bounded_wait(clock: ManualClock, reg: Registry, run_virtual: Runner) -> None:
    dep = Dependency("svc", timeout=None, registry=reg, clock=clock,
                     bulkhead=SemaphoreBulkhead(max_concurrent=1, max_wait=0.5),
                     fallbacks=[Fallback.value("full", name="full")])

    async def main() -> tuple[Any, ...]:
        holder = asyncio.ensure_future(dep.aexecute(asyncio.sleep, 0.3, "first"))
        await asyncio.sleep(0)
        waiter = await dep.aexecute(asyncio.sleep, 0.0, "second")  # waits 0.3 s for the slot
        waited_until = clock.now_ns() / 1e9
        long_holder = asyncio.ensure_future(dep.aexecute(asyncio.sleep, 2.0, "long"))
        await asyncio.sleep(0)
        gave_up = await dep.aexecute(asyncio.sleep, 0.0, "third")  # waits 0.5 s, then gives up
        gave_up_at = clock.now_ns() / 1e9
        return (await holder).value, waiter.value, waited_until, gave_up.value, gave_up_at, \
            (await long_holder).value

    first, second, waited_until, third, gave_up_at, long = run_virtual(main())
    assert (first, second, third, long) == ("first", "second", "full", "long")
    assert waited_until == pytest.approx(0.3, abs=1e-6)
    assert gave_up_at == pytest.approx(0.8, abs=1e-6)
    assert dep.snapshot()["counts"]["rejected"] == 1


def test_async_cancelled_at_the_deadline(clock: ManualClock, reg: Registry, run_virtual: Runner) -> None:
    dep = Dependency("svc", timeout=0.2, registry=reg, clock=clock,
                     fallbacks=[Fallback.value("stale", name="stale")])
    seen: list[str] = []

    async def slow() -> str:
        try:
            await asyncio.sleep(5.0)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        return "fresh"

    result = run_virtual(dep.aexecute(slow))
    assert (result.value, result.outcome, result.source) == ("stale", Outcome.TIMEOUT, "stale")
    assert seen == ["cancelled"]
    assert clock.now_ns() == pytest.approx(0.2e9, abs=1e3)  # it did not wait the 5 s
    counts = dep.snapshot()["counts"]
    assert (counts["timeout"], counts["failure"], counts["fallback_success"]) == (1, 0, 1)
    assert dep.snapshot()["concurrent"] == 0


def test_async_deadlines_of_overlapping_calls(clock: ManualClock, reg: Registry, run_virtual: Runner) -> None:
    dep = Dependency("svc", timeout=1.0, bulkhead=None, registry=reg, clock=clock,
                     fallbacks=[Fallback.value("late", name="late")])

    async def main() -> list[str]:
        async def one(start: float, length: float) -> str:
            await asyncio.sleep(start)
            return (await dep.aexecute(asyncio.sleep, length, "ok")).value

        plan = [(0.0, 0.5), (0.1, 1.5), (0.2, 0.9), (0.3, 3.0), (0.9, 0.95), (1.0, 0.2)]
        return await asyncio.gather(*(one(s, n) for s, n in plan))

    assert run_virtual(main()) == ["ok", "late", "ok", "late", "ok", "ok"]
    counts = dep.snapshot()["counts"]
    assert (counts["success"], counts["timeout"]) == (4, 2)


def test_a_call_that_waited_for_a_permit_keeps_its_deadline(clock: ManualClock, reg: Registry,
                                                             run_virtual: Runner) -> None:
    # X waits for a permit; a call that started later takes the first freed one (and so joins the
    # deadline queue first, with a later deadline); X must still be cancelled at its own deadline
    dep = Dependency("svc", timeout=1.0, registry=reg, clock=clock,
                     bulkhead=SemaphoreBulkhead(max_concurrent=2, max_wait=1.0),
                     fallbacks=[Fallback.value("late", name="late")])
    cancelled_at: dict[str, float] = {}

    async def sleeper(name: str, seconds: float) -> str:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            cancelled_at[name] = clock.now_ns() / 1e9
            raise
        return name

    async def short_then_later() -> list[str]:
        first = await dep.aexecute(sleeper, "short", 0.3)  # frees its permit at 0.3, waking X...
        later = await dep.aexecute(sleeper, "later", 5.0)  # ...but this call, started at 0.3, takes it
        return [first.value, later.value]

    async def main() -> list[Any]:
        long = asyncio.ensure_future(dep.aexecute(sleeper, "long", 0.5))
        short = asyncio.ensure_future(short_then_later())
        await asyncio.sleep(0)
        x = await dep.aexecute(sleeper, "x", 5.0)  # started at 0, admitted at 0.5
        return [x.value, await long, *(await short)]

    x, long, short, later = run_virtual(main())
    assert (x, long.value, short, later) == ("late", "long", "short", "late")
    assert cancelled_at == {"x": pytest.approx(1.0, abs=1e-6), "later": pytest.approx(1.3, abs=1e-6)}
    assert dep.snapshot()["counts"]["timeout"] == 2


def test_waiting_for_a_permit_stops_at_the_deadline(clock: ManualClock, reg: Registry,
                                                    run_virtual: Runner) -> None:
    # the wait for a permit is part of the call: it ends at the call's deadline, not at max_wait
    dep = Dependency("svc", timeout=0.5, registry=reg, clock=clock,
                     bulkhead=SemaphoreBulkhead(max_concurrent=1, max_wait=2.0),
                     fallbacks=[Fallback.value("full", name="full")])

    async def stubborn() -> str:
        try:
            await asyncio.sleep(5.0)
        except asyncio.CancelledError:
            await asyncio.sleep(1.0)  # a slow clean-up holds the permit until 1.5
            raise
        return "never"

    async def main() -> tuple[Any, Any, float]:
        holder = asyncio.ensure_future(dep.aexecute(stubborn))
        await asyncio.sleep(0.1)
        waiter = await dep.aexecute(asyncio.sleep, 0.0, "waited")  # its deadline: 0.6
        answered_at = clock.now_ns() / 1e9
        return await holder, waiter, answered_at

    holder, waiter, answered_at = run_virtual(main())
    assert (holder.value, holder.outcome) == ("full", Outcome.TIMEOUT)
    assert (waiter.value, waiter.outcome) == ("full", Outcome.REJECTED)
    assert answered_at == pytest.approx(0.6, abs=1e-6)


def test_outside_cancellation_is_not_a_timeout(clock: ManualClock, reg: Registry,
                                                run_virtual: Runner) -> None:
    dep = Dependency("svc", timeout=1.0, registry=reg, clock=clock,
                     fallbacks=[Fallback.value("stale", name="stale")])

    async def main() -> str:
        task = asyncio.ensure_future(dep.acall(asyncio.sleep, 5.0, "fresh"))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await dep.acall(asyncio.sleep, 0.1, "after")  # deadlines still work after it

    assert run_virtual(main()) == "after"
    snap = dep.snapshot()
    counts = snap["counts"]
    assert (counts["timeout"], counts["failure"], counts["fallback_success"]) == (0, 0, 0)
    assert snap["counts"]["success"] == 1
    assert snap["concurrent"] == 0


def test_real_loop_deadline(reg: Registry) -> None:
    dep = Dependency("svc", timeout=0.05, registry=reg)

    async def main() -> BaseException:
        with pytest.raises(DependencyFailed) as info:
            await dep.acall(asyncio.sleep, 10, "never")
        return info.value.causes[0][1]

    assert isinstance(asyncio.run(main()), DeadlineExceeded)


def test_async_waiter_cancelled_from_outside_leaks_nothing(clock: ManualClock, reg: Registry,
                                                           run_virtual: Runner) -> None:
    dep = Dependency("svc", timeout=None, registry=reg, clock=clock,
                     bulkhead=SemaphoreBulkhead(max_concurrent=1, max_wait=5.0))

    async def main() -> tuple[str, str]:
        holder = asyncio.ensure_future(dep.acall(asyncio.sleep, 1.0, "held"))
        await asyncio.sleep(0)
        waiter = asyncio.ensure_future(dep.acall(asyncio.sleep, 0.0, "never"))
        await asyncio.sleep(0.5)
        waiter.cancel()  # gave up while queued for the slot
        with pytest.raises(asyncio.CancelledError):
            await waiter
        after = await dep.acall(asyncio.sleep, 0.1, "after")  # waits for the holder, then runs
        return await holder, after

    assert run_virtual(main()) == ("held", "after")
    snap = dep.snapshot()
    assert (snap["concurrent"], snap["counts"]["success"], snap["counts"]["rejected"]) == (0, 2, 0)
    assert dep._state.slots is not None
    assert dep._state.slots.waiting == 0 and dep._state.slots.queued == 0
