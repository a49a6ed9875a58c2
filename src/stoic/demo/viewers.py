"""The load generator: viewers start plays on a daily pattern, players fetch segments into a buffer.

A compressed day runs over the load's duration: stream starts follow the evening-peak curve of a
streaming service. Each viewer's device reaches an edge of its home region (zones in turn) and fails
over to the other region's edges when those do not answer (DNS steering). Each player then fetches
segments from the CDNs of its manifest, in order, and the buffer model turns late segments into
rebuffering time.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from stoic.guard import Registry

from . import catalog
from ._zones import Answer, ClientError, NoZoneAnswered, ZonePool

PLAY_TIMEOUT = 4.0
SEGMENT_TIMEOUT = 1.0
BUFFER_TARGET = 2.0  # media seconds the player keeps ahead of the playhead
STARTUP_BUFFER = 1.0  # media seconds buffered before the picture starts


#: relative stream starts at each clock hour: the trough before dawn, a slow climb through the day,
#: the evening peak at 21:00, and the drop after midnight
HOURLY = (0.55, 0.35, 0.22, 0.15, 0.12, 0.12, 0.15, 0.2, 0.25, 0.3, 0.33, 0.36,
          0.4, 0.42, 0.44, 0.47, 0.52, 0.6, 0.7, 0.82, 0.95, 1.0, 0.92, 0.75)  # fmt: skip


def daily_shape(hour: float) -> float:
    """Relative stream starts at `hour` (0-24, fractional), 1.0 at the 21:00 peak."""
    h = hour % 24.0
    i = int(h)
    frac = h - i
    return HOURLY[i] * (1.0 - frac) + HOURLY[(i + 1) % 24] * frac


@dataclass(frozen=True, slots=True)
class DailyPattern:
    """Stream starts per second over a compressed day.

    The run's `duration` seconds stand for 24 hours starting at `start_hour`; the rate peaks at `peak`.
    """

    duration: float
    peak: float = 8.0
    start_hour: float = 6.0

    def __post_init__(self) -> None:
        if not 1.0 <= self.duration <= 86400.0:
            raise ValueError(f"duration: must be in [1, 86400] seconds, got {self.duration!r}")
        if not 0.1 <= self.peak <= 500.0:
            raise ValueError(f"peak: must be in [0.1, 500] stream starts per second, got {self.peak!r}")
        if not 0.0 <= self.start_hour < 24.0:
            raise ValueError(f"start_hour: must be in [0, 24), got {self.start_hour!r}")

    def hour(self, t: float) -> float:
        """The clock hour at `t` seconds into the run."""
        return (self.start_hour + 24.0 * t / self.duration) % 24.0

    def rate(self, t: float) -> float:
        """Expected stream starts per second at `t` seconds into the run."""
        return self.peak * daily_shape(self.hour(t))


@dataclass(slots=True)
class PlayRecord:
    """One play, as its viewer saw it."""

    play_id: str
    user_id: str
    home: str
    at: float  # seconds since the load started
    ok: bool = False
    latency: float = 0.0  # seconds from request to the edge's answer
    status: str = ""  # "ok", "refused", "unavailable", "error"
    error: str = ""
    region: str = ""
    edge: str = ""
    edge_failover: bool = False
    sources: dict[str, str] = field(default_factory=dict)
    startup: float = 0.0  # request to first segment in the buffer
    watched: float = 0.0  # media seconds played
    rebuffer: float = 0.0  # seconds the picture froze after starting
    segments: int = 0
    segment_failures: int = 0
    cdn_failovers: int = 0
    fit: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {name: getattr(self, name) for name in self.__slots__}


class EdgeClient:
    """A device's way in: the home region's edges (zones in turn), then the other regions' edges."""

    def __init__(
        self,
        edges: Mapping[str, str],
        regions: Mapping[str, tuple[str, ...]],
        client: httpx.AsyncClient,
        registry: Registry | None = None,
    ) -> None:
        self.pools: dict[str, ZonePool] = {}
        for home, zones in regions.items():
            ordered = [*zones, *(z for r, zs in regions.items() if r != home for z in zs)]
            self.pools[home] = ZonePool(
                f"edge.{home}",
                {z: edges[z] for z in ordered if z in edges},
                client,
                timeout=PLAY_TIMEOUT,
                rotate=len(zones),
                registry=registry,
                owner="edge-team",
            )

    async def play(self, body: dict[str, Any], home: str, headers: dict[str, str]) -> Answer:
        """The edge's answer to a play, from the first edge (in preference order) that gave one."""
        return await self.pools[home].request("POST", "/play", json=body, headers=headers)


class Viewers:
    """Runs the daily pattern of plays against the edges and records every one.

    `fit_headers(play_id)` may return headers (a signed FIT plan) for a play; `on_start(record)` is
    called once the edge answered (or failed), `on_play(record)` once the player stopped watching.
    """

    def __init__(
        self,
        edges: Mapping[str, str],
        regions: Mapping[str, tuple[str, ...]],
        pattern: DailyPattern,
        *,
        seed: int = 1,
        members: int = 200,
        max_sessions: int = 400,
        watch_segments: tuple[int, int] = (4, 10),
        fit_headers: Callable[[str], dict[str, str]] | None = None,
        on_start: Callable[[PlayRecord], None] | None = None,
        on_play: Callable[[PlayRecord], None] | None = None,
        registry: Registry | None = None,
    ) -> None:
        if not 1 <= members <= 1_000_000:
            raise ValueError(f"members: must be in [1, 1000000], got {members!r}")
        if not 1 <= max_sessions <= 100_000:
            raise ValueError(f"max_sessions: must be in [1, 100000], got {max_sessions!r}")
        low, high = watch_segments
        if not 1 <= low <= high <= catalog.SEGMENTS_PER_TITLE:
            raise ValueError(
                f"watch_segments: need 1 <= low <= high <= {catalog.SEGMENTS_PER_TITLE}, got {watch_segments}"
            )
        self.edges = dict(edges)
        self.regions = {k: tuple(v) for k, v in regions.items()}
        self.pattern = pattern
        self.rng = random.Random(seed)
        self.seed = seed
        self.members = [catalog.member(i, tuple(self.regions)) for i in range(members)]
        self.max_sessions = max_sessions
        self.watch_segments = watch_segments
        self.fit_headers = fit_headers
        self.on_start = on_start
        self.on_play = on_play
        self.registry = registry
        self.records: list[PlayRecord] = []
        self.skipped = 0  # arrivals dropped because max_sessions were already playing
        self.active = 0
        self._ids = itertools.count(1)
        self._t0 = 0.0

    def earlier_days(self, days: int) -> Iterator[tuple[float, str]]:
        """The arrivals of `days` compressed days before this run, drawn as the live ones are:
        (seconds from the run's start, all negative; the member's home region). What a platform
        that ran before today would have served."""
        if not 0 <= days <= 28:
            raise ValueError(f"days: must be in [0, 28], got {days!r}")
        rng = random.Random(f"{self.seed}-earlier")  # apart from the live draws
        at = -days * self.pattern.duration
        while True:
            at += rng.expovariate(max(self.pattern.rate(at), 1e-3))
            if at >= 0.0:
                return
            yield at, rng.choice(self.members).region

    def elapsed(self) -> float:
        """Seconds since the load started."""
        return time.monotonic() - self._t0 if self._t0 else 0.0

    async def run(
        self,
        duration: float | None = None,
        *,
        t0: float | None = None,
        stop: asyncio.Event | None = None,
        linger: float = 8.0,
    ) -> list[PlayRecord]:
        """Start plays for `duration` seconds (default: the pattern's), then give the players up to
        `linger` seconds to finish watching. Times count from `t0` (time.monotonic(); default now)."""
        duration = self.pattern.duration if duration is None else duration
        limits = httpx.Limits(max_connections=400, max_keepalive_connections=100)
        async with httpx.AsyncClient(limits=limits, timeout=PLAY_TIMEOUT) as client:
            edge = EdgeClient(self.edges, self.regions, client, self.registry)
            sessions: set[asyncio.Task[None]] = set()
            self._t0 = time.monotonic() if t0 is None else t0
            next_at = 0.0
            while True:
                now = self.elapsed()
                if now >= duration or (stop is not None and stop.is_set()):
                    break
                if now < next_at:
                    await asyncio.sleep(min(next_at - now, 0.25))
                    continue
                # from the planned time, not from now: a late loop catches up instead of losing arrivals
                next_at = max(next_at, now - 5.0) + self.rng.expovariate(max(self.pattern.rate(now), 1e-3))
                if len(sessions) >= self.max_sessions:
                    self.skipped += 1
                    continue
                task = asyncio.create_task(self._session(edge, client, self.rng.choice(self.members), now))
                sessions.add(task)
                task.add_done_callback(sessions.discard)
            if sessions:  # players finish what they are watching, within `linger`
                await asyncio.wait(list(sessions), timeout=linger)
            for task in list(sessions):
                task.cancel()
            if sessions:
                await asyncio.wait(list(sessions), timeout=2.0)
        return self.records

    async def _session(
        self, edge: EdgeClient, client: httpx.AsyncClient, who: catalog.Member, at: float
    ) -> None:
        play_id = f"p{self.seed}-{next(self._ids)}"
        rec = PlayRecord(play_id, who.user_id, who.region, at)
        headers = {"x-request-id": play_id, "x-user-id": who.user_id, "x-device-type": who.device_type}
        if self.fit_headers is not None:
            extra = self.fit_headers(play_id)
            rec.fit = bool(extra)
            headers.update(extra)
        body = {"user": who.user_id, "device": who.device_id, "region": who.region, "play_id": play_id}
        self.active += 1
        answer: dict[str, Any] = {}
        start = time.monotonic()
        try:
            reply = await edge.play(body, who.region, headers)
        except ClientError as exc:
            rec.status, rec.error = "refused", str(exc)[:200]
        except NoZoneAnswered as exc:
            rec.status, rec.error = "unavailable", str(exc)[:300]
        except Exception as exc:
            rec.status, rec.error = "error", f"{type(exc).__name__}: {exc}"[:300]
        else:
            answer = reply.body
            rec.ok, rec.status = True, "ok"
            rec.region = answer.get("region", "")
            rec.edge = answer.get("edge", reply.zone)
            rec.edge_failover = reply.zone not in self.regions[who.region]
            rec.sources = dict(answer.get("sources", {}))
            if rec.edge_failover:  # the device's DNS steered it to another region's edge
                rec.sources["edge"] = "other-region-edge"
            elif reply.failed_over:
                rec.sources["edge"] = "other-zone"
        rec.latency = time.monotonic() - start
        self.records.append(rec)  # recorded now: a player cut short at the end still counts its play
        if self.on_start is not None:
            self.on_start(rec)
        try:
            if rec.ok:
                await self._watch(client, answer, rec, start)
        finally:
            self.active -= 1
            if self.on_play is not None:
                self.on_play(rec)

    async def _watch(
        self, client: httpx.AsyncClient, answer: dict[str, Any], rec: PlayRecord, start: float
    ) -> None:
        """Fetch segments into a buffer and measure how long the picture froze."""
        seconds = float(answer.get("segment_seconds", catalog.SEGMENT_SECONDS))
        cdns: list[str] = list(answer.get("cdns", []))
        title = answer.get("title", catalog.TITLES[0])
        count = self.rng.randint(*self.watch_segments)
        first = self.rng.randrange(0, catalog.SEGMENTS_PER_TITLE - count)
        buffered = 0.0  # media seconds ahead of the playhead
        playing = False
        last = time.monotonic()
        for n in range(first, first + count):
            if not await self._fetch(client, cdns, title, n, rec):
                rec.segment_failures += 1
            now = time.monotonic()
            if playing:
                buffered -= now - last
                if buffered < 0:  # the playhead caught up with the buffer: frozen picture
                    rec.rebuffer += -buffered
                    buffered = 0.0
            last = now
            buffered += seconds
            rec.watched += seconds
            if not playing and (buffered >= STARTUP_BUFFER or n == first + count - 1):
                playing = True  # enough buffered to start the picture
                rec.startup = now - start
            if buffered > BUFFER_TARGET:  # full enough: wait for room, like a real player
                await asyncio.sleep(buffered - BUFFER_TARGET)
        # play out what is left in the buffer (no more fetches, no more stalls)

    async def _fetch(
        self, client: httpx.AsyncClient, cdns: list[str], title: str, n: int, rec: PlayRecord
    ) -> bool:
        """One segment from the first CDN that serves it; a few rounds over the list before giving up."""
        for round_ in range(3):
            for i, base in enumerate(cdns):
                try:
                    resp = await client.get(f"{base}/segment/{title}/{n}", timeout=SEGMENT_TIMEOUT)
                    resp.raise_for_status()
                except (httpx.HTTPError, OSError):
                    continue
                if i > 0 or round_ > 0:
                    rec.cdn_failovers += 1
                return True
            await asyncio.sleep(0.2)
        return False
