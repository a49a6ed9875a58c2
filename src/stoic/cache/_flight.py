"""Stampede protection inside one process: the first caller of a key computes, the others wait.

Across processes the cache adds a lock item in the local zone (see `ZonalCache.get_or_set`); this
module keeps the threads of one process from even asking for that lock more than once per key.
"""

from __future__ import annotations

import threading
from typing import Any

from ._errors import InvalidConfig
from ._keys import MAX_TTL

MISSING: Any = object()  # no value (None is a value a function may return and the cache store)
POLL_SECONDS = 0.02  # how often a waiter in another process looks for the computed value


class Flight:
    """One computation of one key; followers wait on `done` for `value` or `error`."""

    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = MISSING
        self.error: BaseException | None = None


class Flights:
    """The computations in progress, by key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[bytes, Flight] = {}

    def join(self, key: bytes) -> tuple[Flight, bool]:
        """(the key's flight, True if the caller leads it and must `land` it)."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            flight = self._flights[key] = Flight()
            return flight, True

    def land(self, key: bytes, flight: Flight, value: Any = MISSING,
             error: BaseException | None = None) -> None:
        """End the leader's flight with its value or error and wake the followers."""
        flight.value, flight.error = value, error
        with self._lock:
            self._flights.pop(key, None)
        flight.done.set()


def check_seconds(field: str, value: object, low: float, high: float) -> float:
    """A number of seconds in low..high, or `InvalidConfig` naming `field`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidConfig(f"{field} must be a number of seconds in {low:g}..{high:g}, got {value!r}")
    return float(value)


def check_stale_for(value: object) -> int:
    """get_or_set's stale_for: integer seconds a value may be served stale after it is due."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TTL:
        raise InvalidConfig(f"stale_for must be an integer number of seconds in 0..{MAX_TTL}, got {value!r}")
    return value
