"""The review gate: unguarded outbound connections are found, guarded ones are not, on every path."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stoic.guard import ConfigError, Dependency, ThreadPoolBulkhead
from stoic.guard.httpx import GuardedTransport
from stoic.guard.review import Review


@pytest.fixture
def listener() -> Iterator[tuple[str, int]]:
    """A loopback TCP listener that accepts and answers every connection with an HTTP 200."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = False

    def serve() -> None:
        while not stop:
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                except OSError:
                    pass

    import threading

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[:2]
    stop = True
    thread.join(2)
    server.close()


def connect(address: tuple[str, int]) -> None:
    socket.create_connection(address, timeout=2).close()


def test_an_unguarded_connection_is_found_with_the_line_that_made_it(listener: tuple[str, int]) -> None:
    with Review() as review:
        connect(listener)
    assert [f.address for f in review.findings] == [f"127.0.0.1:{listener[1]}"]
    site = review.findings[0].site
    assert site.startswith(__file__) and site.endswith(" in connect"), site
    assert str(review.findings[0]).startswith(f"unguarded connection to 127.0.0.1:{listener[1]} from ")


def test_sync_async_and_thread_isolated_guarded_calls_are_not_findings(listener: tuple[str, int]) -> None:
    plain = Dependency("review-sync")
    pooled = Dependency("review-pool", bulkhead=ThreadPoolBulkhead(workers=1), timeout=2.0)
    aio = Dependency("review-async")

    async def open_async() -> None:
        _, writer = await asyncio.open_connection(*listener)
        writer.close()
        await writer.wait_closed()

    with Review() as review:
        plain.call(connect, listener)
        pooled.call(connect, listener)
        asyncio.run(aio.acall(open_async))
    assert review.findings == []

    with Review() as review:  # the same asyncio connection outside acall is found
        asyncio.run(open_async())
    assert len(review.findings) == 1


def test_connections_from_tasks_a_guarded_call_starts_are_guarded(listener: tuple[str, int]) -> None:
    """A client may connect from a task of its own (anyio's happy eyeballs does): the task inherits
    the guarded call's context, not its stack."""
    aio = Dependency("review-child")

    async def connect_in_a_task() -> None:
        async def attempt() -> None:
            _, writer = await asyncio.open_connection(*listener)
            writer.close()
            await writer.wait_closed()

        await asyncio.create_task(attempt())

    with Review() as review:
        asyncio.run(aio.acall(connect_in_a_task))
    assert review.findings == []
    with Review() as review:
        asyncio.run(connect_in_a_task())
    assert len(review.findings) == 1


def test_an_httpx_client_through_the_guard_passes_and_a_raw_one_does_not(listener: tuple[str, int]) -> None:
    url = f"http://127.0.0.1:{listener[1]}/"
    with httpx.Client(transport=GuardedTransport(timeout=2.0)) as guarded, Review() as review:
        assert guarded.get(url).status_code == 200
        assert httpx.get(url, timeout=2).status_code == 200
    assert len(review.findings) == 1
    assert review.findings[0].site.startswith(__file__), review.findings[0].site


def test_allowed_addresses_and_the_findings_bound(listener: tuple[str, int]) -> None:
    with Review(allow=["127.0.0.1:*"]) as review:
        connect(listener)
    assert review.findings == []
    with Review(allow=[f"localhost:{listener[1]}"], limit=2) as review:
        for _ in range(5):
            connect(listener)
    assert len(review.findings) == 2 and review.dropped == 3
    with Review() as review:
        pass
    connect(listener)  # after the block: nothing is reviewed
    assert review.findings == []


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"allow": "127.0.0.1"}, "Review.allow must be a list of 'host', 'host:port' or glob patterns"),
        ({"allow": [""]}, "Review.allow must be a list"),
        ({"limit": 0}, "Review.limit must be an integer in [1, 1000000], got 0"),
        ({"limit": True}, "Review.limit must be an integer in [1, 1000000], got True"),
    ],
)
def test_bad_settings_name_the_field(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Review(**kwargs)  # type: ignore[arg-type]
    assert words in str(caught.value)


INNER = """
import socket

import pytest

from stoic.guard import Dependency

ADDRESS = ("127.0.0.1", {port})


def test_raw():
    socket.create_connection(ADDRESS, timeout=2).close()


def test_guarded():
    Dependency("inner").call(lambda: socket.create_connection(ADDRESS, timeout=2).close())


@pytest.mark.stoic_unguarded
def test_exempt():
    socket.create_connection(ADDRESS, timeout=2).close()


@pytest.mark.stoic_unguarded
def test_fixture(stoic_review):
    socket.create_connection(ADDRESS, timeout=2).close()
    assert len(stoic_review.findings) == 1
"""


def run_inner(tmp_path: Path, port: int, *options: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER.format(port=port)))
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path), *options],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )


def test_the_pytest_option_fails_warns_or_stays_off(tmp_path: Path, listener: tuple[str, int]) -> None:
    failed = run_inner(tmp_path, listener[1], "--stoic-review=fail")
    assert "1 failed, 3 passed" in failed.stdout, failed.stdout
    assert "FAILED test_inner.py::test_raw" in failed.stdout
    inner = tmp_path / "test_inner.py"
    assert f"unguarded connection to 127.0.0.1:{listener[1]} from {inner}:" in failed.stdout

    warned = run_inner(tmp_path, listener[1], "--stoic-review=warn")
    assert "4 passed, 1 warning" in warned.stdout, warned.stdout
    assert "UnguardedConnection" in warned.stdout

    allow = ("--stoic-review-allow", "127.0.0.1:*", "-k", "not fixture")
    allowed = run_inner(tmp_path, listener[1], "--stoic-review=fail", *allow)
    assert "3 passed, 1 deselected" in allowed.stdout, allowed.stdout

    off = run_inner(tmp_path, listener[1])
    assert "4 passed" in off.stdout, off.stdout
