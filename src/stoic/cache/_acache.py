"""`AsyncZonalCache`: `ZonalCache` for asyncio, with the same zones, rules, outcomes and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from stoic.guard import BreakerPolicy, Dependency, Registry, SemaphoreBulkhead
from stoic.guard import registry as default_registry

from . import _frames as frames
from ._anodes import AsyncMemcachedNode, AsyncNodeFactory, async_node_factory
from ._awriter import AsyncJob, AsyncLatch, AsyncWrite, AsyncZoneWriter, apply_async
from ._azone import AsyncServer, AsyncZone
from ._cache import DEFAULT_BREAKER, DEFAULT_CHUNK_SIZE, MAX_COUNT, ORDER_STRIPES, _check_int, check_options
from ._errors import CacheError, CorruptValue, InvalidConfig
from ._flight import MISSING, POLL_SECONDS, check_seconds, check_stale_for
from ._frames import SINGLE_HEAD, SOFT_BYTES
from ._keys import MAX_TTL, check_key, check_long_key, check_ttl, lock_key
from ._latch import LatchSpec, Policy
from ._memoize import memo_key, memo_prefix
from ._metrics import CacheMetrics
from ._serializers import PlainSerializer, Serializer
from ._warm import Progress, WarmReport
from ._writer import WRITES

R = TypeVar("R")


class AsyncCount:
    """What `AsyncZonalCache.incr` / `decr` return: the local zone's new value and the latch."""

    __slots__ = ("latch", "value")

    def __init__(self, value: int | None, latch: AsyncLatch) -> None:
        self.value = value
        self.latch = latch

    def __repr__(self) -> str:
        return f"AsyncCount(value={self.value!r}, latch={self.latch!r})"


class AsyncZonalCache:
    """A zone-replicated cache client for asyncio over memcached or Valkey/Redis.

    Everything `ZonalCache` does, awaited: writes reach every zone (the local zone on the caller's
    task, the others through one bounded writer task each) and return an `AsyncLatch`; reads stay
    local and fall back; each server is a guarded `Dependency` (`acall`, so its deadline cancels
    the call); large values are chunked; `warm` copies a zone. Build it anywhere, use it inside
    one event loop, and `await cache.close()` (or `async with`) at the end.
    """

    def __init__(
        self,
        zones: Mapping[str, Sequence[str]],
        local_zone: str,
        *,
        backend: str | AsyncNodeFactory = "memcached",
        name: str = "cache",
        default_ttl: int = 900,
        timeout: float = 0.1,
        policy: Policy | str = Policy.ONE,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        serializer: Serializer | None = None,
        write_queue: int = 10_000,
        fallback_on_miss: bool = True,
        breaker: BreakerPolicy | None = DEFAULT_BREAKER,
        max_concurrent: int = 64,
        registry: Registry | None = default_registry,
        owner: str | None = None,
        max_reply: int | None = None,
        hash_keys: bool = False,
        ttl_jitter: float = 0.0,
    ) -> None:
        max_reply = check_options(name, zones, local_zone, default_ttl=default_ttl, timeout=timeout,
                                  chunk_size=chunk_size, write_queue=write_queue,
                                  max_concurrent=max_concurrent, max_reply=max_reply, hash_keys=hash_keys,
                                  ttl_jitter=ttl_jitter, serializer=serializer)
        self.name = name
        self.local_zone = local_zone
        self.default_ttl = default_ttl
        self.policy = Policy.parse(policy)
        self.chunk_size = chunk_size
        self.fallback_on_miss = fallback_on_miss
        self.max_reply = max_reply
        self.hash_keys = hash_keys
        self.ttl_jitter = float(ttl_jitter)
        self._check: Callable[[str | bytes, str], bytes] = check_long_key if hash_keys else check_key
        self.metrics = CacheMetrics()
        self._serializer: Serializer = serializer or PlainSerializer()
        self._registry = registry
        factory = async_node_factory(backend)
        if factory is AsyncMemcachedNode:
            factory = functools.partial(AsyncMemcachedNode, max_reply=max_reply)
        self.backend = backend if isinstance(backend, str) else getattr(backend, "__name__", "custom")
        names = [local_zone, *(z for z in zones if z != local_zone)]
        self._zones: dict[str, AsyncZone] = {}
        for zone_name in names:
            servers = [
                AsyncServer(zone_name, factory(address, timeout), Dependency(
                    f"{name}/{zone_name}/{address}", timeout=timeout, breaker=breaker,
                    bulkhead=SemaphoreBulkhead(max_concurrent=max_concurrent), owner=owner, registry=registry,
                ))
                for address in zones[zone_name]
            ]
            self._zones[zone_name] = AsyncZone(zone_name, servers, max_reply=max_reply)
        self._local = self._zones[local_zone]
        self._order = list(self._zones.values())
        self._remote = self._order[1:]
        self._names = list(self._zones)
        self._writers = [AsyncZoneWriter(z, write_queue, self.metrics) for z in self._remote]
        self._order_locks: list[asyncio.Lock] = [asyncio.Lock() for _ in range(ORDER_STRIPES)]
        self._flights: dict[bytes, asyncio.Future[Any]] = {}
        self._specs = {(op, p): LatchSpec(op, p, self._names) for op in WRITES for p in Policy}
        self._local_count = self.metrics.acks(local_zone, WRITES)  # [operation][acknowledged]
        self._local_hit = self.metrics.counter("get", local_zone, "hit")
        self._closed = False

    # -- reads ---------------------------------------------------------------------------------

    async def get(self, key: str | bytes, default: Any = None, *, zone: str | None = None) -> Any:
        """The value of `key` from the local zone, else the next zone that has it, else `default`."""
        raw = self._check(key, "key")
        if zone is not None:
            value, _ = await self._read(raw, "get", [self.zone(zone)])
            return default if value is MISSING else value
        # The local zone first, in as few steps as possible; anything unusual takes `_read`.
        server = self._local.server_for(raw)
        try:
            data = await server.call(server.node.get, raw)
        except Exception:
            self.metrics.count("get", self.local_zone, "error")
            value, _ = await self._read(raw, "get", self._remote)
            return default if value is MISSING else value
        if data is None:
            self.metrics.count("get", self.local_zone, "miss")
            value, _ = await self._read(raw, "get", self._remote if self.fallback_on_miss else [])
            return default if value is MISSING else value
        if data[:1] == SINGLE_HEAD:
            try:
                value = self._serializer.loads(data[1:])
            except Exception:
                self.metrics.count("get", self.local_zone, "corrupt")
                value, _ = await self._read(raw, "get", self._remote)
                return default if value is MISSING else value
            self._local_hit()
            return value
        value, _ = await self._read(raw, "get", self._order)  # chunked or soft-expiring: the full read
        return default if value is MISSING else value

    async def _read(self, raw: bytes, operation: str, zones: list[AsyncZone]) -> tuple[Any, float | None]:
        metrics = self.metrics
        for z in zones:
            try:
                entry = await z.fetch_entry(raw)
            except CorruptValue:
                metrics.count(operation, z.name, "corrupt")
                continue
            except Exception:
                metrics.count(operation, z.name, "error")
                continue
            if entry is None:
                metrics.count(operation, z.name, "miss")
                if not self.fallback_on_miss:
                    break
                continue
            try:
                value = self._serializer.loads(entry[0])
            except Exception:
                metrics.count(operation, z.name, "corrupt")
                continue
            metrics.count(operation, z.name, "hit")
            return value, entry[1]
        return MISSING, None

    async def get_many(self, keys: Iterable[str | bytes], *, zone: str | None = None) -> dict[Any, Any]:
        """Values of the `keys` found, keyed as given; each zone is asked only for what is missing."""
        wanted: dict[bytes, str | bytes] = {}
        for i, key in enumerate(keys):
            wanted[self._check(key, f"keys[{i}]")] = key
        result: dict[Any, Any] = {}
        missing = list(wanted)
        metrics = self.metrics
        for z in self._order if zone is None else [self.zone(zone)]:
            if not missing:
                break
            found, failed, corrupt = await z.fetch_many(missing)
            hits = 0
            for raw, payload in found.items():
                try:
                    result[wanted[raw]] = self._serializer.loads(payload)
                    hits += 1
                except Exception:
                    corrupt.add(raw)
            missing = [k for k in missing if wanted[k] not in result]
            metrics.count("get_many", z.name, "hit", hits)
            metrics.count("get_many", z.name, "miss", len(missing) - len(failed) - len(corrupt))
            if failed:
                metrics.count("get_many", z.name, "error", len(failed))
            if corrupt:
                metrics.count("get_many", z.name, "corrupt", len(corrupt))
            if not self.fallback_on_miss:
                missing = [k for k in missing if k in failed or k in corrupt]
        return result

    async def counter(self, key: str | bytes, default: int | None = None, *, zone: str | None = None
                      ) -> int | None:
        """A counter's value from the local zone, else the next zone that has it, else `default`."""
        raw = self._check(key, "key")
        for z in self._order if zone is None else [self.zone(zone)]:
            try:
                value = await z.read_counter(raw)
            except CorruptValue:
                self.metrics.count("counter", z.name, "corrupt")
                continue
            except Exception:
                self.metrics.count("counter", z.name, "error")
                continue
            if value is not None:
                self.metrics.count("counter", z.name, "hit")
                return value
            self.metrics.count("counter", z.name, "miss")
            if not self.fallback_on_miss:
                break
        return default

    # -- writes --------------------------------------------------------------------------------

    async def set(self, key: str | bytes, value: Any, ttl: int | None = None, *,
                  policy: Policy | str | None = None) -> AsyncLatch:
        """Store `value` in every zone; `ttl` in seconds (0 = never expires, None = `default_ttl`)."""
        raw = self._check(key, "key")
        items = frames.encode(raw, self._serializer.dumps(value), self.chunk_size)
        seconds = self._ttl(ttl)
        return await self._write("set", raw, lambda z: z.store(items, seconds), policy)

    async def add(self, key: str | bytes, value: Any, ttl: int | None = None, *,
                  policy: Policy | str | None = None) -> AsyncLatch:
        """Store `value` in each zone where `key` is absent; a zone that has it answers "not_stored"."""
        raw = self._check(key, "key")
        items = frames.encode(raw, self._serializer.dumps(value), self.chunk_size)
        seconds = self._ttl(ttl)
        return await self._write("add", raw, lambda z: z.add(items, seconds), policy)

    async def delete(self, key: str | bytes, *, policy: Policy | str | None = None) -> AsyncLatch:
        """Remove `key` from every zone (a zone without it acknowledges "not_found")."""
        raw = self._check(key, "key")
        return await self._write("delete", raw, lambda z: z.delete(raw), policy)

    async def touch(self, key: str | bytes, ttl: int | None = None, *,
                    policy: Policy | str | None = None) -> AsyncLatch:
        """Give `key` a new TTL in every zone."""
        raw = self._check(key, "key")
        seconds = self._ttl(ttl)
        return await self._write("touch", raw, lambda z: z.touch(raw, seconds), policy)

    async def incr(self, key: str | bytes, delta: int = 1, *, initial: int = 0, ttl: int | None = None,
                   policy: Policy | str | None = None) -> AsyncCount:
        """Add `delta` to a counter in every zone; a zone without it starts it at `initial`."""
        return await self._count("incr", key, delta, initial, ttl, policy)

    async def decr(self, key: str | bytes, delta: int = 1, *, initial: int = 0, ttl: int | None = None,
                   policy: Policy | str | None = None) -> AsyncCount:
        """Take `delta` from a counter in every zone, never below 0."""
        return await self._count("decr", key, delta, initial, ttl, policy)

    async def _count(self, operation: str, key: str | bytes, delta: int, initial: int, ttl: int | None,
                     policy: Policy | str | None) -> AsyncCount:
        raw = self._check(key, "key")
        _check_int("delta", delta, 0, MAX_COUNT)
        _check_int("initial", initial, 0, MAX_COUNT)
        seconds = self._ttl(ttl)
        signed = delta if operation == "incr" else -delta
        values: dict[str, int | None] = {}

        async def work(zone: AsyncZone) -> tuple[bool, str]:
            ok, outcome, value = await zone.count_by(raw, signed, initial, seconds)
            values[zone.name] = value
            return ok, outcome

        latch = await self._write(operation, raw, work, policy)
        return AsyncCount(values.get(self.local_zone), latch)

    def _ttl(self, ttl: int | None) -> int:
        seconds = self.default_ttl if ttl is None else check_ttl(ttl)
        return self._jittered(seconds)

    def _jittered(self, seconds: int) -> int:
        if not self.ttl_jitter or seconds <= 1:
            return seconds
        return seconds - random.randint(0, int(seconds * self.ttl_jitter))

    async def _write(self, operation: str, raw: bytes, work: AsyncWrite,
                     policy: Policy | str | None) -> AsyncLatch:
        if self._closed:
            raise CacheError(f"cache {self.name!r} is closed: no more writes")
        spec = self._specs[operation, self.policy if policy is None else Policy.parse(policy)]
        if not self._writers:  # one zone: no queues, so no order to keep
            local = await apply_async(self._local, work)
            self._local_count[operation][local[0]]()
            return AsyncLatch(spec, local)
        # Local write and queueing are one step per key, as in ZonalCache: every zone sees one order.
        async with self._order_locks[hash(raw) % ORDER_STRIPES]:
            local = await apply_async(self._local, work)
            latch = AsyncLatch(spec, local)
            job = AsyncJob(operation, latch, work)
            for writer in self._writers:
                writer.submit(job)
        self._local_count[operation][local[0]]()
        return latch

    # -- get-or-set and memoise ----------------------------------------------------------------

    async def get_or_set(self, key: str | bytes, compute: Callable[[], Awaitable[R]], ttl: int | None = None,
                         *, stale_for: int = 0, lock_for: float = 10.0, wait: float | None = None,
                         policy: Policy | str | None = None) -> R:
        """The cached value of `key`, or `await compute()` stored for `ttl` seconds, computed once.

        The same protection as `ZonalCache.get_or_set`: one task per process computes a missing
        key (the others await its result), a lock item in the local zone keeps other processes
        waiting up to `wait` seconds, and with `stale_for` everyone else gets the stale value.
        """
        raw = self._check(key, "key")
        if not callable(compute):
            raise InvalidConfig(f"compute must be an async function of no arguments, got {compute!r}")
        seconds = self.default_ttl if ttl is None else check_ttl(ttl)
        stale = check_stale_for(stale_for)
        lock_seconds = check_seconds("lock_for", lock_for, 1, 3600)
        wait_seconds = lock_seconds if wait is None else check_seconds("wait", wait, 0, 3600)
        if policy is not None:
            policy = Policy.parse(policy)
        found, fresh_until = await self._read(raw, "get_or_set", self._order)
        if found is not MISSING and (fresh_until is None or time.time() < fresh_until):
            return found  # type: ignore[no-any-return]
        flight = self._flights.get(raw)
        if flight is not None:
            if found is not MISSING:
                self.metrics.count("get_or_set", self.local_zone, "stale")
                return found  # type: ignore[no-any-return]
            try:
                async with asyncio.timeout(wait_seconds):
                    value: R = await asyncio.shield(flight)
                self.metrics.count("get_or_set", self.local_zone, "waited")
                return value
            except TimeoutError:
                return await self._compute(raw, compute, seconds, stale, policy)
        flight = self._flights[raw] = asyncio.get_running_loop().create_future()
        try:
            # Read again: a leader that finished between our read and our join has stored its value.
            again, fresh_until = await self._read(raw, "get_or_set", self._order)
            if again is not MISSING and (fresh_until is None or time.time() < fresh_until):
                value = again
            else:
                value = await self._lead(raw, compute, found, seconds, stale, lock_seconds, wait_seconds,
                                         policy)
        except BaseException as exc:
            if not flight.done():
                flight.set_exception(exc)
                flight.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        else:
            flight.set_result(value)
        finally:
            self._flights.pop(raw, None)
        return value

    async def _lead(self, raw: bytes, compute: Callable[[], Awaitable[R]], found: Any, seconds: int,
                    stale: int, lock_seconds: float, wait_seconds: float, policy: Policy | str | None) -> R:
        lock = lock_key(raw)
        server = self._local.server_for(lock)
        try:
            locked: bool | None = await server.call(server.node.add, lock, b"1", math.ceil(lock_seconds))
        except Exception:
            locked = None  # no lock to be had in the local zone: computing beats waiting on nobody
        if locked is False:
            if found is not MISSING:
                self.metrics.count("get_or_set", self.local_zone, "stale")
                return found  # type: ignore[no-any-return]
            deadline = time.monotonic() + wait_seconds
            for _ in range(math.ceil(wait_seconds / POLL_SECONDS)):
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(POLL_SECONDS)
                value, fresh_until = await self._read(raw, "get_or_set", self._order)
                if value is not MISSING and (fresh_until is None or time.time() < fresh_until):
                    self.metrics.count("get_or_set", self.local_zone, "waited")
                    return value  # type: ignore[no-any-return]
        try:
            return await self._compute(raw, compute, seconds, stale, policy)
        finally:
            if locked:
                with contextlib.suppress(Exception):  # the lock item expires after lock_for anyway
                    await server.call(server.node.delete, lock)

    async def _compute(self, raw: bytes, compute: Callable[[], Awaitable[R]], seconds: int, stale: int,
                       policy: Policy | str | None) -> R:
        pending = compute()
        if not inspect.isawaitable(pending):
            raise InvalidConfig(f"compute must be an async function of no arguments, but it returned "
                                f"{type(pending).__name__}, not an awaitable")
        value = await pending
        payload = self._serializer.dumps(value)
        fresh = self._jittered(seconds)
        if fresh == 0:
            items = frames.encode(raw, payload, self.chunk_size)
            ttl = 0
        else:
            items = frames.soften(frames.encode(raw, payload, self.chunk_size - SOFT_BYTES),
                                  time.time() + fresh)
            ttl = min(fresh + stale, MAX_TTL)
        self.metrics.count("get_or_set", self.local_zone, "computed")
        await self._write("set", raw, lambda z: z.store(items, ttl), policy)
        return value

    def memoize(self, ttl: int | None = None, *, prefix: str | None = None, stale_for: int = 0,
                policy: Policy | str | None = None
                ) -> Callable[[Callable[..., Awaitable[R]]], Callable[..., Awaitable[R]]]:
        """Decorate an `async def` function so its results are cached by arguments (`get_or_set`)."""
        if ttl is not None:
            check_ttl(ttl)
        check_stale_for(stale_for)
        if policy is not None:
            Policy.parse(policy)

        def decorate(fn: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
            if not inspect.iscoroutinefunction(fn):
                raise InvalidConfig(f"memoize on AsyncZonalCache takes an async def function, got "
                                    f"{getattr(fn, '__name__', fn)!r}: use ZonalCache.memoize")
            name = memo_prefix(fn, prefix)

            @functools.wraps(fn)
            async def memoized(*args: Any, **kwargs: Any) -> R:
                key = memo_key(name, args, kwargs)
                return await self.get_or_set(key, lambda: fn(*args, **kwargs), ttl, stale_for=stale_for,
                                             policy=policy)

            return memoized

        return decorate

    # -- zones, warm-up, metrics -----------------------------------------------------------------

    @property
    def zones(self) -> list[str]:
        """Zone names, the local zone first."""
        return list(self._names)

    def zone(self, name: str) -> AsyncZone:
        """The `AsyncZone` called `name`."""
        try:
            return self._zones[name]
        except (KeyError, TypeError):
            raise InvalidConfig(f"zone must be one of {self._names}, got {name!r}") from None

    async def warm(self, source_zone: str, target_zone: str, *, batch: int = 500,
                   progress: Progress | None = None) -> WarmReport:
        """Copy every live item of `source_zone` into `target_zone` with `add` (see `ZonalCache.warm`)."""
        source, target = self.zone(source_zone), self.zone(target_zone)
        if source is target:
            raise InvalidConfig(f"source_zone and target_zone must differ, both are {source_zone!r}")
        _check_int("batch", batch, 1, 100_000)
        target.reset_breakers()
        started = time.monotonic()
        estimate = await source.count()
        seen = copied = skipped = failed = 0
        unreachable: list[str] = []
        for server in source.servers.values():
            try:
                async for listing in server.node.dump(batch):
                    try:
                        values = await server.call(server.node.get_many, [key for key, _ in listing])
                    except Exception:
                        failed += len(listing)
                        seen += len(listing)
                        continue
                    for key, item_ttl in listing:
                        data = values.get(key)
                        if data is None:
                            skipped += 1
                            continue
                        owner = target.server_for(key)
                        try:
                            if await owner.call(owner.node.add, key, data, item_ttl):
                                copied += 1
                            else:
                                skipped += 1
                        except Exception:
                            failed += 1
                    seen += len(listing)
                    if progress is not None:
                        progress(seen, max(estimate, seen))
            except Exception:
                unreachable.append(server.address)
        report = WarmReport(source.name, target.name, seen, copied, skipped, failed,
                            time.monotonic() - started, tuple(unreachable))
        self.metrics.count("warm", target.name, "copied", report.copied)
        return report

    async def flush_writes(self, timeout: float = 5.0) -> bool:  # noqa: ASYNC109  # as ZonalCache's
        """Wait until every zone writer's queue is empty (True) or `timeout` passes (False)."""
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*(w.drained() for w in self._writers))
        except TimeoutError:
            return False
        return True

    def snapshot(self) -> dict[str, Any]:
        """Counters per operation, zone and outcome, hit ratio, writer queues and breaker states."""
        ops = self.metrics.snapshot()
        hits = self.metrics.get("get", outcome="hit") + self.metrics.get("get_many", outcome="hit")
        local_hits = (self.metrics.get("get", self.local_zone, "hit")
                      + self.metrics.get("get_many", self.local_zone, "hit"))
        last = self._order[-1].name if self.fallback_on_miss else self.local_zone
        misses = self.metrics.get("get", last, "miss") + self.metrics.get("get_many", last, "miss")
        queues = {w.zone.name: w.depth for w in self._writers}
        return {
            "name": self.name,
            "backend": self.backend,
            "local_zone": self.local_zone,
            "zones": {z.name: {"servers": z.addresses, "breakers": z.breakers(),
                               "write_queue": queues.get(z.name, 0)} for z in self._order},
            "operations": ops,
            "hits": hits,
            "misses": misses,
            "hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
            "fallback_hits": hits - local_hits,
        }

    async def close(self) -> None:
        """Finish queued writes, stop the writer tasks, close connections, leave the guard registry."""
        if self._closed:
            return
        self._closed = True
        for writer in self._writers:
            await writer.close()
        for z in self._order:
            for server in z.servers.values():
                if self._registry is not None:
                    self._registry.remove(server.dependency)
            await z.close()

    async def __aenter__(self) -> AsyncZonalCache:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<AsyncZonalCache {self.name!r} {self.backend} local={self.local_zone} zones={self._names}>"

