"""Clocks for the Simian Army: real time, or a compressed day for demos."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

from ._errors import ChaosConfigError


class Clock(Protocol):
    """Where the monkeys read "now" (schedules, windows, gaps are all in this clock's time)."""

    @property
    def speed(self) -> float:
        """Clock seconds per real second (1 for the system clock)."""
        ...

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class SystemClock:
    """Real time."""

    speed = 1.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


class CompressedClock:
    """Time that runs `speed` times faster than real time, from `start` (default: now).

    ``CompressedClock(speed=480)`` runs a day of chaos in three minutes;
    ``CompressedClock(start=datetime(2026, 11, 23, 10, tzinfo=UTC), speed=1)`` pins the clock to a
    Monday morning.
    """

    def __init__(self, speed: float = 60.0, start: datetime | None = None) -> None:
        if isinstance(speed, bool) or not isinstance(speed, int | float) or not 0 < speed <= 100_000:
            raise ChaosConfigError(f"speed must be a number in (0, 100000]; got {speed!r}")
        if start is not None and start.tzinfo is None:
            raise ChaosConfigError("start must be timezone-aware (e.g. datetime(..., tzinfo=UTC))")
        self.speed = float(speed)
        self.start = start or datetime.now(UTC)
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._t0) * self.speed)

    def __repr__(self) -> str:
        return f"CompressedClock(speed={self.speed:g}, start={self.start.isoformat()})"


__all__ = ["Clock", "CompressedClock", "SystemClock"]
