"""The httpx transports and the requests adapter against real uvicorn servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import email.utils
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests

from stoic.guard import (
    BreakerOpen,
    BreakerPolicy,
    ConfigError,
    DeadlineExceeded,
    FailedResult,
    Fallback,
    ManualClock,
    Outcome,
    Registry,
    Retry,
    SemaphoreBulkhead,
)
from stoic.guard.httpx import AsyncGuardedTransport, DependencyUnavailable, GuardedTransport
from stoic.guard.requests import DependencyUnavailable as RequestsUnavailable
from stoic.guard.requests import GuardedAdapter, guard

from .http_servers import Downstream, Server

SLEEP = ("sleep", 3.0)  # longer than any deadline below: the call must end at its deadline


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[tuple[Downstream, Server], tuple[Downstream, Server]]]:
    first, second = Downstream(), Downstream()
    a, b = Server(first).start(), Server(second).start()
    yield (first, a), (second, b)
    a.stop()
    b.stop()


@pytest.fixture
def down(servers: Any) -> tuple[Downstream, str]:
    (downstream, server), _ = servers
    downstream.answer((200, {}, b"ok"))
    return downstream, server.url


@pytest.fixture
def other(servers: Any) -> tuple[Downstream, str]:
    _, (downstream, server) = servers
    downstream.answer((200, {}, b"ok"))
    return downstream, server.url


def host_of(url: str) -> str:
    return url.removeprefix("http://")


# -- httpx, sync ---------------------------------------------------------------------------------
def test_5xx_and_429_are_failures_other_4xx_the_callers(down: tuple[Downstream, str], reg: Registry) -> None:
    downstream, url = down
    transport = GuardedTransport(registry=reg, breaker=BreakerPolicy(min_calls=100))
    with httpx.Client(transport=transport) as client:
        for status in (503, 500, 429, 404, 400, 200):
            downstream.answer((status, {}, b"x"))
            response = client.get(f"{url}/answer")
            assert response.status_code == status  # no fallback: the answer itself
            result = response.extensions["guard"]
            assert result.outcome is (Outcome.FAILURE if status in (503, 500, 429) else Outcome.SUCCESS)
        counts = transport.dependency(url).snapshot()["counts"]
    assert (counts["failure"], counts["success"]) == (3, 3)


def test_one_dependency_per_host(down: tuple[Downstream, str], other: tuple[Downstream, str],
                                 reg: Registry) -> None:
    (first, url), (_, other_url) = down, other
    first.answer((503, {}, b"down"))
    transport = GuardedTransport(registry=reg, prefix="api:",
                                 breaker=BreakerPolicy(min_calls=2, check_interval=0))
    with httpx.Client(transport=transport) as client:
        for _ in range(2):
            client.get(f"{url}/answer")
        with pytest.raises(DependencyUnavailable) as info:
            client.get(f"{url}/answer")
        assert client.get(f"{other_url}/answer").status_code == 200  # the other host is unaffected
        assert sorted(reg.names()) == sorted([f"api:{host_of(url)}", f"api:{host_of(other_url)}"])
        assert reg.get(f"api:{host_of(url)}").breaker.state == "open"
        assert reg.get(f"api:{host_of(other_url)}").breaker.state == "closed"
    assert isinstance(info.value, httpx.TransportError)
    assert isinstance(info.value.failure.causes[0][1], BreakerOpen)
    assert reg.names() == []  # closing the client takes its hosts out of the registry


def test_the_deadline_is_the_clients_own_timeout(down: tuple[Downstream, str], reg: Registry) -> None:
    """A sync call on the caller's thread cannot be stopped by the guard; the client's own timeout
    can: the call ends as a timeout, where a plain guarded call would succeed, flagged slow."""
    downstream, url = down
    downstream.answer(SLEEP)
    transport = GuardedTransport(registry=reg, timeout=0.2, bulkhead=SemaphoreBulkhead(),
                                 fallbacks=[Fallback(lambda request: httpx.Response(200, text="cached"),
                                                     name="cache")])
    with httpx.Client(transport=transport, timeout=30.0) as client:
        response = client.get(f"{url}/answer")
    assert response.text == "cached"
    result = response.extensions["guard"]
    assert result.outcome is Outcome.TIMEOUT and isinstance(result.error, DeadlineExceeded)
    assert isinstance(result.error.__cause__, httpx.ReadTimeout)
    counts = transport.dependency(url).snapshot()["counts"]
    assert (counts["timeout"], counts["success"]) == (1, 0)


def test_retry_after_is_honoured_for_idempotent_requests_only(down: tuple[Downstream, str],
                                                              reg: Registry) -> None:
    downstream, url = down
    clock = ManualClock()  # the pause is the clock's: the test does not wait it out
    transport = GuardedTransport(registry=reg, clock=clock,
                                 retry=Retry(attempts=3, initial=0.01, maximum=5.0, budget=None))
    with httpx.Client(transport=transport) as client:
        downstream.answer((503, {"Retry-After": "2"}, b""), (200, {}, b"ok"))
        assert client.get(f"{url}/answer").text == "ok"
        assert downstream.count() == 2 and clock.now_ns() == 2_000_000_000
        downstream.answer((503, {"Retry-After": "2"}, b""), (200, {}, b"ok"))
        assert client.post(f"{url}/answer", content=b"order").status_code == 503  # never sent twice
        assert downstream.count() == 1
        downstream.answer((503, {"Retry-After": "3600"}, b""), (200, {}, b"ok"))
        response = client.get(f"{url}/answer")  # asks for more than the policy ever waits
        assert response.status_code == 503 and downstream.count() == 1
        assert isinstance(response.extensions["guard"].error, FailedResult)


def test_retry_after_as_an_http_date(down: tuple[Downstream, str], reg: Registry) -> None:
    downstream, url = down
    clock = ManualClock()
    transport = GuardedTransport(registry=reg, clock=clock,
                                 retry=Retry(attempts=2, initial=0.01, maximum=5.0, budget=None))
    with httpx.Client(transport=transport) as client:
        past = "Wed, 21 Oct 2015 07:28:00 GMT"  # asks for no wait: the backoff's own pause applies
        downstream.answer((503, {"Retry-After": past}, b""), (200, {}, b"ok"))
        assert client.get(f"{url}/answer").text == "ok" and downstream.count() == 2
        assert clock.now_ns() <= 10_000_000
        in_an_hour = email.utils.formatdate(time.time() + 3600, usegmt=True)
        downstream.answer((503, {"Retry-After": in_an_hour}, b""), (200, {}, b"ok"))
        assert client.get(f"{url}/answer").status_code == 503 and downstream.count() == 1


def test_configure_applies_to_every_host_now_and_to_come(
        down: tuple[Downstream, str], other: tuple[Downstream, str], reg: Registry) -> None:
    (downstream, url), (_, other_url) = down, other
    transport = GuardedTransport(registry=reg, timeout=1.0)
    with httpx.Client(transport=transport) as client:
        client.get(f"{url}/answer")
        transport.configure(timeout=0.2, retry=Retry(attempts=2, budget=None))
        client.get(f"{other_url}/answer")
        downstream.answer((503, {}, b""))
        client.get(f"{url}/answer")
    assert [d.timeout for d in transport.dependencies()] == [0.2, 0.2]
    assert downstream.count() == 2  # the retry reached the host guarded before the change
    with pytest.raises(ConfigError, match=r"GuardedTransport.timeout must be in \(0.0, 3600.0\], got -1"):
        transport.configure(timeout=-1, retry=None)
    assert transport.dependency(url).retry is not None  # nothing changed
    with pytest.raises(ConfigError, match=r"GuardedTransport.configure\(\) takes timeout, breaker, "
                                          r"bulkhead, retry, fallbacks; got 'timout'"):
        transport.configure(timout=1.0)


@pytest.mark.parametrize(("build", "message"), [
    (lambda: GuardedTransport(timeout=0), "GuardedTransport.timeout must be in (0.0, 3600.0], got 0"),
    (lambda: GuardedTransport(transport="http"),  # type: ignore[arg-type]
     "GuardedTransport.transport must be an httpx.BaseTransport or None, got 'http'"),
    (lambda: AsyncGuardedTransport(transport=httpx.HTTPTransport()),  # type: ignore[arg-type]
     "AsyncGuardedTransport.transport must be an httpx.AsyncBaseTransport or None"),
    (lambda: GuardedTransport(max_hosts=0), "GuardedTransport.max_hosts must be in [1, 100000], got 0"),
    (lambda: GuardedTransport(prefix=5), "GuardedTransport.prefix must be a string, got 5"),  # type: ignore[arg-type]
    (lambda: GuardedTransport(retry=3), "GuardedTransport.retry must be a Retry or None, got 3"),  # type: ignore[arg-type]
    (lambda: GuardedAdapter(breaker={}), "GuardedAdapter.breaker must be a BreakerPolicy or None"),  # type: ignore[arg-type]
    (lambda: guard("session"), "guard() protects a requests.Session, got 'session'"),  # type: ignore[arg-type]
])
def test_bad_settings_name_the_field(build: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    assert message in str(info.value)


def test_max_hosts_refuses_one_host_too_many(down: tuple[Downstream, str], other: tuple[Downstream, str],
                                             reg: Registry) -> None:
    transport = GuardedTransport(registry=reg, max_hosts=1)
    with httpx.Client(transport=transport) as client:
        assert client.get(f"{down[1]}/answer").status_code == 200
        with pytest.raises(DependencyUnavailable, match=r"already guarding 1 hosts \(max_hosts\)"):
            client.get(f"{other[1]}/answer")


def test_a_fallback_that_answers_no_response_is_named(down: tuple[Downstream, str], reg: Registry) -> None:
    down[0].answer((503, {}, b""))
    transport = GuardedTransport(registry=reg, fallbacks=[Fallback.value("cached", name="cache")])
    with httpx.Client(transport=transport) as client, pytest.raises(TypeError, match="fallback 'cache'"):
        client.get(f"{down[1]}/answer")


def test_a_refused_connection_is_a_failure_and_the_callers_mistake_is_not(reg: Registry) -> None:
    transport = GuardedTransport(registry=reg, timeout=2.0)
    with httpx.Client(transport=transport) as client:
        with pytest.raises(DependencyUnavailable) as info:
            client.get("http://127.0.0.1:9/answer")  # the discard port: nobody listens
        with pytest.raises(httpx.UnsupportedProtocol):
            client.get("ftp://127.0.0.1:9/answer")
        snapshot = transport.dependency("http://127.0.0.1:9").snapshot()
    assert isinstance(info.value.failure.causes[0][1], httpx.ConnectError)
    assert snapshot["counts"]["failure"] == 1
    assert snapshot["requests"] == 1  # the ftp call counted as nothing


# -- httpx, async --------------------------------------------------------------------------------
def test_the_async_transport_judges_retries_and_times_out(
        down: tuple[Downstream, str], reg: Registry) -> None:
    downstream, url = down
    clock = ManualClock()
    transport = AsyncGuardedTransport(
        registry=reg, clock=clock, timeout=0.2, retry=Retry(attempts=2, maximum=5.0, budget=None),
        fallbacks=[Fallback(lambda request: httpx.Response(200, text="cached"), name="cache")])

    async def main() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(transport=transport, timeout=30.0) as client:
            downstream.answer((503, {"Retry-After": "1"}, b""), (200, {}, b"ok"))
            retried = await client.get(f"{url}/answer")
            downstream.answer((404, {}, b"nope"))
            missing = await client.get(f"{url}/answer")
            downstream.answer(SLEEP)
            late = await client.get(f"{url}/answer")
            return retried, missing, late

    retried, missing, late = asyncio.run(main())
    assert retried.text == "ok" and clock.now_ns() >= 1_000_000_000
    assert missing.status_code == 404 and missing.extensions["guard"].source == "primary"
    assert late.text == "cached" and late.extensions["guard"].outcome is Outcome.TIMEOUT
    assert downstream.count() == 2  # a GET that timed out is retried once
    counts = transport.dependency(url).snapshot()["counts"]
    assert (counts["failure"], counts["timeout"], counts["success"]) == (1, 2, 2)


# -- requests ------------------------------------------------------------------------------------
def test_the_requests_adapter_guards_a_session(down: tuple[Downstream, str], reg: Registry) -> None:
    downstream, url = down
    clock = ManualClock()
    with requests.Session() as session:
        adapter = guard(session, registry=reg, clock=clock, timeout=0.2,
                        retry=Retry(attempts=2, maximum=5.0, budget=None))
        downstream.answer((503, {"Retry-After": "2"}, b""), (200, {}, b"ok"))
        assert session.get(f"{url}/answer").text == "ok" and clock.now_ns() == 2_000_000_000
        downstream.answer((429, {}, b""))
        assert session.post(f"{url}/answer", data=b"x").status_code == 429 and downstream.count() == 1
        downstream.answer((404, {}, b""))
        assert session.get(f"{url}/answer").guard.outcome is Outcome.SUCCESS  # type: ignore[attr-defined]
        downstream.answer(SLEEP)
        with pytest.raises(RequestsUnavailable) as info:
            session.get(f"{url}/answer", timeout=30)  # the deadline, 0.2 s, wins over the session's own
    assert isinstance(info.value, requests.ConnectionError)
    assert [type(error) for _, error in info.value.failure.causes] == [DeadlineExceeded] * 2  # retried
    counts = adapter.dependency(url).snapshot()["counts"]
    assert (counts["failure"], counts["timeout"], counts["success"]) == (2, 2, 2)


def test_importing_the_guard_loads_no_http_client() -> None:
    code = "import sys, stoic.guard; print(sorted(m for m in sys.modules if m in ('httpx', 'requests')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_a_policy_of_ones_own_keeps_its_rules(down: tuple[Downstream, str], reg: Registry) -> None:
    downstream, url = down
    downstream.answer((404, {}, b""))
    missing_is_down = BreakerPolicy(failure_when=lambda response: response.status_code == 404)
    transport = GuardedTransport(registry=reg, breaker=missing_is_down)
    with httpx.Client(transport=transport) as client:
        assert client.get(f"{url}/answer").extensions["guard"].outcome is Outcome.FAILURE
        downstream.answer((503, {}, b""))
        assert client.get(f"{url}/answer").extensions["guard"].outcome is Outcome.SUCCESS


def test_the_requests_adapter_falls_back_to_a_response(down: tuple[Downstream, str], reg: Registry) -> None:
    downstream, url = down
    downstream.answer((500, {}, b""))

    def cached(request: requests.PreparedRequest) -> requests.Response:
        response = requests.Response()
        response.status_code, response._content = 200, b"cached"
        return response

    with requests.Session() as session:
        guard(session, registry=reg, fallbacks=[Fallback(cached, name="cache")])
        response = session.get(f"{url}/answer")
    assert response.text == "cached" and response.guard.source == "cache"  # type: ignore[attr-defined]
    assert isinstance(response.guard.error, FailedResult)  # type: ignore[attr-defined]
    assert response.guard.error.value.status_code == 500  # type: ignore[attr-defined]
