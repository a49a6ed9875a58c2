"""Clocks: the system monotonic clock, and a manual one for simulations and tests."""

from __future__ import annotations

import asyncio
import math
import selectors
import time
from typing import Protocol


class Clock(Protocol):
    """What the guard needs of time: a monotonic reading in nanoseconds and a way to wait."""

    def now_ns(self) -> int: ...

    def sleep(self, seconds: float) -> None: ...

    async def asleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real monotonic clock."""

    now_ns = staticmethod(time.monotonic_ns)
    sleep = staticmethod(time.sleep)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock that moves only when told to; `sleep` advances it instantly.

    >>> clock = ManualClock()
    >>> clock.advance(1.5)
    >>> clock.now_ns()
    1500000000
    """

    def __init__(self, start: float = 0.0) -> None:
        self._ns = int(start * 1e9)

    def now_ns(self) -> int:
        return self._ns

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"advance: seconds must be >= 0, got {seconds}")
        self._ns += int(seconds * 1e9)

    def advance_ns(self, ns: int) -> None:
        if ns < 0:
            raise ValueError(f"advance_ns: ns must be >= 0, got {ns}")
        self._ns += ns

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))

    async def asleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        if isinstance(loop, VirtualTimeLoop) and loop._virtual_clock is self:
            # the loop moves this clock itself, firing due timers (deadlines) on the way
            await asyncio.sleep(max(0.0, seconds))
            return
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)


SYSTEM_CLOCK = SystemClock()


class _AdvancingSelector(selectors.SelectSelector):
    """Instead of waiting for the next timer, move the manual clock to it."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise RuntimeError("virtual time: nothing scheduled and nothing ready (every task is waiting)")
        if timeout > 0:
            # round up to a whole nanosecond, or a timer a fraction of one away would never come due
            self._clock.advance_ns(max(1, math.ceil(timeout * 1e9)))
        return []  # no real I/O runs on this loop, so skip the system call


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose time is a `ManualClock`: sleeps and deadlines pass instantly, in order.

    For simulations and tests that must see time-dependent behaviour (timeouts, breakers opening and
    closing) without waiting for it. No real I/O may be awaited on it.

    >>> clock = ManualClock()
    >>> loop = VirtualTimeLoop(clock)
    >>> loop.run_until_complete(asyncio.sleep(30))
    >>> clock.now_ns() // 10**9
    30
    >>> loop.close()
    """

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(selector=_AdvancingSelector(clock))
        self._virtual_clock = clock

    def time(self) -> float:
        return self._virtual_clock.now_ns() / 1e9
