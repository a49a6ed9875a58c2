"""The bounded background writer of one remote zone: writes queue here and are applied in order."""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from typing import NamedTuple

from ._latch import Latch
from ._metrics import CacheMetrics, next_value
from ._zone import Zone

Apply = Callable[[Zone], tuple[bool, str]]
PlainStore = tuple[bytes, bytes, int]
"""A set of a one-item value: (key, framed data, ttl)."""
Write = Apply | PlainStore

MAX_BATCH = 100  # writes taken from the queue at once
WRITES = ("set", "add", "delete", "touch", "incr", "decr")


class Job(NamedTuple):
    """One write, queued as it is to every remote zone's writer."""

    operation: str
    latch: Latch
    work: Write  # a plain set, which may join a pipelined multi-set, or how to apply any other write


def apply_write(zone: Zone, work: Write) -> tuple[bool, str]:
    """Apply a write to `zone`: (acknowledged, outcome); an error is an outcome, never raised."""
    try:
        if isinstance(work, tuple):
            key, data, ttl = work
            (zone.only or zone.server_for(key)).set(key, data, ttl)
            return True, "stored"
        return work(zone)
    except Exception as exc:
        return False, f"error: {type(exc).__name__}: {exc}"


class ZoneWriter:
    """One daemon thread draining a queue of about `capacity` writes for `zone`.

    A full queue drops the write for this zone at once (reported to the latch as "dropped"): the
    caller never blocks on a slow or dead remote zone. The thread takes every write waiting (up to
    MAX_BATCH) at once, and sends each run of consecutive plain sets with one TTL as one pipelined
    multi-set per server: a zone that fell behind catches up in a few round trips, not one per write.

    The queue is a `queue.SimpleQueue` (C, no Python-level lock or condition on either side), so
    queueing a write costs the caller well under a microsecond. Concurrent callers may overshoot
    `capacity` by one write each: the bound is there to shed load, not to count exactly.
    """

    def __init__(self, zone: Zone, capacity: int, metrics: CacheMetrics) -> None:
        self.zone = zone
        self._capacity = capacity
        self._metrics = metrics
        self._counts = metrics.acks(zone.name, WRITES)  # [operation][acknowledged], looked up once
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        # Writes accepted and writes finished: `next()` on a count is atomic, and only the thread
        # adds to `_finished`, so the two agree exactly when nothing is waiting or in progress.
        self._accepted = itertools.count()
        self._finished = 0
        self._thread = threading.Thread(target=self._run, name=f"stoic-cache-writer-{zone.name}", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Writes waiting."""
        return self._queue.qsize()

    @property
    def idle(self) -> bool:
        """No write waiting or in progress."""
        return self._finished == next_value(self._accepted)  # writes accepted so far

    def submit(self, job: Job) -> None:
        if self._queue.qsize() >= self._capacity:
            self._metrics.count(job.operation, self.zone.name, "dropped")
            if self.zone.name in job.latch.spec.zones:
                job.latch.report(self.zone.name, False, "dropped")
            return
        next(self._accepted)  # before the put: `idle` may only ever err towards "busy"
        self._queue.put(job)

    def _run(self) -> None:
        get, waiting = self._queue.get, self._queue.qsize
        while True:
            batch = [get()]
            # One consumer: what qsize counts is there to take without blocking.
            batch.extend(get() for _ in range(min(waiting(), MAX_BATCH - 1)))
            jobs = [job for job in batch if job is not None]  # None: close() asked the thread to stop
            i = 0
            while i < len(jobs):
                job = jobs[i]
                i += 1
                if not isinstance(job.work, tuple):
                    self._report(job, *apply_write(self.zone, job.work))
                    continue
                run = [(job, job.work)]
                while i < len(jobs) and isinstance(later := jobs[i].work, tuple) and later[2] == job.work[2]:
                    run.append((jobs[i], later))
                    i += 1
                self._store(run)
            if len(jobs) < len(batch):
                return

    def _report(self, job: Job, ok: bool, outcome: str) -> None:
        self._counts[job.operation][ok]()
        if self.zone.name in job.latch.spec.zones:  # a shadow zone's answers count for no policy
            job.latch.report(self.zone.name, ok, outcome)
        self._finished += 1

    def _store(self, run: list[tuple[Job, PlainStore]]) -> None:
        """Plain sets with one TTL, in order, as one multi-set per server (a later set of a key wins)."""
        if len(run) == 1:
            self._report(run[0][0], *apply_write(self.zone, run[0][1]))
            return
        errors = self.zone.store_plain([(key, data) for _, (key, data, _) in run], run[0][1][2])
        for job, (key, _, _) in run:
            error = errors.get(key)
            self._report(job, error is None, error or "stored")

    def close(self, timeout: float = 5.0) -> None:
        """Finish queued writes (up to `timeout` seconds), then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)
