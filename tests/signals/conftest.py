"""Fixtures for stoic.signals tests: a settable clock and a real webhook receiver on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Clock:
    """A clock tests move by hand (seconds since the epoch)."""

    def __init__(self, start: float = 1_764_028_800.0) -> None:  # Tue 25 Nov 2025 00:00 UTC
        self.now = start

    def __call__(self) -> float:
        return self.now


class Receiver:
    """An HTTP server that records every JSON body POSTed to it. The first `failures` POSTs are
    refused with 500 and kept apart in `refused`; the rest are answered `status`."""

    def __init__(self, status: int = 200, *, failures: int = 0) -> None:
        self.bodies: list[dict[str, object]] = []
        self.refused: list[dict[str, object]] = []
        self.paths: list[str] = []
        self.status = status
        self.failures = failures
        self._got = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                with receiver._got:
                    refuse = len(receiver.refused) < receiver.failures
                    if refuse:
                        receiver.refused.append(body)
                    else:
                        receiver.bodies.append(body)
                        receiver.paths.append(self.path)
                    receiver._got.notify_all()
                self.send_response(500 if refuse else receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def failing_receiver() -> Iterator[Receiver]:
    r = Receiver(status=500)
    yield r
    r.close()
