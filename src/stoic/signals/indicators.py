"""Leading indicators in fixed-interval time buckets, per region, bounded in memory.

Counts are kept raw (starts, failed starts, seconds watched, seconds rebuffering) and the
indicators are derived when read, so a bucket can keep receiving late observations until it
is evaluated.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from stoic.signals import _validate

SPS = "sps"
ERROR_RATE = "error_rate"
REBUFFER_RATIO = "rebuffer_ratio"
BUILT_IN = (SPS, ERROR_RATE, REBUFFER_RATIO)

LABELS: dict[str, tuple[str, str]] = {
    SPS: ("Stream starts per second", "starts/s"),
    ERROR_RATE: ("Stream start error rate", "ratio"),
    REBUFFER_RATIO: ("Rebuffering ratio", "ratio"),
}

# How an indicator going wrong looks: stream starts fall, errors and rebuffering rise.
DIRECTION: dict[str, str] = {SPS: "down", ERROR_RATE: "up", REBUFFER_RATIO: "up"}


@dataclass(slots=True)
class _Bucket:
    starts: int = 0
    failures: int = 0
    watched: float = 0.0
    rebuffer: float = 0.0
    gauges: dict[str, list[float]] = field(default_factory=dict)  # name -> [sum, count]


@dataclass(frozen=True, slots=True)
class Point:
    """One bucket of one indicator: `t` is the bucket start (unix seconds); `value` None = no data."""

    t: float
    value: float | None


class Indicators:
    """Stream starts per second, start error rate and rebuffering ratio per region, in time buckets.

    `interval` is the bucket width in seconds, `retention` the number of buckets kept per region
    (older ones are dropped), `max_regions` bounds the label set.
    """

    def __init__(
        self,
        interval: float = 60.0,
        *,
        retention: int = 7 * 24 * 60,
        max_regions: int = 64,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.interval = _validate.number("interval", interval, low=0.0, low_open=True)
        self.retention = _validate.integer("retention", retention, low=2, high=1_000_000)
        self.max_regions = _validate.integer("max_regions", max_regions, low=1, high=10_000)
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, dict[int, _Bucket]] = {}
        self._first: dict[str, int] = {}  # region -> first bucket index with start counts
        self._newest: dict[str, int] = {}
        self.dropped = 0  # observations older than the retention window

    # ---- recording -------------------------------------------------------------------------
    def index(self, at: float) -> int:
        """The bucket index holding time `at`."""
        return int(at // self.interval)

    def bucket_start(self, index: int) -> float:
        return index * self.interval

    def _bucket(self, region: str, at: float | None) -> _Bucket | None:
        idx = self.index(self.clock() if at is None else at)
        per_region = self._buckets.get(region)
        if per_region is None:
            if len(self._buckets) >= self.max_regions:
                raise ValueError(
                    f"region: at most {self.max_regions} regions are tracked, {region!r} would be one more"
                )
            per_region = self._buckets[region] = {}
        newest = self._newest.get(region, idx)
        if idx <= newest - self.retention:
            self.dropped += 1
            return None
        bucket = per_region.get(idx)
        if bucket is None:
            bucket = per_region[idx] = _Bucket()
            if idx > newest or region not in self._newest:
                self._newest[region] = idx
                floor = idx - self.retention
                if len(per_region) > self.retention:
                    for old in [i for i in per_region if i <= floor]:
                        del per_region[old]
        return bucket

    def observe_start(
        self, region: str = "global", *, ok: bool = True, at: float | None = None, count: int = 1
    ) -> None:
        """Count `count` stream start attempts in `region`; `ok=False` counts failed starts."""
        with self._lock:
            bucket = self._bucket(region, at)
            if bucket is None:
                return
            if ok:
                bucket.starts += count
            else:
                bucket.failures += count
            idx = self.index(self.clock() if at is None else at)
            if idx < self._first.get(region, idx + 1):
                self._first[region] = idx

    def observe_playback(
        self, region: str = "global", *, watched_s: float, rebuffer_s: float = 0.0, at: float | None = None
    ) -> None:
        """Add `watched_s` seconds of playback of which the viewer waited `rebuffer_s` seconds."""
        with self._lock:
            bucket = self._bucket(region, at)
            if bucket is not None:
                bucket.watched += watched_s
                bucket.rebuffer += rebuffer_s

    def record(self, name: str, value: float, region: str = "global", *, at: float | None = None) -> None:
        """Record a measured value (the bucket reports the mean); for built-in names it replaces
        the value derived from counts, so an app that measures SPS itself can report it."""
        with self._lock:
            bucket = self._bucket(region, at)
            if bucket is not None:
                acc = bucket.gauges.setdefault(name, [0.0, 0.0])
                acc[0] += value
                acc[1] += 1.0
                if name == SPS:
                    idx = self.index(self.clock() if at is None else at)
                    if idx < self._first.get(region, idx + 1):
                        self._first[region] = idx

    # ---- reading ---------------------------------------------------------------------------
    def regions(self) -> list[str]:
        with self._lock:
            return sorted(self._buckets)

    def names(self, region: str) -> list[str]:
        """Indicators with data in `region`: the built-in ones first, then recorded ones."""
        with self._lock:
            buckets = self._buckets.get(region, {})
            found: set[str] = set()
            for b in buckets.values():
                if b.starts or b.failures:
                    found.update((SPS, ERROR_RATE))
                if b.watched or b.rebuffer:
                    found.add(REBUFFER_RATIO)
                found.update(b.gauges)
        return [n for n in BUILT_IN if n in found] + sorted(found - set(BUILT_IN))

    def value(self, name: str, region: str, index: int) -> float | None:
        """The value of one indicator in one bucket (None = no data)."""
        with self._lock:
            return self._value(name, region, index)

    def _value(self, name: str, region: str, index: int) -> float | None:
        bucket = self._buckets.get(region, {}).get(index)
        if bucket is not None and name in bucket.gauges:
            total, n = bucket.gauges[name]
            return total / n
        if name == SPS:
            # No starts in a bucket is a real zero (an outage) once the region has reported and
            # the source has moved on past that bucket, in any region; if nothing arrived from
            # anywhere since, it is no data, never a zero.
            if bucket is None or (bucket.starts == 0 and bucket.failures == 0 and not bucket.gauges):
                first = self._first.get(region)
                return 0.0 if first is not None and first <= index <= self._source_newest() else None
            return bucket.starts / self.interval
        if bucket is None:
            return None
        if name == ERROR_RATE:
            attempts = bucket.starts + bucket.failures
            return bucket.failures / attempts if attempts else None
        if name == REBUFFER_RATIO:
            total_s = bucket.watched + bucket.rebuffer
            return bucket.rebuffer / total_s if total_s else None
        return None

    def counts(self, region: str, index: int) -> tuple[int, int]:
        """(successful starts, failed starts) in one bucket."""
        with self._lock:
            bucket = self._buckets.get(region, {}).get(index)
            return (bucket.starts, bucket.failures) if bucket else (0, 0)

    def series(
        self, name: str, region: str, *, since: float | None = None, until: float | None = None
    ) -> list[Point]:
        """Points of one indicator from `since` to `until` (default: the retained window)."""
        with self._lock:
            newest = self._newest.get(region)
            if newest is None:
                return []
            end = newest if until is None else min(newest, self.index(until))
            start = (
                end - self.retention + 1
                if since is None
                else max(self.index(since), end - self.retention + 1)
            )
            return [Point(self.bucket_start(i), self._value(name, region, i)) for i in range(start, end + 1)]

    def _source_newest(self) -> int:
        return max(self._newest.values(), default=-1)

    def source_newest(self) -> int | None:
        """The newest bucket that received anything, in any region."""
        with self._lock:
            newest = self._source_newest()
        return None if newest < 0 else newest

    def oldest_index(self, region: str) -> int | None:
        with self._lock:
            buckets = self._buckets.get(region)
            return min(buckets) if buckets else None

    def newest_index(self, region: str) -> int | None:
        with self._lock:
            return self._newest.get(region)
