"""One zone: a full copy of the data, sharded over its servers by a ketama ring.

Every server call goes through the server's own guard `Dependency`, so a dead node fails fast
once its breaker opens.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

from stoic.guard import Dependency

from . import _frames as frames
from ._backends import DEFAULT_MAX_REPLY, Node
from ._errors import CorruptValue
from ._ring import HashRing

T = TypeVar("T")
JOIN_BATCH_BYTES = 4 * 1024 * 1024  # chunk bytes asked of one server per call when reading a large value


class Server:
    """One cache server of a zone, guarded."""

    __slots__ = ("address", "dependency", "get", "node", "set", "zone")

    def __init__(self, zone: str, node: Node, dependency: Dependency) -> None:
        self.zone = zone
        self.address = node.address
        self.node = node
        self.dependency = dependency
        # A read and a write through the guard, bound once (the decorator form is its fastest call).
        self.get: Callable[[bytes], bytes | None] = dependency(node.get)
        self.set: Callable[[bytes, bytes, int], None] = dependency(node.set)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        result: T = self.dependency.call(fn, *args)
        return result


class Zone:
    """A named group of servers holding one full copy of the data."""

    def __init__(self, name: str, servers: list[Server], points: int = 160,
                 max_reply: int = DEFAULT_MAX_REPLY) -> None:
        self.name = name
        self.max_reply = max_reply  # chunks are read in batches whose replies stay under it
        self.points = points
        self.servers = {s.address: s for s in servers}
        # Every server a ring of this zone ever named: a reader holding the ring from just before a
        # membership change still finds the server it picked (see add_server / remove_server).
        self._known = dict(self.servers)
        self.ring = HashRing(self.servers, points=points)
        self.only = servers[0] if len(servers) == 1 else None  # no ring to consult
        self.previous: HashRing | None = None  # the ring before a membership change, while keys move

    @property
    def addresses(self) -> list[str]:
        """The zone's server addresses."""
        return list(self.servers)

    def server_for(self, key: bytes) -> Server:
        """The server that owns `key` in this zone."""
        if self.only is not None:
            return self.only
        return self._known[self.ring.node_for(key)]

    def add_server(self, server: Server) -> None:
        """Put `server` on the ring (the old ring stays as `previous` until keys have moved)."""
        self.previous = self.ring
        self._known[server.address] = server
        servers = {**self.servers, server.address: server}
        # Each step replaces one attribute whole, so a concurrent reader sees the old layout or the
        # new one, never a mix: the new ring first, then the single-server shortcut is dropped.
        self.ring = HashRing(servers, points=self.points)
        self.only = None
        self.servers = servers

    def remove_server(self, address: str) -> Server:
        """Take the server at `address` off the ring; returns it (still open, to move keys from)."""
        servers = {a: s for a, s in self.servers.items() if a != address}
        leaving = self.servers[address]
        self.previous = self.ring
        self.ring = HashRing(servers, points=self.points)
        self.only = next(iter(servers.values())) if len(servers) == 1 else None
        self.servers = servers
        return leaving

    def previous_owner(self, key: bytes) -> Server | None:
        """While keys move after a membership change: the server that owned `key` before, if another."""
        ring = self.previous
        if ring is None:
            return None
        server = self._known[ring.node_for(key)]
        return None if server is self.server_for(key) else server

    def breakers(self) -> dict[str, str]:
        """Breaker state per server address."""
        return {a: s.dependency.breaker.state for a, s in self.servers.items()}

    def reset_breakers(self) -> None:
        """Close every breaker of the zone (used when an operator brings the zone back)."""
        for server in self.servers.values():
            server.dependency.breaker.reset()

    # reads -----------------------------------------------------------------------------------

    def fetch(self, key: bytes) -> bytes | None:
        """The payload stored under `key`, chunks joined and verified; None on a miss.

        Raises on a server error, `CorruptValue` on a failed check.
        """
        data = self.server_for(key).get(key)
        if data is None:
            return None
        head = frames.decode_head(data)
        if isinstance(head, bytes):
            return head
        return self._join(head)

    def fetch_entry(self, key: bytes) -> tuple[bytes, float | None] | None:
        """`fetch`, with the time until which a get_or_set value is fresh (None: no soft expiry)."""
        data = self.server_for(key).get(key)
        if data is None:
            return None
        fresh_until, data = frames.split_soft(data)
        head = frames.decode_head(data)
        payload = head if isinstance(head, bytes) else self._join(head)
        return None if payload is None else (payload, fresh_until)

    def fetch_many(self, keys: list[bytes]) -> tuple[dict[bytes, bytes], set[bytes], set[bytes]]:
        """(payloads found, keys whose server failed, keys whose value was corrupt).

        One multi-get per server; a failing server loses only its own keys.
        """
        found: dict[bytes, bytes] = {}
        failed: set[bytes] = set()
        corrupt: set[bytes] = set()
        for server, group in self._group(keys).items():
            try:
                got = server.call(server.node.get_many, group)
            except Exception:
                failed.update(group)
                continue
            for key, data in got.items():
                try:
                    head = frames.decode_head(data)
                    payload = head if isinstance(head, bytes) else self._join(head)
                    if payload is not None:  # None: a chunk was evicted, a plain miss
                        found[key] = payload
                except CorruptValue:
                    corrupt.add(key)
                except Exception:
                    failed.add(key)
        return found, failed, corrupt

    def _join(self, manifest: frames.Manifest) -> bytes | None:
        chunk_keys = manifest.chunk_keys()
        # Small batches: each call's reply must arrive within one timeout, and a few MiB does.
        per_call = max(1, min(self.max_reply, JOIN_BATCH_BYTES) // (manifest.chunk_bound() + 256))
        chunks: dict[bytes, bytes] = {}
        size = 0
        for server, group in self._group(chunk_keys).items():
            for start in range(0, len(group), per_call):
                batch = group[start : start + per_call]
                got = server.call(server.node.get_many, batch)
                if len(got) < len(batch):
                    return None  # a chunk was evicted: the value is gone from this zone
                size += sum(map(len, got.values()))
                if size > manifest.length:  # never hold more than the manifest promised
                    raise CorruptValue(f"chunked value {manifest.id}: chunks longer than its length")
                chunks.update(got)
        if len(chunks) != len(chunk_keys):
            return None
        return manifest.join([chunks[k] for k in chunk_keys])

    def _group(self, keys: list[bytes]) -> dict[Server, list[bytes]]:
        groups: defaultdict[Server, list[bytes]] = defaultdict(list)
        for key in keys:
            groups[self.server_for(key)].append(key)
        return groups

    def _manifest(self, key: bytes) -> frames.Manifest | None:
        data = self.server_for(key).get(key)
        if data is None:
            return None
        try:
            head = frames.decode_head(data)
        except CorruptValue:
            return None
        return head if isinstance(head, frames.Manifest) else None

    # writes (each returns (acknowledged, outcome)) ------------------------------------------------

    def store(self, items: list[tuple[bytes, bytes]], ttl: int) -> tuple[bool, str]:
        """Write a value's items: chunks first, the head item last (readers see all or nothing)."""
        if len(items) > 1:
            self._store_chunks(items[:-1], ttl)
        key, head = items[-1]
        self.server_for(key).set(key, head, ttl)
        return True, "stored"

    def store_plain(self, items: list[tuple[bytes, bytes]], ttl: int) -> dict[bytes, str]:
        """Write one-item values as one pipelined multi-set per server (a later item of a key wins).

        Returns the error per key that was not stored; a failing server fails only its own keys.
        """
        data = dict(items)
        errors: dict[bytes, str] = {}
        for server, group in self._group(list(data)).items():
            try:
                server.call(server.node.set_many, [(k, data[k]) for k in group], ttl)
            except Exception as exc:
                errors.update(dict.fromkeys(group, f"error: {type(exc).__name__}: {exc}"))
        return errors

    def _store_chunks(self, chunks: list[tuple[bytes, bytes]], ttl: int) -> None:
        data = dict(chunks)
        for server, group in self._group(list(data)).items():
            server.call(server.node.set_many, [(k, data[k]) for k in group], ttl)

    def add(self, items: list[tuple[bytes, bytes]], ttl: int) -> tuple[bool, str]:
        """Store only if the key is absent here; "not_stored" counts as not acknowledged."""
        if len(items) > 1:
            self._store_chunks(items[:-1], ttl)
        key, head = items[-1]
        server = self.server_for(key)
        if server.call(server.node.add, key, head, ttl):
            return True, "stored"
        return False, "not_stored"

    def delete(self, key: bytes) -> tuple[bool, str]:
        """Delete a key (and its chunks, if it has any). A missing key is acknowledged too."""
        manifest = self._manifest(key)
        server = self.server_for(key)
        deleted = server.call(server.node.delete, key)
        if manifest is not None:
            for chunk_key in manifest.chunk_keys():
                chunk_server = self.server_for(chunk_key)
                chunk_server.call(chunk_server.node.delete, chunk_key)
        old = self.previous_owner(key)
        if old is not None:  # keys are moving: the copy must not bring the deleted value back
            with contextlib.suppress(Exception):  # a dead server being removed: nothing to bring back
                deleted = old.call(old.node.delete, key) or deleted
        return True, "deleted" if deleted else "not_found"

    def count_by(self, key: bytes, delta: int, initial: int, ttl: int) -> tuple[bool, str, int | None]:
        """Add `delta` (subtract if negative) to a counter; an absent one starts at `initial`.

        (acknowledged, outcome, value): "counted" or "created" with the new value.
        """
        server = self.server_for(key)
        node = server.node
        change = node.incr if delta >= 0 else node.decr
        value = server.call(change, key, abs(delta))
        if value is not None:
            return True, "counted", value
        start, outcome = self._moving_count(key, delta, initial)
        if server.call(node.add, key, str(start).encode(), ttl):
            return True, outcome, start
        value = server.call(change, key, abs(delta))  # another client created it meanwhile
        if value is None:
            return False, "not_found", None
        return True, "counted", value

    def _moving_count(self, key: bytes, delta: int, initial: int) -> tuple[int, str]:
        """Where an absent counter starts: at `initial`, unless its key is moving and the previous
        owner still has it, in which case the count goes on from there."""
        old = self.previous_owner(key)
        if old is not None:
            try:
                data = old.call(old.node.get, key)
            except Exception:
                data = None
            text = (data or b"").strip()
            if text.isdigit() and len(text) <= 20:
                return max(0, int(text) + delta) % 2**64, "counted"
        return initial, "created"

    def read_counter(self, key: bytes) -> int | None:
        """A counter's value; None if absent. Raises `CorruptValue` if the item is not a counter."""
        data = self.server_for(key).get(key)
        if data is None:
            return None
        text = data.strip()
        if not text.isdigit() or len(text) > 20:
            raise CorruptValue(f"{key[:40]!r} holds {data[:20]!r}, not a counter")
        return int(text)

    def touch(self, key: bytes, ttl: int) -> tuple[bool, str]:
        """Give a key (and its chunks) a new TTL. A missing key is acknowledged as "not_found"."""
        manifest = self._manifest(key)
        if manifest is not None:
            for chunk_key in manifest.chunk_keys():
                chunk_server = self.server_for(chunk_key)
                chunk_server.call(chunk_server.node.touch, chunk_key, ttl)
        server = self.server_for(key)
        touched = server.call(server.node.touch, key, ttl)
        return True, "touched" if touched else "not_found"

    def count(self) -> int:
        """Items held by the zone's servers (unreachable servers count 0)."""
        total = 0
        for server in self.servers.values():
            try:
                total += server.call(server.node.count)
            except Exception:
                continue
        return total

    def close(self) -> None:
        for server in self.servers.values():
            server.node.close()
