"""Deadlines for coroutines without a timer per call.

`asyncio.wait_for` spawns a task per call and `asyncio.timeout` schedules (and cancels) a timer
handle per call. A dependency has one timeout, so its deadlines mostly arrive in order: a queue of
in-flight calls kept in deadline order and a single armed timer, set for the earliest unfinished
deadline, are enough. (A call that waited for a bulkhead permit registers after calls that started
later: it is inserted in its place.) When the timer fires it drops finished entries, cancels
overdue tasks and re-arms for the next.
Cost per call: one small list and a deque append (and usually a popleft when it ends, so the queue
holds about as many entries as there are calls in flight).
"""

from __future__ import annotations

import asyncio
import bisect
from collections import deque
from collections.abc import Callable
from typing import Any

from ._clock import Clock

RUNNING, DONE, EXPIRED = 0, 1, 2


class Deadlines:
    """In-flight coroutine calls of one dependency on one event loop."""

    __slots__ = ("clock", "loop", "pending", "shared_clock", "timeout", "timer", "timer_at")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float, clock: Clock) -> None:
        self.loop = loop
        self.timeout = timeout
        self.clock = clock
        # Asyncio loops keep time with the monotonic clock, as the guard does: then the call's own
        # start reading gives the deadline and the loop need not be asked again on every call.
        self.shared_clock = abs(loop.time() - clock.now_ns() / 1e9) < 0.001
        # entries: [deadline (loop time), task, RUNNING | DONE | EXPIRED], in deadline order
        self.pending: deque[list[Any]] = deque()
        self.timer: asyncio.TimerHandle | None = None  # armed for pending[0]'s deadline
        self.timer_at = 0.0  # when it fires (it may be armed for an entry that has since ended)

    def start(self, task: asyncio.Task[Any], now_ns: int, timeout: float) -> list[Any]:
        """Register `task` for cancellation at now + `timeout` (the dependency's, or less under a
        request deadline); mark the entry DONE when it ends.

        `now_ns` is when the call started, before any wait for a bulkhead permit: a call that
        waited joins with an earlier deadline than calls admitted after it started, and goes
        in its place, so its deadline is kept exactly.
        """
        if self.shared_clock:
            now = now_ns / 1e9
        else:  # the loop's time when the call started
            now = self.loop.time() - (self.clock.now_ns() - now_ns) / 1e9
        deadline = now + timeout
        entry: list[Any] = [deadline, task, RUNNING]
        pending = self.pending
        if not pending or pending[-1][0] <= deadline:
            pending.append(entry)  # the usual case: deadlines arrive in order
            if self.timer is None:
                self.timer = self.loop.call_at(deadline, self._fire)
                self.timer_at = deadline
            elif deadline < self.timer_at:  # a shorter timeout (a request deadline) behind an empty queue
                self.timer.cancel()
                self.timer = self.loop.call_at(deadline, self._fire)
                self.timer_at = deadline
            return entry
        i = bisect.bisect_right(pending, deadline, key=_deadline)
        pending.insert(i, entry)
        if i == 0:  # the earliest deadline now: the timer must fire for it
            if self.timer is not None:
                self.timer.cancel()
            self.timer = self.loop.call_at(deadline, self._fire)
            self.timer_at = deadline
        return entry

    def _fire(self) -> None:
        now = self.loop.time()
        pending = self.pending
        while pending:
            entry = pending[0]
            if entry[2] == RUNNING:
                if entry[0] > now:
                    self.timer = self.loop.call_at(entry[0], self._fire)
                    self.timer_at = entry[0]
                    return
                entry[2] = EXPIRED
                self.expire(entry)
            pending.popleft()
        self.timer = None

    def expire(self, entry: list[Any]) -> None:
        """What happens at an entry's time: its task is cancelled."""
        entry[1].cancel()


class HedgeTimers(Deadlines):
    """The same queue and single timer, for hedges. An entry holds what its call needs to race (no
    object per call: most calls end before their hedge time); at its time `begin` turns that into
    the race, which starts the hedge, and the entry keeps the race for its call to find."""

    __slots__ = ("begin",)

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float, clock: Clock,
                 begin: Callable[[Any], Any]) -> None:
        super().__init__(loop, timeout, clock)
        self.begin = begin

    def expire(self, entry: list[Any]) -> None:
        entry[1] = self.begin(entry[1])


def _deadline(entry: list[Any]) -> float:
    return entry[0]  # type: ignore[no-any-return]
