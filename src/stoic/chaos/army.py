"""`SimianArmy`: runs the monkeys against a target inside the safety rails, and audits everything."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ._monkey import Action, Monkey, RunContext
from .audit import AuditEntry, AuditLog
from .clock import Clock, SystemClock
from .fleet import Fleet
from .safety import BlastRadius, Casualty, KillSwitch, OutageCheck
from .schedule import Schedule
from .targets import Target

log = logging.getLogger("stoic.chaos")


@dataclass
class RunReport:
    """What one run of the army did."""

    number: int
    at: float  # chaos-clock epoch seconds
    entries: list[AuditEntry] = field(default_factory=list)
    paused: str = ""  # why the whole run was paused, if it was

    def count(self, outcome: str) -> int:
        return sum(1 for e in self.entries if e.outcome == outcome)

    def summary(self) -> str:
        if self.paused:
            return f"paused: {self.paused}"
        parts = [
            f"{self.count(o)} {o}"
            for o in ("terminated", "leashed", "skipped", "failed", "injected", "finding")
            if self.count(o)
        ]
        return ", ".join(parts) or "nothing to do"


class SimianArmy:
    """The monkeys, the target they act on, and every safety rail between them.

    Before each run and again before every action: the kill switch, then the outage check. Then per
    action: the schedule (the army's, narrowed by the monkey's and the app's), the blast-radius cap
    (the monkey's `limits` or the army's), then leashed mode. Every decision lands in the audit log.
    """

    def __init__(
        self,
        target: Target,
        monkeys: Iterable[Monkey] = (),
        *,
        audit: AuditLog | None = None,
        schedule: Schedule | None = None,
        limits: BlastRadius | None = None,
        leashed: bool = False,
        kill_switch: KillSwitch | None = None,
        outage: OutageCheck | None = None,
        clock: Clock | None = None,
        seed: int | None = None,
    ) -> None:
        self.target = target
        self.monkeys: list[Monkey] = list(monkeys)
        self.audit = audit if audit is not None else AuditLog()
        self.schedule = schedule if schedule is not None else Schedule()
        self.limits = limits if limits is not None else BlastRadius()
        self.leashed = leashed
        self.kill_switch = kill_switch if kill_switch is not None else KillSwitch()
        self.outage = outage
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.rng = random.Random(seed)
        self.runs = 0
        self._last_run: dict[str, float] = {}
        self._paused = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, monkey: Monkey) -> SimianArmy:
        self.monkeys.append(monkey)
        return self

    # -- one run ---------------------------------------------------------------------------------

    def run_once(self) -> RunReport:
        """Let every monkey decide once, and carry out what the rails allow."""
        with self._lock:
            self.runs += 1
            now = self.clock.now()
            report = RunReport(self.runs, now.timestamp())
            halt = self._halt_reason()
            if halt:
                report.paused = halt
                if halt != self._paused:
                    self._paused = halt
                    report.entries.append(self._note("paused", halt))
                self.calm()
                return report
            if self._paused:
                report.entries.append(self._note("resumed", f"was paused: {self._paused}"))
                self._paused = ""
            why_not = self.schedule.why_not(now)
            try:
                fleet = self.target.fleet()
            except Exception as exc:  # e.g. the Kubernetes API is unreachable: sit this run out
                report.paused = f"target unavailable: {exc!r}"
                if report.paused != self._paused:
                    self._paused = report.paused
                    report.entries.append(self._note("paused", report.paused))
                return report
            for monkey in self.monkeys:
                elapsed = self._elapsed(monkey, now.timestamp())
                if why_not is not None:
                    continue  # outside the army's schedule nobody even decides
                own = monkey.schedule
                if own is not None and not own.allows(now):
                    continue
                ctx = RunContext(now, fleet, self.rng, self.audit, elapsed, self.clock.speed)
                try:
                    actions = monkey.plan(ctx)
                except Exception as exc:  # one broken monkey must not stop the others
                    log.exception("%s failed to plan", monkey.name)
                    report.entries.append(
                        self._record(
                            monkey, Action(monkey.name, "terminate", ""), "failed", f"plan raised {exc!r}"
                        )
                    )
                    continue
                for action in actions:
                    report.entries.extend(self._act(monkey, action, fleet))
            return report

    def _elapsed(self, monkey: Monkey, now: float) -> float:
        last = self._last_run.get(monkey.name)
        self._last_run[monkey.name] = now
        if last is None:
            return self._interval * self.clock.speed
        return max(now - last, 0.0)

    _interval = 1.0  # real seconds between runs; set by run()

    def _halt_reason(self) -> str:
        if self.kill_switch.engaged:
            return f"kill switch on ({self.kill_switch.reason()})"
        if self.outage is not None:
            try:
                if self.outage():
                    return "outage in progress"
            except Exception as exc:  # cannot tell: assume the worst
                return f"outage check failed: {exc!r}"
        return ""

    def _act(self, monkey: Monkey, action: Action, fleet: Fleet) -> list[AuditEntry]:
        if action.veto:
            return self._each(monkey, action, "skipped", action.veto)
        halt = self._halt_reason()  # again: it may have been flipped while we were deciding
        if halt:
            return self._each(monkey, action, "skipped", halt)
        now = self.clock.now()
        if action.schedule is not None and not action.schedule.allows(now):
            return self._each(monkey, action, "skipped", f"outside schedule: {action.schedule.why_not(now)}")
        if action.kind == "terminate":
            limits = monkey.limits if monkey.limits is not None else self.limits
            since = now.timestamp() - limits.window
            recent = [Casualty(e.target, e.app, e.region, e.zone) for e in self.audit.terminations(since)]
            refusal = limits.refusal(action.targets, recent, fleet.alive())
            if refusal:
                return self._each(monkey, action, "skipped", refusal)
            if self.leashed:
                return self._each(monkey, action, "leashed", f"leashed: would {action.reason}")
            out = []
            for member in action.targets:
                if self.kill_switch.engaged:  # checked before every single kill
                    out.append(self._record(monkey, action, "skipped", "kill switch on", member))
                    continue
                try:
                    self.target.terminate(member)
                except Exception as exc:
                    out.append(self._record(monkey, action, "failed", f"{action.reason}: {exc}", member))
                else:
                    out.append(self._record(monkey, action, "terminated", action.reason, member))
            return out
        if action.kind == "latency":
            if self.leashed:
                return self._each(monkey, action, "leashed", f"leashed: would post {action.reason}")
            try:
                monkey.apply(action)  # type: ignore[attr-defined]
            except Exception as exc:
                return [self._record(monkey, action, "failed", f"{action.reason}: {exc!r}")]
            return [self._record(monkey, action, "injected", action.reason)]
        # conformity: reporting breaks nothing, so leashed mode still reports
        try:
            monkey.apply(action)  # type: ignore[attr-defined]
        except Exception as exc:
            return [self._record(monkey, action, "failed", f"conformity report: {exc!r}")]
        undelivered: dict[str, str] = getattr(monkey, "undelivered", {})
        return [
            self.audit.record(
                monkey.name,
                "conformity",
                "finding",
                at=now.timestamp(),
                target=f.subject,
                group=f.rule,
                reason=f"{f.message} "
                + (
                    f"(could not tell {f.owner}: {undelivered[f.owner]})"
                    if f.owner in undelivered
                    else f"(told {f.owner})"
                ),
            )
            for f in action.findings
        ]

    def _each(self, monkey: Monkey, action: Action, outcome: str, reason: str) -> list[AuditEntry]:
        if not action.targets:
            return [self._record(monkey, action, outcome, reason)]
        return [self._record(monkey, action, outcome, reason, m) for m in action.targets]

    def _record(
        self, monkey: Monkey, action: Action, outcome: str, reason: str, member: object = None
    ) -> AuditEntry:
        at = self.clock.now().timestamp()
        if member is None:
            return self.audit.record(
                monkey.name,
                action.kind,
                outcome,
                at=at,
                target=action.subject,
                group=action.group,
                reason=reason,
            )
        return self.audit.record(
            monkey.name,
            action.kind,
            outcome,
            at=at,
            target=str(getattr(member, "id", "")),
            app=str(getattr(member, "app", "")),
            region=str(getattr(member, "region", "")),
            zone=str(getattr(member, "zone", "")),
            group=action.group,
            reason=reason,
        )

    def _note(self, outcome: str, reason: str) -> AuditEntry:
        return self.audit.record(
            "simian-army", "army", outcome, at=self.clock.now().timestamp(), reason=reason
        )

    def status(self) -> dict[str, object]:
        """A JSON-ready view for dashboards: mode, rails, monkeys and the last decisions."""
        now = self.clock.now()
        return {
            "now": now.isoformat(),
            "speed": self.clock.speed,
            "leashed": self.leashed,
            "kill_switch": self.kill_switch.engaged,
            "paused": self._paused,
            "in_schedule": self.schedule.allows(now),
            "schedule": self.schedule.describe(),
            "limits": {
                "window": self.limits.window,
                "max_instances": self.limits.max_instances,
                "max_zones": self.limits.max_zones,
                "max_regions": self.limits.max_regions,
                "max_share": self.limits.max_share,
            },
            "monkeys": [m.name for m in self.monkeys],
            "runs": self.runs,
            "recent": [e.to_dict() for e in self.audit.entries(20)],
        }

    # -- running ---------------------------------------------------------------------------------

    def calm(self) -> None:
        """Withdraw every injected fault (latency monkeys)."""
        for monkey in self.monkeys:
            calm = getattr(monkey, "calm", None)
            if calm is not None:
                try:
                    calm()
                except Exception:
                    log.exception("%s failed to calm down", monkey.name)

    def run(
        self,
        *,
        interval: float = 1.0,
        duration: float | None = None,
        runs: int | None = None,
        progress: Callable[[RunReport], None] | None = None,
    ) -> int:
        """Run every `interval` real seconds until `duration` seconds or `runs` runs pass, or `stop()`.

        Returns the number of runs. Faults are withdrawn on the way out.
        """
        if interval <= 0:
            raise ValueError(f"interval must be > 0 seconds; got {interval!r}")
        self._interval = interval
        self._stop.clear()
        end = None if duration is None else time.monotonic() + duration
        done = 0
        try:
            while not self._stop.is_set():
                report = self.run_once()
                done += 1
                if progress is not None:
                    progress(report)
                if runs is not None and done >= runs:
                    break
                wait = interval if end is None else min(interval, end - time.monotonic())
                if wait <= 0 or self._stop.wait(wait) or (end is not None and time.monotonic() >= end):
                    break
        finally:
            self.calm()
        return done

    def start(self, interval: float = 1.0, progress: Callable[[RunReport], None] | None = None) -> None:
        """Run in a background thread until `stop()`."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("this army is already running")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.run,
            kwargs={"interval": interval, "progress": progress},
            name="simian-army",
            daemon=True,
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop a `start()`ed or `run()`ning army and withdraw its faults."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.calm()

    def __repr__(self) -> str:
        return f"SimianArmy({self.target!r}, {len(self.monkeys)} monkeys, leashed={self.leashed})"


__all__ = ["RunReport", "SimianArmy"]
