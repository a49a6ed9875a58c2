"""Fixtures for the dashboard tests: a real uvicorn server, a real Chromium, a real Prometheus."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from stoic.signals import Signals
from stoic.web import ServerLimits, server_config

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "test-token-0123456789"


def wait_healthy(url: str, proc: subprocess.Popen[bytes], seconds: float = 20.0) -> None:
    """Wait until the server `proc` started answers 200 on `url`/healthz; fail with its output if
    it exits first, or after `seconds`."""
    deadline = time.monotonic() + seconds
    for _ in range(int(seconds / 0.05) + 1):  # bounded in count as in time
        assert proc.poll() is None, proc.communicate(timeout=5)
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    raise AssertionError(f"{url} did not answer within {seconds:g} s")


class Server:
    """A uvicorn server on a free 127.0.0.1 port, run in a background thread."""

    def __init__(self, app: Starlette, limits: ServerLimits | None = None, **options: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        if limits is None:
            config = uvicorn.Config(
                app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1, **options
            )
        else:  # as `stoic web` serves it
            config = server_config(app, limits=limits, lifespan="on", timeout_graceful_shutdown=1, **options)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start within 10 s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
        assert not self.thread.is_alive(), "uvicorn did not stop within 10 s"


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """`serve(app, limits=None, **uvicorn_options)` starts `app` under uvicorn and returns the Server;
    stopped at teardown."""
    servers: list[Server] = []

    def start(app: Starlette, limits: ServerLimits | None = None, **options: Any) -> Server:
        server = Server(app, limits, **options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium (the system one; never a downloaded build). Per module: while Playwright's
    sync API runs, the main thread has a running event loop, so tests after it could not
    `asyncio.run`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    # Collects what the Content-Security-Policy blocked, so a test can check the page needs nothing more.
    page.add_init_script(
        """window.__cspViolations = [];
        document.addEventListener('securitypolicyviolation',
            (e) => window.__cspViolations.push(`${e.effectiveDirective} ${e.blockedURI}`));"""
    )
    try:
        yield page
    finally:
        with contextlib.suppress(Exception):
            context.close()


def csp_violations(page: Any) -> list[str]:
    """What the page's Content-Security-Policy has blocked since it loaded."""
    return list(page.evaluate("window.__cspViolations || []"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def trip(dependency: Any, fn: Callable[[], Any], max_calls: int = 500, seconds: float = 10.0) -> int:
    """Call `fn` through `dependency` until its breaker opens; returns the number of calls made.

    The breaker judges the error rate at its own check interval, so a burst may need a few more calls.
    """
    deadline = time.monotonic() + seconds
    for calls in range(1, max_calls + 1):
        dependency.call(fn)
        if dependency.breaker.state == "open":
            return calls
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    raise AssertionError(f"{dependency.name}: breaker did not open after {calls} failing calls")


@pytest.fixture
def signals() -> Iterator[Signals]:
    """A `Signals` on a compressed day (5 s buckets, 300 s days), closed after the test."""
    signals = Signals(interval=5.0, day=300.0)
    yield signals
    signals.close()
