"""What every monkey shares: the run context it decides from and the actions it proposes."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

from .fleet import Fleet, Member
from .safety import BlastRadius
from .schedule import Schedule

if TYPE_CHECKING:
    from .audit import AuditLog
    from .board import FaultRule
    from .conformity import Finding

ActionKind = Literal["terminate", "latency", "conformity"]


@dataclass(frozen=True)
class RunContext:
    """What a monkey sees on one run."""

    now: datetime  # chaos-clock time
    fleet: Fleet  # every instance of the target
    rng: random.Random
    audit: AuditLog
    elapsed: float  # chaos-clock seconds since this monkey's previous run
    speed: float = 1.0  # chaos-clock seconds per real second
    schedule: Schedule | None = None  # the army's schedule (None: always)

    @property
    def timestamp(self) -> float:
        return self.now.timestamp()


@dataclass(frozen=True)
class Action:
    """One decision: terminate instances, post a fault, or report findings.

    A set `veto` means the monkey itself decided against it (e.g. a minimum gap); the army audits it
    as skipped.
    """

    monkey: str
    kind: ActionKind
    reason: str
    group: str = ""
    targets: tuple[Member, ...] = ()
    faults: tuple[FaultRule, ...] = ()
    findings: tuple[Finding, ...] = ()
    schedule: Schedule | None = None  # an app's own schedule (narrows the army's)
    veto: str | None = None
    subject: str = ""  # what the audit row names when there are no instances (zone, dependency)
    extra: dict[str, str] = field(default_factory=dict)


class Monkey(Protocol):
    """A member of the Simian Army."""

    name: str
    schedule: Schedule | None  # None: the army's schedule
    limits: BlastRadius | None  # None: the army's limits

    def plan(self, ctx: RunContext) -> Sequence[Action]:
        """Decide what to do on this run (the army enforces safety and carries it out)."""
        ...


def chance(elapsed: float, mean_time_between: float | None) -> float:
    """Probability of an event in `elapsed` seconds when events come every `mean_time_between` on
    average (Poisson); None or 0 means every run."""
    if not mean_time_between:
        return 1.0
    return 1.0 - math.exp(-max(elapsed, 0.0) / mean_time_between)


def check_duration(value: float | None, name: str, allow_none: bool = True) -> None:
    from ._errors import ChaosConfigError

    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ChaosConfigError(f"{name} must be a duration in seconds >= 0; got {value!r}")
