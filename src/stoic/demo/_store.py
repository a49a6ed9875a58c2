"""Where the edge keeps what its fallbacks answer from: the zonal cache, or memory when there is none."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any, Protocol


class Store(Protocol):
    """Async key/value access for fallbacks (a snapshot, a cached licence)."""

    async def get(self, key: str) -> Any | None: ...

    async def set(self, key: str, value: Any, ttl: int) -> None: ...


class MemoryStore:
    """A bounded in-process store: one edge's own memory, lost with the process."""

    def __init__(self, max_items: int = 20_000) -> None:
        self._items: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._max = max_items

    async def get(self, key: str) -> Any | None:
        item = self._items.get(key)
        if item is None or item[0] < time.monotonic():
            return None
        return item[1]

    async def set(self, key: str, value: Any, ttl: int) -> None:
        self._items[key] = (time.monotonic() + ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)


class CacheStore:
    """The zonal cache (a blocking client) behind a thread, so the event loop never waits on a socket.

    Writes of a key are skipped while its last write is younger than `refresh` seconds: a snapshot
    only needs to be recent, and every write goes to every zone.
    """

    def __init__(self, cache: Any, refresh: float = 20.0, max_tracked: int = 20_000) -> None:
        self._cache = cache
        self._refresh = refresh
        self._written: OrderedDict[str, float] = OrderedDict()
        self._max = max_tracked

    async def get(self, key: str) -> Any | None:
        return await asyncio.to_thread(self._cache.get, key)

    async def set(self, key: str, value: Any, ttl: int) -> None:
        now = time.monotonic()
        last = self._written.get(key)
        if last is not None and now - last < self._refresh:
            return
        self._written[key] = now
        self._written.move_to_end(key)
        while len(self._written) > self._max:
            self._written.popitem(last=False)
        await asyncio.to_thread(self._cache.set, key, value, ttl)
