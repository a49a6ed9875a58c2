"""Hedged calls: a second attempt once the first is later than the live percentile; first answer wins."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from stoic.guard import (
    AdaptiveBulkhead,
    BreakerPolicy,
    ConfigError,
    Dependency,
    Fallback,
    Hedge,
    ManualClock,
    Outcome,
    Registry,
    Retry,
    RetryBudget,
    SemaphoreBulkhead,
    ThreadPoolBulkhead,
    deadline,
)

from .http_servers import Receive, Scope, Send, Server

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]


class Backend:
    """Answers in 10 ms, except the attempts told to stall; records which attempts were cancelled."""

    def __init__(self) -> None:
        self.stall_next = 0
        self.attempts = 0
        self.cancelled = 0

    async def call(self) -> str:
        self.attempts += 1
        stall = self.stall_next > 0
        self.stall_next -= stall
        try:
            await asyncio.sleep(3600 if stall else 0.01)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return f"answer {self.attempts}"


def hedged(clock: ManualClock, reg: Registry, **options: Any) -> Dependency:
    options.setdefault("fallbacks", [Fallback.value("fallback", name="fallback")])
    return Dependency("search", timeout=1.0, clock=clock, registry=reg, hedge=Hedge(), **options)


async def warm_up(dep: Dependency, backend: Backend, calls: int = 30) -> None:
    for _ in range(calls):
        await dep.acall(backend.call)


def test_a_hedge_wins_against_a_stalled_first_attempt(clock: ManualClock, reg: Registry,
                                                      run_virtual: Run[Any]) -> None:
    backend = Backend()
    dep = hedged(clock, reg)
    run_virtual(warm_up(dep, backend))
    assert dep.snapshot()["hedges"] == {"started": 0, "won": 0, "cancelled": 0}
    backend.stall_next = 1
    t0 = clock.now_ns()
    result = run_virtual(dep.aexecute(backend.call))
    assert (result.source, result.value) == ("primary", "answer 32")  # the 32nd attempt: the hedge
    assert backend.cancelled == 1  # the stalled first attempt was cancelled
    assert dep.snapshot()["hedges"] == {"started": 1, "won": 1, "cancelled": 1}
    # the hedge started after the window's p90 (10 ms, the upper edge of its histogram bin), then took 10 ms
    assert 0.02 <= (clock.now_ns() - t0) / 1e9 < 0.022
    snap = dep.snapshot()
    assert snap["counts"]["retry"] == 1  # spent from the retry budget
    assert snap["concurrent"] == 0  # both permits given back


def test_no_hedge_before_enough_calls_to_know_the_tail(clock: ManualClock, reg: Registry,
                                                       run_virtual: Run[Any]) -> None:
    backend = Backend()
    dep = hedged(clock, reg)
    run_virtual(warm_up(dep, backend, calls=5))
    backend.stall_next = 1
    result = run_virtual(dep.aexecute(backend.call))
    assert (result.source, result.outcome) == ("fallback", Outcome.TIMEOUT)
    assert dep.snapshot()["hedges"]["started"] == 0


def test_a_timeout_ends_the_race_at_the_first_attempts_deadline(clock: ManualClock, reg: Registry,
                                                                run_virtual: Run[Any]) -> None:
    backend = Backend()
    dep = hedged(clock, reg)
    run_virtual(warm_up(dep, backend))
    backend.stall_next = 2
    t0 = clock.now_ns()
    result = run_virtual(dep.aexecute(backend.call))
    assert (result.source, result.outcome) == ("fallback", Outcome.TIMEOUT)
    assert clock.now_ns() - t0 == 1_000_000_000  # not a moment past the first attempt's deadline
    assert dep.snapshot()["hedges"] == {"started": 1, "won": 0, "cancelled": 1}


def test_no_hedge_without_a_free_permit(clock: ManualClock, reg: Registry, run_virtual: Run[Any]) -> None:
    backend = Backend()
    dep = hedged(clock, reg, bulkhead=SemaphoreBulkhead(max_concurrent=1))
    run_virtual(warm_up(dep, backend))
    backend.stall_next = 1
    assert run_virtual(dep.acall(backend.call)) == "fallback"
    assert dep.snapshot()["hedges"]["started"] == 0


def test_no_hedge_once_the_budget_is_spent(clock: ManualClock, reg: Registry, run_virtual: Run[Any]) -> None:
    backend = Backend()
    retry = Retry(attempts=1, budget=RetryBudget(ratio=0.0, min_per_second=0.1))  # 1 per 10 s window
    dep = hedged(clock, reg, retry=retry)
    run_virtual(warm_up(dep, backend))
    backend.stall_next = 1
    assert run_virtual(dep.acall(backend.call)) == "answer 32"
    backend.stall_next = 1
    assert run_virtual(dep.acall(backend.call)) == "fallback"
    assert dep.snapshot()["hedges"]["started"] == 1


def test_no_hedge_while_the_breaker_is_half_open(clock: ManualClock, reg: Registry,
                                                 run_virtual: Run[Any]) -> None:
    backend = Backend()
    dep = hedged(clock, reg, breaker=BreakerPolicy(consecutive_failures=1, open_for=1.0))
    run_virtual(warm_up(dep, backend))

    async def fails() -> str:
        raise ConnectionError("reset")

    run_virtual(dep.acall(fails))
    assert dep.breaker.state == "open"
    clock.advance(1.0)  # the next call is the half-open trial: it alone may judge the circuit
    backend.stall_next = 1
    assert run_virtual(dep.acall(backend.call)) == "fallback"
    assert dep.snapshot()["hedges"]["started"] == 0


def test_no_hedge_when_the_request_deadline_comes_first(clock: ManualClock, reg: Registry,
                                                        run_virtual: Run[Any]) -> None:
    backend = Backend()
    dep = hedged(clock, reg)
    run_virtual(warm_up(dep, backend))
    backend.stall_next = 1

    async def within() -> Any:
        async with deadline(0.005, clock=clock):
            return await dep.aexecute(backend.call)

    result = run_virtual(within())
    assert (result.source, result.outcome) == ("fallback", Outcome.TIMEOUT)
    assert dep.snapshot()["hedges"]["started"] == 0


def test_sync_calls_on_the_callers_thread_are_refused_with_a_clear_error(reg: Registry) -> None:
    for bulkhead, kind in ((SemaphoreBulkhead(), "SemaphoreBulkhead"), (None, "no bulkhead"),
                           (AdaptiveBulkhead(), "AdaptiveBulkhead")):
        dep = Dependency("sync", hedge=Hedge(), bulkhead=bulkhead, registry=reg)
        with pytest.raises(ConfigError) as info:
            dep.call(lambda: 1)
        assert str(info.value) == (
            f"sync: Dependency.hedge races two attempts, which needs coroutines (acall/aexecute) or a "
            f"ThreadPoolBulkhead; a sync call under a {kind} runs on the caller's thread and cannot race "
            f"itself, so call() and execute() are refused while a hedge is set")
        with pytest.raises(ConfigError):
            dep.execute(lambda: 1)
        with pytest.raises(ConfigError):
            dep(lambda: 1)()
        dep.close()


class SyncBackend:
    """Answers in 10 ms on a pool worker, except the attempts told to stall (until released)."""

    def __init__(self) -> None:
        self.stall_next = 0
        self.attempts = 0
        self.release = threading.Event()
        self.lock = threading.Lock()

    def call(self) -> str:
        with self.lock:
            self.attempts += 1
            attempt = self.attempts
            stall = self.stall_next > 0
            self.stall_next -= stall
        if stall:
            self.release.wait(30)
            return f"late {attempt}"
        time.sleep(0.01)
        return f"answer {attempt}"


def test_on_a_thread_pool_the_hedge_wins_and_the_stalled_worker_is_abandoned(reg: Registry) -> None:
    backend = SyncBackend()
    dep = Dependency("legacy", timeout=5.0, bulkhead=ThreadPoolBulkhead(workers=4), registry=reg,
                     hedge=Hedge(floor=0.05))
    try:
        for _ in range(30):
            assert dep.call(backend.call).startswith("answer")
        before = dict(dep.snapshot()["hedges"])
        backend.stall_next = 1
        result = dep.execute(backend.call)
        after = dep.snapshot()["hedges"]
        assert result.source == "primary" and result.value.startswith("answer")
        assert {k: after[k] - before[k] for k in after} == {"started": 1, "won": 1, "cancelled": 1}
        assert dep.snapshot()["concurrent"] == 1  # the abandoned worker keeps its permit until it is done
        backend.release.set()
        for _ in range(500):
            if dep.snapshot()["concurrent"] == 0:
                break
            time.sleep(0.01)
        assert dep.snapshot()["concurrent"] == 0
    finally:
        backend.release.set()
        dep.close()


def test_on_a_thread_pool_no_answer_times_out_at_the_primarys_deadline(reg: Registry) -> None:
    backend = SyncBackend()
    dep = Dependency("legacy", timeout=0.5, bulkhead=ThreadPoolBulkhead(workers=4), registry=reg,
                     hedge=Hedge(floor=0.05), fallbacks=[Fallback.value("stale", name="stale")])
    try:
        for _ in range(30):
            dep.call(backend.call)
        before = dict(dep.snapshot()["hedges"])
        timeouts = dep.snapshot()["counts"]["timeout"]
        backend.stall_next = 2
        result = dep.execute(backend.call)
        after = dep.snapshot()["hedges"]
        assert (result.source, result.outcome) == ("stale", Outcome.TIMEOUT)
        assert "no answer within 0.5s" in str(result.error)
        assert {k: after[k] - before[k] for k in after} == {"started": 1, "won": 0, "cancelled": 1}
        assert dep.snapshot()["counts"]["timeout"] == timeouts + 1  # the primary's, once
    finally:
        backend.release.set()
        dep.close()


def test_configure_adds_and_removes_the_hedge(clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("later", timeout=1.0, clock=clock, registry=reg)
    assert dep.call(lambda: 1) == 1
    dep.configure(hedge=Hedge(percentile=0.5))
    assert dep.hedge == Hedge(percentile=0.5)
    with pytest.raises(ConfigError):
        dep.call(lambda: 1)
    dep.configure(hedge=None)
    assert dep.call(lambda: 1) == 1 and dep.snapshot()["hedges"] is None
    with pytest.raises(ConfigError, match=r"Dependency\.hedge must be a Hedge or None, got 0\.9"):
        dep.configure(hedge=0.9)  # type: ignore[arg-type]


@pytest.mark.parametrize(("fields", "message"), [
    ({"percentile": 0}, "Hedge.percentile must be in (0.0, 1.0], got 0"),
    ({"percentile": 1.5}, "Hedge.percentile must be in (0.0, 1.0], got 1.5"),
    ({"floor": -1}, "Hedge.floor must be in [0.0, 3600.0], got -1"),
    ({"min_samples": 0}, "Hedge.min_samples must be in [1, 1000000], got 0"),
])
def test_bad_settings_name_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Hedge(**fields)
    assert str(info.value) == message


# -- on a real HTTP server -------------------------------------------------------------------------

class Stalling:
    """`GET /quick` answers at once; the first `GET /stall` never answers (until its client hangs
    up, which it records), the next ones answer "hedge"."""

    def __init__(self) -> None:
        self.stalls = 0
        self.hung_up = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b"quick"
        if scope["path"] == "/stall":
            self.stalls += 1
            if self.stalls == 1:
                for _ in range(3):
                    if (await asyncio.wait_for(receive(), 30))["type"] == "http.disconnect":
                        self.hung_up += 1
                        return
            body = b"hedge"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
def stalling() -> Iterator[tuple[Stalling, str]]:
    app = Stalling()
    server = Server(app).start()
    try:
        yield app, server.url
    finally:
        server.stop()


def test_on_a_real_server_the_hedge_answers_and_the_stalled_request_is_cancelled(
        stalling: tuple[Stalling, str]) -> None:
    app, url = stalling

    async def scenario() -> tuple[str, dict[str, int]]:
        dep = Dependency("ratings", timeout=10.0, registry=Registry(), hedge=Hedge(floor=0.05))
        async with httpx.AsyncClient(base_url=url) as client:

            async def get(path: str) -> str:
                return (await client.get(path)).text

            for _ in range(30):
                assert await dep.acall(get, "/quick") == "quick"
            before = dict(dep.snapshot()["hedges"])
            answer = await dep.acall(get, "/stall")
            after = dep.snapshot()["hedges"]
            for _ in range(200):  # the cancelled request's connection closes: the server hears it
                if app.hung_up:
                    break
                await asyncio.sleep(0.01)
            return answer, {k: after[k] - before[k] for k in after}

    answer, hedges = asyncio.run(scenario())
    assert answer == "hedge"  # the stalled request lost to the hedge
    assert hedges == {"started": 1, "won": 1, "cancelled": 1}
    assert app.stalls == 2 and app.hung_up == 1  # the loser's request was cancelled on the wire


def test_hedges_fire_for_the_share_of_calls_over_their_percentile_and_no_more(
        clock: ManualClock, reg: Registry, run_virtual: Run[None]) -> None:
    # Nine calls in ten answer in 6.5, 9, ... 26.5 ms; the tenth stalls, and its hedge answers in 6 ms.
    # Hedging at p75 should race two calls in ten (the 26.5 ms one and the stalled one). A window that
    # records the hedge's own 6 ms in place of the stalled call it answered for loses the slow
    # calls, its p75 falls, and a third call in ten is hedged (and so on, as it feeds itself).
    dep = Dependency("tail", timeout=1.0, clock=clock, registry=reg, hedge=Hedge(percentile=0.75),
                     retry=Retry(attempts=1, budget=RetryBudget(ratio=1.0)))  # the budget never binds
    attempts: dict[int, int] = {}

    async def fetch(i: int) -> int:
        attempts[i] = attempts.get(i, 0) + 1
        if attempts[i] > 1:
            await asyncio.sleep(0.006)  # a hedge
        elif i % 10 == 0:
            await asyncio.sleep(0.5)  # a stall
        else:
            await asyncio.sleep((4 + 2.5 * (i % 10)) / 1000)  # (the 8th and 9th in histogram bins apart)
        return i

    async def calls(first: int, last: int) -> None:
        for i in range(first, last):
            assert await dep.acall(fetch, i) == i

    run_virtual(calls(0, 100))  # the window fills, and the delay settles
    before = (dep.snapshot()["hedges"] or {})["started"]
    run_virtual(calls(100, 300))
    started = (dep.snapshot()["hedges"] or {})["started"] - before
    assert started == 40  # two in ten: the stalled calls and the 26.5 ms ones
    assert dep.snapshot()["latency_ms"]["p99"] >= 20  # the hedged calls count with the caller's wait
