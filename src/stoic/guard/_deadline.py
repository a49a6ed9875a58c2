"""Deadlines for coroutines without a timer per call.

`asyncio.wait_for` spawns a task per call and `asyncio.timeout` schedules (and cancels) a timer
handle per call. A dependency has one timeout, so its deadlines arrive in order: a queue of
in-flight calls and a single armed timer, set for the oldest unfinished deadline, are enough.
When the timer fires it drops finished entries, cancels overdue tasks and re-arms for the next.
Cost per call: one small list and a deque append (and usually a popleft when it ends, so the queue
holds about as many entries as there are calls in flight).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from ._clock import Clock

RUNNING, DONE, EXPIRED = 0, 1, 2


class Deadlines:
    """In-flight coroutine calls of one dependency on one event loop."""

    __slots__ = ("armed", "loop", "pending", "shared_clock", "timeout")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float, clock: Clock) -> None:
        self.loop = loop
        self.timeout = timeout
        # Asyncio loops keep time with the monotonic clock, as the guard does: then the call's own
        # start reading gives the deadline and the loop need not be asked again on every call.
        self.shared_clock = abs(loop.time() - clock.now_ns() / 1e9) < 0.001
        # entries: [deadline (loop time), task, RUNNING | DONE | EXPIRED]
        self.pending: deque[list[Any]] = deque()
        self.armed = False

    def start(self, task: asyncio.Task[Any], now_ns: int) -> list[Any]:
        """Register `task` for cancellation at now + timeout; mark the entry DONE when it ends."""
        now = now_ns / 1e9 if self.shared_clock else self.loop.time()
        entry: list[Any] = [now + self.timeout, task, RUNNING]
        self.pending.append(entry)
        if not self.armed:
            self.armed = True
            self.loop.call_at(entry[0], self._fire)
        return entry

    def _fire(self) -> None:
        now = self.loop.time()
        pending = self.pending
        while pending:
            entry = pending[0]
            if entry[2] == RUNNING:
                if entry[0] > now:
                    self.loop.call_at(entry[0], self._fire)
                    return
                entry[2] = EXPIRED
                entry[1].cancel()
            pending.popleft()
        self.armed = False
