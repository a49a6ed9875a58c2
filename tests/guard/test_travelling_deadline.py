"""Deadlines that travel: exact behaviour on virtual time, then across real services on loopback."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
import wsgiref.simple_server
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from stoic.fit import HeaderCodec, forward_hooks
from stoic.guard import (
    DEADLINE_HEADER,
    ConfigError,
    DeadlineMiddleware,
    DeadlineWSGIMiddleware,
    Dependency,
    DependencyFailed,
    Fallback,
    ManualClock,
    Outcome,
    Registry,
    Retry,
    ThreadPoolBulkhead,
    call_timeout,
    deadline,
    deadline_headers,
    format_timeout,
    parse_timeout,
    time_left,
)

from .helpers import Unavailable, boom
from .http_servers import Receive, Scope, Send, Server

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]


async def stall() -> str:
    await asyncio.sleep(3600)
    return "late"


# -- on virtual time -----------------------------------------------------------------------------

def test_a_call_gets_the_smaller_of_its_timeout_and_the_time_left(
        clock: ManualClock, reg: Registry, run_virtual: Run[Any]) -> None:
    dep = Dependency("profile", timeout=1.0, clock=clock, registry=reg, fallbacks=[Fallback.value({})])

    async def within() -> Any:
        async with deadline(0.25, clock=clock):
            return await dep.aexecute(stall)

    t0 = clock.now_ns()
    result = run_virtual(within())
    assert result.outcome is Outcome.TIMEOUT and result.value == {}
    assert clock.now_ns() - t0 == 250_000_000
    # without a deadline the call's own timeout applies again
    t0 = clock.now_ns()
    run_virtual(dep.aexecute(stall))
    assert clock.now_ns() - t0 == 1_000_000_000


def test_a_shorter_deadline_fires_on_time_behind_an_armed_timer(
        clock: ManualClock, reg: Registry, run_virtual: Run[Any]) -> None:
    """A finished call leaves the dependency's one timer armed for its own (1 s) deadline; a later
    call with 0.25 s left must re-arm it, not wait for it."""
    dep = Dependency("profile", timeout=1.0, clock=clock, registry=reg, fallbacks=[Fallback.value({})])

    async def quick() -> str:
        return "quick"

    async def scenario() -> Any:
        assert await dep.acall(quick) == "quick"
        async with deadline(0.25, clock=clock):
            return await dep.aexecute(stall)

    t0 = clock.now_ns()
    assert run_virtual(scenario()).outcome is Outcome.TIMEOUT
    assert clock.now_ns() - t0 == 250_000_000


def test_a_call_after_the_deadline_is_not_made(clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("profile", timeout=1.0, clock=clock, registry=reg,
                     fallbacks=[Fallback.value("cached", name="cached")])
    made: list[int] = []
    with deadline(0.1, clock=clock):
        clock.advance(0.1)
        result = dep.execute(lambda: made.append(1))
    assert made == []
    assert (result.source, result.outcome) == ("cached", Outcome.REJECTED)
    assert "the request's deadline has passed; not called" in str(result.error)
    snap = dep.snapshot()
    assert snap["deadline_skipped"] == {"call": 1, "retry": 0, "fallback": 0, "hedge": 0}
    assert snap["counts"]["rejected"] == 1


def test_an_async_call_after_the_deadline_is_not_made(clock: ManualClock, reg: Registry,
                                                      run_virtual: Run[Any]) -> None:
    dep = Dependency("profile", timeout=1.0, clock=clock, registry=reg,
                     fallbacks=[Fallback.value("cached", name="cached")])
    made: list[int] = []

    async def primary() -> None:
        made.append(1)

    async def scenario() -> Any:
        async with deadline(0.1, clock=clock):
            answer_in_time = await dep.aexecute(primary)
            clock.advance(0.1)
            return answer_in_time, await dep.aexecute(primary)

    in_time, late = run_virtual(scenario())
    assert made == [1]  # only the call made before the deadline passed
    assert (in_time.source, late.source, late.outcome) == ("primary", "cached", Outcome.REJECTED)
    assert "the request's deadline has passed; not called" in str(late.error)
    assert dep.snapshot()["deadline_skipped"]["call"] == 1


def test_a_retry_that_cannot_fit_in_the_time_left_is_skipped(clock: ManualClock, reg: Registry) -> None:
    retry = Retry(attempts=3, initial=0.2, jitter="none", budget=None)
    dep = Dependency("ratings", timeout=1.0, clock=clock, registry=reg, retry=retry)
    calls: list[int] = []

    def fails_after_50ms() -> None:
        calls.append(1)
        clock.advance(0.05)
        raise Unavailable("503")

    with deadline(0.4, clock=clock), pytest.raises(DependencyFailed) as info:
        dep.call(fails_after_50ms)
    # first try 50 ms; a 0.2 s pause + 50 ms fit in the 350 ms left (one retry); then 0.4 s does not
    assert len(calls) == 2
    assert ("retry skipped: a 0.400s pause and another attempt do not fit in the 0.100s left"
            in str(info.value))
    assert dep.snapshot()["deadline_skipped"]["retry"] == 1
    calls.clear()
    with pytest.raises(DependencyFailed):
        dep.call(fails_after_50ms)
    assert len(calls) == 3  # no deadline: every attempt


def test_a_fallback_level_without_time_left_is_skipped(clock: ManualClock, reg: Registry,
                                                       run_virtual: Run[Any]) -> None:
    remote: list[int] = []

    async def replica() -> str:
        remote.append(1)
        return "replica"

    dep = Dependency("catalog", timeout=1.0, clock=clock, registry=reg, fallbacks=[
        Fallback(replica, name="replica", timeout=0.5),
        Fallback.value("generic", name="generic"),
    ])

    async def within() -> Any:
        async with deadline(0.2, clock=clock):
            return await dep.aexecute(stall)

    result = run_virtual(within())
    assert (result.source, result.level, remote) == ("generic", 2, [])
    assert dep.snapshot()["deadline_skipped"] == {"call": 0, "retry": 0, "fallback": 1, "hedge": 0}
    # with time left the replica answers, bounded by the time left
    result = run_virtual(dep.aexecute(stall))
    assert result.source == "replica"


def test_call_timeout_overrides_the_dependency_timeout(clock: ManualClock, reg: Registry,
                                                      run_virtual: Run[Any]) -> None:
    dep = Dependency("report", timeout=0.1, clock=clock, registry=reg)

    async def takes_half_a_second() -> str:
        await asyncio.sleep(0.5)
        return "report"

    async def longer() -> str:
        with call_timeout(1.0):
            return await dep.acall(takes_half_a_second)

    assert run_virtual(longer()) == "report"
    with pytest.raises(DependencyFailed, match=r"no answer within 0\.1s"):
        run_virtual(dep.acall(takes_half_a_second))

    async def longer_but_cut() -> Any:
        async with deadline(0.3, clock=clock):
            with call_timeout(1.0):
                return await dep.aexecute(takes_half_a_second)

    with pytest.raises(DependencyFailed, match=r"no answer within 0\.3"):
        run_virtual(longer_but_cut())


def test_a_nested_deadline_never_extends_the_outer_one(clock: ManualClock) -> None:
    assert time_left() is None
    with deadline(0.5, clock=clock):
        with deadline(2.0, clock=clock):
            assert time_left() == 0.5
        with deadline(0.2, clock=clock):
            assert time_left() == pytest.approx(0.2)
            assert deadline_headers() == {DEADLINE_HEADER: "180m"}  # a tenth kept to hear the answer
        with deadline(None):
            assert time_left() == 0.5
    assert time_left() is None and deadline_headers() == {}


def test_a_thread_isolated_call_is_abandoned_at_the_deadline(reg: Registry) -> None:
    dep = Dependency("legacy", timeout=None, bulkhead=ThreadPoolBulkhead(workers=2), registry=reg,
                     fallbacks=[Fallback.value("stale", name="stale")])
    release = threading.Event()
    try:
        with deadline(0.1):
            result = dep.execute(lambda: release.wait(30))  # no timeout of its own: only the deadline ends it
        assert (result.source, result.outcome) == ("stale", Outcome.TIMEOUT)
    finally:
        release.set()
        dep.close()


@pytest.mark.parametrize(("seconds", "text"), [
    (0.3, "300m"), (0.0004, "400u"), (-1.0, "0u"), (2.5, "2500m"), (10**6, "1000000S"),
])
def test_the_time_left_is_written_as_a_grpc_timeout(seconds: float, text: str) -> None:
    assert format_timeout(seconds) == text
    assert parse_timeout(text) <= max(seconds, 0.0)


@pytest.mark.parametrize(("text", "seconds"), [
    ("300m", 0.3), ("1S", 1.0), ("2M", 120.0), ("1H", 3600.0), ("500u", 0.0005), ("1000n", 1e-6),
    (" 5S ", 5.0),
])
def test_grpc_timeouts_are_read(text: str, seconds: float) -> None:
    assert parse_timeout(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "300", "m", "300ms", "-3S", "123456789m", "1.5S", "3s", "٣S"])
def test_a_malformed_timeout_names_the_header_and_the_format(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_timeout(text)
    assert str(info.value) == (f"x-stoic-timeout: must be a duration of 1 to 8 digits and a unit "
                               f"(H, M, S, m, u or n), e.g. '300m' for 300 ms, got {text!r}")


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"deadline.seconds must be in \[0.0, 86400.0\], got -1"):
        deadline(-1)
    with pytest.raises(ConfigError, match=r"call_timeout.seconds must be in \(0.0, 3600.0\], got 0"):
        call_timeout(0)
    with pytest.raises(ConfigError, match=r"DeadlineMiddleware\.header must be a header name"):
        DeadlineMiddleware(stall_app, header="bad header")
    with pytest.raises(ConfigError, match=r"DeadlineWSGIMiddleware.max_seconds must be in \(0.0, 86400.0\]"):
        DeadlineWSGIMiddleware(lambda e, s: [], max_seconds=0)


async def stall_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("never called")


# -- across real services on loopback --------------------------------------------------------------

class Service:
    """An ASGI service behind `DeadlineMiddleware`: `GET /` calls `downstream` (if any) through a
    guarded, deadline-forwarding httpx client, else stalls. Records the deadline header it got."""

    def __init__(self, name: str, downstream: str | None) -> None:
        self.name = name
        self.downstream = downstream
        self.seen: list[str | None] = []
        self.dep = Dependency(f"{name}->next", timeout=10.0, registry=Registry(),
                              fallbacks=[Fallback.value({"answered_by": f"{name} fallback"})])
        self.app = DeadlineMiddleware(self.handle)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        self.seen.append(headers[DEADLINE_HEADER.encode()].decode() if DEADLINE_HEADER.encode() in headers
                         else None)
        if self.downstream is None:  # a stalled backend: never answers, until the caller hangs up
            for _ in range(3):
                if (await asyncio.wait_for(receive(), 30))["type"] == "http.disconnect":
                    return
            body = b'{"answered_by": "backend"}'
        else:
            hooks = forward_hooks(HeaderCodec("s" * 32), asynchronous=True)
            async with httpx.AsyncClient(event_hooks=hooks) as client:

                async def ask() -> Any:
                    response = await client.get(self.downstream or "")
                    response.raise_for_status()
                    return response.json()

                body = json.dumps(await self.dep.acall(ask)).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
def chain() -> Iterator[tuple[str, Service, Service, Service]]:
    backend = Service("backend", None)
    middle = Service("middle", None)
    edge = Service("edge", None)
    servers = [Server(backend.app).start()]
    middle.downstream = servers[0].url + "/"
    servers.append(Server(middle.app).start())
    edge.downstream = servers[1].url + "/"
    servers.append(Server(edge.app).start())
    try:
        yield servers[2].url + "/", edge, middle, backend
    finally:
        for server in servers:
            server.stop()


def test_an_incoming_deadline_makes_a_chain_of_services_answer_from_fallbacks_in_time(
        chain: tuple[str, Service, Service, Service]) -> None:
    url, edge, middle, backend = chain
    response = httpx.get(url, headers={DEADLINE_HEADER: "300m"}, timeout=30)
    # The middle service gave up on the stalled backend within the edge's 300 ms (its own timeout is
    # 10 s, so only the travelling deadline could make it), answered from its fallback, and the edge
    # got that answer in time: its own primary succeeded.
    assert response.status_code == 200
    assert response.json() == {"answered_by": "middle fallback"}
    assert edge.seen == ["300m"]
    (middle_budget,) = middle.seen
    (backend_budget,) = backend.seen
    assert middle_budget is not None and backend_budget is not None
    assert parse_timeout(backend_budget) < parse_timeout(middle_budget) < 0.3
    assert middle.dep.snapshot()["counts"]["timeout"] == 1
    assert edge.dep.snapshot()["counts"]["success"] == 1


def test_a_malformed_deadline_header_is_answered_400(chain: tuple[str, Service, Service, Service]) -> None:
    url, edge, _, _ = chain
    response = httpx.get(url, headers={DEADLINE_HEADER: "soon"}, timeout=30)
    assert response.status_code == 400
    assert response.text == ("x-stoic-timeout: must be a duration of 1 to 8 digits and a unit "
                             "(H, M, S, m, u or n), e.g. '300m' for 300 ms, got 'soon'")
    assert edge.seen == []


def test_the_wsgi_middleware_sets_the_deadline_from_the_header() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        left = time_left()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"none" if left is None else format_timeout(left).encode()]

    server = wsgiref.simple_server.make_server(
        "127.0.0.1", 0, DeadlineWSGIMiddleware(app, default=2.0),
        handler_class=type("Quiet", (wsgiref.simple_server.WSGIRequestHandler,),
                           {"log_message": lambda *a: None}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={DEADLINE_HEADER: "1S"}),
                                    timeout=30) as answer:
            assert parse_timeout(answer.read().decode()) <= 1.0
        with urllib.request.urlopen(url, timeout=30) as answer:  # no header: the default
            assert 1.0 < parse_timeout(answer.read().decode()) <= 2.0
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(urllib.request.Request(url, headers={DEADLINE_HEADER: "1.5S"}), timeout=30)
        assert info.value.code == 400
        assert b"x-stoic-timeout: must be a duration" in info.value.read()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_fit_forwards_the_deadline_only_to_our_own_hosts() -> None:
    from stoic.fit import Forwarder

    forwarder = Forwarder(HeaderCodec("s" * 32), allow_hosts=["*.internal"])
    assert forwarder.headers("ratings.internal") == {}
    with deadline(0.5):
        assert set(forwarder.headers("ratings.internal")) == {DEADLINE_HEADER}
        assert set(forwarder.headers("127.0.0.1")) == {DEADLINE_HEADER}
        assert forwarder.headers("api.example.com") == {}


def test_boom_is_still_a_failure_under_a_deadline(clock: ManualClock, reg: Registry) -> None:
    dep = Dependency("x", timeout=1.0, clock=clock, registry=reg, fallbacks=[Fallback.value(0)])
    with deadline(5.0, clock=clock):
        assert dep.execute(boom).outcome is Outcome.FAILURE
