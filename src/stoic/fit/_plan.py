"""FailurePlan: the scenarios that apply to one request, as a guard injector."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from stoic.fit._audience import check_audience
from stoic.fit._identity import RequestIdentity
from stoic.fit._scenario import Scenario
from stoic.guard import Fault, inject

MAX_SCENARIOS = 64
MAX_RECORDED = 1000


@dataclass(frozen=True, slots=True)
class Injection:
    """One fault handed to one call: which dependency, by which scenario, when (Unix time)."""

    dependency: str
    scenario: str
    kind: str
    at: float


class FailurePlan:
    """The scenarios bound to one request's identity; implements the guard's `Injector`.

    Targeting (user, device, percentage) is decided once per scenario for this identity, so every call
    in the request, and every service the plan is forwarded to, agrees. `audience`: the services the
    plan may be forwarded to, kept from the header it arrived in (None: the forwarding codec's).
    `halted`: asked before each fault is handed out; while it answers True the plan injects nothing
    (the middlewares pass their catalog's, so halting the catalog stops requests already running).

    >>> plan = FailurePlan([Scenario("no-recs", "personalisation")], RequestIdentity("req-1"))
    >>> with bind(plan):
    ...     personalisation.call(fetch_rows, "u1")   # answered by a fallback
    """

    def __init__(
        self,
        scenarios: Iterable[Scenario] = (),
        identity: RequestIdentity | None = None,
        *,
        expires_at: float | None = None,
        audience: Iterable[str] | None = None,
        clock: Callable[[], float] = time.time,
        halted: Callable[[], bool] | None = None,
    ) -> None:
        self.identity = identity if identity is not None else RequestIdentity.new()
        self.expires_at = expires_at
        self.audience = None if audience is None else check_audience("audience", audience)
        self._clock = clock
        self.halted = halted
        self._lock = threading.Lock()
        self._scenarios: tuple[Scenario, ...] = ()
        self._matching: tuple[Scenario, ...] = ()
        self.injections: deque[Injection] = deque(maxlen=MAX_RECORDED)
        for scenario in scenarios:
            self.add(scenario)

    @property
    def scenarios(self) -> tuple[Scenario, ...]:
        """Every scenario in the plan, whether or not it targets this request."""
        return self._scenarios

    def matching(self) -> tuple[Scenario, ...]:
        """The scenarios that target this request and have not expired (none while halted, so a
        halted plan is not forwarded either)."""
        halted = self.halted
        if halted is not None and halted():
            return ()
        now = self._clock()
        if self.expires_at is not None and now >= self.expires_at:
            return ()
        return tuple(s for s in self._matching if not s.expired(now))

    def add(self, scenario: Scenario) -> None:
        """Add a scenario (replacing one with the same name)."""
        if not isinstance(scenario, Scenario):
            raise TypeError(f"scenario must be a Scenario, got {type(scenario).__name__}")
        with self._lock:
            kept = tuple(s for s in self._scenarios if s.name != scenario.name)
            if len(kept) >= MAX_SCENARIOS:
                raise ValueError(f"scenarios: a plan holds at most {MAX_SCENARIOS} scenarios")
            # copy-on-write: readers on other threads see the old or the new tuple, never half of one
            self._scenarios = (*kept, scenario)
            self._matching = tuple(s for s in self._scenarios if s.targets(self.identity))

    def remove(self, name: str) -> None:
        """Remove the scenario called `name`, if present."""
        with self._lock:
            self._scenarios = tuple(s for s in self._scenarios if s.name != name)
            self._matching = tuple(s for s in self._matching if s.name != name)

    def fault_for(self, dependency: str) -> Fault | None:
        """The fault for `dependency` in this request: the first matching, unexpired scenario's."""
        candidates = self._matching
        if not candidates:
            return None
        halted = self.halted
        if halted is not None and halted():
            return None
        now = self._clock()
        if self.expires_at is not None and now >= self.expires_at:
            return None
        for scenario in candidates:
            if scenario.covers(dependency) and not scenario.expired(now):
                self.injections.append(Injection(dependency, scenario.name, scenario.kind, now))
                return scenario.fault
        return None

    def __repr__(self) -> str:
        return f"FailurePlan({list(self._scenarios)!r}, {self.identity!r})"


_current: ContextVar[FailurePlan | None] = ContextVar("stoic_fit_plan", default=None)


@contextmanager
def bind(plan: FailurePlan) -> Iterator[FailurePlan]:
    """Apply `plan` to the calls made in this context (request, task or thread) only."""
    token = _current.set(plan)
    try:
        with inject(plan):
            yield plan
    finally:
        _current.reset(token)


def current_plan() -> FailurePlan | None:
    """The plan bound to this context, if any."""
    return _current.get()
