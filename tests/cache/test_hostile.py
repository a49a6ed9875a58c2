"""Hostile servers and hostile stored items: every read ends by its deadline, within its byte budget,
and reads what it cannot trust as a counted miss; values that cannot round-trip are refused."""

from __future__ import annotations

import enum
import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import pytest
from pymemcache.client.base import Client

from stoic.cache import (
    InvalidConfig,
    InvalidValue,
    LocalMemcached,
    MemcachedNode,
    PlainSerializer,
    ReplyTooLarge,
    ZonalCache,
)
from stoic.cache import _frames as frames
from stoic.cache._errors import CorruptValue
from stoic.guard import Registry

Handler = Callable[[socket.socket, threading.Event], None]


@contextmanager
def fake_memcached(handler: Handler) -> Iterator[str]:
    """A small hostile server on 127.0.0.1: each connection runs `handler(conn, stop)` on its thread.

    Yields "host:port". On exit the listener and every connection close, and the threads are joined.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()
    conns: list[socket.socket] = []
    workers: list[threading.Thread] = []

    def serve(conn: socket.socket) -> None:
        try:
            handler(conn, stop)
        except OSError:
            pass  # the client hung up: that is what a bounded read does
        finally:
            conn.close()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conns.append(conn)
            worker = threading.Thread(target=serve, args=(conn,), daemon=True)
            workers.append(worker)
            worker.start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        acceptor.join(5.0)
        listener.close()
        for conn in conns:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for worker in workers:
            worker.join(5.0)


def _read_command(conn: socket.socket) -> bytes:
    data = b""
    for _ in range(1000):  # a get line is short
        if b"\r\n" in data:
            break
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _raw_set(address: str, key: str, data: bytes) -> None:
    """Write `data` as any other memcached client could."""
    host, port = address.split(":")
    raw = Client((host, int(port)))
    try:
        assert raw.set(key, data, noreply=False)
    finally:
        raw.close()


def _one_zone(address: str, **options: object) -> ZonalCache:
    options.setdefault("registry", Registry())
    options.setdefault("breaker", None)
    return ZonalCache({"zone-a": [address]}, "zone-a", **options)  # type: ignore[arg-type]


# -- 1. a forged chunk manifest ------------------------------------------------------------------


def _manifest(**fields: object) -> bytes:
    raw = {"id": "00112233aabbccdd", "n": 3, "len": 3 * 2048, "sum": "0" * 32}
    raw.update(fields)
    return frames.CHUNKED_HEAD + json.dumps(raw).encode()


def test_a_forged_manifest_is_a_fast_counted_corrupt_read(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    cache = make_cache(memcached3)
    key = prefix + "poisoned"
    forged = _manifest(n=1_000_000, len=1_000_000)  # 70-odd bytes claiming a million chunks
    for zone in cache.zones:  # any client can write this to every zone
        _raw_set(cache.zone(zone).server_for(key.encode()).address, key, forged)
    start = time.monotonic()
    assert cache.get(key, "absent") == "absent"
    assert cache.get_many([key]) == {}
    elapsed = time.monotonic() - start
    assert elapsed < 1.0  # never builds or asks for the million chunk keys (timeout 0.1 s)
    ops = cache.snapshot()["operations"]
    assert ops["get"] == {zone: {"corrupt": 1} for zone in cache.zones}
    assert ops["get_many"]["zone-a"] == {"corrupt": 1}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"n": 1_000_000, "len": 1_000_000}, r"n must be in 1\.\.4096"),
        ({"n": 0}, r"n must be in 1\.\.4096"),
        ({"n": 4000, "len": 5000}, r"n=4000 does not fit len=5000"),
        ({"n": True}, "n and len must be integers"),
        ({"n": 2.0}, "n and len must be integers"),
        ({"len": "6144"}, "n and len must be integers"),
        ({"id": "x y\r\nflush_all"}, "id must be 1..32 lowercase hex digits"),
        ({"id": ""}, "id must be 1..32 lowercase hex digits"),
        ({"sum": "nope"}, "sum must be 32 lowercase hex digits"),
    ],
)
def test_forged_manifests_are_refused_before_any_chunk_is_read(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(CorruptValue, match=message):
        frames.decode_head(_manifest(**fields))


def test_a_manifest_written_by_the_cache_passes_its_own_checks() -> None:
    payload = bytes(range(256)) * 40  # 10,240 bytes in chunks of 1024 and of 3000
    for chunk_size in (1024, 3000):
        items = frames.encode(b"k", payload, chunk_size)
        manifest = frames.decode_head(items[-1][1])
        assert isinstance(manifest, frames.Manifest)
        assert manifest.n == len(items) - 1
        assert all(len(data) <= manifest.chunk_bound() for _, data in items[:-1])
        assert manifest.join([data for _, data in items[:-1]]) == payload


def test_a_value_needing_more_than_max_chunks_is_refused_with_its_sizes() -> None:
    message = r"needs 4097 chunks of chunk_size=1024 bytes, more than MAX_CHUNKS=4096"
    with pytest.raises(InvalidValue, match=message):
        frames.encode(b"k", b"x" * (4096 * 1024 + 1), 1024)


def test_a_large_value_is_read_in_batches_under_max_reply(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    # 40 chunks of 1 KiB held by two servers, read with replies capped near 5 KiB.
    cache = make_cache(memcached3, chunk_size=1024, max_reply=1024 + 4096)
    value = bytes(range(256)) * 160
    assert cache.set(prefix + "big", value, policy="all").wait(5.0)
    assert cache.get(prefix + "big") == value
    assert cache.snapshot()["operations"]["get"] == {"zone-a": {"hit": 1}}


# -- 2. and 3. replies that never end, or end too slowly ---------------------------------------------


def _endless_value(conn: socket.socket, stop: threading.Event) -> None:
    _read_command(conn)
    conn.sendall(b"VALUE k 0 1500000000\r\n")
    zeros = bytes(65536)
    for _ in range(25_000):  # at most 1.6 GB, and the client hangs up long before
        if stop.is_set():
            return
        conn.sendall(zeros)


def test_an_endless_reply_stops_at_max_reply() -> None:
    with fake_memcached(_endless_value) as address:
        node = MemcachedNode(address, 10.0, max_reply=2 * 1024 * 1024)
        start = time.monotonic()
        with pytest.raises(ReplyTooLarge, match=r"passed max_reply=2097152 bytes"):
            node.get(b"k")
        assert time.monotonic() - start < 5.0  # the byte cap ended it, not the 10 s deadline
        node.close()


def test_an_endless_reply_is_an_error_and_ends_by_the_deadline() -> None:
    with fake_memcached(_endless_value) as address:
        cache = _one_zone(address, timeout=0.1)
        start = time.monotonic()
        assert cache.get("k", "absent") == "absent"
        assert time.monotonic() - start < 1.0  # one call, bounded in time and bytes (default cap)
        assert cache.snapshot()["operations"]["get"] == {"zone-a": {"error": 1}}
        cache.close()


def _drip(conn: socket.socket, stop: threading.Event) -> None:
    _read_command(conn)
    value = b"\x00sdripped, one byte at a time"
    reply = b"VALUE k 0 %d\r\n%s\r\nEND\r\n" % (len(value), value)
    for byte in reply:  # about 2.5 s in all: every recv returns well within the 0.1 s timeout
        if stop.wait(0.05):
            return
        conn.sendall(bytes([byte]))


def test_a_dripped_reply_times_out_per_call_not_per_recv() -> None:
    with fake_memcached(_drip) as address:
        cache = _one_zone(address, timeout=0.1)
        start = time.monotonic()
        assert cache.get("k", "absent") == "absent"
        elapsed = time.monotonic() - start
        assert elapsed < 1.0  # the whole call is bounded by its 0.1 s deadline, not each byte
        assert cache.snapshot()["operations"]["get"] == {"zone-a": {"error": 1}}
        node = cache.zone("zone-a").servers[address].node
        with pytest.raises(TimeoutError, match=r"no reply within 0.1 s"):
            node.get(b"k")
        cache.close()


def test_a_slow_call_does_not_shorten_the_next_ones(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    # After a dripped reply shortened the socket's kernel timeout, a fresh call gets its full time.
    with fake_memcached(_drip) as address:
        cache = _one_zone(address, timeout=0.3)
        node = cache.zone("zone-a").servers[address].node
        with pytest.raises(TimeoutError):
            node.get(b"k")
        with pytest.raises(TimeoutError):
            node.get(b"k")  # reconnects: the first call's socket was closed mid-reply
        cache.close()
    cache = make_cache(memcached3, timeout=0.3)
    for i in range(50):
        assert cache.set(f"{prefix}{i}", i).wait(2.0)
        assert cache.get(f"{prefix}{i}") == i
    assert cache.snapshot()["operations"]["get"] == {"zone-a": {"hit": 50}}


# -- 4. values that cannot round-trip ------------------------------------------------------------


class Colour(enum.IntEnum):
    RED = 1


def _nested(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ((1, 2), r"value is a tuple, which would come back as a list"),
        ({1: "a"}, r"value has a key of type int \(1\), which would come back as a str"),
        ({"a": [1, (2,)]}, r"value\['a'\]\[1\] is a tuple"),
        ({"a": {None: 1}}, r"value\['a'\] has a key of type NoneType"),
        (Colour.RED, r"value is of type Colour, which would not come back as one"),
        ([{"k": {1, 2}}], r"value\[0\]\['k'\] is of type set"),
        ([b"raw"], r"value\[0\] is bytes inside a JSON value"),
        (_nested(100_000), r"value(\[0\]){8}\.\.\. is nested more than MAX_DEPTH=100"),
        ("\ud800", r"value is a string that UTF-8 cannot encode \(surrogates not allowed at index 0\)"),
        ({"t": ["ok", "x\udfff"]}, r"value\['t'\]\[1\] is a string that UTF-8 cannot encode"),
        (float("nan"), r"got float: Out of range float values"),
    ],
)
def test_values_that_would_not_round_trip_are_refused(value: object, message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        PlainSerializer().dumps(value)


def test_what_is_accepted_comes_back_equal_and_of_the_same_types() -> None:
    s = PlainSerializer()
    deep = _nested(99)
    for value in (
        {"a": [1, 2.5, -0.0, None, True, "é", {"b": []}]},
        [10**100, "\U0001f600", ""],
        deep,
        "text",
        b"\x00\xff",
    ):
        back = s.loads(s.dumps(value))
        assert back == value and repr(back) == repr(value)


def test_the_cache_refuses_them_before_writing(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    cache = make_cache(memcached3)
    for value in ((1, 2), {1: "a"}, "\ud800", _nested(5000)):
        with pytest.raises(InvalidValue):
            cache.set(prefix + "k", value)
        with pytest.raises(InvalidValue):
            cache.add(prefix + "k", value)
    assert cache.get(prefix + "k") is None
    assert cache.snapshot()["operations"].get("set") is None  # nothing reached any zone


def test_a_stored_value_nested_too_deep_to_read_is_a_counted_corrupt_read(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    cache = make_cache(memcached3, fallback_on_miss=False)
    key = prefix + "deep"
    deep = b"\x00j" + b"[" * 200_000 + b"]" * 200_000
    _raw_set(cache.zone("zone-a").server_for(key.encode()).address, key, deep)
    assert cache.get(key, "absent") == "absent"
    assert cache.snapshot()["operations"]["get"]["zone-a"] == {"corrupt": 1}


# -- 5. one key's writes reach every zone in one order -------------------------------------------

WRITERS = 12
KEYS = 20
ROUNDS = 10


def test_concurrent_writes_to_one_key_leave_every_zone_equal(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    # Each round, every thread writes the same fresh 20 keys at once: each key's final value is a
    # new race, so 200 keys each get a chance to end up different between zones.
    cache = make_cache(memcached3, max_concurrent=WRITERS, timeout=1.0)  # a slow spell is no failure here
    keys = [[f"{prefix}{r}:{k}" for k in range(KEYS)] for r in range(ROUNDS)]
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def write(t: int) -> None:
        try:
            for r in range(ROUNDS):
                start.wait(30.0)
                for key in keys[r]:
                    cache.set(key, [t, r], policy="all")
        except BaseException as exc:  # reported below: a failure in a thread must fail the test
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race needs a switch
    try:
        threads = [threading.Thread(target=write, args=(t,)) for t in range(WRITERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120.0)
    finally:
        sys.setswitchinterval(interval)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert cache.flush_writes(30.0)
    differing = {}
    for key in (key for round_keys in keys for key in round_keys):
        seen = {zone: cache.get(key, zone=zone) for zone in cache.zones}
        if len({json.dumps(v) for v in seen.values()}) != 1:
            differing[key] = seen
    assert differing == {}
    outcomes = {o for op in cache.snapshot()["operations"].values() for z in op.values() for o in z}
    assert outcomes == {"ok", "hit"}  # every write reached every zone: no queue was full, no error


def test_max_reply_must_hold_one_chunk(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache]
) -> None:
    message = r"max_reply must be an integer in 5120\.\.1099511627776, got 2000"
    with pytest.raises(InvalidConfig, match=message):
        make_cache(memcached3, chunk_size=1024, max_reply=2000)
    assert make_cache(memcached3).max_reply == 64 * 1024 * 1024
    assert make_cache(memcached3, chunk_size=100 * 1024 * 1024).max_reply == 200 * 1024 * 1024 + 4096
