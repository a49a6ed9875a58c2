"""Catalog: scenarios switched on in this process, applied to every request they target."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from stoic.fit._identity import RequestIdentity
from stoic.fit._known import DependencyNames, warn_unknown
from stoic.fit._plan import MAX_SCENARIOS
from stoic.fit._scenario import Scenario
from stoic.guard import registry as guard_registry


class Catalog:
    """The scenarios active in a process (what an operator switches on for a share of real traffic).

    The middlewares consult it for every request, after any signed header; expired scenarios drop out
    on their own. A dependency name that `registry` (the guard's process registry unless given; None
    for no check) does not know warns with `FitWarning` and close matches.

    >>> catalog.add(Scenario("tv-no-recs", "personalisation", devices=["tv"], percent=1, ttl=600))
    """

    def __init__(
        self,
        *,
        max_scenarios: int = MAX_SCENARIOS,
        registry: DependencyNames | None = guard_registry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        valid = isinstance(max_scenarios, int) and not isinstance(max_scenarios, bool)
        if not valid or not 1 <= max_scenarios <= 1000:
            raise ValueError(f"max_scenarios: must be an integer in [1, 1000], got {max_scenarios!r}")
        self.max_scenarios = max_scenarios
        self.registry = registry
        self._clock = clock
        self._lock = threading.Lock()
        self._scenarios: tuple[Scenario, ...] = ()

    def add(self, scenario: Scenario) -> None:
        """Switch a scenario on (replacing one with the same name)."""
        if not isinstance(scenario, Scenario):
            raise TypeError(f"scenario must be a Scenario, got {type(scenario).__name__}")
        with self._lock:
            now = self._clock()
            kept = tuple(s for s in self._scenarios if s.name != scenario.name and not s.expired(now))
            if len(kept) >= self.max_scenarios:
                raise ValueError(f"scenarios: the catalog holds at most {self.max_scenarios} scenarios")
            self._scenarios = (*kept, scenario)
        warn_unknown(scenario, self.registry)

    def remove(self, name: str) -> bool:
        """Switch the scenario called `name` off; False if there was none."""
        with self._lock:
            before = len(self._scenarios)
            self._scenarios = tuple(s for s in self._scenarios if s.name != name)
            return len(self._scenarios) != before

    def clear(self) -> None:
        """Switch every scenario off."""
        with self._lock:
            self._scenarios = ()

    def get(self, name: str) -> Scenario | None:
        """The active scenario called `name`, if any."""
        return next((s for s in self.active() if s.name == name), None)

    def active(self) -> tuple[Scenario, ...]:
        """The scenarios that have not expired."""
        now = self._clock()
        return tuple(s for s in self._scenarios if not s.expired(now))

    def matching(self, identity: RequestIdentity) -> tuple[Scenario, ...]:
        """The active scenarios that target `identity`."""
        scenarios = self._scenarios
        if not scenarios:
            return ()
        now = self._clock()
        return tuple(s for s in scenarios if not s.expired(now) and s.targets(identity))

    def snapshot(self) -> list[dict[str, Any]]:
        """The active scenarios as JSON-ready dicts."""
        return [s.to_dict() for s in self.active()]

    def __len__(self) -> int:
        return len(self.active())


catalog = Catalog()
"""The process-wide catalog the middlewares consult unless given another."""
