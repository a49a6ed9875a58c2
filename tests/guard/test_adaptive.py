"""The adaptive concurrency limit, on virtual time: a dependency whose latency grows with its
concurrency past a fixed capacity (processor sharing), driven by many callers at once."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from stoic.guard import (
    AdaptiveBulkhead,
    ConfigError,
    Dependency,
    DependencyFailed,
    Fallback,
    ManualClock,
    Outcome,
    Registry,
)

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]


class QueueingServer:
    """`capacity` calls at a time take `base` seconds; more share the same capacity (each takes
    base x in flight / capacity). Records the most calls it ever had at once."""

    def __init__(self, capacity: int, base: float = 0.01) -> None:
        self.capacity = capacity
        self.base = base
        self.active = 0
        self.peak = 0
        self.calls = 0

    async def handle(self) -> str:
        self.active += 1
        self.calls += 1
        self.peak = max(self.peak, self.active)
        try:
            await asyncio.sleep(self.base * max(1.0, self.active / self.capacity))
        finally:
            self.active -= 1
        return "ok"


async def drive(dep: Dependency, server: QueueingServer, callers: int, seconds: float) -> dict[str, int]:
    """`callers` coroutines calling back to back for `seconds` (virtual) and at most 100,000 calls
    each; a fallback answer costs the caller 1 ms."""
    answered = {"primary": 0, "fallback": 0}
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds

    async def caller() -> None:
        for _ in range(100_000):
            if loop.time() >= until:
                return
            result = await dep.aexecute(server.handle)
            if result.level:
                answered["fallback"] += 1
                await asyncio.sleep(0.001)
            else:
                answered["primary"] += 1

    await asyncio.gather(*(caller() for _ in range(callers)))
    return answered


def adaptive(clock: ManualClock, reg: Registry, **options: Any) -> Dependency:
    return Dependency("search", timeout=2.0, bulkhead=AdaptiveBulkhead(**options), clock=clock,
                      registry=reg, fallbacks=[Fallback.value("cached", name="cached")])


def test_gradient_settles_near_the_capacity_and_answers_the_rest_from_the_fallback(
        clock: ManualClock, reg: Registry, run_virtual: Run[Any]) -> None:
    server = QueueingServer(capacity=8)
    dep = adaptive(clock, reg, initial=40, max_limit=100)
    run_virtual(drive(dep, server, callers=64, seconds=3))
    limit = dep.snapshot()["limit"]["current"]
    # started at 40 with 8 of capacity; the probes found the unloaded latency and the limit came down
    assert 8 <= limit <= 16, limit
    server.peak = 0
    answered = run_virtual(drive(dep, server, callers=64, seconds=1))
    assert server.peak <= 16  # the dependency never again saw more than twice its capacity
    assert answered["fallback"] > 0 and answered["primary"] > 0
    snap = dep.snapshot()
    assert snap["max_concurrent"] == snap["limit"]["current"]
    assert snap["counts"]["rejected"] > 0


def test_gradient_recovers_when_the_dependency_gets_room_again(
        clock: ManualClock, reg: Registry, run_virtual: Run[Any]) -> None:
    server = QueueingServer(capacity=8)
    dep = adaptive(clock, reg, initial=10, max_limit=100)
    run_virtual(drive(dep, server, callers=80, seconds=2))
    squeezed = dep.snapshot()["limit"]["current"]
    assert squeezed <= 16
    server.capacity = 64  # scaled out
    run_virtual(drive(dep, server, callers=80, seconds=3))
    assert dep.snapshot()["limit"]["current"] >= 3 * squeezed


def test_gradient_does_not_grow_while_callers_leave_it_unused(
        clock: ManualClock, reg: Registry, run_virtual: Run[Any]) -> None:
    server = QueueingServer(capacity=100)
    dep = adaptive(clock, reg, initial=20, probe_every=0)
    run_virtual(drive(dep, server, callers=4, seconds=1))
    assert dep.snapshot()["limit"]["current"] == 20


def test_aimd_backs_off_on_slow_calls_and_grows_while_used(
        clock: ManualClock, reg: Registry, run_virtual: Run[Any]) -> None:
    server = QueueingServer(capacity=8)
    dep = adaptive(clock, reg, algorithm="aimd", initial=30, slow=0.02, samples=5)
    run_virtual(drive(dep, server, callers=64, seconds=2))
    # from 16 in flight a call takes 20 ms or more (slow): the limit saws just under that
    assert dep.snapshot()["limit"]["current"] < 20
    server.peak = 0
    run_virtual(drive(dep, server, callers=64, seconds=1))
    assert 10 <= server.peak <= 24  # 64 callers, yet the dependency saw at most a few over 16
    assert dep.snapshot()["limit"]["algorithm"] == "aimd"


def test_aimd_backs_off_by_the_factor_on_a_timeout(clock: ManualClock, reg: Registry,
                                                   run_virtual: Run[Any]) -> None:
    dep = Dependency("slow", timeout=0.05, clock=clock, registry=reg,
                     bulkhead=AdaptiveBulkhead(algorithm="aimd", initial=10, samples=1, backoff=0.5),
                     fallbacks=[Fallback.value(None)])

    async def stalls() -> None:
        await asyncio.sleep(1.0)

    result = run_virtual(dep.aexecute(stalls))
    assert result.outcome is Outcome.TIMEOUT
    assert dep.snapshot()["limit"]["current"] == 5
    run_virtual(dep.aexecute(stalls))
    assert dep.snapshot()["limit"]["current"] == 2  # int(10 * 0.5 * 0.5)


def test_the_limit_stays_within_its_bounds(clock: ManualClock, reg: Registry, run_virtual: Run[Any]) -> None:
    dep = Dependency("slow", timeout=0.05, clock=clock, registry=reg,
                     bulkhead=AdaptiveBulkhead(algorithm="aimd", initial=3, min_limit=2, samples=1),
                     fallbacks=[Fallback.value(None)])

    async def stalls() -> None:
        await asyncio.sleep(1.0)

    for _ in range(10):
        run_virtual(dep.aexecute(stalls))
    assert dep.snapshot()["limit"] == {"algorithm": "aimd", "current": 2, "min": 2, "max": 200}


def test_over_the_limit_without_a_fallback_is_refused(clock: ManualClock, reg: Registry,
                                                      run_virtual: Run[Any]) -> None:
    dep = Dependency("bare", timeout=1.0, clock=clock, registry=reg,
                     bulkhead=AdaptiveBulkhead(initial=1, max_limit=1))
    server = QueueingServer(capacity=1)

    async def two() -> list[Any]:
        return await asyncio.gather(dep.acall(server.handle), dep.acall(server.handle),
                                    return_exceptions=True)

    first, second = run_virtual(two())
    assert first == "ok"
    assert isinstance(second, DependencyFailed)
    assert "bulkhead full (1 in use)" in str(second)


def test_sync_calls_share_the_limit(clock: ManualClock, reg: Registry) -> None:
    dep = adaptive(clock, reg, initial=2)
    inner: list[Any] = []

    def outer() -> str:
        inner.append(dep.execute(lambda: dep.execute(lambda: "third").value))
        return "first"

    assert dep.call(outer) == "first"
    assert inner[0].source == "primary"
    assert dep.snapshot()["concurrent"] == 0


def test_configure_keeps_the_live_limit_within_the_new_bounds(clock: ManualClock, reg: Registry) -> None:
    dep = adaptive(clock, reg, initial=50)
    dep.configure(bulkhead=AdaptiveBulkhead(initial=5, max_limit=30))
    assert dep.snapshot()["limit"]["current"] == 30
    assert dep.snapshot()["max_concurrent"] == 30
    with pytest.raises(ConfigError, match="can resize a AdaptiveBulkhead but not change it"):
        from stoic.guard import SemaphoreBulkhead
        dep.configure(bulkhead=SemaphoreBulkhead())


@pytest.mark.parametrize(("fields", "message"), [
    ({"algorithm": "vegas"}, "AdaptiveBulkhead.algorithm must be one of 'gradient', 'aimd', got 'vegas'"),
    ({"min_limit": 0}, "AdaptiveBulkhead.min_limit must be in [1, 1000000], got 0"),
    ({"min_limit": 5, "max_limit": 4}, "AdaptiveBulkhead.max_limit must be in [5, 1000000], got 4"),
    ({"initial": 500}, "AdaptiveBulkhead.initial must be in [1, 200], got 500"),
    ({"samples": 0}, "AdaptiveBulkhead.samples must be in [1, 100000], got 0"),
    ({"tolerance": 0.5}, "AdaptiveBulkhead.tolerance must be in [1.0, 100.0], got 0.5"),
    ({"smoothing": 0}, "AdaptiveBulkhead.smoothing must be in (0.0, 1.0], got 0"),
    ({"backoff": 1.0}, "AdaptiveBulkhead.backoff must be in (0.0, 1.0), got 1.0"),
    ({"slow": -1}, "AdaptiveBulkhead.slow must be in (0.0, 3600.0], got -1"),
    ({"probe_every": -1}, "AdaptiveBulkhead.probe_every must be in [0, 1000000], got -1"),
    ({"window": -0.001}, "AdaptiveBulkhead.window must be in [0.0, 1.0], got -0.001"),
    ({"window": 2}, "AdaptiveBulkhead.window must be in [0.0, 1.0], got 2"),
    ({"window": "5ms"}, "AdaptiveBulkhead.window must be a number, got '5ms'"),
    ({"initial": "10"}, "AdaptiveBulkhead.initial must be an integer, got '10'"),
])
def test_bad_settings_name_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        AdaptiveBulkhead(**fields)
    assert str(info.value) == message


# -- on a real server on loopback ------------------------------------------------------------------

@contextlib.contextmanager
def line_server(workers: int, capacity: int, millis: int = 10) -> Iterator[int]:
    """tests/guard/line_server.py in its own process (so its event loop is not ours); yields its port."""
    script = Path(__file__).with_name("line_server.py")
    process = subprocess.Popen([sys.executable, str(script), str(workers), str(capacity), str(millis)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdin is not None
        yield int(process.stdout.readline())
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=10)


async def server_stats(port: int) -> dict[str, int]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"stats\n")
    line = (await reader.readline()).decode()
    writer.close()
    return {k: int(v) for k, v in (part.split("=") for part in line.split())}


async def tcp_load(dep: Dependency, port: int, callers: int, calls_each: int) -> int:
    """`callers` clients, each on its own connection, making `calls_each` calls; returns how many
    the fallback answered."""
    fallbacks = 0

    async def caller() -> None:
        nonlocal fallbacks
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def ask() -> str:
            writer.write(b"get\n")
            line = (await reader.readline()).decode().strip()
            if line != "ok":
                raise ConnectionError(f"server answered {line!r}")
            return line

        try:
            for _ in range(calls_each):
                if (await dep.aexecute(ask)).level:
                    fallbacks += 1
                    await asyncio.sleep(0.002)
        finally:
            writer.close()

    await asyncio.gather(*(caller() for _ in range(callers)))
    return fallbacks


def test_on_a_real_server_the_limit_stays_below_its_capacity_and_recovers() -> None:
    """8 workers of 10 ms each, overloaded past 32 requests inside, under 64 callers. Rounds of
    load are bounded in number: the limit must come under the capacity, hold the server out of
    overload, and follow it up once it scales out."""

    async def scenario() -> None:
        # no breaker: the first overload answers "busy" and would open it; the limit is under test
        dep = Dependency("lines", timeout=2.0, registry=Registry(), fallbacks=[Fallback.value("cached")],
                         bulkhead=AdaptiveBulkhead(initial=48, max_limit=200), breaker=None)
        with line_server(workers=8, capacity=32) as port:
            fallbacks = 0
            for _ in range(10):
                fallbacks += await tcp_load(dep, port, callers=64, calls_each=20)
                squeezed = dep.snapshot()["limit"]["current"]
                if squeezed < 32:
                    break
            assert squeezed < 32, squeezed  # converged below what the server can hold
            assert fallbacks > 0  # the calls over the limit were answered by the fallback
            await server_stats(port)
            await tcp_load(dep, port, callers=64, calls_each=20)
            stats = await server_stats(port)
            assert stats["busy"] == 0 and stats["peak"] <= 32  # converged: the server is never overloaded
        with line_server(workers=128, capacity=1000) as port:  # scaled out
            for _ in range(25):
                await tcp_load(dep, port, callers=64, calls_each=40)
                if dep.snapshot()["limit"]["current"] >= 1.5 * squeezed:
                    break
            assert dep.snapshot()["limit"]["current"] >= 1.5 * squeezed  # the limit followed it up

    asyncio.run(scenario())
