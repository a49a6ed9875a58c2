"""One zone for asyncio: the `Zone` layout and rules (ring, chunks, heads last), with awaited calls.

Every server call goes through the server's guard `Dependency` (`acall`), so the guard's deadline
cancels a call that overruns and a dead node fails fast once its breaker opens.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from stoic.guard import Dependency

from . import _frames as frames
from ._anodes import AsyncNode
from ._backends import DEFAULT_MAX_REPLY
from ._errors import CorruptValue
from ._ring import HashRing
from ._zone import JOIN_BATCH_BYTES

T = TypeVar("T")


class AsyncServer:
    """One cache server of a zone, guarded."""

    __slots__ = ("address", "dependency", "node", "zone")

    def __init__(self, zone: str, node: AsyncNode, dependency: Dependency) -> None:
        self.zone = zone
        self.address = node.address
        self.node = node
        self.dependency = dependency

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        result: T = await self.dependency.acall(fn, *args)
        return result


class AsyncZone:
    """A named group of servers holding one full copy of the data (asyncio)."""

    def __init__(self, name: str, servers: list[AsyncServer], points: int = 160,
                 max_reply: int = DEFAULT_MAX_REPLY) -> None:
        self.name = name
        self.max_reply = max_reply
        self.servers = {s.address: s for s in servers}
        self.ring = HashRing(self.servers, points=points)
        self.only = servers[0] if len(servers) == 1 else None  # no ring to consult

    @property
    def addresses(self) -> list[str]:
        return list(self.servers)

    def server_for(self, key: bytes) -> AsyncServer:
        if self.only is not None:
            return self.only
        return self.servers[self.ring.node_for(key)]

    def breakers(self) -> dict[str, str]:
        return {a: s.dependency.breaker.state for a, s in self.servers.items()}

    def reset_breakers(self) -> None:
        for server in self.servers.values():
            server.dependency.breaker.reset()

    def _group(self, keys: list[bytes]) -> dict[AsyncServer, list[bytes]]:
        groups: defaultdict[AsyncServer, list[bytes]] = defaultdict(list)
        for key in keys:
            groups[self.server_for(key)].append(key)
        return groups

    # reads -----------------------------------------------------------------------------------

    async def fetch_entry(self, key: bytes) -> tuple[bytes, float | None] | None:
        """(payload, fresh-until or None), chunks joined and verified; None on a miss."""
        server = self.server_for(key)
        data = await server.call(server.node.get, key)
        if data is None:
            return None
        fresh_until, data = frames.split_soft(data)
        head = frames.decode_head(data)
        payload = head if isinstance(head, bytes) else await self._join(head)
        return None if payload is None else (payload, fresh_until)

    async def fetch(self, key: bytes) -> bytes | None:
        entry = await self.fetch_entry(key)
        return None if entry is None else entry[0]

    async def fetch_many(self, keys: list[bytes]) -> tuple[dict[bytes, bytes], set[bytes], set[bytes]]:
        """(payloads found, keys whose server failed, keys whose value was corrupt)."""
        found: dict[bytes, bytes] = {}
        failed: set[bytes] = set()
        corrupt: set[bytes] = set()
        for server, group in self._group(keys).items():
            try:
                got = await server.call(server.node.get_many, group)
            except Exception:
                failed.update(group)
                continue
            for key, data in got.items():
                try:
                    head = frames.decode_head(data)
                    payload = head if isinstance(head, bytes) else await self._join(head)
                    if payload is not None:
                        found[key] = payload
                except CorruptValue:
                    corrupt.add(key)
                except Exception:
                    failed.add(key)
        return found, failed, corrupt

    async def _join(self, manifest: frames.Manifest) -> bytes | None:
        chunk_keys = manifest.chunk_keys()
        per_call = max(1, min(self.max_reply, JOIN_BATCH_BYTES) // (manifest.chunk_bound() + 256))
        chunks: dict[bytes, bytes] = {}
        size = 0
        for server, group in self._group(chunk_keys).items():
            for start in range(0, len(group), per_call):
                batch = group[start : start + per_call]
                got = await server.call(server.node.get_many, batch)
                if len(got) < len(batch):
                    return None
                size += sum(map(len, got.values()))
                if size > manifest.length:
                    raise CorruptValue(f"chunked value {manifest.id}: chunks longer than its length")
                chunks.update(got)
        if len(chunks) != len(chunk_keys):
            return None
        return manifest.join([chunks[k] for k in chunk_keys])

    async def _manifest(self, key: bytes) -> frames.Manifest | None:
        server = self.server_for(key)
        data = await server.call(server.node.get, key)
        if data is None:
            return None
        try:
            head = frames.decode_head(data)
        except CorruptValue:
            return None
        return head if isinstance(head, frames.Manifest) else None

    async def read_counter(self, key: bytes) -> int | None:
        server = self.server_for(key)
        data = await server.call(server.node.get, key)
        if data is None:
            return None
        text = data.strip()
        if not text.isdigit() or len(text) > 20:
            raise CorruptValue(f"{key[:40]!r} holds {data[:20]!r}, not a counter")
        return int(text)

    # writes (each returns (acknowledged, outcome)) ------------------------------------------------

    async def store(self, items: list[tuple[bytes, bytes]], ttl: int) -> tuple[bool, str]:
        if len(items) > 1:
            await self._store_chunks(items[:-1], ttl)
        key, head = items[-1]
        server = self.server_for(key)
        await server.call(server.node.set, key, head, ttl)
        return True, "stored"

    async def _store_chunks(self, chunks: list[tuple[bytes, bytes]], ttl: int) -> None:
        data = dict(chunks)
        for server, group in self._group(list(data)).items():
            await server.call(server.node.set_many, [(k, data[k]) for k in group], ttl)

    async def add(self, items: list[tuple[bytes, bytes]], ttl: int) -> tuple[bool, str]:
        if len(items) > 1:
            await self._store_chunks(items[:-1], ttl)
        key, head = items[-1]
        server = self.server_for(key)
        if await server.call(server.node.add, key, head, ttl):
            return True, "stored"
        return False, "not_stored"

    async def delete(self, key: bytes) -> tuple[bool, str]:
        manifest = await self._manifest(key)
        server = self.server_for(key)
        deleted = await server.call(server.node.delete, key)
        if manifest is not None:
            for chunk_key in manifest.chunk_keys():
                chunk_server = self.server_for(chunk_key)
                await chunk_server.call(chunk_server.node.delete, chunk_key)
        return True, "deleted" if deleted else "not_found"

    async def touch(self, key: bytes, ttl: int) -> tuple[bool, str]:
        manifest = await self._manifest(key)
        if manifest is not None:
            for chunk_key in manifest.chunk_keys():
                chunk_server = self.server_for(chunk_key)
                await chunk_server.call(chunk_server.node.touch, chunk_key, ttl)
        server = self.server_for(key)
        touched = await server.call(server.node.touch, key, ttl)
        return True, "touched" if touched else "not_found"

    async def count_by(self, key: bytes, delta: int, initial: int, ttl: int) -> tuple[bool, str, int | None]:
        server = self.server_for(key)
        node = server.node
        change = node.incr if delta >= 0 else node.decr
        value = await server.call(change, key, abs(delta))
        if value is not None:
            return True, "counted", value
        if await server.call(node.add, key, str(initial).encode(), ttl):
            return True, "created", initial
        value = await server.call(change, key, abs(delta))
        if value is None:
            return False, "not_found", None
        return True, "counted", value

    async def count(self) -> int:
        total = 0
        for server in self.servers.values():
            try:
                total += await server.call(server.node.count)
            except Exception:
                continue
        return total

    async def close(self) -> None:
        for server in self.servers.values():
            await server.node.close()
