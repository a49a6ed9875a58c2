"""HTTP-status and stand-in-answer faults, judged by the guard's result predicates and the httpx and
requests integrations against a real server on loopback."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from wsgiref.types import StartResponse, WSGIEnvironment

import httpx
import pytest
import requests

from stoic.fit import Fit, HeaderCodec, Scenario
from stoic.guard import (
    BreakerPolicy,
    Dependency,
    FailedResult,
    Fallback,
    Fault,
    InjectedStatus,
    ManualClock,
    Retry,
)
from stoic.guard.httpx import GuardedTransport
from stoic.guard.requests import GuardedAdapter


class Origin:
    """A real WSGI server counting the requests that reach it."""

    def __init__(self) -> None:
        self.hits = 0

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        self.hits += 1
        start_response("200 OK", [("content-type", "application/json")])
        return [json.dumps({"price": 10}).encode()]


@pytest.fixture
def origin(serve_wsgi: Callable[[Any], str]) -> tuple[Origin, str]:
    app = Origin()
    return app, serve_wsgi(app)


def test_a_503_with_retry_after_through_httpx_is_a_real_response_never_sent(
    origin: tuple[Origin, str],
) -> None:
    app, url = origin
    clock = ManualClock()
    transport = GuardedTransport(
        timeout=2.0, registry=None, clock=clock,
        retry=Retry(attempts=3, maximum=5.0, total=30.0),  # the integration honours Retry-After itself
    )
    with httpx.Client(transport=transport) as client:
        assert client.get(url).json() == {"price": 10}
        assert app.hits == 1
        with Fit(registry=None) as fit:
            # the dependency is named after the host: a glob picks every port on loopback
            fit.add(Scenario("prices-down", "127.0.0.1:*", kind="status", status=503, retry_after=2))
            response = client.get(url)
    assert app.hits == 1  # no injected attempt reached the server
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.json()["injected"] == "injected by scenario prices-down"
    result = response.extensions["guard"]
    assert result.outcome.label == "failure" and isinstance(result.error, FailedResult)
    assert fit.injected(transport.dependency(url).name) == 3  # every attempt got the fault
    assert clock.now_ns() == 4_000_000_000  # two pauses of the 2 s the answer asked for


def test_a_429_through_requests_asking_for_too_long_a_wait_falls_back_at_once(
    origin: tuple[Origin, str],
) -> None:
    app, url = origin
    clock = ManualClock()

    def cached_price(request: requests.PreparedRequest) -> requests.Response:
        answer = requests.Response()
        answer.status_code, answer._content, answer.request = 200, b'{"price": 9}', request
        return answer

    adapter = GuardedAdapter(
        timeout=2.0, registry=None, clock=clock, retry=Retry(attempts=3, maximum=5.0),
        fallbacks=[Fallback(cached_price, name="cached-price")],
    )
    with requests.Session() as session:
        session.mount("http://", adapter)
        with Fit(registry=None) as fit:
            fit.add(Scenario("slow-down", "127.0.0.1:*", kind="status", status=429, retry_after=60))
            response = session.get(url)
    assert app.hits == 0
    assert response.json() == {"price": 9}
    assert response.guard.source == "cached-price"  # type: ignore[attr-defined]
    refused = response.guard.error.value  # type: ignore[attr-defined]
    assert isinstance(refused, requests.Response) and refused.status_code == 429
    assert refused.headers["Retry-After"] == "60" and refused.reason == "Too Many Requests"
    assert clock.now_ns() == 0  # 60 s is beyond the policy's maximum: no waiting at all


def test_a_stand_in_answer_is_judged_by_failure_when_and_retry_when() -> None:
    calls: list[str] = []

    def fetch(user: str) -> dict[str, Any]:
        calls.append(user)
        return {"status": "ok", "rows": ["mine"]}

    clock = ManualClock()
    recs = Dependency(
        "recs", timeout=1.0, registry=None, clock=clock,
        breaker=BreakerPolicy(failure_when=lambda answer: answer.get("status") == "error"),
        retry=Retry(attempts=3, retry_when=lambda answer: answer.get("status") == "busy", maximum=1.0),
        fallbacks=[Fallback.value({"status": "ok", "rows": ["popular"]}, name="popular")],
    )
    for answer, source, rows, attempts in [
        ({"status": "error"}, "popular", ["popular"], 1),      # a failure retry_when declines: fallback
        ({"status": "busy"}, "primary", None, 3),             # worth another try, kept when nothing better
        ({"status": "ok", "rows": []}, "primary", [], 1),     # a plausible answer: taken as it is
    ]:
        with Fit(registry=None) as fit:
            fit.add(Scenario("stand-in", "recs", kind="result", result=answer))
            result = recs.execute(fetch, "u1")
            assert fit.injected("recs") == attempts
        assert result.source == source
        assert result.value.get("rows") == rows
    assert calls == []  # the real dependency was never called
    assert recs.snapshot()["counts"]["failure"] == 0  # a request's own faults stay out of the window


def test_each_call_gets_its_own_copy_of_the_stand_in() -> None:
    deps = Dependency("catalogue", timeout=1.0, registry=None)
    with Fit(registry=None) as fit:
        fit.add(Scenario("empty", "catalogue", kind="result", result={"items": []}))
        first = deps.execute(lambda: {"items": ["real"]}).value
        first["items"].append("changed by the caller")
        assert deps.execute(lambda: {"items": ["real"]}).value == {"items": []}


def test_status_faults_outside_http_answer_an_injected_status() -> None:
    dep = Dependency("ledger", timeout=1.0, registry=None)
    with Fit(registry=None) as fit:
        fit.add(Scenario("ledger-503", "ledger", kind="status", status=503, retry_after=1.5))
        answer = dep.execute(lambda: "real").value
    assert isinstance(answer, InjectedStatus)
    assert (answer.status, answer.status_code, answer.retry_after) == (503, 503, 1.5)
    assert answer.headers == {"retry-after": "2"}  # delta-seconds on the wire: rounded up
    assert answer.json()["error"] == "Service Unavailable"


def test_the_new_kinds_travel_in_the_signed_header() -> None:
    codec = HeaderCodec("kinds-test-secret-0123456789")
    sent = [
        Scenario("a", "ratings-*", kind="status", status=429, retry_after=3),
        Scenario("b", "reviews", kind="result", result={"stars": None, "note": "stand-in"}),
    ]
    received = codec.verify(codec.sign(sent, audience="edge"), service="edge").scenarios
    assert list(received) == sent
    assert received[0].fault == Fault("status", message="injected by scenario a", status=429, retry_after=3)


def test_guard_fault_fields_are_checked() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"kind": "status"}, r"Fault.status must be an HTTP error status, an integer in \[400, 599\]"),
        ({"kind": "error", "status": 503}, "Fault.status is for kind 'status' only"),
        ({"kind": "status", "status": 503, "retry_after": -1},
         r"Fault.retry_after must be seconds in \[0, 86400\]"),
        ({"kind": "delay", "value": 1}, "Fault.value is for kind 'result' only"),
        ({"kind": "explode"}, "Fault.kind must be one of error, delay, timeout, reject, status, result"),
    ]
    for fields, message in cases:
        with pytest.raises(ValueError, match=message):
            Fault(**fields)
