"""A small thread pool for thread isolation: calls can be abandoned at their deadline.

Lighter than concurrent.futures: one C-level SimpleQueue, one lock per call used as the
completion signal, and workers started lazily up to the configured size.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any


class Job:
    __slots__ = ("after", "args", "done", "error", "fn", "kwargs", "value")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                 after: Callable[[], None]) -> None:
        self.fn = fn
        self.after = after
        self.args = args
        self.kwargs = kwargs
        self.value: Any = None
        self.error: BaseException | None = None
        self.done = threading.Lock()
        self.done.acquire()

    def wait(self, timeout: float | None) -> bool:
        """True when the job finished within `timeout` seconds (None: wait for ever)."""
        return self.done.acquire(timeout=-1 if timeout is None else max(0.0, timeout))


class WorkerPool:
    def __init__(self, name: str, workers: int) -> None:
        self._name = name
        self._size = workers
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._started = 0
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
               after: Callable[[], None]) -> Job:
        """Queue `fn` to run in a copy of the caller's context (so per-request state such as a
        failure-injection plan follows it); `after` runs on the worker once it finishes, even if
        the caller gave up."""
        job = Job(contextvars.copy_context().run, (fn, *args), kwargs, after)
        # Claim an idle worker or start one, so that while the pool has room a call never waits
        # in the queue behind a busy worker.
        with self._lock:
            if self._idle:
                self._idle -= 1
                n = 0
            elif self._started < self._size:
                self._started += 1
                n = self._started
            else:
                n = 0
        self._queue.put(job)
        if n:
            threading.Thread(target=self._work, name=f"stoic-{self._name}-{n}", daemon=True).start()
        return job

    def _work(self) -> None:
        get = self._queue.get
        while True:
            job = get()
            if job is None:
                return
            try:
                job.value = job.fn(*job.args, **job.kwargs)
            except BaseException as exc:  # handed to the caller, never lost in the worker
                job.error = exc
            with self._lock:
                self._idle += 1
            job.after()
            job.done.release()

    def shutdown(self) -> None:
        for _ in range(self._started):
            self._queue.put(None)
