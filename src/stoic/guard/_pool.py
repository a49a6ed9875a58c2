"""A small thread pool for thread isolation: calls can be abandoned at their deadline.

Lighter than concurrent.futures: one C-level SimpleQueue, one lock per call used as the
completion signal, and workers started lazily up to the configured size.
"""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from collections.abc import Callable
from typing import Any


class Job:
    __slots__ = ("after", "args", "deadline", "done", "error", "fn", "kwargs", "started", "ticket", "value")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                 after: Callable[[], None], deadline: float | None) -> None:
        self.fn = fn
        self.after = after
        self.args = args
        self.kwargs = kwargs
        self.deadline = deadline  # time.monotonic() after which the job must not start
        self.value: Any = None
        self.error: BaseException | None = None
        self.started = False
        # One token: the worker takes it to start the job, the caller to withdraw it; `list.pop`
        # is atomic, so exactly one of them wins.
        self.ticket = [1]
        self.done = threading.Lock()
        self.done.acquire()

    def wait(self, timeout: float | None) -> bool:
        """True when the job ran to its end within `timeout` seconds (None: wait for ever)."""
        return self.done.acquire(timeout=-1 if timeout is None else max(0.0, timeout)) and self.started

    def withdraw(self) -> bool:
        """Make sure the job never starts; False when it has already started."""
        try:
            self.ticket.pop()
        except IndexError:
            return False
        return True

    def _claim(self) -> bool:
        """The worker's side of `withdraw`: True when the job may start now."""
        try:
            self.ticket.pop()
        except IndexError:
            return False  # withdrawn by its caller
        return self.deadline is None or time.monotonic() < self.deadline


class WorkerPool:
    def __init__(self, name: str, workers: int) -> None:
        self._name = name
        self._size = workers
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._started = 0
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
               after: Callable[[], None], timeout: float | None) -> Job:
        """Queue `fn` to run in a copy of the caller's context (so per-request state such as a
        failure-injection plan follows it); `after` runs on the worker once it finishes, even if
        the caller gave up. A job still queued `timeout` seconds from now never starts: its caller
        has moved on to a fallback."""
        deadline = None if timeout is None else time.monotonic() + timeout
        job = Job(contextvars.copy_context().run, (fn, *args), kwargs, after, deadline)
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
            if job._claim():
                job.started = True
                try:
                    job.value = job.fn(*job.args, **job.kwargs)
                except BaseException as exc:  # handed to the caller, never lost in the worker
                    job.error = exc
            with self._lock:
                self._idle += 1
            job.after()
            job.done.release()

    def resize(self, workers: int) -> None:
        """Start up to `workers` threads from now on; extra ones already started stay, idle at
        worst (the bulkhead's permits bound the calls in flight)."""
        with self._lock:
            self._size = workers

    def shutdown(self) -> None:
        for _ in range(self._started):
            self._queue.put(None)
