"""Chaos Kong drills: a region evacuation run as an experiment with a verdict, on a cadence.

A `KongDrill` watches the requests the other regions serve for `baseline` seconds (the control
cohort), evacuates its region, watches the same regions for `duration` seconds more (the treatment
cohort), and judges each hypothesis with the experiments' tests (`stoic.chaos.experiment.judge`):
passed when the steady-state KPIs held in the regions that stayed. A significant breach while the
region is out fails the drill at once (the question is answered: they did not hold); the kill
switch, a stop condition or a refused evacuation abort it. Either way the region is brought back
(`restore`) as soon as the verdict is in. Every start and verdict is audited with the experiments'
vocabulary (action ``experiment``, outcomes in `VERDICTS`) under the monkey ``chaos-kong``.

`KongSchedule` runs its entries when their `Cadence` says a drill is due, each evacuating its regions
in turn, so failover is drilled constantly rather than on the day it is needed.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from ._errors import ChaosConfigError
from .audit import AuditEntry, AuditLog
from .clock import Clock
from .experiment import (
    EXPERIMENT,
    ContextSink,
    Hypothesis,
    KpiCheck,
    Verdict,
    _observation,
    _tolerance,
    _Trial,
)
from .outages import ChaosKong
from .safety import BlastRadius, KillSwitch
from .schedule import Cadence, Schedule
from .stop import StopConditions
from .targets import Target

log = logging.getLogger("stoic.chaos.kong")

#: the audit `monkey` of every Kong drill entry (its `action` is `EXPERIMENT`)
KONG = "chaos-kong"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
Phase = Literal["not started", "baseline", "evacuated", "done"]


class KongDrill(_Trial):
    """One region evacuation, judged like an experiment: the surviving regions' KPIs during the
    evacuation (treatment) against the same regions just before it (control).

    - `region`: the region taken out; `evacuate(region)` does it and returns what it did in words
      (raising aborts the drill); `restore(region)` brings it back after the verdict (optional)
    - `hypotheses`: the steady-state KPIs of the surviving regions (``error_rate``, ``start_rate``,
      latencies, or values given to `observe`), each with its tolerance
    - `baseline`, `duration`: seconds watched before and after the evacuation
    - `min_samples`, `alpha`, `abort_alpha`, `check_every`, `audit`, `kill_switch`, `stop`,
      `context`, `actor`: as for `Experiment`

    >>> drill = KongDrill("kong-weekly", "eu-west", [Hypothesis("error_rate", 0.02)],
    ...                   evacuate=evacuation(target, audit=audit), audit=audit)
    """

    def __init__(
        self,
        name: str,
        region: str,
        hypotheses: Iterable[Hypothesis],
        *,
        evacuate: Callable[[str], str],
        restore: Callable[[str], object] | None = None,
        baseline: float = 60.0,
        duration: float = 300.0,
        min_samples: int = 20,
        alpha: float = 0.05,
        abort_alpha: float = 0.001,
        check_every: float = 0.5,
        audit: AuditLog,
        kill_switch: KillSwitch | None = None,
        stop: StopConditions | None = None,
        context: ContextSink | None = None,
        actor: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ChaosConfigError(
                f"kong_drill.name must be 1-64 letters, digits, '_', '.', ':' or '-'; got {name!r}"
            )
        if not isinstance(region, str) or not _NAME.fullmatch(region):
            raise ChaosConfigError(f"kong_drill.region must be a region name; got {region!r}")
        self.hypotheses = tuple(hypotheses)
        if not self.hypotheses or not all(isinstance(h, Hypothesis) for h in self.hypotheses):
            raise ChaosConfigError("kong_drill.hypotheses must name at least one Hypothesis")
        if not callable(evacuate):
            raise ChaosConfigError(f"kong_drill.evacuate must be a function of the region; got {evacuate!r}")
        if restore is not None and not callable(restore):
            raise ChaosConfigError(
                f"kong_drill.restore must be a function of the region or None; got {restore!r}"
            )
        _check("baseline", baseline, 0.0, 86400.0)
        _check("duration", duration, 0.0, 7 * 86400.0)
        _check("alpha", alpha, 0.0, 0.5)
        _check("abort_alpha", abort_alpha, 0.0, 0.5)
        _check("check_every", check_every, 0.0, 60.0)
        whole = isinstance(min_samples, int) and not isinstance(min_samples, bool)
        if not whole or not 2 <= min_samples <= 1_000_000:
            raise ChaosConfigError(
                f"kong_drill.min_samples must be an integer in [2, 1000000]; got {min_samples!r}"
            )
        if not isinstance(audit, AuditLog):
            raise ChaosConfigError("kong_drill.audit must be an AuditLog: a drill is always audited")
        self.name = name
        self.region = region
        self.evacuate = evacuate
        self.restore = restore
        self.baseline = float(baseline)
        self.duration = float(duration)
        self.min_samples = min_samples
        self.alpha = float(alpha)
        self.abort_alpha = float(abort_alpha)
        self.check_every = float(check_every)
        self.audit = audit
        self.kill_switch = kill_switch
        self.stop_conditions = stop
        self.context = context
        self.actor = actor or audit.actor
        self.clock = clock
        self.phase: Phase = "not started"
        self.started: float | None = None
        self.evacuated: float | None = None
        self.evacuation = ""  # what `evacuate` said it did
        self.verdict: Verdict | None = None
        self._new_cohorts()

    # -- what the surviving regions serve ---------------------------------------------------------

    def observe(
        self,
        region: str | None,
        *,
        ok: bool,
        latency: float | None = None,
        started: bool | None = None,
        values: Mapping[str, float] | None = None,
    ) -> str | None:
        """Count one finished request: in the control cohort before the evacuation, the treatment
        cohort after. `region` is the region that answered it, or None when none did (the request
        failed on its way): those count too, since the regions that stay answer for every request
        once the region is out. Requests the evacuated region answered, and any outside the drill, are
        not counted (None); otherwise the cohort is returned."""
        clean = _observation(ok, latency, values)
        phase = self.phase
        if region == self.region or phase not in ("baseline", "evacuated"):
            return None
        cohort = "control" if phase == "baseline" else "treatment"
        if self.verdict is not None:
            return None
        self._count(cohort, ok, latency, started, clean)
        return cohort

    # -- running ----------------------------------------------------------------------------------

    def describe(self) -> str:
        """The drill in words."""
        return (
            f"evacuate region {self.region} for {self.duration:g}s after a {self.baseline:g}s baseline; "
            f"hypotheses: {'; '.join(h.describe() for h in self.hypotheses)} (regions that stay)"
        )

    def _record(self, outcome: str, reason: str) -> AuditEntry:
        return self.audit.record(
            KONG, EXPERIMENT, outcome, at=self.clock(), target=self.name, region=self.region,
            group=f"region:{self.region}", reason=reason, actor=self.actor,
        )

    def start(self) -> AuditEntry:
        """Audit the start and begin the baseline (`AuditError` if the audit cannot be written;
        `RuntimeError`, audited as skipped, when a kill switch or stop condition forbids it)."""
        if self.phase != "not started":
            raise RuntimeError(f"kong drill {self.name} was already started")
        why = self._halt_reason()
        if why:
            self._record("skipped", why)
            raise RuntimeError(f"kong drill {self.name} not started: {why}")
        entry = self._record("started", self.describe())
        self.started = self.clock()
        self.phase = "baseline"
        self._tell("chaos", f"Chaos Kong drill {self.name} started: {self.describe()}")
        return entry

    def check(self) -> Verdict | None:
        """Move the drill on: evacuate once the baseline is done, abort on a switch, a stop condition
        or a significant breach, and end with a verdict once `duration` has passed."""
        if self.verdict is not None:
            return self.verdict
        if self.started is None:
            raise RuntimeError(f"kong drill {self.name} has not started")
        why = self._halt_reason()
        if why:
            return self.abort(why)
        now = self.clock()
        if self.phase == "baseline":
            if now - self.started < self.baseline:
                return None
            try:
                self.evacuation = str(self.evacuate(self.region))
            except Exception as exc:  # a rail refused, or the evacuation broke: no verdict to give
                return self.abort(f"evacuation of {self.region} failed: {exc}")
            self.evacuated = self.clock()
            self.phase = "evacuated"
            return None
        checks = self.checks()
        breached = [c for c in checks if c.breached]
        if breached:  # answered early: the regions that stayed did not hold
            why = "; ".join(f"{c.describe()} beyond tolerance {_tolerance(c)}" for c in breached)
            return self._conclude("failed", why, checks)
        if self.evacuated is not None and now - self.evacuated >= self.duration:
            return self._finish()
        return None

    def abort(self, reason: str, checks: list[KpiCheck] | None = None) -> Verdict:
        """End the drill now with `reason` (and bring the region back if it was taken out)."""
        return self._conclude("aborted", reason, checks if checks is not None else self.checks())

    def _finish(self) -> Verdict:
        return self._conclude(*self._final())

    def _too_little(self, samples: tuple[int, int], short: str) -> str:
        return (
            f"too little traffic in the regions that stayed: {samples[0]} during / {samples[1]} before; "
            f"{short} needs {self.min_samples} each"
        )

    def _subject(self) -> str:
        return f"region {self.region} evacuated"

    def _cleanup(self, verdict: Verdict) -> None:
        evacuated, self.phase = self.phase == "evacuated", "done"
        if evacuated and self.restore is not None:
            try:
                self.restore(self.region)
            except Exception as exc:  # the verdict stands; whoever reads it must know the region is out
                log.exception("kong drill %s: region %s not restored", self.name, self.region)
                verdict.reason += f" (region {self.region} not restored: {exc})"

    def _verdict_words(self, verdict: Verdict) -> str:
        return f"Chaos Kong drill {verdict.summary().removeprefix('experiment ')}"

    def _tell(self, kind: str, description: str) -> None:
        if self.context is None:
            return
        try:
            self.context.add_event(
                kind, target=self.name, description=description[:500], region=self.region, at=self.clock()
            )
        except Exception:  # the signals are told, never obeyed
            log.exception("kong drill %s could not report to its context sink", self.name)

    def run(self) -> Verdict:
        """Start, move the drill on every `check_every` seconds until its verdict, and return it
        (bounded by `baseline` plus `duration` plus a few checks)."""
        return self._until_verdict(self.baseline + self.duration)

    def __repr__(self) -> str:
        state = self.verdict.outcome if self.verdict else self.phase
        return f"KongDrill({self.name!r}, region={self.region!r}, {state})"


def evacuation(
    target: Target,
    *,
    audit: AuditLog,
    kill_switch: KillSwitch | None = None,
    limits: BlastRadius | None = None,
    actor: str | None = None,
    clock: Clock | None = None,
) -> Callable[[str], str]:
    """An `evacuate` for `KongDrill` that takes the region down through a `SimianArmy` with one
    `ChaosKong`: the kill switch, the blast radius (default: one region, at most half of any app) and
    the audit log apply to every instance it terminates. Raises when nothing was terminated.
    `clock`: the army's chaos clock (the blast radius's window is measured on it)."""
    from .army import SimianArmy  # the army imports the monkeys; loaded only when a drill runs

    def evacuate(region: str) -> str:
        kong = ChaosKong(region, mean_time_between=None, min_time_between=0.0, limits=limits)
        army = SimianArmy(
            target, [kong], audit=audit, schedule=Schedule.always(), kill_switch=kill_switch,
            limits=kong.limits, actor=actor, clock=clock,
        )
        report = army.run_once()
        killed = [e.target for e in report.entries if e.outcome == "terminated"]
        if not killed:
            why = report.entries[0].reason if report.entries else report.summary()
            raise RuntimeError(f"no instance terminated in {region}: {why}")
        return f"took down {len(killed)} instances in {region}: {', '.join(sorted(killed))}"

    return evacuate


@dataclass(frozen=True)
class KongEntry:
    """A schedule entry: a Chaos Kong drill called `name`, evacuating each of `regions` in turn, when
    `cadence` says one is due. `drill(name, region)` builds the drill (its hypotheses, evacuation and
    restore)."""

    name: str
    regions: Sequence[str]
    cadence: Cadence
    drill: Callable[[str, str], KongDrill]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ChaosConfigError(
                f"kong.name must be 1-64 letters, digits, '_', '.', ':' or '-'; got {self.name!r}"
            )
        regions = tuple(self.regions) if not isinstance(self.regions, str) else (self.regions,)
        if not regions or not all(isinstance(r, str) and _NAME.fullmatch(r) for r in regions):
            raise ChaosConfigError(f"kong.regions must name at least one region; got {self.regions!r}")
        object.__setattr__(self, "regions", regions)
        if not isinstance(self.cadence, Cadence):
            raise ChaosConfigError(f"kong.cadence must be a Cadence; got {self.cadence!r}")
        if not callable(self.drill):
            raise ChaosConfigError(
                f"kong.drill must build a KongDrill from (name, region); got {self.drill!r}"
            )


class KongSchedule:
    """Runs each entry's Chaos Kong drill when its cadence says it is due; when each last ran (and
    which region it took) is read from the audit log, so a restart neither repeats nor skips one."""

    def __init__(
        self, entries: Iterable[KongEntry], *, audit: AuditLog, kill_switch: KillSwitch | None = None
    ) -> None:
        self.entries = tuple(entries)
        if not all(isinstance(e, KongEntry) for e in self.entries):
            raise ChaosConfigError("kong_schedule.entries must be KongEntry values")
        names = [e.name for e in self.entries]
        if len(set(names)) != len(names):
            raise ChaosConfigError(f"kong_schedule.entries must have distinct names; got {names!r}")
        self.audit = audit
        self.kill_switch = kill_switch

    def _last(self, entry: KongEntry) -> AuditEntry | None:
        started = self.audit.entries(None, monkey=KONG, action=EXPERIMENT, outcome="started")
        return next((e for e in started if e.target == entry.name), None)

    def due(self, now: datetime | None = None) -> list[tuple[KongEntry, str]]:
        """The drills due at `now` (default: now), with the region each would evacuate."""
        when = now if now is not None else datetime.now(UTC)
        out = []
        for entry in self.entries:
            last = self._last(entry)
            if entry.cadence.why_not(when, None if last is None else last.at) is not None:
                continue
            regions = list(entry.regions)
            turn = 0 if last is None or last.region not in regions else regions.index(last.region) + 1
            out.append((entry, regions[turn % len(regions)]))
        return out

    def run_due(self, now: datetime | None = None) -> list[Verdict]:
        """Run every due drill, one after another, and return their verdicts (a drill the kill switch
        forbids is audited as skipped and gives none)."""
        verdicts = []
        for entry, region in self.due(now):
            if self.kill_switch is not None and self.kill_switch.engaged:
                self.audit.record(
                    KONG, EXPERIMENT, "skipped", target=entry.name, region=region, group=f"region:{region}",
                    reason=f"kill switch on ({self.kill_switch.reason()})",
                )
                continue
            drill = entry.drill(entry.name, region)
            if not isinstance(drill, KongDrill) or drill.name != entry.name or drill.region != region:
                raise ChaosConfigError(
                    f"kong.drill must return KongDrill({entry.name!r}, {region!r}, ...); got {drill!r}"
                )
            try:
                verdicts.append(drill.run())
            except RuntimeError as exc:  # refused to start (stop condition); audited by the drill
                log.warning("kong drill %s in %s not run: %s", entry.name, region, exc)
        return verdicts


def _check(name: str, value: object, low: float, high: float) -> None:
    ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    if ok and low < value <= high:  # type: ignore[operator]
        return
    raise ChaosConfigError(f"kong_drill.{name} must be a number in ({low:g}, {high:g}]; got {value!r}")


__all__ = ["KONG", "KongDrill", "KongEntry", "KongSchedule", "evacuation"]
