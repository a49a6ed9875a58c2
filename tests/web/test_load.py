"""Under load the dashboard stays up: half-sent requests, too many connections, many live streams."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stoic.fit import Catalog
from stoic.guard import Dependency, Registry
from stoic.web import ServerLimits, create_app

from .conftest import free_port

PARTIAL = b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def _low_file_limit() -> None:
    # The server may hold at most 512 descriptors: 600 half-sent requests would exhaust it.
    resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))


@pytest.fixture
def stoic_web(tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(*flags: str) -> str:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "stoic", "web", "--port", str(port), *flags],
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "stoic-web.log").open("wb"),  # a pipe nobody reads could fill and stall it
            env={**os.environ, "STOIC_WEB_TOKEN": "load-test-token"},
            preexec_fn=_low_file_limit,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (tmp_path / "stoic-web.log").read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    return url
            assert time.monotonic() < deadline, "stoic web did not answer within 20 s"
            time.sleep(0.1)

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _open(sockets: list[socket.socket]) -> int:
    """How many of `sockets` the server still holds open."""
    still = 0
    for sock in sockets:
        sock.setblocking(False)
        try:
            still += sock.recv(1) != b""
        except BlockingIOError:
            still += 1  # nothing to read and not closed: the server still holds it
        except OSError:
            pass
    return still


def test_half_sent_headers_cannot_exhaust_the_server(stoic_web: Any, tmp_path: Path) -> None:
    log = tmp_path / "stoic-web.log"
    url = stoic_web("--max-connections", "120", "--header-timeout", "2")
    port = int(url.rsplit(":", 1)[1])
    attackers: list[socket.socket] = []
    try:
        for _ in range(600):  # more than the server has descriptors for
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(PARTIAL)
            attackers.append(sock)
        # While they hang on, the health check still gets in and is answered.
        health = httpx.get(f"{url}/healthz", timeout=10)
        assert health.status_code == 200
        assert health.json() == {"ok": True}
        # Dribbling more header bytes does not buy time.
        for sock in attackers:
            with contextlib.suppress(OSError):
                sock.send(b"x")
        held = _open(attackers)
        assert held <= 120, f"the server holds {held} half-sent connections, more than --max-connections"
        assert "Too many open files" not in log.read_text(), "the server ran out of descriptors"
        # Past --header-timeout every half-sent request is closed.
        deadline = time.monotonic() + 10
        while _open(attackers) and time.monotonic() < deadline:
            time.sleep(0.25)
        assert _open(attackers) == 0, "half-sent requests outlived --header-timeout"
        assert httpx.get(f"{url}/api/dependencies", timeout=10).status_code == 200
    finally:
        for sock in attackers:
            sock.close()


def test_a_full_server_answers_503_when_no_connection_can_be_closed(serve: Any) -> None:
    app = create_app(Registry(), scenarios=Catalog(), interval=0.2, stream_lifetime=30)
    server = serve(app, ServerLimits(max_connections=3))
    with contextlib.ExitStack() as streams:
        for _ in range(3):  # every connection busy with a live stream: none is idle to close
            response = streams.enter_context(httpx.stream("GET", f"{server.url}/api/stream", timeout=5))
            assert response.status_code == 200
        refused = httpx.get(f"{server.url}/healthz", timeout=5)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["field"] == "max_connections"
    # An idle keep-alive connection, on the other hand, is closed to make room.
    with httpx.Client(timeout=5) as idle:
        for _ in range(3):
            assert idle.get(f"{server.url}/healthz").status_code == 200
        assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200


def _read_states(sock: socket.socket, want: int, seconds: float) -> list[dict[str, Any]]:
    """The first `want` state frames on a raw HTTP/1.0 SSE connection (bounded in time)."""
    sock.settimeout(0.5)
    buffer = b""
    deadline = time.monotonic() + seconds
    states: list[dict[str, Any]] = []
    while len(states) < want and time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            buffer += chunk
        *frames, buffer = buffer.split(b"\n\n")
        for frame in frames:
            for line in frame.split(b"\n"):
                if line.startswith(b"data: {"):
                    states.append(json.loads(line[6:]))
    return states[:want]


def _stream_request(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /api/stream HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    return sock


def _status_and_rest(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    sock.settimeout(5)
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 65536:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    raw, _, rest = head.partition(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:] if ": " in line)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        rest += chunk
    return int(lines[0].split()[1]), headers, rest


def test_many_subscribers_share_one_computed_state_and_the_rest_get_503(serve: Any) -> None:
    registry = Registry()
    for i in range(30):
        Dependency(f"dependency-{i:02d}", registry=registry, owner=f"team-{i % 5}").call(lambda: "ok")
    interval = 0.5
    server = serve(create_app(registry, scenarios=Catalog(), interval=interval, max_streams=40))
    subscribers: list[socket.socket] = []
    refused = []
    try:
        started = time.monotonic()
        for _ in range(50):
            sock = _stream_request(server.port)
            status, headers, rest = _status_and_rest(sock)
            if status == 200:
                subscribers.append(sock)
            else:
                refused.append((status, headers, rest))
                sock.close()
        assert len(subscribers) == 40
        assert len(refused) == 10
        for status, headers, rest in refused:
            assert status == 503
            assert int(headers["retry-after"]) >= 1
            reason = json.loads(rest)
            assert reason["field"] == "streams"
            assert "at most 40 live streams" in reason["error"]

        # While 40 streams run, the health check is answered.
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200

        states = [_read_states(sock, 3, 15) for sock in subscribers]
        elapsed = time.monotonic() - started
        assert all(len(s) == 3 for s in states), [len(s) for s in states]
        assert all(len(s[0]["dependencies"]) == 30 for s in states)
        # Computed once per round and fanned out: 120 frames carry only as many distinct states as
        # rounds have passed. Computed per subscriber, nearly every frame would be its own.
        rounds = {s["now"] for frames in states for s in frames}
        assert len(rounds) <= elapsed / interval + 2, (len(rounds), elapsed)
    finally:
        for sock in subscribers:
            sock.close()

    # Closed streams give their slots back.
    deadline = time.monotonic() + 10
    while True:
        sock = _stream_request(server.port)
        status, _, _ = _status_and_rest(sock)
        sock.close()
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200, "the slots of closed streams were never released"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"header_timeout": 0}, "header_timeout: must be a number in [0.1, 300], got 0"),
        ({"max_connections": 0}, "max_connections: must be an integer in [1, 1000000], got 0"),
        ({"max_connections": 2.5}, "max_connections: must be an integer in [1, 1000000], got 2.5"),
        ({"keep_alive": True}, "keep_alive: must be an integer in [1, 300], got True"),
        ({"max_header_bytes": 10}, "max_header_bytes: must be an integer in [1024, 1048576], got 10"),
    ],
)
def test_bad_server_limits_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        ServerLimits(**kwargs)
    assert str(caught.value) == f"ServerLimits.{message}"


def test_server_config_wants_server_limits() -> None:
    from stoic.web import server_config

    with pytest.raises(TypeError, match=r"^limits: must be a ServerLimits, got dict$"):
        server_config(create_app(Registry(), scenarios=Catalog()), limits={"max_connections": 5})
