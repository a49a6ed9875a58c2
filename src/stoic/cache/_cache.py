"""`ZonalCache`: one full copy per zone; writes reach every zone, reads stay local and fall back."""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from stoic.guard import BreakerPolicy, Dependency, Registry, SemaphoreBulkhead
from stoic.guard import registry as default_registry

from . import _frames as frames
from ._backends import DEFAULT_MAX_REPLY, MemcachedNode, NodeFactory, node_factory, parse_address
from ._errors import CacheError, CorruptValue, InvalidConfig
from ._flight import MISSING, POLL_SECONDS, Flights, check_seconds, check_stale_for
from ._frames import MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, SINGLE_HEAD, SOFT_BYTES
from ._keys import MAX_TTL, check_key, check_long_key, check_ttl, lock_key
from ._latch import Count, Latch, Policy
from ._memoize import memo_key, memo_prefix
from ._metrics import CacheMetrics
from ._route import Route
from ._serializers import PlainSerializer, Serializer
from ._warm import Progress, WarmReport, copy_zone, move_keys
from ._writer import WRITES, Job, Write, ZoneWriter, apply_write
from ._zone import Server, Zone

DEFAULT_CHUNK_SIZE = 1024 * 1024 - 1024  # memcached's 1 MiB item limit, less room for key and header
MAX_REPLY_LIMIT = 1 << 40
ORDER_STRIPES = 256  # locks that keep writes to one key in one order across zones (see _write)
# A dead cache node should be skipped quickly: fewer calls to decide than Hystrix's 20, shorter open.
DEFAULT_BREAKER = BreakerPolicy(min_calls=10, error_rate=0.5, open_for=2.0)
MAX_COUNT = 2**64 - 1  # memcached counters are unsigned 64-bit
MAX_JITTER = 0.5
R = TypeVar("R")


class ZonalCache:
    """A zone-replicated cache client over memcached or Valkey/Redis (EVCache-style).

    - every zone holds a full copy; inside a zone keys are sharded by a ketama ring;
    - writes go to the local zone on the caller's thread and to the other zones through one
      bounded background writer each; the returned `Latch` waits for `policy` acknowledgements;
    - reads go to the local zone and fall back to the others on a miss or an error;
    - each server is a guarded `stoic.guard.Dependency`, so a dead node fails fast.

    Example (servers at these addresses)::

        cache = ZonalCache({"a": ["127.0.1.5:11211"], "b": ["127.0.2.5:11211"]}, local_zone="a")
        cache.set("title:42", {"name": "Stoic"}, policy="all").wait(0.5)
        cache.get("title:42")
    """

    def __init__(
        self,
        zones: Mapping[str, Sequence[str]],
        local_zone: str,
        *,
        backend: str | NodeFactory = "memcached",
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
        self.default_ttl = default_ttl
        self.name = name
        self.local_zone = local_zone
        self.policy = Policy.parse(policy)
        self.chunk_size = chunk_size
        self.fallback_on_miss = fallback_on_miss
        self.max_reply = max_reply
        self.hash_keys = hash_keys
        self.ttl_jitter = float(ttl_jitter)
        # Keys over 250 bytes are hashed only when asked: a hashed key cannot be listed back.
        self._check: Callable[[str | bytes, str], bytes] = check_long_key if hash_keys else check_key
        self._flights = Flights()
        self.metrics = CacheMetrics()
        self._serializer: Serializer = serializer or PlainSerializer()
        self._dumps, self._loads = self._serializer.dumps, self._serializer.loads
        # A bytes value under the default serializer is framed and tagged in one step (see set).
        plain = type(self._serializer) is PlainSerializer
        self._bytes_head = SINGLE_HEAD + PlainSerializer.BYTES_TAG if plain else None
        self._registry = registry
        factory = node_factory(backend)
        if factory is MemcachedNode:  # custom factories keep their (address, timeout) signature
            factory = functools.partial(MemcachedNode, max_reply=max_reply)
        self.backend = backend if isinstance(backend, str) else getattr(backend, "__name__", "custom")
        self._server_options = (factory, timeout, breaker, max_concurrent, owner)
        self._write_queue = write_queue
        names = [local_zone, *(z for z in zones if z != local_zone)]
        self._zones: dict[str, Zone] = {}  # serving and shadow zones alike
        for zone_name in names:
            servers = [self._server(zone_name, address) for address in zones[zone_name]]
            self._zones[zone_name] = Zone(zone_name, servers, max_reply=max_reply)
        self._local = self._zones[local_zone]
        self._writer_of = {z: ZoneWriter(self._zones[z], write_queue, self.metrics) for z in names[1:]}
        self._order_locks = [threading.Lock() for _ in range(ORDER_STRIPES)]
        self._membership = threading.Lock()  # one membership change at a time
        self._closed = False
        self._local_hit = self.metrics.counter("get", local_zone, "hit")
        self._local_count = self.metrics.acks(local_zone, WRITES)  # [operation][acknowledged]
        self._use(Route(list(self._zones.values()), [], self._writer_of, self.policy))

    def _server(self, zone_name: str, address: str) -> Server:
        factory, timeout, breaker, max_concurrent, owner = self._server_options
        dependency = Dependency(
            f"{self.name}/{zone_name}/{address}",
            timeout=timeout,
            breaker=breaker,
            bulkhead=SemaphoreBulkhead(max_concurrent=max_concurrent),
            owner=owner,
            registry=self._registry,
        )
        return Server(zone_name, factory(address, timeout), dependency)

    def _use(self, route: Route) -> None:
        # Reads take `_order` / `_remote` whole; writes take `_route` under their key's lock.
        with self._quiet():
            self._route = route
            self._order, self._remote, self._names = route.order, route.remote, route.names

    # -- reads ---------------------------------------------------------------------------------

    def get(self, key: str | bytes, default: Any = None, *, zone: str | None = None) -> Any:
        """The value of `key` from the local zone, else from the next zone that has it, else `default`.

        With `zone`, read only that zone (no fallback). Errors and corrupt values count in the
        metrics and move the read on to the next zone; they never reach the caller.
        """
        raw = self._check(key, "key")
        if zone is not None:
            return self._get_slow(raw, default, [self.zone(zone)])
        # Fast path: the local zone with as few calls as possible; large values take the slow path.
        server = self._local.only or self._local.server_for(raw)
        try:
            data = server.get(raw)
        except Exception:
            self.metrics.count("get", self.local_zone, "error")
            return self._get_slow(raw, default, self._remote)
        if data is None:
            self.metrics.count("get", self.local_zone, "miss")
            return self._get_slow(raw, default, self._remote if self.fallback_on_miss else [])
        if data[:2] == self._bytes_head:  # bytes under the default serializer: unframed in one step
            self._local_hit()
            return data[2:]
        if data[:1] != SINGLE_HEAD:
            return self._get_slow(raw, default, self._order)
        try:
            value = self._loads(data[1:])
        except Exception:
            self.metrics.count("get", self.local_zone, "corrupt")
            return self._get_slow(raw, default, self._remote)
        self._local_hit()
        return value

    def _get_slow(self, raw: bytes, default: Any, zones: list[Zone]) -> Any:
        metrics = self.metrics
        for z in zones:
            try:
                payload = z.fetch(raw)
            except CorruptValue:
                metrics.count("get", z.name, "corrupt")
                continue
            except Exception:
                metrics.count("get", z.name, "error")
                continue
            if payload is None:
                metrics.count("get", z.name, "miss")
                if not self.fallback_on_miss:
                    break
                continue
            try:
                value = self._serializer.loads(payload)
            except Exception:
                metrics.count("get", z.name, "corrupt")
                continue
            metrics.count("get", z.name, "hit")
            return value
        return default

    def get_many(self, keys: Iterable[str | bytes], *, zone: str | None = None) -> dict[Any, Any]:
        """Values of the `keys` found, keyed as given. The local zone answers first; only the keys it
        did not have (or could not serve) are asked of the next zone, and so on."""
        wanted: dict[bytes, str | bytes] = {}
        for i, key in enumerate(keys):
            wanted[self._check(key, f"keys[{i}]")] = key
        result: dict[Any, Any] = {}
        missing = list(wanted)
        metrics = self.metrics
        for z in self._order if zone is None else (self.zone(zone),):
            if not missing:
                break
            found, failed, corrupt = z.fetch_many(missing)
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

    # -- writes --------------------------------------------------------------------------------

    def set(
        self, key: str | bytes, value: Any, ttl: int | None = None, *, policy: Policy | str | None = None
    ) -> Latch:
        """Store `value` in every zone; `ttl` in seconds (0 = never expires, None = `default_ttl`)."""
        raw = self._check(key, "key")
        seconds = self.default_ttl if ttl is None else check_ttl(ttl)
        if self.ttl_jitter:
            seconds = self._jittered(seconds)
        if self._bytes_head is not None and type(value) is bytes:
            data = self._bytes_head + value  # what the serializer and _frames make, in one copy
        else:
            data = SINGLE_HEAD + self._dumps(value)
        if len(data) <= self.chunk_size:  # one item (see _frames): it may join a pipelined multi-set
            return self._write("set", raw, (raw, data, seconds), policy)
        items = frames.encode(raw, data[1:], self.chunk_size)
        return self._write("set", raw, lambda z: z.store(items, seconds), policy)

    def add(
        self, key: str | bytes, value: Any, ttl: int | None = None, *, policy: Policy | str | None = None
    ) -> Latch:
        """Store `value` in each zone where `key` is absent; a zone that has it answers "not_stored"."""
        raw = self._check(key, "key")
        items = frames.encode(raw, self._dumps(value), self.chunk_size)
        seconds = self._jittered(self._ttl(ttl))
        return self._write("add", raw, lambda z: z.add(items, seconds), policy)

    def delete(self, key: str | bytes, *, policy: Policy | str | None = None) -> Latch:
        """Remove `key` from every zone (a zone without it acknowledges "not_found")."""
        raw = self._check(key, "key")
        return self._write("delete", raw, lambda z: z.delete(raw), policy)

    def touch(self, key: str | bytes, ttl: int | None = None, *, policy: Policy | str | None = None) -> Latch:
        """Give `key` a new TTL in every zone."""
        raw = self._check(key, "key")
        seconds = self._jittered(self._ttl(ttl))
        return self._write("touch", raw, lambda z: z.touch(raw, seconds), policy)

    def _ttl(self, ttl: int | None) -> int:
        return self.default_ttl if ttl is None else check_ttl(ttl)

    def _jittered(self, seconds: int) -> int:
        """`seconds` less a random share of at most `ttl_jitter` of it (0 = never expires stays 0),
        so items written together do not all expire in the same second."""
        if not self.ttl_jitter or seconds <= 1:
            return seconds
        return seconds - random.randint(0, int(seconds * self.ttl_jitter))

    # -- counters ------------------------------------------------------------------------------

    def incr(self, key: str | bytes, delta: int = 1, *, initial: int = 0, ttl: int | None = None,
             policy: Policy | str | None = None) -> Count:
        """Add `delta` to a counter in every zone; a zone without it starts it at `initial`.

        Returns `Count(value, latch)`: the local zone's new value (None if it failed) and the
        write's latch. `ttl` applies when a zone creates the counter. Counters are unsigned 64-bit
        integers stored as decimal text: read them with `counter()`, not `get()`.
        """
        return self._count("incr", key, delta, initial, ttl, policy)

    def decr(self, key: str | bytes, delta: int = 1, *, initial: int = 0, ttl: int | None = None,
             policy: Policy | str | None = None) -> Count:
        """Take `delta` from a counter in every zone, never below 0 (memcached's rule)."""
        return self._count("decr", key, delta, initial, ttl, policy)

    def _count(self, operation: str, key: str | bytes, delta: int, initial: int, ttl: int | None,
               policy: Policy | str | None) -> Count:
        raw = self._check(key, "key")
        _check_int("delta", delta, 0, MAX_COUNT)
        _check_int("initial", initial, 0, MAX_COUNT)
        seconds = self._jittered(self._ttl(ttl))
        signed = delta if operation == "incr" else -delta
        values: dict[str, int | None] = {}

        def work(zone: Zone) -> tuple[bool, str]:
            ok, outcome, value = zone.count_by(raw, signed, initial, seconds)
            values[zone.name] = value
            return ok, outcome

        latch = self._write(operation, raw, work, policy)
        return Count(values.get(self.local_zone), latch)

    def counter(self, key: str | bytes, default: int | None = None, *, zone: str | None = None) -> int | None:
        """A counter's value from the local zone, else the next zone that has it, else `default`."""
        raw = self._check(key, "key")
        for z in self._order if zone is None else [self.zone(zone)]:
            try:
                value = z.read_counter(raw)
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

    # -- get-or-set and memoise ----------------------------------------------------------------

    def get_or_set(self, key: str | bytes, compute: Callable[[], R], ttl: int | None = None, *,
                   stale_for: int = 0, lock_for: float = 10.0, wait: float | None = None,
                   policy: Policy | str | None = None) -> R:
        """The cached value of `key`, or `compute()` stored for `ttl` seconds, computed once.

        Stampede protection: in this process one thread computes a missing key and the others
        wait for its value; across processes the first takes a lock item in its local zone for at
        most `lock_for` seconds and the others wait up to `wait` seconds (default `lock_for`) for
        the value to appear, then compute it themselves. With `stale_for`, the value is kept that
        many seconds past `ttl`: while one caller recomputes it, everyone else gets the stale
        value at once. An error from `compute` reaches its caller and the threads waiting on it.
        """
        raw = self._check(key, "key")
        if not callable(compute):
            raise InvalidConfig(f"compute must be a function of no arguments, got {compute!r}")
        seconds = self._ttl(ttl)
        stale = check_stale_for(stale_for)
        lock_seconds = check_seconds("lock_for", lock_for, 1, 3600)
        wait_seconds = lock_seconds if wait is None else check_seconds("wait", wait, 0, 3600)
        if policy is not None:
            policy = Policy.parse(policy)
        found, fresh_until = self._read_entry(raw)
        if found is not MISSING and (fresh_until is None or time.time() < fresh_until):
            self.metrics.count("get_or_set", self.local_zone, "hit")
            return found  # type: ignore[no-any-return]
        flight, leader = self._flights.join(raw)
        if not leader:
            if found is not MISSING:
                self.metrics.count("get_or_set", self.local_zone, "stale")
                return found  # type: ignore[no-any-return]
            if flight.done.wait(wait_seconds):
                if flight.error is not None:
                    raise flight.error
                self.metrics.count("get_or_set", self.local_zone, "waited")
                return flight.value  # type: ignore[no-any-return]
            return self._compute(raw, compute, seconds, stale, policy)  # the leader is too slow
        try:
            # Read again: a leader that finished between our read and our join has stored its value.
            again, fresh_until = self._read_entry(raw)
            if again is not MISSING and (fresh_until is None or time.time() < fresh_until):
                self.metrics.count("get_or_set", self.local_zone, "hit")
                value = again
            else:
                value = self._lead(raw, compute, found, seconds, stale, lock_seconds, wait_seconds, policy)
        except BaseException as exc:
            self._flights.land(raw, flight, error=exc)
            raise
        self._flights.land(raw, flight, value)
        return value

    def _lead(self, raw: bytes, compute: Callable[[], R], found: Any, seconds: int, stale: int,
              lock_seconds: float, wait_seconds: float, policy: Policy | str | None) -> R:
        lock = lock_key(raw)
        server = self._local.server_for(lock)
        try:
            locked = server.call(server.node.add, lock, b"1", math.ceil(lock_seconds))
        except Exception:
            locked = None  # no lock to be had in the local zone: computing beats waiting on nobody
        if locked is False:  # another process computes
            if found is not MISSING:
                self.metrics.count("get_or_set", self.local_zone, "stale")
                return found  # type: ignore[no-any-return]
            deadline = time.monotonic() + wait_seconds
            for _ in range(math.ceil(wait_seconds / POLL_SECONDS)):
                if time.monotonic() >= deadline:
                    break
                time.sleep(POLL_SECONDS)
                value, fresh_until = self._read_entry(raw)
                if value is not MISSING and (fresh_until is None or time.time() < fresh_until):
                    self.metrics.count("get_or_set", self.local_zone, "waited")
                    return value  # type: ignore[no-any-return]
        try:
            return self._compute(raw, compute, seconds, stale, policy)
        finally:
            if locked:
                with contextlib.suppress(Exception):  # the lock item expires after lock_for anyway
                    server.call(server.node.delete, lock)

    def _compute(self, raw: bytes, compute: Callable[[], R], seconds: int, stale: int,
                 policy: Policy | str | None) -> R:
        value = compute()
        payload = self._dumps(value)
        fresh = self._jittered(seconds)
        if fresh == 0:  # never expires: never stale either
            items = frames.encode(raw, payload, self.chunk_size)
            ttl = 0
        else:
            items = frames.soften(frames.encode(raw, payload, self.chunk_size - SOFT_BYTES),
                                  time.time() + fresh)
            ttl = min(fresh + stale, MAX_TTL)
        self.metrics.count("get_or_set", self.local_zone, "computed")
        self._write("set", raw, lambda z: z.store(items, ttl), policy)
        return value

    def _read_entry(self, raw: bytes) -> tuple[Any, float | None]:
        """(value, fresh-until) from the first zone that has `raw`; (MISSING, None) if none has."""
        for z in self._order:
            try:
                entry = z.fetch_entry(raw)
            except CorruptValue:
                self.metrics.count("get_or_set", z.name, "corrupt")
                continue
            except Exception:
                self.metrics.count("get_or_set", z.name, "error")
                continue
            if entry is None:
                if not self.fallback_on_miss:
                    break
                continue
            try:
                return self._loads(entry[0]), entry[1]
            except Exception:
                self.metrics.count("get_or_set", z.name, "corrupt")
        return MISSING, None

    def memoize(self, ttl: int | None = None, *, prefix: str | None = None, stale_for: int = 0,
                policy: Policy | str | None = None) -> Callable[[Callable[..., R]], Callable[..., R]]:
        """Decorate a function so its results are cached by arguments, through `get_or_set`.

        The key is `prefix` (default "<module>.<qualified name>") and a digest of the arguments,
        which must be JSON values. For `async def` functions use `AsyncZonalCache.memoize`.
        """
        if ttl is not None:
            check_ttl(ttl)
        check_stale_for(stale_for)
        if policy is not None:
            Policy.parse(policy)

        def decorate(fn: Callable[..., R]) -> Callable[..., R]:
            if inspect.iscoroutinefunction(fn):
                raise InvalidConfig(f"memoize on ZonalCache takes a plain function, got async {fn.__name__}: "
                                    "use AsyncZonalCache.memoize")
            name = memo_prefix(fn, prefix)

            @functools.wraps(fn)
            def memoized(*args: Any, **kwargs: Any) -> R:
                key = memo_key(name, args, kwargs)
                return self.get_or_set(key, lambda: fn(*args, **kwargs), ttl, stale_for=stale_for,
                                       policy=policy)

            return memoized

        return decorate

    def _write(self, operation: str, raw: bytes, work: Write, policy: Policy | str | None) -> Latch:
        if self._closed:
            raise CacheError(f"cache {self.name!r} is closed: no more writes")
        parsed = None if policy is None else Policy.parse(policy)
        route = self._route
        if not route.writers:  # the only zone answers on the caller's thread: no order to keep
            spec = route.default_specs[operation] if parsed is None else route.specs[operation, parsed]
            local = apply_write(self._local, work)
            self._local_count[operation][local[0]]()
            return Latch.final(spec, local)
        # The local zone first, on the caller's thread; its outcome comes with the latch. Writing
        # locally and queueing for the other zones is one step per key: otherwise two threads
        # writing one key can reach the local zone in one order and the queues in the other, and
        # the zones keep different values for good.
        with self._order_locks[hash(raw) % ORDER_STRIPES]:
            route = self._route  # again: a membership change may have come while this waited
            spec = route.default_specs[operation] if parsed is None else route.specs[operation, parsed]
            local = apply_write(self._local, work)
            latch = Latch(spec, local)
            job = Job(operation, latch, work)
            for writer in route.writers:
                writer.submit(job)
        self._local_count[operation][local[0]]()
        return latch

    # -- zones, warm-up, metrics -----------------------------------------------------------------

    @property
    def zones(self) -> list[str]:
        """Zone names, the local zone first."""
        return list(self._names)

    @property
    def shadow_zones(self) -> list[str]:
        """Write-only zones: they get every write, serve no read and count for no policy."""
        return [z.name for z in self._route.shadows]

    def zone(self, name: str) -> Zone:
        """The `Zone` called `name` (serving or shadow)."""
        try:
            return self._zones[name]
        except (KeyError, TypeError):
            raise InvalidConfig(f"zone must be one of {list(self._zones)}, got {name!r}") from None

    # -- membership, while serving ---------------------------------------------------------------

    def add_server(self, zone: str, address: str, *, batch: int = 500) -> WarmReport:
        """Add a server to `zone`'s ring. The keys the ring now gives it are copied to it from the
        zone's other servers (with `add`, so a write made meanwhile wins); until they are, its
        misses fall back to the other zones."""
        with self._membership:
            target = self._changeable(zone)
            parse_address(address, "address")
            if address in target.servers:
                raise InvalidConfig(f"address {address!r} is already a server of zone {zone!r}")
            _check_int("batch", batch, 1, 100_000)
            server = self._server(target.name, address)
            try:
                held = server.call(server.node.count)
            except Exception as exc:
                server.node.close()
                self._forget(server)
                raise CacheError(f"server {address} cannot join zone {zone!r}: {exc}") from exc
            if held:
                # Its items may be older than the zone's (a server coming back): `add` would keep them.
                server.node.close()
                self._forget(server)
                raise InvalidConfig(f"address {address!r} holds {held} items: a joining server must start "
                                    "empty (a new or restarted process)")
            others = list(target.servers.values())
            with self._quiet():
                target.add_server(server)
            report = move_keys(target, others, batch)
            target.previous = None
            self.metrics.count("rebalance", target.name, "copied", report.copied)
            return report

    def remove_server(self, zone: str, address: str, *, batch: int = 500) -> WarmReport:
        """Take a server out of `zone`'s ring; its keys are copied to their new owners in the zone
        before it is closed (a dead server's keys stay readable from the other zones)."""
        with self._membership:
            target = self._changeable(zone)
            if address not in target.servers:
                raise InvalidConfig(
                    f"address must be one of {target.addresses} (zone {zone!r}), got {address!r}")
            if len(target.servers) == 1:
                raise InvalidConfig(
                    f"zone {zone!r} has only {address}: remove the zone instead (remove_zone)")
            _check_int("batch", batch, 1, 100_000)
            with self._quiet():
                leaving = target.remove_server(address)
            report = move_keys(target, [leaving], batch)
            target.previous = None
            self.metrics.count("rebalance", target.name, "copied", report.copied)
            self._forget(leaving)
            leaving.node.close()
            return report

    def add_zone(self, zone: str, addresses: Sequence[str], *, shadow: bool = True) -> None:
        """Add a zone while serving. By default it joins write-only (a shadow zone): it gets every
        write from now on, serves no read and counts for no policy. `warm(<a zone>, zone)` then
        copies what it missed, and `promote(zone)` makes it serve (last in the read order)."""
        if not isinstance(shadow, bool):
            raise InvalidConfig(f"shadow must be True or False, got {shadow!r}")
        with self._membership:
            if isinstance(zone, str) and zone in self._zones:
                raise InvalidConfig(f"zone {zone!r} already exists (zones: {list(self._zones)})")
            _check_zones({zone: addresses}, zone)
            self._check_open()
            added = Zone(zone, [self._server(zone, a) for a in addresses], max_reply=self.max_reply)
            self._zones[zone] = added
            self._writer_of[zone] = ZoneWriter(added, self._write_queue, self.metrics)
            route = self._route
            if shadow:
                self._use(Route(route.order, [*route.shadows, added], self._writer_of, self.policy))
            else:
                self._use(Route([*route.order, added], route.shadows, self._writer_of, self.policy))

    def promote(self, zone: str) -> None:
        """Make a shadow zone serve: it joins the read order (last) and counts for write policies."""
        with self._membership:
            target = self.zone(zone)
            route = self._route
            if target not in route.shadows:
                raise InvalidConfig(f"zone must be one of the shadow zones {self.shadow_zones}, got {zone!r}")
            shadows = [z for z in route.shadows if z is not target]
            self._use(Route([*route.order, target], shadows, self._writer_of, self.policy))

    def remove_zone(self, zone: str) -> None:
        """Stop using a zone (not the local one): no more reads or writes; its queued writes finish
        first, then its connections close. Writes already acknowledged stay in the other zones."""
        with self._membership:
            target = self._changeable(zone)
            if target is self._local:
                raise InvalidConfig(
                    f"zone must not be the local zone {self.local_zone!r}: it cannot be removed")
            route = self._route
            self._use(Route([z for z in route.order if z is not target],
                            [z for z in route.shadows if z is not target], self._writer_of, self.policy))
            self._writer_of.pop(target.name).close()
            del self._zones[target.name]
            for server in target.servers.values():
                if self._registry is not None:
                    self._registry.remove(server.dependency)
            target.close()

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """Hold every key's write lock: no write of a multi-zone cache is between its local zone and
        its queues meanwhile (a one-zone cache's writes take no lock and may straddle a change)."""
        for lock in self._order_locks:
            lock.acquire()
        try:
            yield
        finally:
            for lock in self._order_locks:
                lock.release()

    def _forget(self, server: Server) -> None:
        if self._registry is not None:
            self._registry.remove(server.dependency)

    def _changeable(self, zone: str) -> Zone:
        self._check_open()
        return self.zone(zone)

    def _check_open(self) -> None:
        if self._closed:
            raise CacheError(f"cache {self.name!r} is closed: no membership changes")

    def warm(
        self, source_zone: str, target_zone: str, *, batch: int = 500, progress: Progress | None = None
    ) -> WarmReport:
        """Copy every live item of `source_zone` into `target_zone` (e.g. one restarted empty).

        The target's breakers are reset first (the zone is declared back). Items already in the
        target are kept: `add` never overwrites a newer write. `progress(seen, estimated)` is
        called after each batch.
        """
        source, target = self.zone(source_zone), self.zone(target_zone)
        if source is target:
            raise InvalidConfig(f"source_zone and target_zone must differ, both are {source_zone!r}")
        _check_int("batch", batch, 1, 100_000)
        target.reset_breakers()
        report = copy_zone(source, target, batch, progress)
        self.metrics.count("warm", target.name, "copied", report.copied)
        return report

    def flush_writes(self, timeout: float = 5.0) -> bool:
        """Wait until every zone writer's queue is empty (True) or `timeout` passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(w.idle for w in list(self._writer_of.values())):
                return True
            time.sleep(0.005)
        return False

    def snapshot(self) -> dict[str, Any]:
        """Counters per operation, zone and outcome, hit ratio, writer queues and breaker states."""
        ops = self.metrics.snapshot()
        hits = self.metrics.get("get", outcome="hit") + self.metrics.get("get_many", outcome="hit")
        local_hits = self.metrics.get("get", self.local_zone, "hit") + self.metrics.get(
            "get_many", self.local_zone, "hit"
        )
        misses = self._final_misses()
        queues = {name: w.depth for name, w in list(self._writer_of.items())}
        route = self._route
        return {
            "name": self.name,
            "backend": self.backend,
            "local_zone": self.local_zone,
            "zones": {
                z.name: {
                    "servers": z.addresses,
                    "breakers": z.breakers(),
                    "write_queue": queues.get(z.name, 0),
                    "shadow": z in route.shadows,
                }
                for z in (*route.order, *route.shadows)
            },
            "operations": ops,
            "hits": hits,
            "misses": misses,
            "hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
            "fallback_hits": hits - local_hits,
        }

    def _final_misses(self) -> int:
        # A read missed when no zone answered it; with fallback that is the last zone's miss count.
        last = self._order[-1].name if self.fallback_on_miss else self.local_zone
        return self.metrics.get("get", last, "miss") + self.metrics.get("get_many", last, "miss")

    def close(self) -> None:
        """Finish queued writes, stop the writers, close connections, leave the guard registry."""
        if self._closed:
            return
        self._closed = True
        for writer in self._writer_of.values():
            writer.close()
        for z in self._zones.values():
            for server in z.servers.values():
                if self._registry is not None:
                    self._registry.remove(server.dependency)
            z.close()

    def __enter__(self) -> ZonalCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ZonalCache {self.name!r} {self.backend} local={self.local_zone} zones={self._names}>"


def check_options(name: object, zones: Mapping[str, Sequence[str]], local_zone: str, *, default_ttl: object,
                  timeout: object, chunk_size: int, write_queue: object, max_concurrent: object,
                  max_reply: int | None, hash_keys: object, ttl_jitter: object, serializer: object) -> int:
    """Check a cache's settings (sync or asyncio alike), naming the field; returns `max_reply`."""
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise InvalidConfig(f"name must be a non-empty string without spaces, got {name!r}")
    _check_zones(zones, local_zone)
    check_ttl(default_ttl, "default_ttl")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 60:
        raise InvalidConfig(f"timeout must be a number of seconds in (0, 60], got {timeout!r}")
    _check_int("chunk_size", chunk_size, MIN_CHUNK_SIZE, MAX_CHUNK_SIZE)
    _check_int("write_queue", write_queue, 1, 10_000_000)
    _check_int("max_concurrent", max_concurrent, 1, 100_000)
    if max_reply is None:
        max_reply = max(DEFAULT_MAX_REPLY, 2 * chunk_size + 4096)
    # One item (a chunk, its key and the reply line) must always fit in one reply.
    _check_int("max_reply", max_reply, chunk_size + 4096, MAX_REPLY_LIMIT)
    if not isinstance(hash_keys, bool):
        raise InvalidConfig(f"hash_keys must be True or False, got {hash_keys!r}")
    if isinstance(ttl_jitter, bool) or not isinstance(ttl_jitter, int | float) or not (
        0 <= ttl_jitter <= MAX_JITTER
    ):
        raise InvalidConfig(f"ttl_jitter must be a fraction in 0..{MAX_JITTER}, got {ttl_jitter!r}")
    if serializer is not None and not isinstance(serializer, Serializer):
        raise InvalidConfig(f"serializer must have dumps(value) and loads(bytes), got {serializer!r}")
    return max_reply


def _check_int(field: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidConfig(f"{field} must be an integer in {low}..{high}, got {value!r}")


def _check_zones(zones: object, local_zone: object) -> None:
    if not isinstance(zones, Mapping) or not zones:
        raise InvalidConfig(f"zones must be a non-empty mapping of zone name -> addresses, got {zones!r}")
    for zone_name, addresses in zones.items():
        if not isinstance(zone_name, str) or not zone_name or any(c.isspace() or c == "/" for c in zone_name):
            raise InvalidConfig(f"zone names must be non-empty, without spaces or '/', got {zone_name!r}")
        if isinstance(addresses, str) or not isinstance(addresses, Sequence) or not addresses:
            raise InvalidConfig(
                f"zones[{zone_name!r}] must be a non-empty list of 'host:port' addresses, got {addresses!r}"
            )
        for i, address in enumerate(addresses):
            parse_address(address, f"zones[{zone_name!r}][{i}]")
        if len(set(addresses)) != len(addresses):
            raise InvalidConfig(f"zones[{zone_name!r}] lists a server twice: {list(addresses)}")
    if local_zone not in zones:
        raise InvalidConfig(f"local_zone must be one of {list(zones)}, got {local_zone!r}")
