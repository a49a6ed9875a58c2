"""`SimianArmy`: runs the monkeys against a target inside the safety rails, and audits everything."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from ._errors import AuditError
from ._monkey import Action, Monkey, RunContext
from .audit import AuditEntry, AuditLog, KillsSince
from .clock import Clock, SystemClock
from .fleet import Fleet, Member
from .safety import BlastRadius, Casualty, KillSwitch, OutageCheck
from .schedule import Schedule
from .stop import StopConditions
from .targets import Target

log = logging.getLogger("stoic.chaos")


@dataclass
class RunReport:
    """What one run of the army did."""

    number: int
    at: float  # chaos-clock epoch seconds
    entries: list[AuditEntry] = field(default_factory=list)
    paused: str = ""  # why the whole run was paused, if it was
    errors: list[str] = field(default_factory=list)  # what could not be audited (and so was not done)

    def count(self, outcome: str) -> int:
        return sum(1 for e in self.entries if e.outcome == outcome)

    def summary(self) -> str:
        if self.paused:
            return f"paused: {self.paused}"
        parts = [
            f"{self.count(o)} {o}"
            for o in ("terminated", "intended", "leashed", "skipped", "failed", "injected", "finding")
            if self.count(o)
        ]
        if self.errors:
            parts.append(f"{len(self.errors)} not audited, so not done")
        return ", ".join(parts) or "nothing to do"


class SimianArmy:
    """The monkeys, the target they act on, and every safety rail between them.

    Before each run and again before every action: the kill switch, then the outage check. Then per
    action: the schedule (the army's, narrowed by the monkey's and the app's), the blast-radius cap
    (the army's `limits` bound every monkey; a monkey's own `limits` can only narrow them), then
    leashed mode. Every decision lands in the audit log, and a kill is written down before it happens:
    when the audit log cannot be written, nothing is killed and the run reports it in `errors`.
    `actor` (who or what started this army) goes into every audit entry. `stop` (`StopConditions`)
    halts chaos like an outage while a named alert fires or the error budget burns too fast.
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
        actor: str | None = None,
        stop: StopConditions | None = None,
    ) -> None:
        self.target = target
        self.monkeys: list[Monkey] = list(monkeys)
        self.audit = audit if audit is not None else AuditLog()
        self.actor = actor if actor is not None else self.audit.actor
        self.schedule = schedule if schedule is not None else Schedule()
        self.limits = limits if limits is not None else BlastRadius()
        self.leashed = leashed
        self.kill_switch = kill_switch if kill_switch is not None else KillSwitch()
        self.outage = outage
        self.stop_conditions = stop
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
        """Let every monkey decide once, and carry out what the rails allow.

        When the audit log cannot be written the run stops there: what was not audited is not done,
        and `RunReport.errors` says why.
        """
        with self._lock:
            self.runs += 1
            now = self.clock.now()
            report = RunReport(self.runs, now.timestamp())
            try:
                self._run(now, report)
            except AuditError as exc:
                log.error("chaos run %d stopped: %s", report.number, exc)
                report.errors.append(str(exc))
            return report

    def _run(self, now: datetime, report: RunReport) -> None:
        halt = self._halt_reason()
        if halt:
            report.paused = halt
            if halt != self._paused:
                self._paused = halt
                report.entries.append(self._note("paused", halt))
            self.calm()
            return
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
            return
        for monkey in self.monkeys:
            elapsed = self._elapsed(monkey, now.timestamp())
            if why_not is not None:
                continue  # outside the army's schedule nobody even decides
            own = monkey.schedule
            if own is not None and not own.allows(now):
                continue
            ctx = RunContext(now, fleet, self.rng, self.audit, elapsed, self.clock.speed, self.schedule)
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
                report.entries.extend(self._act(monkey, action, fleet, report))

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
        if self.stop_conditions is not None:
            return self.stop_conditions.reason()
        return ""

    def _act(self, monkey: Monkey, action: Action, fleet: Fleet, report: RunReport) -> list[AuditEntry]:
        if action.veto:
            return self._each(monkey, action, "skipped", action.veto)
        halt = self._halt_reason()  # again: it may have been flipped while we were deciding
        if halt:
            return self._each(monkey, action, "skipped", halt)
        now = self.clock.now()
        if action.schedule is not None and not action.schedule.allows(now):
            return self._each(monkey, action, "skipped", f"outside schedule: {action.schedule.why_not(now)}")
        if action.kind == "terminate":
            return self._strike(monkey, action, fleet, report)
        if action.kind == "latency":
            if self.leashed:
                return self._each(monkey, action, "leashed", f"leashed: would post {action.reason}")
            # written down before the faults go out, like a kill
            (intent,), _ = self.audit.claim(
                monkey.name,
                action.kind,
                now.timestamp(),
                [self._fields(action, action.reason, None)],
                lambda kills_since: None,
            )
            try:
                monkey.apply(action)  # type: ignore[attr-defined]
            except Exception as exc:
                return [self.audit.settle(intent, "failed", f"{action.reason}: {exc!r}")]
            return [self.audit.settle(intent, "injected")]
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
                actor=self.actor,
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

    def _caps(self, monkey: Monkey) -> list[tuple[str, BlastRadius]]:
        """The army's limits bound every monkey; a monkey's own limits can only narrow them."""
        caps = [("army limits", self.limits)]
        if monkey.limits is not None and monkey.limits != self.limits:
            caps.append((f"{monkey.name} limits", monkey.limits))
        return caps

    def _strike(self, monkey: Monkey, action: Action, fleet: Fleet, report: RunReport) -> list[AuditEntry]:
        at = self.clock.now().timestamp()
        alive = fleet.alive()

        def refusal(kills_since: KillsSince) -> str | None:
            for name, limits in self._caps(monkey):
                recent = [
                    Casualty(e.target, e.app, e.region, e.zone) for e in kills_since(at - limits.window)
                ]
                why = limits.refusal(action.targets, recent, alive)
                if why is not None:
                    return f"{why} ({name})"
            return None

        if self.leashed:  # nothing will die, so nothing is claimed: the cap is only read
            why = refusal(self.audit.terminations)
            if why is not None:
                return self._each(monkey, action, "skipped", why)
            return self._each(monkey, action, "leashed", f"leashed: would {action.reason}")
        drafts = [self._fields(action, action.reason, m) for m in action.targets]
        # the cap check and the written intent are one transaction: no other process can slip a kill
        # in between, and a kill that cannot be written down does not happen
        intents, refused = self.audit.claim(monkey.name, action.kind, at, drafts, refusal)
        if refused is not None:
            return intents
        out = []
        for entry, member in zip(intents, action.targets, strict=True):
            if self.kill_switch.engaged:  # checked before every single kill
                out.append(self.audit.settle(entry, "skipped", "kill switch on"))
                continue
            try:
                self.target.terminate(member)
            except Exception as exc:
                out.append(self.audit.settle(entry, "failed", f"{action.reason}: {exc}"))
                continue
            try:
                out.append(self.audit.settle(entry, "terminated"))
            except AuditError as exc:
                # the intent stays in the log and counts against the cap, so the kill is not lost; the
                # rest of this strike is not attempted (its intents, too, stay counted)
                report.entries.extend([*out, entry])
                raise AuditError(f"{member.id} was terminated (its intent is recorded), but {exc}") from None
        return out

    def _each(self, monkey: Monkey, action: Action, outcome: str, reason: str) -> list[AuditEntry]:
        if not action.targets:
            return [self._record(monkey, action, outcome, reason)]
        return [self._record(monkey, action, outcome, reason, m) for m in action.targets]

    def _record(
        self, monkey: Monkey, action: Action, outcome: str, reason: str, member: Member | None = None
    ) -> AuditEntry:
        fields = self._fields(action, reason, member)
        return self.audit.record(monkey.name, action.kind, outcome, at=self.clock.now().timestamp(), **fields)

    def _fields(self, action: Action, reason: str, member: Member | None) -> dict[str, str]:
        """The audit fields of one decision about `member` (or about the action's subject)."""
        base = {"group": action.group, "reason": reason, "actor": self.actor}
        if member is None:
            return {**base, "target": action.subject}
        return {**base, "target": member.id, "app": member.app, "region": member.region, "zone": member.zone}

    def _note(self, outcome: str, reason: str) -> AuditEntry:
        return self.audit.record(
            "simian-army", "army", outcome, at=self.clock.now().timestamp(), reason=reason, actor=self.actor
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
            "stop_conditions": self.stop_conditions.describe() if self.stop_conditions else "none",
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
