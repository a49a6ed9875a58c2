"""The hand-spoken memcached calls: the sync hot path (get/set) and the asyncio node. A reply split
over reads still parses; error lines, hostile replies and overruns fail the call, drop the
connection and leave the next call a clean one; the asyncio node keeps the same time and byte bounds."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable

import pytest

from stoic.cache import (
    AsyncMemcachedNode,
    AsyncZonalCache,
    InvalidConfig,
    LocalMemcached,
    MemcachedNode,
    ReplyTooLarge,
)
from stoic.cache._wire import ProtocolError
from stoic.guard import Registry

from .test_hostile import _read_command, fake_memcached

Reply = Callable[[bytes], list[bytes]]


def _scripted(reply: Reply) -> Callable[[socket.socket, threading.Event], None]:
    """A server answering each command with `reply(command)`: pieces sent 20 ms apart."""

    def handle(conn: socket.socket, stop: threading.Event) -> None:
        for _ in range(100):  # commands per connection
            command = _read_command(conn)
            if not command:
                return
            for piece in reply(command):
                if stop.wait(0.02):
                    return
                conn.sendall(piece)

    return handle


def _split_replies(command: bytes) -> list[bytes]:
    if command.startswith(b"get broken"):
        return [b"SERVER_ERROR out of memory\r\n"]
    if command.startswith(b"get"):
        return [b"VALUE k 0 5\r\nhe", b"llo\r\nEN", b"D\r\n"]
    if command.startswith(b"set refused"):
        return [b"NOT_STORED\r\n"]
    return [b"STO", b"RED\r\n"]


def test_a_reply_split_over_reads_parses_and_errors_drop_the_connection() -> None:
    with fake_memcached(_scripted(_split_replies)) as address:
        node = MemcachedNode(address, 2.0)
        assert node.get(b"k") == b"hello"  # the first call connects through pymemcache
        assert node.get(b"k") == b"hello"  # later calls are spoken directly
        node.set(b"k", b"v", 0)
        with pytest.raises(ProtocolError, match=r"server error: SERVER_ERROR out of memory"):
            node.get(b"broken")
        assert node.get(b"k") == b"hello"  # a new connection: nothing of the failed call is left
        with pytest.raises(OSError, match=r"did not store b'refused'"):
            node.set(b"refused", b"v", 0)
        node.close()


def _garbage(command: bytes) -> list[bytes]:
    if command.startswith(b"set"):
        return [b"STORED\r\n"]
    return [b"VALUE k 0 3\r\nabcdefgh\r\nEND\r\n"]  # longer than its VALUE line says


def test_a_reply_longer_than_announced_is_a_protocol_error() -> None:
    with fake_memcached(_scripted(_garbage)) as address:
        node = MemcachedNode(address, 2.0)
        for _ in range(2):
            node.set(b"k", b"v", 0)  # (re)connects: the failed call dropped its connection
            with pytest.raises(ProtocolError, match=r"get reply longer than its VALUE line says"):
                node.get(b"k")
        node.close()


def test_the_hot_path_restarts_cleanly_after_a_server_restart(
    memcached3: LocalMemcached, prefix: str
) -> None:
    address = memcached3.zones["zone-c"][1]
    node = MemcachedNode(address, 1.0)
    node.set(prefix.encode() + b"k", b"\x00sv", 0)
    assert node.get(prefix.encode() + b"k") == b"\x00sv"
    memcached3.kill(address)
    memcached3.restart(address)
    assert node.get(prefix.encode() + b"k") is None  # the dead socket is replaced, once, at once
    node.set(prefix.encode() + b"k", b"\x00sw", 0)
    assert node.get(prefix.encode() + b"k") == b"\x00sw"
    node.close()


def _warm_then_hostile(command: bytes) -> list[bytes]:
    if command.startswith(b"get drip"):
        return _drip(command)
    if command.startswith(b"get endless"):
        return _endless(command)
    key = command.split()[1]
    return [b"VALUE %s 0 5\r\nhello\r\nEND\r\n" % key]


def test_the_hot_path_bounds_a_call_in_time_and_bytes_from_its_second_read() -> None:
    with fake_memcached(_scripted(_warm_then_hostile)) as address:
        node = MemcachedNode(address, 0.1, max_reply=256 * 1024)
        for hostile, error, message in [
            (b"drip", TimeoutError, r"no reply within 0.1 s"),
            (b"endless", ReplyTooLarge, r"passed max_reply=262144 bytes"),
        ]:
            assert node.get(b"warm") == b"hello"  # connected: the next get takes the hot path
            start = time.monotonic()
            with pytest.raises(error, match=message):
                node.get(hostile)
            assert time.monotonic() - start < 1.0  # the drip takes about 1.5 s, the flood longer
        assert node.get(b"warm") == b"hello"  # a fresh connection, nothing left of the failed calls
        node.close()


# -- the asyncio memcached node ----------------------------------------------------------------------


def _drip(command: bytes) -> list[bytes]:
    value = b"dripped, one byte at a time"
    return [bytes([b]) for b in b"VALUE k 0 %d\r\n%s\r\nEND\r\n" % (len(value), value)]


def _endless(command: bytes) -> list[bytes]:
    return [b"VALUE k 0 1500000000\r\n"] + [b"\x00" * 65536] * 100


def test_the_async_node_bounds_a_call_in_time_and_bytes() -> None:
    async def scenario() -> None:
        with fake_memcached(_scripted(_drip)) as address:
            node = AsyncMemcachedNode(address, 0.1)
            start = time.monotonic()
            with pytest.raises(TimeoutError, match=r"no reply within 0.1 s"):
                await node.get(b"k")
            assert time.monotonic() - start < 1.0  # the whole reply, not each read (about 1.5 s)
            await node.close()
        with fake_memcached(_scripted(_endless)) as address:
            node = AsyncMemcachedNode(address, 10.0, max_reply=256 * 1024)
            with pytest.raises(ReplyTooLarge, match=r"passed max_reply=262144 bytes"):
                await node.get(b"k")
            await node.close()
        with fake_memcached(_scripted(_split_replies)) as address:
            node = AsyncMemcachedNode(address, 2.0)
            assert await node.get(b"k") == b"hello"
            await node.set(b"k", b"v", 0)
            with pytest.raises(ProtocolError, match=r"SERVER_ERROR out of memory"):
                await node.get(b"broken")
            assert await node.get(b"k") == b"hello"
            with pytest.raises(OSError, match=r"did not store b'refused'"):
                await node.set(b"refused", b"v", 0)
            await node.close()

    asyncio.run(scenario())


def test_the_async_cache_counts_a_hostile_reply_as_an_error_and_falls_back(
    memcached3: LocalMemcached, prefix: str
) -> None:
    async def scenario() -> None:
        with fake_memcached(_scripted(_drip)) as address:
            zones = {"zone-a": [address], "zone-b": memcached3.zones["zone-b"]}
            async with AsyncZonalCache(zones, "zone-a", registry=Registry(), name="hostile", timeout=0.1,
                                       breaker=None) as cache:
                await cache.zone("zone-b").store([(prefix.encode() + b"k", b"\x00sfrom b")], 60)
                assert await cache.get(prefix + "k") == "from b"
                assert cache.snapshot()["operations"]["get"] == {"zone-a": {"error": 1}, "zone-b": {"hit": 1}}

    asyncio.run(scenario())


def test_the_async_cache_checks_its_settings_as_the_sync_one(memcached3: LocalMemcached) -> None:
    with pytest.raises(InvalidConfig, match=r"timeout must be a number of seconds in \(0, 60\], got 0"):
        AsyncZonalCache(memcached3.zones, "zone-a", timeout=0, registry=Registry())
    with pytest.raises(InvalidConfig, match=r"local_zone must be one of"):
        AsyncZonalCache(memcached3.zones, "zone-x", registry=Registry())
    with pytest.raises(InvalidConfig, match=r"backend must be one of \['memcached', 'redis', 'valkey'\]"):
        AsyncZonalCache(memcached3.zones, "zone-a", backend="mongo", registry=Registry())
    with pytest.raises(InvalidConfig, match=r"zone must be one of"):
        AsyncZonalCache(memcached3.zones, "zone-a", registry=Registry()).zone("zone-x")
