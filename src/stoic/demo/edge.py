"""The edge: takes a viewer's play request and walks the play path through its region's services.

Every call goes through a guard `Dependency` with real fallbacks; each service is reached zone-aware
(own zone, then the region's other zone); the whole play in a region is itself guarded by a breaker
on the region, whose fallback plays the request through the other region.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from stoic.guard import (
    AdaptiveBulkhead,
    BreakerPolicy,
    Bulkhead,
    Dependency,
    DependencyFailed,
    Fallback,
    SemaphoreBulkhead,
    deadline,
)

from . import catalog
from ._store import Store
from ._zones import ClientError, ZonePool
from .services import bad_request
from .topology import OWNERS, Topology

#: the services without which a region cannot start a play: if every level of one fails, the
#: region is unavailable for this play and the edge tries the next region
CRITICAL = frozenset({"subscription", "manifest", "licence"})
LOG_QUEUE_MAX = 20_000
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
SNAPSHOT_TTL = 3600
#: a play's deadline at the edge (seconds): under the device's own 4 s, so the edge answers (from
#: another region, or a fallback) before the device gives up; every call made for the play shares it
#: and carries the time left to the next service as `x-stoic-timeout`
PLAY_DEADLINE = 3.8
LICENCE_TTL = 3600


class RegionUnavailable(Exception):
    """A critical service of the region could not answer at any level."""

    def __init__(self, region: str, service: str, cause: BaseException) -> None:
        self.region = region
        self.service = service
        super().__init__(f"{region}: {service} unavailable ({type(cause).__name__}: {cause})")


class PlayLogQueue:
    """Play events that could not be logged yet, replayed once the playback log answers again."""

    def __init__(self, limit: int = LOG_QUEUE_MAX) -> None:
        self.events: deque[dict[str, Any]] = deque(maxlen=limit)  # oldest dropped first when full
        self.queued = 0
        self.replayed = 0

    def put(self, event: dict[str, Any]) -> None:
        """Keep an event for later (the oldest is dropped when full)."""
        self.events.append(event)
        self.queued += 1

    def take(self, count: int) -> list[dict[str, Any]]:
        """Up to `count` events, oldest first."""
        return [self.events.popleft() for _ in range(min(count, len(self.events)))]


class RegionPath:
    """The play path through one region's services, as seen from one edge process."""

    def __init__(
        self,
        topology: Topology,
        region: str,
        edge_zone: str,
        client: httpx.AsyncClient,
        store: Store,
        log_queue: PlayLogQueue,
    ) -> None:
        self.region = region
        self.own = topology.region_of(edge_zone) == region
        self.store = store
        self.log_queue = log_queue
        self._pending: set[asyncio.Task[None]] = set()
        suffix = "" if self.own else f"@{region}"
        zones = list(topology.regions[region])
        if self.own:  # own zone first
            zones.sort(key=lambda z: z != edge_zone)

        def pool(service: str, timeout: float) -> ZonePool:
            app = topology.host_of(service)
            urls = {z: f"{topology.endpoint(app, z).url}/{service}" for z in zones}
            return ZonePool(
                service,
                urls,
                client,
                timeout=timeout,
                rotate=0 if self.own else len(zones),
                owner=OWNERS[service],
            )

        self.pools = {
            "device": pool("device", 0.25),
            "subscription": pool("subscription", 0.25),
            "personalisation": pool("personalisation", 0.3),
            "manifest": pool("manifest", 0.6),
            "licence": pool("licence", 0.3),
            "playback-log": pool("playback-log", 0.25),
        }

        def dep(
            service: str, timeout: float, fallbacks: list[Fallback], bulkhead: Bulkhead | None = None
        ) -> Dependency:
            return Dependency(
                f"{service}{suffix}",
                timeout=timeout,
                fallbacks=fallbacks,
                owner=OWNERS[service],
                bulkhead=bulkhead or SemaphoreBulkhead(max_concurrent=100),
                breaker=BreakerPolicy(ignore=(ClientError,)),
            )

        self.deps = {
            "device": dep(
                "device",
                0.6,
                [
                    Fallback(self._cached_device, name="cached-device", timeout=0.1),
                    Fallback(self._generic_device, name="generic-device"),
                ],
            ),
            "subscription": dep("subscription", 0.6, [Fallback(self._assume_active, name="assume-active")]),
            # the expensive one (ranking): its limit follows its latency and its failures, and a play
            # over the limit gets the snapshot or the popular row at once instead of queueing
            "personalisation": dep(
                "personalisation",
                0.7,
                [
                    Fallback(self._snapshot, name="snapshot", timeout=0.1),
                    Fallback(self._popular, name="popular"),
                ],
                AdaptiveBulkhead(initial=40, min_limit=4, max_limit=100),
            ),
            "manifest": dep("manifest", 1.3, []),
            "licence": dep(
                "licence", 0.7, [Fallback(self._cached_licence, name="cached-licence", timeout=0.1)]
            ),
            "playback-log": dep("playback-log", 0.6, [Fallback(self._queue_event, name="queued")]),
        }

    # -- primaries -------------------------------------------------------------------------------

    async def _device(self, device_id: str) -> dict[str, Any]:
        answer = await self.pools["device"].request("GET", f"/{device_id}")
        self._remember(f"dev:{device_id}", answer.body, SNAPSHOT_TTL)
        return {**answer.body, "failed_over": answer.failed_over}

    async def _subscription(self, user_id: str, known_device: bool) -> dict[str, Any]:
        answer = await self.pools["subscription"].request("GET", f"/{user_id}")
        return {**answer.body, "failed_over": answer.failed_over}

    async def _personalisation(self, user_id: str, home: str) -> dict[str, Any]:
        answer = await self.pools["personalisation"].request("GET", f"/{user_id}", params={"region": home})
        rows = answer.body["rows"]
        self._remember(f"rows:{user_id}", rows, SNAPSHOT_TTL)
        return {"rows": rows, "failed_over": answer.failed_over}

    async def _manifest(self, title: str, height: int, home: str) -> dict[str, Any]:
        params = {"height": str(height), "region": home}
        answer = await self.pools["manifest"].request("GET", f"/{title}", params=params)
        return {**answer.body, "failed_over": answer.failed_over}

    async def _licence(self, device_id: str, title: str) -> dict[str, Any]:
        answer = await self.pools["licence"].request("POST", f"/{title}", params={"device": device_id})
        self._remember(f"lic:{device_id}:{title}", answer.body, LICENCE_TTL)
        return {**answer.body, "failed_over": answer.failed_over}

    async def _log(self, event: dict[str, Any]) -> dict[str, Any]:
        answer = await self.pools["playback-log"].request("POST", "/start", json=event)
        return {**answer.body, "failed_over": answer.failed_over}

    # -- fallbacks -------------------------------------------------------------------------------

    async def _cached_device(self, device_id: str) -> dict[str, Any]:
        return await self._cached(f"dev:{device_id}")

    async def _generic_device(self, device_id: str) -> dict[str, Any]:
        # a device we cannot look up streams at a safe baseline, and is not vouched for
        return {"device_id": device_id, "type": "unknown", "known": False, "max_height": 720}

    async def _assume_active(self, user_id: str, known_device: bool) -> dict[str, Any]:
        if not known_device:
            raise LookupError("cannot assume membership for a device we do not know")
        return {"user_id": user_id, "active": True, "plan": "standard", "assumed": True}

    async def _snapshot(self, user_id: str, home: str) -> dict[str, Any]:
        return {"rows": await self._cached(f"rows:{user_id}")}

    async def _popular(self, user_id: str, home: str) -> dict[str, Any]:
        top = catalog.popular(home)
        return {"rows": {"continue": top[:3], "top_picks": top}}

    async def _cached_licence(self, device_id: str, title: str) -> dict[str, Any]:
        return await self._cached(f"lic:{device_id}:{title}")

    async def _queue_event(self, event: dict[str, Any]) -> dict[str, Any]:
        self.log_queue.put(event)
        return {"logged": 0, "queued": len(self.log_queue.events)}

    async def _cached(self, key: str) -> dict[str, Any]:
        value = await self.store.get(key)
        if not isinstance(value, dict):  # a miss (None) or something this edge never wrote
            raise LookupError(f"cache miss: {key}")
        return value

    def _remember(self, key: str, value: Any, ttl: int) -> None:
        # off the play's critical path: the viewer never waits on a cache write
        task = asyncio.create_task(self._write(key, value, ttl))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, key: str, value: Any, ttl: int) -> None:
        # a lost snapshot write only makes a later fallback miss
        with contextlib.suppress(Exception):
            await self.store.set(key, value, ttl)

    # -- the play ----------------------------------------------------------------------------------

    async def _step(
        self, service: str, sources: dict[str, str], fn: Callable[..., Awaitable[Any]], *args: Any
    ) -> Any:
        try:
            result = await self.deps[service].aexecute(fn, *args)
        except DependencyFailed as exc:
            if service in CRITICAL:
                raise RegionUnavailable(self.region, service, exc) from exc
            raise
        source = result.source
        if source == "primary" and isinstance(result.value, dict) and result.value.get("failed_over"):
            source = "other-zone"  # the preferred zone failed; another zone of the region answered
        sources[service] = source
        return result.value

    async def play(self, user_id: str, device_id: str, home: str, play_id: str) -> dict[str, Any]:
        """Start a play in this region; raises `RegionUnavailable` when a critical service cannot answer."""
        sources: dict[str, str] = {}
        device = await self._step("device", sources, self._device, device_id)
        sub, recs = await asyncio.gather(
            self._step("subscription", sources, self._subscription, user_id, bool(device.get("known"))),
            self._step("personalisation", sources, self._personalisation, user_id, home),
        )
        if not sub.get("active"):
            raise ClientError(f"{user_id} has no active membership")
        title = recs["rows"]["continue"][0]
        height = min(
            catalog.PLAN_HEIGHT.get(sub.get("plan", "basic"), 480), int(device.get("max_height", 720))
        )
        manifest, licence = await asyncio.gather(
            self._step("manifest", sources, self._manifest, title, height, home),
            self._step("licence", sources, self._licence, device_id, title),
        )
        sources["steering"] = manifest.get("steering", "primary")
        event = {
            "play_id": play_id,
            "user_id": user_id,
            "title": title,
            "region": self.region,
            "at": time.time(),
        }
        await self._step("playback-log", sources, self._log, event)
        return {
            "play_id": play_id,
            "user_id": user_id,
            "title": title,
            "name": manifest["name"],
            "region": self.region,
            "height": manifest["height"],
            "segments": manifest["segments"],
            "segment_seconds": manifest["segment_seconds"],
            "cdns": manifest["cdns"],
            "licence": licence["licence"],
            "sources": sources,
        }

    async def drain(self, batch: int = 200) -> int:
        """Replay queued play events; returns how many were logged."""
        events = self.log_queue.take(batch)
        if not events:
            return 0
        try:
            await self.pools["playback-log"].request("POST", "/start", json=events)
        except Exception:
            for event in reversed(events):  # keep them, in order, for the next try
                self.log_queue.events.appendleft(event)
            return 0
        self.log_queue.replayed += len(events)
        return len(events)


class Edge:
    """One edge process: a path per region and the breaker on its home region."""

    def __init__(self, topology: Topology, zone: str, client: httpx.AsyncClient, store: Store) -> None:
        self.topology = topology
        self.zone = zone
        self.home = topology.region_of(zone)
        self.log_queue = PlayLogQueue()
        self.paths = {
            r: RegionPath(topology, r, zone, client, store, self.log_queue) for r in topology.regions
        }
        self.others = topology.other_regions(self.home)
        # The region breaker: once most plays fail in the home region, plays go straight to the other
        # region for `open_for` seconds instead of paying for the failed attempt each time.
        self.region = Dependency(
            f"region-{self.home}",
            timeout=2.5,
            breaker=BreakerPolicy(
                window=5.0, buckets=10, min_calls=6, error_rate=0.5, open_for=3.0, ignore=(ClientError,)
            ),
            bulkhead=SemaphoreBulkhead(max_concurrent=200),
            fallbacks=[Fallback(self._elsewhere, name="other-region", timeout=2.5)] if self.others else [],
            owner=OWNERS["edge"],
        )
        self.plays = 0
        self.failed = 0

    async def _here(self, user_id: str, device_id: str, home: str, play_id: str) -> dict[str, Any]:
        return await self.paths[self.home].play(user_id, device_id, home, play_id)

    async def _elsewhere(self, user_id: str, device_id: str, home: str, play_id: str) -> dict[str, Any]:
        last: BaseException | None = None
        for region in self.others:
            try:
                return await self.paths[region].play(user_id, device_id, home, play_id)
            except RegionUnavailable as exc:
                last = exc
        raise last or RegionUnavailable(self.home, "region", LookupError("no other region"))

    async def play(self, user_id: str, device_id: str, home: str, play_id: str) -> dict[str, Any]:
        """Play in the home region, or in another when home is unavailable or its breaker is open."""
        async with deadline(PLAY_DEADLINE):  # kept to if the caller sent a shorter one
            result = await self.region.aexecute(self._here, user_id, device_id, home, play_id)
        answer = dict(result.value)
        answer["sources"] = {**answer["sources"], "region": result.source}
        answer["edge"] = self.zone
        return answer

    def routes(self) -> list[BaseRoute]:
        """The edge's HTTP routes: ``POST /play`` and ``GET /edge/stats``."""

        async def play(request: Request) -> Response:
            try:
                body = await request.json()
            except ValueError:
                return bad_request("body", "must be a JSON object with user, device, region and play_id")
            if not isinstance(body, dict):
                return bad_request("body", "must be a JSON object with user, device, region and play_id")
            for field in ("user", "device", "play_id"):
                value = body.get(field)
                if not isinstance(value, str) or not _ID.fullmatch(value):
                    return bad_request(field, "required: 1-64 letters, digits, '_', '.', ':' or '-'")
            home = body.get("region", self.home)
            if home not in self.topology.regions:
                return bad_request(
                    "region", f"must be one of {', '.join(self.topology.regions)}; got {home!r}"
                )
            self.plays += 1
            try:
                answer = await self.play(body["user"], body["device"], home, body["play_id"])
            except ClientError as exc:
                return JSONResponse({"error": "refused", "message": str(exc)}, status_code=403)
            except Exception as exc:
                self.failed += 1
                return JSONResponse({"error": "unavailable", "message": str(exc)[:500]}, status_code=503)
            return JSONResponse(answer)

        async def stats(request: Request) -> Response:
            return JSONResponse(
                {
                    "zone": self.zone,
                    "plays": self.plays,
                    "failed": self.failed,
                    "region_breaker": self.region.breaker.state,
                    "log_queue": len(self.log_queue.events),
                    "log_queued": self.log_queue.queued,
                    "log_replayed": self.log_queue.replayed,
                }
            )

        return [Route("/play", play, methods=["POST"]), Route("/edge/stats", stats)]

    async def drain_forever(self, interval: float = 0.5) -> None:
        """Replay queued play events to the home region's playback log (runs for the process's life)."""
        while True:
            await asyncio.sleep(interval)
            if self.log_queue.events:
                await self.paths[self.home].drain()
