"""Breaker transitions of a service in another process, read from its `/guard` endpoint on a real
loopback server (a real guard registry behind it), become context events with the share of
calls its fallbacks answered; an endpoint that is down costs nothing."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stoic.chaos import free_port
from stoic.guard import BreakerPolicy, Dependency, Fallback, Registry
from stoic.signals import Signals
from stoic.signals.guardwatch import GuardWatch

from .conftest import Clock


@pytest.fixture
def service() -> Iterator[tuple[str, Dependency]]:
    registry = Registry()
    payments = Dependency(
        "payments",
        timeout=None,
        registry=registry,
        breaker=BreakerPolicy(min_calls=5, check_interval=0.0, open_for=60.0),
        fallbacks=[Fallback.value("queued", name="queue-for-later")],
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"app": "shop", "dependencies": registry.snapshot()}).encode()
            self.send_response(200 if self.path == "/guard" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", payments
    server.shutdown()
    server.server_close()


def test_a_breaker_opening_behind_a_guard_endpoint_is_a_context_event(
    service: tuple[str, Dependency], clock: Clock
) -> None:
    url, payments = service
    signals = Signals(clock=clock)
    watch = GuardWatch([url, f"http://127.0.0.1:{free_port()}"], signals.add_event)  # the second is down
    assert watch.poll() == 0  # the first poll learns the states

    def broken() -> str:
        raise ConnectionError("payments is down")

    assert [payments.call(broken) for _ in range(10)] == ["queued"] * 10
    assert watch.poll() == 1
    assert watch.poll() == 0  # reported once
    (event,) = signals.view()["events"]
    assert event["kind"] == "breaker" and event["target"] == "payments"
    opened = "The circuit breaker for payments opened; fallbacks answered "
    assert str(event["description"]).startswith(opened)
    assert str(event["description"]).endswith("% of its 10 calls")
    watch.close()
    signals.close()


def test_bad_guard_watch_arguments_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"^urls\[0\]: must be an http:// or https:// URL, got 'shop:8080'"):
        GuardWatch(["shop:8080"], print)
    with pytest.raises(ValueError, match=r"^urls: must be a list of 1..100 base URLs"):
        GuardWatch("http://127.0.0.1:1", print)
    with pytest.raises(ValueError, match=r"^interval: must be >= 0.2, got 0"):
        GuardWatch(["http://127.0.0.1:1"], print, interval=0)
