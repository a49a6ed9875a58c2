"""The bounded background writer of one remote zone: writes queue here and are applied in order."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import NamedTuple

from ._latch import Latch
from ._metrics import CacheMetrics
from ._zone import Zone

Apply = Callable[[Zone], tuple[bool, str]]
PlainStore = tuple[bytes, bytes, int]
"""A set of a one-item value: (key, framed data, ttl)."""

MAX_BATCH = 100  # writes taken from the queue at once


class Job(NamedTuple):
    operation: str
    apply: Apply
    latch: Latch
    plain: PlainStore | None  # set for a one-item `set`: it may join a pipelined multi-set


class ZoneWriter:
    """One daemon thread draining a queue of at most `capacity` writes for `zone`.

    A full queue drops the write for this zone at once (reported to the latch as "dropped"): the
    caller never blocks on a slow or dead remote zone. The thread takes every write waiting (up to
    MAX_BATCH) at once, and sends each run of consecutive plain sets with one TTL as one pipelined
    multi-set per server: a zone that fell behind catches up in a few round trips, not one per write.
    """

    def __init__(self, zone: Zone, capacity: int, metrics: CacheMetrics) -> None:
        self.zone = zone
        self._metrics = metrics
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=capacity)
        self._thread = threading.Thread(target=self._run, name=f"stoic-cache-writer-{zone.name}", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Writes waiting."""
        return self._queue.qsize()

    @property
    def idle(self) -> bool:
        """No write waiting or in progress."""
        return self._queue.unfinished_tasks == 0

    def submit(self, operation: str, apply: Apply, latch: Latch, plain: PlainStore | None = None) -> None:
        try:
            self._queue.put_nowait(Job(operation, apply, latch, plain))
        except queue.Full:
            self._metrics.count(operation, self.zone.name, "dropped")
            latch.report(self.zone.name, False, "dropped")

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH and batch[-1] is not None:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            jobs = [job for job in batch if job is not None]  # None: close() asked the thread to stop
            start = 0
            while start < len(jobs):
                end = start + 1
                plain = jobs[start].plain
                if plain is None:
                    self._apply(jobs[start])
                else:
                    while end < len(jobs) and (later := jobs[end].plain) is not None and later[2] == plain[2]:
                        end += 1
                    self._store(jobs[start:end], plain[2])
                start = end
            for _ in batch:
                self._queue.task_done()
            if batch[-1] is None:
                return

    def _apply(self, job: Job) -> None:
        try:
            ok, outcome = job.apply(self.zone)
        except Exception as exc:
            ok, outcome = False, f"error: {type(exc).__name__}: {exc}"
        self._metrics.count(job.operation, self.zone.name, "ok" if ok else "failed")
        job.latch.report(self.zone.name, ok, outcome)

    def _store(self, jobs: list[Job], ttl: int) -> None:
        """Plain sets, in order, as one multi-set per server (a later set of a key wins)."""
        if len(jobs) == 1:
            self._apply(jobs[0])
            return
        plains = [(job, job.plain) for job in jobs if job.plain is not None]
        errors = self.zone.store_plain([(key, data) for _, (key, data, _) in plains], ttl)
        name = self.zone.name
        for job, (key, _, _) in plains:
            error = errors.get(key)
            self._metrics.count(job.operation, name, "failed" if error else "ok")
            job.latch.report(name, error is None, error or "stored")

    def close(self, timeout: float = 5.0) -> None:
        """Finish queued writes (up to `timeout` seconds), then stop the thread."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)
