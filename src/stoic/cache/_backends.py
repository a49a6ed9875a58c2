"""One cache server, spoken to in raw bytes: memcached through pymemcache, Valkey/Redis through redis.

Every method raises on a transport or server error; a miss is `None` / an absent key, never an error.
Keys arrive already checked by `check_key` (the cache checks every key at its edge), so nodes pass
them on as they are.
"""

from __future__ import annotations

import errno
import math
import socket
import struct
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

from pymemcache.client.base import Client as PymemcacheClient  # type: ignore[import-untyped]
from pymemcache.exceptions import MemcacheUnexpectedCloseError  # type: ignore[import-untyped]

from ._errors import InvalidConfig
from ._wire import (
    FIRST_READ,
    STORED,
    ReplyTooLarge,
    get_complete,
    read_more,
    store_command,
    store_complete,
    stored,
    value_of,
)
from ._wire import raw_recv as _wire_recv

MAX_DUMP_SECONDS = 300.0  # a key listing never runs longer than this
# The most bytes one call may read from a server: far above one item (chunk_size, at most 1 MiB by
# default) so only a broken or hostile server reaches it. Chunked values are read in batches under it.
DEFAULT_MAX_REPLY = 64 * 1024 * 1024
T = TypeVar("T")
_STALE_ERRORS = (MemcacheUnexpectedCloseError, ConnectionError)


class Node(Protocol):
    """What the cache needs from one server."""

    address: str

    def get(self, key: bytes) -> bytes | None: ...
    def get_many(self, keys: list[bytes]) -> dict[bytes, bytes]: ...
    def set(self, key: bytes, data: bytes, ttl: int) -> None:
        """Store one item; raise if the server did not store it."""
        ...

    def set_many(self, items: list[tuple[bytes, bytes]], ttl: int) -> None:
        """Store items in one pipelined round trip; raise if any was not stored."""
        ...

    def add(self, key: bytes, data: bytes, ttl: int) -> bool: ...
    def delete(self, key: bytes) -> bool: ...
    def incr(self, key: bytes, delta: int) -> int | None:
        """Add `delta` (>= 0) to a counter; None if the key is absent. Wraps at 2**64."""
        ...

    def decr(self, key: bytes, delta: int) -> int | None:
        """Take `delta` (>= 0) from a counter, never below 0; None if the key is absent."""
        ...

    def touch(self, key: bytes, ttl: int) -> bool: ...
    def dump(self, batch: int) -> Iterator[list[tuple[bytes, int]]]:
        """Every key with its remaining TTL in seconds (0 = none), in batches."""
        ...

    def count(self) -> int: ...
    def stats(self) -> dict[str, Any]:
        """items, hits, misses, memory_bytes, uptime_s."""
        ...

    def close(self) -> None: ...


NodeFactory = Callable[[str, float], Node]
"""Builds a node from an address "host:port" and a socket timeout in seconds."""


def parse_address(address: object, field: str = "address") -> tuple[str, int]:
    """Split "host:port", or raise `InvalidConfig` naming `field`."""
    if not isinstance(address, str) or address.count(":") != 1:
        raise InvalidConfig(f"{field} must be 'host:port' (e.g. '127.0.0.1:11211'), got {address!r}")
    host, _, port_text = address.partition(":")
    if not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise InvalidConfig(f"{field} must be 'host:port' with port in 1..65535, got {address!r}")
    return host, int(port_text)


def _timeval(seconds: float) -> bytes:
    return struct.pack("@ll", *divmod(max(1, round(seconds * 1_000_000)), 1_000_000))


class CallSocket(socket.socket):
    """A blocking socket whose reads are bounded per call, not per recv: in time and in bytes.

    The node sets `first` before each call (one memcached command, one reply); a socket made
    during the call starts with it set. The reply must be read within `timeout` of the call's first
    recv, and may be at most `max_reply` bytes. The kernel bounds each recv (SO_RCVTIMEO, no Python
    polling); that bound is shortened to the time left only when a reply needs more than one recv
    late in the call, so a server dripping a byte at a time cannot stretch a call much past its
    deadline (at most `timeout` * 1.25), and one streaming an endless value cannot grow the client
    past `max_reply`. Past either limit the read fails and pymemcache closes the connection, so no
    half-read reply is left on the socket for the next call.
    """

    __slots__ = ("_budget_for", "_deadline", "_full", "_left", "_max_reply", "_slack", "first")

    def configure(self, timeout: float, max_reply: int) -> None:
        self._full = timeout
        self._slack = timeout / 4  # re-arming costs system calls: skip it while little time has gone
        self._max_reply = max_reply
        self._deadline = 0.0
        self._budget_for = -1.0
        self._left = max_reply
        self.first = True
        self._arm(timeout)
        self.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(timeout))

    def _arm(self, seconds: float) -> None:
        self.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(seconds))

    def recv(self, size: int, flags: int = 0) -> bytes:
        # Most replies take one recv: it starts the call's deadline and is bounded by the kernel
        # with the full timeout; only later recvs of the same call pay for the checks.
        if self.first:
            self.first = False
            self._deadline = _monotonic() + self._full
            return _recv(self, size, flags)
        return self._recv_later(size, flags)

    def _recv_later(self, size: int, flags: int) -> bytes:
        if self._budget_for != self._deadline:  # the call's second recv: its byte budget starts
            self._budget_for = self._deadline
            self._left = self._max_reply
        remaining = self._deadline - _monotonic()
        if remaining <= 0:
            raise BlockingIOError(errno.EAGAIN, "call deadline passed")
        if remaining < self._full - self._slack:
            # Late in the call: this recv may wait only for the time left. The full bound comes
            # back at once, so a call's first recv never needs a system call to restore it.
            self._arm(remaining)
            try:
                data = _recv(self, size, flags)
            finally:
                self._arm(self._full)
        else:
            data = _recv(self, size, flags)
        left = self._left = self._left - len(data)
        if left < 0:
            raise ReplyTooLarge(f"reply to one call passed max_reply={self._max_reply} bytes")
        return data


_monotonic = time.monotonic
_recv = socket.socket.recv  # the C method, called directly: cheaper than super() on every get


class KernelTimeouts:
    """A `socket_module` for pymemcache whose sockets are `CallSocket`s: blocking, with reads and
    writes bounded by the kernel (SO_RCVTIMEO / SO_SNDTIMEO) instead of by Python.

    A socket with Python's `settimeout` polls before every send and recv: two more system calls
    on each get, about a tenth of a loopback round trip. A timed-out read here fails with EAGAIN
    (`BlockingIOError`), which the node reports as `TimeoutError`.
    """

    def __init__(self, timeout: float, max_reply: int = DEFAULT_MAX_REPLY) -> None:
        self._timeout = timeout
        self._max_reply = max_reply

    def __getattr__(self, name: str) -> Any:
        return getattr(socket, name)

    def socket(self, *args: Any) -> socket.socket:
        sock = CallSocket(*args)
        sock.configure(self._timeout, self._max_reply)
        return sock


class CheckedKeyClient(PymemcacheClient):  # type: ignore[misc]
    """pymemcache's `Client` without its own key check: ours (`check_key`) is stricter and has
    already run, and pymemcache's costs more than the rest of a cache hit's Python code."""

    def check_key(self, key: bytes, key_prefix: bytes) -> bytes:
        return key  # key_prefix is never set here


class MemcachedNode:
    """A memcached server through pymemcache: one plain client per thread.

    `get` and `set`, the hot path, speak the protocol directly on the client's socket (see _wire):
    one send, one C-level recv, one parse, with the per-call deadline and byte cap applied only
    when a reply needs a second read. Every other call goes through pymemcache.

    pymemcache's `Client` is not thread-safe; one per thread avoids the pooled client's
    per-call checkout, which costs more than the rest of the cache's fast path.
    """

    def __init__(self, address: str, timeout: float, max_reply: int = DEFAULT_MAX_REPLY) -> None:
        self.address = address
        self._server = parse_address(address)
        self._timeout = timeout
        self.max_reply = max_reply
        self._first_read = min(FIRST_READ, max_reply)
        self._local = threading.local()
        # Weak: a client dies with its thread's local storage, so thread churn leaks no sockets.
        self._clients: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()

    @property
    def _client(self) -> Any:
        try:
            return self._local.client
        except AttributeError:
            client = CheckedKeyClient(
                self._server,
                connect_timeout=self._timeout,
                timeout=None,  # bounded by the kernel instead: see KernelTimeouts
                socket_module=KernelTimeouts(self._timeout, self.max_reply),
                no_delay=True,
                default_noreply=False,  # a write must be acknowledged to count for its zone
            )
            with self._lock:
                self._clients.add(client)
            self._local.client = client
            return client

    def _run(self, call: Callable[[Any], T]) -> T:
        """Run `call(client)`, once more if the client's connection had gone stale.

        A server that restarted leaves each thread's open socket dead; pymemcache closes it on the
        first error, so one retry reconnects. A client with no socket is not retried: its error
        is about the server now (refused, timed out), which the guard must see at once.
        """
        client = self._client
        sock = client.sock
        if stale := sock is not None:
            sock.first = True  # a new call: its reply gets a fresh deadline and byte budget
        try:
            try:
                return call(client)
            except _STALE_ERRORS:
                if not stale:
                    raise
                return call(client)
        except BlockingIOError:
            raise self._timed_out() from None

    def _timed_out(self) -> TimeoutError:
        return TimeoutError(f"memcached {self.address}: no reply within {self._timeout} s")

    def get(self, key: bytes) -> bytes | None:
        # The hot path speaks the protocol itself (see _wire): one send, one recv, one parse.
        try:
            client = self._local.client
        except AttributeError:
            client = self._client
        sock = client.sock
        if sock is None:  # this thread's first call, or the one after an error: pymemcache connects
            found: bytes | None = self._run(lambda c: c.get(key))
            return found
        try:
            sock.sendall(b"get " + key + b"\r\n")
            reply = _wire_recv(sock, self._first_read)
            value = value_of(reply)
            if value is False:
                if not reply:
                    raise ConnectionResetError(errno.ECONNRESET, "connection closed")
                value = value_of(read_more(sock, reply, self._timeout, self.max_reply, get_complete))
        except _STALE_ERRORS:
            client.close()  # a server restart leaves the socket dead: once more on a new one
            found = self._run(lambda c: c.get(key))
            return found
        except BlockingIOError:
            client.close()
            raise self._timed_out() from None
        except BaseException:
            client.close()  # never leave half a reply on the socket for the next call
            raise
        return value  # type: ignore[return-value]  # value_of returned bytes or None here

    def get_many(self, keys: list[bytes]) -> dict[bytes, bytes]:
        found: dict[bytes, bytes] = self._run(lambda c: c.get_many(keys))
        return found

    def set(self, key: bytes, data: bytes, ttl: int) -> None:
        # The common write, spoken directly like get().
        try:
            client = self._local.client
        except AttributeError:
            client = self._client
        sock = client.sock
        if sock is None:
            ok = self._run(lambda c: c.set(key, data, expire=ttl, noreply=False))
        else:
            try:
                sock.sendall(store_command(b"set", key, data, ttl))
                reply = _wire_recv(sock, 64)
                if reply != STORED:
                    if not reply:
                        raise ConnectionResetError(errno.ECONNRESET, "connection closed")
                    if stored(reply) is None:
                        reply = read_more(sock, reply, self._timeout, self.max_reply, store_complete)
                ok = stored(reply)
            except _STALE_ERRORS:
                client.close()
                ok = self._run(lambda c: c.set(key, data, expire=ttl, noreply=False))
            except BlockingIOError:
                client.close()
                raise self._timed_out() from None
            except BaseException:
                client.close()
                raise
        if not ok:
            raise OSError(f"memcached {self.address} did not store {key[:40]!r}")

    def set_many(self, items: list[tuple[bytes, bytes]], ttl: int) -> None:
        failed = self._run(lambda c: c.set_many(dict(items), expire=ttl, noreply=False))
        if failed:
            raise OSError(f"memcached {self.address} did not store {len(failed)} of {len(items)} items")

    def add(self, key: bytes, data: bytes, ttl: int) -> bool:
        return bool(self._run(lambda c: c.add(key, data, expire=ttl, noreply=False)))

    def delete(self, key: bytes) -> bool:
        return bool(self._run(lambda c: c.delete(key, noreply=False)))

    def incr(self, key: bytes, delta: int) -> int | None:
        value: int | None = self._run(lambda c: c.incr(key, delta, noreply=False))
        return value

    def decr(self, key: bytes, delta: int) -> int | None:
        value: int | None = self._run(lambda c: c.decr(key, delta, noreply=False))
        return value

    def touch(self, key: bytes, ttl: int) -> bool:
        return bool(self._run(lambda c: c.touch(key, expire=ttl, noreply=False)))

    def dump(self, batch: int) -> Iterator[list[tuple[bytes, int]]]:
        """Keys from `lru_crawler metadump all` (memcached >= 1.4.31), streamed from a plain socket."""
        deadline = time.monotonic() + MAX_DUMP_SECONDS
        with socket.create_connection(self._server, timeout=max(self._timeout, 1.0)) as sock:
            lines = self._command_lines(sock, b"lru_crawler metadump all\r\n", deadline)
            out: list[tuple[bytes, int]] = []
            now = time.time()
            for line in lines:
                if line == b"END":
                    break
                if line.startswith((b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR", b"BUSY")):
                    reply = line.decode(errors="replace")
                    raise OSError(f"memcached {self.address} refused metadump: {reply}")
                fields = dict(part.split(b"=", 1) for part in line.split() if b"=" in part)
                if b"key" not in fields:
                    continue
                exp = int(fields.get(b"exp", b"-1"))
                if exp == -1:
                    ttl = 0
                else:
                    ttl = math.ceil(exp - now)
                    if ttl <= 0:
                        continue  # expired, not yet reclaimed
                out.append((urllib.parse.unquote_to_bytes(fields[b"key"]), ttl))
                if len(out) >= batch:
                    yield out
                    out = []
            if out:
                yield out

    @staticmethod
    def _command_lines(sock: socket.socket, command: bytes, deadline: float) -> Iterator[bytes]:
        sock.sendall(command)
        buffer = b""
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")  # metadump ends items with \n, END with \r\n
            for line in lines:
                line = line.rstrip(b"\r")
                yield line
                if line == b"END":
                    return
        raise TimeoutError(f"key listing took longer than {MAX_DUMP_SECONDS} s")

    def count(self) -> int:
        return int(self.stats()["items"])

    def stats(self) -> dict[str, Any]:
        stats = self._run(lambda c: c.stats())
        raw = {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in stats.items()}
        return {
            "items": int(raw.get("curr_items", 0)),
            "hits": int(raw.get("get_hits", 0)),
            "misses": int(raw.get("get_misses", 0)),
            "memory_bytes": int(raw.get("bytes", 0)),
            "uptime_s": int(raw.get("uptime", 0)),
        }

    def close(self) -> None:
        with self._lock:
            clients = list(self._clients)
            self._clients.clear()
        for client in clients:
            client.close()


class ValkeyNode:
    """A Valkey or Redis server through redis-py's connection pool."""

    def __init__(self, address: str, timeout: float) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.retry import Retry

        host, port = parse_address(address)
        self.address = address
        self._client = redis.Redis(
            host=host,
            port=port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # One immediate retry on a broken connection only (a server restart leaves pooled
            # connections dead); never on a timeout, so a hung node costs one timeout.
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            max_connections=64,
        )

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._client.get(key)  # type: ignore[assignment]  # bytes: no decoding
        return value

    def get_many(self, keys: list[bytes]) -> dict[bytes, bytes]:
        values: list[bytes | None] = self._client.mget(keys)  # type: ignore[assignment]
        return {k: v for k, v in zip(keys, values, strict=True) if v is not None}

    def set(self, key: bytes, data: bytes, ttl: int) -> None:
        self._client.set(key, data, ex=ttl or None)

    def set_many(self, items: list[tuple[bytes, bytes]], ttl: int) -> None:
        ex = ttl or None
        pipe = self._client.pipeline(transaction=False)
        for key, data in items:
            pipe.set(key, data, ex=ex)
        pipe.execute()

    def add(self, key: bytes, data: bytes, ttl: int) -> bool:
        return bool(self._client.set(key, data, ex=ttl or None, nx=True))

    def delete(self, key: bytes) -> bool:
        return bool(self._client.delete(key))

    def incr(self, key: bytes, delta: int) -> int | None:
        return _counted(self._client.eval(COUNT_SCRIPT, 1, key, delta, 1))

    def decr(self, key: bytes, delta: int) -> int | None:
        return _counted(self._client.eval(COUNT_SCRIPT, 1, key, delta, -1))

    def touch(self, key: bytes, ttl: int) -> bool:
        if ttl:
            return bool(self._client.expire(key, ttl))
        pipe = self._client.pipeline(transaction=True)
        pipe.exists(key)
        pipe.persist(key)
        exists, _ = pipe.execute()
        return bool(exists)

    def dump(self, batch: int) -> Iterator[list[tuple[bytes, int]]]:
        """Keys from SCAN, with their remaining TTL from one pipelined PTTL per batch."""
        deadline = time.monotonic() + MAX_DUMP_SECONDS
        cursor = 0
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"key listing took longer than {MAX_DUMP_SECONDS} s")
            cursor, found = self._client.scan(cursor=cursor, count=batch)
            keys = [k if isinstance(k, bytes) else k.encode() for k in found]
            if keys:
                pipe = self._client.pipeline(transaction=False)
                for key in keys:
                    pipe.pttl(key)
                out: list[tuple[bytes, int]] = []
                for key, pttl in zip(keys, pipe.execute(), strict=True):
                    if pttl == -1:
                        out.append((key, 0))
                    elif pttl > 0:
                        out.append((key, math.ceil(pttl / 1000)))
                if out:
                    yield out
            if cursor == 0:
                return

    def count(self) -> int:
        return int(self._client.dbsize())

    def stats(self) -> dict[str, Any]:
        info: dict[str, Any] = self._client.info()
        return {
            "items": int(self._client.dbsize()),
            "hits": int(info.get("keyspace_hits", 0)),
            "misses": int(info.get("keyspace_misses", 0)),
            "memory_bytes": int(info.get("used_memory", 0)),
            "uptime_s": int(info.get("uptime_in_seconds", 0)),
        }

    def close(self) -> None:
        self._client.close()


# memcached's counter rules in Valkey: only an existing key counts, a decrement stops at 0 and an
# increment wraps at 2**64 (Lua numbers are doubles, so the arithmetic is done on two halves).
COUNT_SCRIPT = """
local v = redis.call('GET', KEYS[1])
if not v then return false end
local n = tonumber(v)
if not n or not string.match(v, '^%d+$') then return redis.error_reply('not a counter') end
local d = tonumber(ARGV[1])
if tonumber(ARGV[2]) < 0 then
  if d >= n then n = 0 else n = n - d end
else
  n = n + d
  if n >= 18446744073709551616 then n = n - 18446744073709551616 end
end
local text = string.format('%.0f', n)
redis.call('SET', KEYS[1], text, 'KEEPTTL')
return text
"""


def _counted(reply: object) -> int | None:
    if reply is None:
        return None
    return int(reply if isinstance(reply, bytes | str | int) else str(reply))


BACKENDS: dict[str, NodeFactory] = {
    "memcached": MemcachedNode,
    "valkey": ValkeyNode,
    "redis": ValkeyNode,
}


def node_factory(backend: str | NodeFactory) -> NodeFactory:
    """Resolve a backend name (or pass a factory through)."""
    if callable(backend):
        return backend
    try:
        return BACKENDS[backend]
    except (KeyError, TypeError):
        allowed = sorted(BACKENDS)
        raise InvalidConfig(f"backend must be one of {allowed} or a factory, got {backend!r}") from None
