"""One cache server for asyncio: memcached over asyncio streams, Valkey/Redis through redis.asyncio.

memcached speaks our own frames over `asyncio.open_connection` rather than through a client
library: aiomcache reads a value with `readexactly(<length the server announced>)`, so a hostile
server announcing 1.5 GB makes the client allocate it, and neither it nor emcache bounds a call's
reply in bytes. Here each call has one deadline for its whole reply (`asyncio.timeout`) and reads
at most `max_reply` bytes; a call that fails or is cancelled closes its connection, so no half
reply reaches the next call. Valkey uses redis.asyncio, maintained with redis-py and already a
dependency of the sync backend.
"""

from __future__ import annotations

import asyncio
import math
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from . import _wire as wire
from ._backends import COUNT_SCRIPT, DEFAULT_MAX_REPLY, MAX_DUMP_SECONDS, _counted, parse_address
from ._errors import InvalidConfig

MAX_IDLE = 64  # idle connections kept per server


class AsyncNode(Protocol):
    """What the asyncio cache needs from one server (the `Node` calls, awaited)."""

    address: str

    async def get(self, key: bytes) -> bytes | None: ...
    async def get_many(self, keys: list[bytes]) -> dict[bytes, bytes]: ...
    async def set(self, key: bytes, data: bytes, ttl: int) -> None: ...
    async def set_many(self, items: list[tuple[bytes, bytes]], ttl: int) -> None: ...
    async def add(self, key: bytes, data: bytes, ttl: int) -> bool: ...
    async def delete(self, key: bytes) -> bool: ...
    async def touch(self, key: bytes, ttl: int) -> bool: ...
    async def incr(self, key: bytes, delta: int) -> int | None: ...
    async def decr(self, key: bytes, delta: int) -> int | None: ...
    def dump(self, batch: int) -> AsyncIterator[list[tuple[bytes, int]]]: ...
    async def count(self) -> int: ...
    async def close(self) -> None: ...


AsyncNodeFactory = Callable[[str, float], AsyncNode]


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def close(self) -> None:
        self.writer.close()


def _values_complete(reply: bytes) -> bool:
    return _values_of(reply) is not None


def _values_of(reply: bytes) -> dict[bytes, bytes] | None:
    """The items of a complete multi-get reply, None while incomplete; `ProtocolError` if malformed."""
    found: dict[bytes, bytes] = {}
    at = 0
    while True:
        eol = reply.find(wire.EOL, at)
        if eol < 0:
            wire.check_line(reply[at:], b"VALUE ")
            return None
        line = reply[at:eol]
        if line == b"END":
            if eol + 2 != len(reply):
                raise wire.ProtocolError("bytes after END in a get reply")
            return found
        parts = line.split()
        if len(parts) != 4 or parts[0] != b"VALUE" or not parts[3].isdigit():
            wire.check_line(reply[at:], b"VALUE ")
            raise wire.ProtocolError(f"bad VALUE line {line[:80]!r}")
        start = eol + 2
        end = start + int(parts[3])
        if len(reply) < end + 2:
            return None
        if reply[end : end + 2] != wire.EOL:
            raise wire.ProtocolError(f"value of {parts[1][:40]!r} longer than its VALUE line says")
        found[parts[1]] = reply[start:end]
        at = end + 2


def _line_complete(reply: bytes) -> bool:
    return reply.endswith(wire.EOL)


def _lines_complete(count: int) -> Callable[[bytes], bool]:
    return lambda reply: reply.count(wire.EOL) >= count


class AsyncMemcachedNode:
    """A memcached server over asyncio streams: a small pool of connections, one call per connection
    at a time, each call bounded by `timeout` (the whole reply) and `max_reply` bytes."""

    def __init__(self, address: str, timeout: float, max_reply: int = DEFAULT_MAX_REPLY) -> None:
        self.address = address
        self._host, self._port = parse_address(address)
        self._timeout = timeout
        self.max_reply = max_reply
        self._idle: list[_Conn] = []

    async def _call(self, command: bytes, complete: Callable[[bytes], bool]) -> bytes:
        """Send `command`, read until `complete(reply)`; within one deadline and the byte cap."""
        conn = self._idle.pop() if self._idle else None
        fresh = conn is None
        ok = False
        try:
            async with asyncio.timeout(self._timeout):
                if conn is None:
                    conn = _Conn(*await asyncio.open_connection(self._host, self._port))
                try:
                    reply = await self._exchange(conn, command, complete)
                except ConnectionError:
                    if fresh:
                        raise
                    conn.close()  # a server restart leaves idle connections dead: once more, anew
                    conn = _Conn(*await asyncio.open_connection(self._host, self._port))
                    reply = await self._exchange(conn, command, complete)
            ok = True
            return reply
        except TimeoutError:
            raise TimeoutError(f"memcached {self.address}: no reply within {self._timeout} s") from None
        finally:
            if conn is not None:
                if ok and len(self._idle) < MAX_IDLE:
                    self._idle.append(conn)
                else:
                    conn.close()  # failed or cancelled mid-call: never reuse a half-read socket

    async def _exchange(self, conn: _Conn, command: bytes, complete: Callable[[bytes], bool]) -> bytes:
        conn.writer.write(command)
        await conn.writer.drain()
        reply = b""
        while True:
            more = await conn.reader.read(min(wire.FIRST_READ, self.max_reply + 1 - len(reply)))
            if not more:
                raise ConnectionResetError("memcached closed the connection")
            reply += more
            if complete(reply):
                return reply
            if len(reply) > self.max_reply:
                raise wire.ReplyTooLarge(f"reply to one call passed max_reply={self.max_reply} bytes")

    async def get(self, key: bytes) -> bytes | None:
        value = wire.value_of(await self._call(b"get " + key + b"\r\n", wire.get_complete))
        return None if value is False else value  # type: ignore[return-value]

    async def get_many(self, keys: list[bytes]) -> dict[bytes, bytes]:
        if not keys:
            return {}
        reply = await self._call(b"get " + b" ".join(keys) + b"\r\n", _values_complete)
        return _values_of(reply) or {}

    async def _store(self, command: bytes, key: bytes, data: bytes, ttl: int) -> bool:
        reply = await self._call(wire.store_command(command, key, data, ttl), wire.store_complete)
        return bool(wire.stored(reply))

    async def set(self, key: bytes, data: bytes, ttl: int) -> None:
        if not await self._store(b"set", key, data, ttl):
            raise OSError(f"memcached {self.address} did not store {key[:40]!r}")

    async def set_many(self, items: list[tuple[bytes, bytes]], ttl: int) -> None:
        if not items:
            return
        command = b"".join(wire.store_command(b"set", k, d, ttl) for k, d in items)
        reply = await self._call(command, _lines_complete(len(items)))
        lines = reply.split(wire.EOL)[: len(items)]
        failed = sum(1 for line in lines if line != b"STORED")
        if failed:
            wire.check_line(next(line for line in lines if line != b"STORED") + wire.EOL, wire.STORED)
            raise OSError(f"memcached {self.address} did not store {failed} of {len(items)} items")

    async def add(self, key: bytes, data: bytes, ttl: int) -> bool:
        return await self._store(b"add", key, data, ttl)

    async def _line(self, command: bytes) -> bytes:
        line = (await self._call(command, _line_complete))[:-2]
        if line.startswith((b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")):
            raise wire.ProtocolError(f"server error: {line[:200].decode(errors='replace')}")
        return line

    async def delete(self, key: bytes) -> bool:
        return await self._line(b"delete " + key + b"\r\n") == b"DELETED"

    async def touch(self, key: bytes, ttl: int) -> bool:
        return await self._line(b"touch %s %d\r\n" % (key, ttl)) == b"TOUCHED"

    async def _count(self, verb: bytes, key: bytes, delta: int) -> int | None:
        line = await self._line(b"%s %s %d\r\n" % (verb, key, delta))
        if line == b"NOT_FOUND":
            return None
        if not line.strip().isdigit():
            raise wire.ProtocolError(f"unexpected reply to {verb.decode()}: {line[:80]!r}")
        return int(line)

    async def incr(self, key: bytes, delta: int) -> int | None:
        return await self._count(b"incr", key, delta)

    async def decr(self, key: bytes, delta: int) -> int | None:
        return await self._count(b"decr", key, delta)

    async def dump(self, batch: int) -> AsyncIterator[list[tuple[bytes, int]]]:
        """Keys from `lru_crawler metadump all`, on a connection of its own."""
        deadline = time.monotonic() + MAX_DUMP_SECONDS
        reader, writer = await asyncio.wait_for(asyncio.open_connection(self._host, self._port),
                                                max(self._timeout, 1.0))
        try:
            writer.write(b"lru_crawler metadump all\r\n")
            await writer.drain()
            out: list[tuple[bytes, int]] = []
            now = time.time()
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"key listing took longer than {MAX_DUMP_SECONDS} s")
                raw = await asyncio.wait_for(reader.readline(), left)
                if not raw:
                    break
                line = raw.rstrip(b"\r\n")
                if line == b"END":
                    break
                if line.startswith((b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR", b"BUSY")):
                    reason = line.decode(errors="replace")
                    raise OSError(f"memcached {self.address} refused metadump: {reason}")
                fields = dict(part.split(b"=", 1) for part in line.split() if b"=" in part)
                if b"key" not in fields:
                    continue
                exp = int(fields.get(b"exp", b"-1"))
                ttl = 0 if exp == -1 else math.ceil(exp - now)
                if exp != -1 and ttl <= 0:
                    continue  # expired, not yet reclaimed
                out.append((urllib.parse.unquote_to_bytes(fields[b"key"]), ttl))
                if len(out) >= batch:
                    yield out
                    out = []
            if out:
                yield out
        finally:
            writer.close()

    async def count(self) -> int:
        reply = await self._call(b"stats\r\n", lambda r: r.endswith(b"END\r\n"))
        for line in reply.split(wire.EOL):
            parts = line.split()
            if len(parts) == 3 and parts[1] == b"curr_items":
                return int(parts[2])
        return 0

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class AsyncValkeyNode:
    """A Valkey or Redis server through redis.asyncio's connection pool."""

    def __init__(self, address: str, timeout: float) -> None:
        import redis.asyncio as aredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError

        host, port = parse_address(address)
        self.address = address
        self._client = aredis.Redis(
            host=host, port=port, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),  # as ValkeyNode
            max_connections=64,
        )

    async def get(self, key: bytes) -> bytes | None:
        value: bytes | None = await self._client.get(key)  # type: ignore[assignment]  # no decoding
        return value

    async def get_many(self, keys: list[bytes]) -> dict[bytes, bytes]:
        values: list[bytes | None] = await self._client.mget(keys)  # type: ignore[assignment]
        return {k: v for k, v in zip(keys, values, strict=True) if v is not None}

    async def set(self, key: bytes, data: bytes, ttl: int) -> None:
        await self._client.set(key, data, ex=ttl or None)

    async def set_many(self, items: list[tuple[bytes, bytes]], ttl: int) -> None:
        pipe = self._client.pipeline(transaction=False)
        for key, data in items:
            pipe.set(key, data, ex=ttl or None)
        await pipe.execute()

    async def add(self, key: bytes, data: bytes, ttl: int) -> bool:
        return bool(await self._client.set(key, data, ex=ttl or None, nx=True))

    async def delete(self, key: bytes) -> bool:
        return bool(await self._client.delete(key))

    async def touch(self, key: bytes, ttl: int) -> bool:
        if ttl:
            return bool(await self._client.expire(key, ttl))
        pipe = self._client.pipeline(transaction=True)
        pipe.exists(key)
        pipe.persist(key)
        exists, _ = await pipe.execute()
        return bool(exists)

    async def incr(self, key: bytes, delta: int) -> int | None:
        return _counted(await self._client.eval(COUNT_SCRIPT, 1, key, delta, 1))

    async def decr(self, key: bytes, delta: int) -> int | None:
        return _counted(await self._client.eval(COUNT_SCRIPT, 1, key, delta, -1))

    async def dump(self, batch: int) -> AsyncIterator[list[tuple[bytes, int]]]:
        deadline = time.monotonic() + MAX_DUMP_SECONDS
        cursor = 0
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"key listing took longer than {MAX_DUMP_SECONDS} s")
            cursor, found = await self._client.scan(cursor=cursor, count=batch)
            keys = [k if isinstance(k, bytes) else k.encode() for k in found]
            if keys:
                pipe = self._client.pipeline(transaction=False)
                for key in keys:
                    pipe.pttl(key)
                out = [(key, 0 if pttl == -1 else math.ceil(pttl / 1000))
                       for key, pttl in zip(keys, await pipe.execute(), strict=True)
                       if pttl == -1 or pttl > 0]
                if out:
                    yield out
            if cursor == 0:
                return

    async def count(self) -> int:
        return int(await self._client.dbsize())

    async def close(self) -> None:
        await self._client.aclose()


ASYNC_BACKENDS: dict[str, AsyncNodeFactory] = {
    "memcached": AsyncMemcachedNode,
    "valkey": AsyncValkeyNode,
    "redis": AsyncValkeyNode,
}


def async_node_factory(backend: str | AsyncNodeFactory) -> AsyncNodeFactory:
    """Resolve a backend name (or pass a factory through)."""
    if callable(backend):
        return backend
    try:
        return ASYNC_BACKENDS[backend]
    except (KeyError, TypeError):
        allowed = sorted(ASYNC_BACKENDS)
        raise InvalidConfig(f"backend must be one of {allowed} or a factory, got {backend!r}") from None

