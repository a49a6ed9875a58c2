"""The bounded background writer of one remote zone: writes queue here and are applied in order."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from ._latch import Latch
from ._metrics import CacheMetrics
from ._zone import Zone

Apply = Callable[[Zone], tuple[bool, str]]


class ZoneWriter:
    """One daemon thread draining a queue of at most `capacity` writes for `zone`.

    A full queue drops the write for this zone at once (reported to the latch as "dropped"): the
    caller never blocks on a slow or dead remote zone.
    """

    def __init__(self, zone: Zone, capacity: int, metrics: CacheMetrics) -> None:
        self.zone = zone
        self._metrics = metrics
        self._queue: queue.Queue[tuple[str, Apply, Latch] | None] = queue.Queue(maxsize=capacity)
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

    def submit(self, operation: str, apply: Apply, latch: Latch) -> None:
        try:
            self._queue.put_nowait((operation, apply, latch))
        except queue.Full:
            self._metrics.count(operation, self.zone.name, "dropped")
            latch.report(self.zone.name, False, "dropped")

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:  # close() asked this thread to stop
                self._queue.task_done()
                return
            operation, apply, latch = job
            try:
                ok, outcome = apply(self.zone)
            except Exception as exc:
                ok, outcome = False, f"error: {type(exc).__name__}: {exc}"
            self._metrics.count(operation, self.zone.name, "ok" if ok else "failed")
            latch.report(self.zone.name, ok, outcome)
            self._queue.task_done()

    def close(self, timeout: float = 5.0) -> None:
        """Finish queued writes (up to `timeout` seconds), then stop the thread."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)
