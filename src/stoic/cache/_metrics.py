"""Plain counters per operation, zone and outcome; `snapshot()` is JSON-ready."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable


class CacheMetrics:
    """Counts (operation, zone, outcome), e.g. ("get", "zone-a", "hit").

    Each counter is an `itertools.count`: `next()` on it is atomic under the GIL and far cheaper
    than taking a lock, which matters on the read fast path.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the dict of counters, not the counting
        self._counters: dict[tuple[str, str, str], itertools.count[int]] = {}

    def counter(self, operation: str, zone: str, outcome: str) -> Callable[[], int]:
        """A function that adds one to the counter (keep it to count without any lookup)."""
        key = (operation, zone, outcome)
        found = self._counters.get(key)  # a dict read is atomic: the lock is only for creating
        if found is None:
            with self._lock:
                found = self._counters.get(key)
                if found is None:
                    found = self._counters[key] = itertools.count(1)
        return found.__next__

    def acks(self, zone: str, operations: tuple[str, ...]
             ) -> dict[str, tuple[Callable[[], int], Callable[[], int]]]:
        """Per operation, the ("failed", "ok") counters of `zone`: `acks[op][acknowledged]()` counts."""
        return {op: (self.counter(op, zone, "failed"), self.counter(op, zone, "ok")) for op in operations}

    def count(self, operation: str, zone: str, outcome: str, n: int = 1) -> None:
        """Add `n` to the counter."""
        if n == 1:
            self.counter(operation, zone, outcome)()
            return
        tick = self.counter(operation, zone, outcome)
        for _ in range(n):
            tick()

    def get(self, operation: str, zone: str | None = None, outcome: str | None = None) -> int:
        """Sum of the counters that match (None matches anything)."""
        return sum(
            n
            for (op, z, o), n in self._values().items()
            if op == operation and zone in (None, z) and outcome in (None, o)
        )

    def _values(self) -> dict[tuple[str, str, str], int]:
        with self._lock:
            counters = list(self._counters.items())
        # repr of count(n) is "count(n)": n is the next value, so n - 1 counts so far
        values = {key: next_value(c) - 1 for key, c in counters}
        return {key: n for key, n in values.items() if n > 0}

    def snapshot(self) -> dict[str, dict[str, dict[str, int]]]:
        """{operation: {zone: {outcome: count}}}."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        for (op, zone, outcome), n in sorted(self._values().items()):
            out.setdefault(op, {}).setdefault(zone, {})[outcome] = n
        return out


def next_value(counter: itertools.count[int]) -> int:
    """The value `next(counter)` would return, without taking it (its repr is "count(n)")."""
    return int(repr(counter)[6:-1])
