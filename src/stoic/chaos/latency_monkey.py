"""Latency Monkey: fleet-wide delay or errors, injected at `stoic.guard`'s fault injection point."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._errors import ChaosConfigError
from ._monkey import Action, RunContext, chance, check_duration
from .board import FaultBoard, FaultRule
from .safety import BlastRadius
from .schedule import Schedule

if TYPE_CHECKING:
    from stoic.guard import Fault


class _RulesInjector:
    """The in-process side: serves this monkey's rules to `stoic.guard` without any file."""

    def __init__(self) -> None:
        self.rules: tuple[FaultRule, ...] = ()
        self._lock = threading.Lock()
        self._rng = random.Random()

    def fault_for(self, dependency: str) -> Fault | None:
        rules = self.rules
        if not rules:
            return None
        now = time.time()
        for rule in rules:
            if rule.active(now) and rule.matches(dependency, "*"):
                if rule.rate < 1 and self._rng.random() >= rule.rate:
                    continue
                from stoic.guard import Fault

                return Fault(rule.kind, delay=rule.delay, message=f"{rule.monkey}: {rule.kind}")  # type: ignore[arg-type]
        return None


class LatencyMonkey:
    """Adds `delay` seconds (or, with ``kind="error"``, failures) to calls of the `dependencies`
    (globs) on `rate` of calls, for `duration` chaos-clock seconds, on average every
    `mean_time_between` (None: whenever nothing of its own is active).

    Faults reach other processes through `board` (each runs `stoic.chaos.install()`), and this
    process through `stoic.guard.set_process_injector` when `in_process` (default: when there is no
    board).
    """

    name = "latency-monkey"

    def __init__(
        self,
        *,
        delay: float = 0.5,
        kind: str = "delay",
        rate: float = 1.0,
        dependencies: Sequence[str] = ("*",),
        apps: Sequence[str] = ("*",),
        duration: float = 600.0,
        mean_time_between: float | None = 86400.0,
        board: FaultBoard | None = None,
        in_process: bool | None = None,
        schedule: Schedule | None = None,
        limits: BlastRadius | None = None,
    ) -> None:
        check_duration(duration, "latency.duration", allow_none=False)
        check_duration(mean_time_between, "latency.mean_time_between")
        if not dependencies or not apps:
            raise ChaosConfigError("latency.dependencies and latency.apps must be non-empty lists of globs")
        # validates kind, delay and rate with a clear message
        FaultRule(dependency=dependencies[0], kind=kind, delay=delay, rate=rate)
        self.delay = float(delay)
        self.kind = kind
        self.rate = float(rate)
        self.dependencies = tuple(dependencies)
        self.apps = tuple(apps)
        self.duration = float(duration)
        self.mean_time_between = mean_time_between
        self.board = board
        self.in_process = board is None if in_process is None else in_process
        self.schedule = schedule
        self.limits = limits
        self._local = _RulesInjector()

    def active(self) -> list[FaultRule]:
        """This monkey's rules still in force."""
        now = time.time()
        rules = [r for r in self._local.rules if r.active(now)]
        if self.board is not None:
            rules += [r for r in self.board.rules() if r.monkey == self.name and r not in rules]
        return rules

    def plan(self, ctx: RunContext) -> Sequence[Action]:
        if self.active() or ctx.rng.random() >= chance(ctx.elapsed, self.mean_time_between):
            return []
        real_seconds = self.duration / max(ctx.speed, 1e-9)  # the board runs on real time
        expires = time.time() + real_seconds
        rules = tuple(
            FaultRule(
                dependency=d,
                kind=self.kind,
                delay=self.delay,
                rate=self.rate,
                app=a,
                expires=expires,
                monkey=self.name,
            )
            for a in self.apps
            for d in self.dependencies
        )
        what = f"{self.delay * 1000:.0f} ms delay" if self.kind == "delay" else f"{self.kind} faults"
        share = "" if self.rate >= 1 else f" on {self.rate:.0%} of calls"
        return [
            Action(
                self.name,
                "latency",
                f"{what}{share} for {self.duration:g}s on dependencies {', '.join(self.dependencies)}",
                group="latency",
                faults=rules,
                subject=",".join(self.dependencies),
            )
        ]

    def apply(self, action: Action) -> None:
        """Post the action's faults (called by the army once safety allows)."""
        if self.board is not None:
            self.board.post(*action.faults)
        if self.in_process:
            from stoic.guard import set_process_injector

            self._local.rules = action.faults
            set_process_injector(self._local)

    def calm(self) -> None:
        """Withdraw every fault this monkey posted (kill switch, outage, shutdown)."""
        if self.board is not None:
            self.board.remove(self.name)
        # the injector stays installed but serves nothing: no race with another process-wide injector
        self._local.rules = ()

    def __repr__(self) -> str:
        return (
            f"LatencyMonkey(kind={self.kind!r}, delay={self.delay}, rate={self.rate}, board={self.board!r})"
        )


__all__ = ["LatencyMonkey"]
