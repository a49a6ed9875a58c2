"""`ZonalCache`: one full copy per zone; writes reach every zone, reads stay local and fall back."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from stoic.guard import BreakerPolicy, Dependency, Registry, SemaphoreBulkhead
from stoic.guard import registry as default_registry

from . import _frames as frames
from ._backends import DEFAULT_MAX_REPLY, MemcachedNode, NodeFactory, node_factory, parse_address
from ._errors import CacheError, CorruptValue, InvalidConfig
from ._frames import MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, SINGLE_HEAD
from ._keys import check_key, check_ttl
from ._latch import Latch, LatchSpec, Policy
from ._metrics import CacheMetrics
from ._serializers import PlainSerializer, Serializer
from ._warm import Progress, WarmReport, copy_zone
from ._writer import WRITES, Job, Write, ZoneWriter, apply_write
from ._zone import Server, Zone

DEFAULT_CHUNK_SIZE = 1024 * 1024 - 1024  # memcached's 1 MiB item limit, less room for key and header
MAX_REPLY_LIMIT = 1 << 40
ORDER_STRIPES = 256  # locks that keep writes to one key in one order across zones (see _write)
# A dead cache node should be skipped quickly: fewer calls to decide than Hystrix's 20, shorter open.
DEFAULT_BREAKER = BreakerPolicy(min_calls=10, error_rate=0.5, open_for=2.0)


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
    ) -> None:
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise InvalidConfig(f"name must be a non-empty string without spaces, got {name!r}")
        _check_zones(zones, local_zone)
        self.default_ttl = check_ttl(default_ttl, "default_ttl")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 60:
            raise InvalidConfig(f"timeout must be a number of seconds in (0, 60], got {timeout!r}")
        _check_int("chunk_size", chunk_size, MIN_CHUNK_SIZE, MAX_CHUNK_SIZE)
        _check_int("write_queue", write_queue, 1, 10_000_000)
        _check_int("max_concurrent", max_concurrent, 1, 100_000)
        if max_reply is None:
            max_reply = max(DEFAULT_MAX_REPLY, 2 * chunk_size + 4096)
        # One item (a chunk, its key and the reply line) must always fit in one reply.
        _check_int("max_reply", max_reply, chunk_size + 4096, MAX_REPLY_LIMIT)
        if serializer is not None and not isinstance(serializer, Serializer):
            raise InvalidConfig(f"serializer must have dumps(value) and loads(bytes), got {serializer!r}")
        self.name = name
        self.local_zone = local_zone
        self.policy = Policy.parse(policy)
        self.chunk_size = chunk_size
        self.fallback_on_miss = fallback_on_miss
        self.max_reply = max_reply
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
        names = [local_zone, *(z for z in zones if z != local_zone)]
        self._zones: dict[str, Zone] = {}
        for zone_name in names:
            servers = []
            for address in zones[zone_name]:
                dependency = Dependency(
                    f"{name}/{zone_name}/{address}",
                    timeout=timeout,
                    breaker=breaker,
                    bulkhead=SemaphoreBulkhead(max_concurrent=max_concurrent),
                    owner=owner,
                    registry=registry,
                )
                node = factory(address, timeout)
                servers.append(Server(zone_name, node, dependency))
            self._zones[zone_name] = Zone(zone_name, servers, max_reply=max_reply)
        self._local = self._zones[local_zone]
        self._order = list(self._zones.values())
        self._remote = self._order[1:]
        self._names = list(self._zones)
        self._writers = [ZoneWriter(z, write_queue, self.metrics) for z in self._remote]
        self._order_locks = [threading.Lock() for _ in range(ORDER_STRIPES)]
        self._closed = False
        self._local_hit = self.metrics.counter("get", local_zone, "hit")
        self._local_count = self.metrics.acks(local_zone, WRITES)  # [operation][acknowledged]
        self._specs = {(op, p): LatchSpec(op, p, self._names) for op in WRITES for p in Policy}
        self._default_specs = {op: self._specs[op, self.policy] for op in WRITES}

    # -- reads ---------------------------------------------------------------------------------

    def get(self, key: str | bytes, default: Any = None, *, zone: str | None = None) -> Any:
        """The value of `key` from the local zone, else from the next zone that has it, else `default`.

        With `zone`, read only that zone (no fallback). Errors and corrupt values count in the
        metrics and move the read on to the next zone; they never reach the caller.
        """
        raw = check_key(key)
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
            wanted[check_key(key, f"keys[{i}]")] = key
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
        raw = check_key(key)
        seconds = self.default_ttl if ttl is None else check_ttl(ttl)
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
        raw = check_key(key)
        items = frames.encode(raw, self._dumps(value), self.chunk_size)
        seconds = self._ttl(ttl)
        return self._write("add", raw, lambda z: z.add(items, seconds), policy)

    def delete(self, key: str | bytes, *, policy: Policy | str | None = None) -> Latch:
        """Remove `key` from every zone (a zone without it acknowledges "not_found")."""
        raw = check_key(key)
        return self._write("delete", raw, lambda z: z.delete(raw), policy)

    def touch(self, key: str | bytes, ttl: int | None = None, *, policy: Policy | str | None = None) -> Latch:
        """Give `key` a new TTL in every zone."""
        raw = check_key(key)
        seconds = self._ttl(ttl)
        return self._write("touch", raw, lambda z: z.touch(raw, seconds), policy)

    def _ttl(self, ttl: int | None) -> int:
        return self.default_ttl if ttl is None else check_ttl(ttl)

    def _write(self, operation: str, raw: bytes, work: Write, policy: Policy | str | None) -> Latch:
        if self._closed:
            raise CacheError(f"cache {self.name!r} is closed: no more writes")
        if policy is None:
            spec = self._default_specs[operation]
        else:
            spec = self._specs[operation, Policy.parse(policy)]
        if not self._writers:  # the only zone answers on the caller's thread: no order to keep
            local = apply_write(self._local, work)
            self._local_count[operation][local[0]]()
            return Latch.final(spec, local)
        # The local zone first, on the caller's thread; its outcome comes with the latch. Writing
        # locally and queueing for the other zones is one step per key: otherwise two threads
        # writing one key can reach the local zone in one order and the queues in the other, and
        # the zones keep different values for good.
        with self._order_locks[hash(raw) % ORDER_STRIPES]:
            local = apply_write(self._local, work)
            latch = Latch(spec, local)
            job = Job(operation, latch, work)
            for writer in self._writers:
                writer.submit(job)
        self._local_count[operation][local[0]]()
        return latch

    # -- zones, warm-up, metrics -----------------------------------------------------------------

    @property
    def zones(self) -> list[str]:
        """Zone names, the local zone first."""
        return list(self._names)

    def zone(self, name: str) -> Zone:
        """The `Zone` called `name`."""
        try:
            return self._zones[name]
        except KeyError:
            raise InvalidConfig(f"zone must be one of {self._names}, got {name!r}") from None

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
            if all(w.idle for w in self._writers):
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
        queues = {w.zone.name: w.depth for w in self._writers}
        return {
            "name": self.name,
            "backend": self.backend,
            "local_zone": self.local_zone,
            "zones": {
                z.name: {
                    "servers": z.addresses,
                    "breakers": z.breakers(),
                    "write_queue": queues.get(z.name, 0),
                }
                for z in self._order
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
        for writer in self._writers:
            writer.close()
        for z in self._order:
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
