"""The adaptive limit reacts to failures, not only to latency: a dependency that sheds load with
fast 503s (on a real HTTP server on loopback) brings the limit under its capacity, and the caller's
own mistakes never do."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from stoic.guard import (
    AdaptiveBulkhead,
    BreakerPolicy,
    Dependency,
    Fallback,
    ManualClock,
    Registry,
)
from stoic.guard.httpx import AsyncGuardedTransport

from .http_servers import Downstream, Server

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]
CAPACITY = 16
# a breaker that never opens: the limit, not the breaker, is under test (an open breaker would
# answer every call from the fallback and hide what the limit does)
NEVER_OPENS = BreakerPolicy(error_rate=1.0, min_calls=1_000_000)


@contextlib.contextmanager
def busy_server(capacity: int, millis: int = 100) -> Iterator[str]:
    """tests/guard/busy_http_server.py in its own process (its event loop is not ours); yields its URL."""
    script = Path(__file__).with_name("busy_http_server.py")
    process = subprocess.Popen([sys.executable, str(script), str(capacity), str(millis)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield f"http://127.0.0.1:{int(process.stdout.readline())}"
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=10)


async def cached(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, text="cached", request=request)


def guarded_client(algorithm: str, url: str, tolerance: float = 1.0) -> tuple[httpx.AsyncClient, Dependency]:
    transport = AsyncGuardedTransport(
        httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=100, max_keepalive_connections=100)),
        timeout=2.0, breaker=NEVER_OPENS, registry=Registry(),
        bulkhead=AdaptiveBulkhead(algorithm=algorithm, initial=20, max_limit=200,  # type: ignore[arg-type]
                                  tolerance=tolerance),
        fallbacks=[Fallback(cached, name="cached")])
    return httpx.AsyncClient(transport=transport, base_url=url), transport.dependency(url)


async def load(client: httpx.AsyncClient, callers: int, calls_each: int) -> dict[str, int]:
    """`callers` callers making `calls_each` calls back to back; who answered them. A caller the
    fallback answered moves on to other work for 100 ms (so the test's own process is not what
    is overloaded)."""
    answered = {"primary": 0, "cached": 0}

    async def caller() -> None:
        for _ in range(calls_each):
            response = await client.get("/work")
            source = response.extensions["guard"].source
            answered[source] += 1
            if source == "cached":
                await asyncio.sleep(0.1)
            else:
                assert response.status_code == 200, response.text

    await asyncio.gather(*(caller() for _ in range(callers)))
    return answered


async def stats(client: httpx.AsyncClient) -> dict[str, int]:
    async with httpx.AsyncClient(base_url=client.base_url) as plain:  # not through the guard
        return (await plain.get("/stats")).json()  # type: ignore[no-any-return]


# The gradient also reads latency, and this test's own process, busy with its callers, adds some:
# with a tolerance of 100 x the unloaded latency only the failures can bring the limit down.
@pytest.mark.parametrize(("algorithm", "tolerance"), [("gradient", 1.0), ("gradient", 100.0), ("aimd", 1.0)])
def test_fast_503s_bring_the_limit_under_the_capacity_and_it_recovers_after_a_scale_out(
        algorithm: str, tolerance: float) -> None:
    """16 requests at a time take 100 ms; past that the service answers 503 at once, so latency
    never grows: only the failures can tell the limit it is too high. 24 callers, rounds of load
    bounded in number."""

    async def scenario() -> None:
        with busy_server(CAPACITY) as url:
            client, dep = guarded_client(algorithm, url, tolerance)
            async with client:
                await stats(client)
                first = await load(client, callers=24, calls_each=10)
                started = await stats(client)
                assert started["busy"] > 0  # the 20 it started at overloaded the service
                good = 0
                for _ in range(10):  # until two rounds in a row hold the service at its capacity
                    held = await load(client, callers=24, calls_each=10)
                    seen = await stats(client)
                    if seen["busy"] <= 0.1 * (seen["busy"] + seen["served"]) and \
                            seen["busy"] <= 0.5 * held["cached"]:
                        good += 1
                        if good == 2:
                            break
                    else:
                        good = 0
                # held at its capacity: the service sheds (503s) a small share at most, and most
                # calls over the limit are answered by the fallback without reaching it (with the
                # limit blind to failures, every fallback answer was a 503 first, a third of the calls)
                assert seen["busy"] <= 0.1 * (seen["busy"] + seen["served"]), seen
                assert seen["busy"] <= 0.5 * held["cached"], (seen, held)
                assert first["cached"] > 0 and held["primary"] > 0
                # (the limit counts calls from the client's side, where each spends longer than inside
                # the service, so the service's own count is the one to hold under its capacity)
                squeezed = dep.snapshot()["limit"]["current"]

                await client.post("/scale", params={"capacity": 1000})  # the service scaled out
                # the limit follows it up, by half again or to all 24 callers: it grows only as far
                # as the concurrency it measured plus queue room, so 24 callers may cap it below 1.5x
                wanted = min(1.5 * squeezed, 24)
                for _ in range(25):
                    await load(client, callers=24, calls_each=10)
                    if dep.snapshot()["limit"]["current"] >= wanted:
                        break
                assert dep.snapshot()["limit"]["current"] >= wanted, squeezed

    asyncio.run(scenario())


# -- what must not lower it: the caller's own mistakes --------------------------------------------

@pytest.fixture(scope="module")
def downstream() -> Iterator[tuple[Downstream, str]]:
    app = Downstream()
    server = Server(app).start()
    yield app, server.url
    server.stop()


@pytest.mark.parametrize("algorithm", ["gradient", "aimd"])
@pytest.mark.parametrize(("status", "lowers"), [(503, True), (429, True), (500, True), (404, False),
                                                (400, False), (409, False), (200, False)])
def test_through_httpx_only_5xx_and_429_lower_the_limit(
        downstream: tuple[Downstream, str], algorithm: str, status: int, lowers: bool) -> None:
    app, url = downstream
    app.answer((status, {}, b"answer"))

    async def scenario() -> int:
        transport = AsyncGuardedTransport(
            timeout=2.0, breaker=NEVER_OPENS, registry=Registry(),
            fallbacks=[Fallback(cached, name="cached")],
            # tolerance: latency is not under test here, only which answers count as failures
            bulkhead=AdaptiveBulkhead(algorithm=algorithm, initial=12, samples=1,  # type: ignore[arg-type]
                                      tolerance=100.0, probe_every=0))
        async with httpx.AsyncClient(transport=transport, base_url=url) as client:
            for _ in range(2):
                # ten calls at once: the callers use the limit's room, so a batch is not "lightly
                # loaded" and its failures are read as overload
                await asyncio.gather(*(client.get("/answer") for _ in range(10)))
            return transport.dependency(url).snapshot()["limit"]["current"]  # type: ignore[no-any-return]

    limit = asyncio.run(scenario())
    if lowers:
        assert limit < 12, (status, limit)
    else:
        assert limit >= 12, (status, limit)  # answers: the limit may grow, never shrink


class Misuse(Exception):
    """A mistake of the caller's, which the breaker is told to ignore."""


@pytest.mark.parametrize("algorithm", ["gradient", "aimd"])
def test_ignored_exceptions_and_errors_outside_failure_on_do_not_lower_it(
        algorithm: str, clock: ManualClock, reg: Registry, run_virtual: Run[Any]) -> None:
    dep = Dependency("orders", timeout=1.0, clock=clock, registry=reg,
                     breaker=BreakerPolicy(ignore=(Misuse,), failure_on=(ConnectionError,)),
                     bulkhead=AdaptiveBulkhead(algorithm=algorithm, initial=10, samples=1,  # type: ignore[arg-type]
                                               probe_every=0))

    async def raises(error: Exception) -> None:
        await asyncio.sleep(0.001)
        raise error

    async def calls(error: Exception) -> None:
        results = await asyncio.gather(*(dep.acall(raises, error) for _ in range(10)), return_exceptions=True)
        assert all(isinstance(r, Exception) for r in results)

    run_virtual(calls(Misuse("wrong order id")))
    run_virtual(calls(KeyError("not in failure_on")))
    assert dep.snapshot()["limit"]["current"] == 10
    run_virtual(calls(ConnectionError("refused")))  # the dependency's failure: overload
    assert dep.snapshot()["limit"]["current"] < 10


def test_failures_the_dependency_has_when_lightly_loaded_are_not_taken_for_overload(
        clock: ManualClock, reg: Registry, run_virtual: Run[Any]) -> None:
    """One call in five fails whatever the load: the limit learns that share in its probe batches
    (at a low limit) and does not collapse once the callers use all of it."""
    dep = Dependency("flaky", timeout=1.0, clock=clock, registry=reg, breaker=NEVER_OPENS,
                     bulkhead=AdaptiveBulkhead(initial=20, samples=10, probe_every=20),
                     fallbacks=[Fallback.value(None)])
    count = [0]

    async def flaky() -> str:
        count[0] += 1
        await asyncio.sleep(0.01)
        if count[0] % 5 == 0:
            raise ConnectionError("flaky")
        return "ok"

    async def callers(n: int, each: int) -> None:
        async def one() -> None:
            for _ in range(each):
                await dep.aexecute(flaky)

        await asyncio.gather(*(one() for _ in range(n)))

    run_virtual(callers(2, 200))  # light: 2 in flight of 20
    run_virtual(callers(20, 100))  # the callers use all of it: the same share fails
    limiter = dep._limiter
    assert limiter is not None and 0.1 <= limiter.usual_failures <= 0.3
    assert dep.snapshot()["limit"]["current"] >= 15
