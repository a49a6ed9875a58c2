"""The chaos drill: the Simian Army and FIT scenarios striking the platform on a compressed schedule.

Each strike runs one monkey through a `stoic.chaos.SimianArmy` (so the kill switch, the blast-radius
caps and the audit log all apply) at a set point of the run; FIT strikes sign a failure plan that
the viewers' devices send with their plays.

Every strike that happened ends in a verdict, judged like a `stoic.chaos.Experiment`: the plays
started while it lasted (treatment) against those started just before it (control), on the steady
state `STEADY_STATE`. For Chaos Kong only the regions that stayed count: plays the evacuated region
still answered are left out, and plays nobody answered count against the survivors. Each verdict
(passed, failed or inconclusive, with the KPI deviation) goes to the audit log and to the report.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from stoic.chaos import (
    KONG,
    AuditError,
    AuditLog,
    BlastRadius,
    ChaosGorilla,
    ChaosKong,
    ChaosMonkey,
    FaultBoard,
    Hypothesis,
    KillSwitch,
    LatencyMonkey,
    ProcessTarget,
    Schedule,
    SimianArmy,
    Verdict,
)
from stoic.chaos.experiment import EXPERIMENT, _Cohort, _tolerance, judge
from stoic.chaos.fleet import Fleet, Member
from stoic.fit import HeaderCodec, Scenario

from .platform import Platform
from .topology import CACHE_APP, FIT_AUDIENCE
from .viewers import PlayRecord

KINDS = ("chaos-monkey", "latency-monkey", "chaos-gorilla", "chaos-kong", "fit")
KILL_APPS = ("account", "discovery", "playback", "edge")
#: the steady state every strike is judged on: no more than 5 points more failed starts than just
#: before it (the viewers' measure of the service: a play that does not start)
STEADY_STATE = (Hypothesis("error_rate", 0.05),)
#: plays each cohort needs for a verdict (a smaller drill is inconclusive rather than guessed)
MIN_PLAYS = 10
#: plays kept for the verdicts (the oldest dropped first; a run starts a few per second)
MAX_PLAYS = 200_000

@dataclass(frozen=True, slots=True)
class Strike:
    """One planned strike: `kind` at `at` (share of the run, 0..1) against `target`.

    `target`: the app (chaos-monkey), dependency glob (latency-monkey, fit), zone (chaos-gorilla) or
    region (chaos-kong). `length`: share of the run a latency or FIT strike lasts.
    """

    kind: str
    at: float
    target: str
    length: float = 0.0
    delay: float = 0.0
    percent: float = 100.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"strike.kind: must be one of {', '.join(KINDS)}; got {self.kind!r}")
        if not 0.0 <= self.at < 1.0:
            raise ValueError(f"strike.at: must be a share of the run in [0, 1), got {self.at!r}")
        if not 0.0 <= self.length <= 1.0:
            raise ValueError(f"strike.length: must be in [0, 1], got {self.length!r}")
        if not 0.0 < self.percent <= 100.0:
            raise ValueError(f"strike.percent: must be in (0, 100], got {self.percent!r}")


@dataclass
class ChaosEvent:
    """What a strike did, for the report: when, to what, and when everything was back."""

    kind: str
    target: str
    at: float  # seconds since the run started
    description: str
    ends: float | None = None  # seconds since the run started; None: still going at the end
    outcome: str = ""  # "terminated", "injected", "skipped", "failed"
    victims: list[str] = field(default_factory=list)
    reason: str = ""
    notes: list[str] = field(default_factory=list)  # what happened after (e.g. a cache warmed)
    verdict: Verdict | None = None  # judged when the drill stops

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "verdict": None if self.verdict is None else self.verdict.to_dict(),
            "kind": self.kind,
            "target": self.target,
            "at": self.at,
            "ends": self.ends,
            "description": self.description,
            "outcome": self.outcome,
            "victims": self.victims,
            "reason": self.reason,
            "notes": self.notes,
        }


def default_strikes(platform: Platform, seed: int) -> list[Strike]:
    """The standard drill: one of each monkey and one FIT scenario, spread over the day."""
    rng = random.Random(seed)
    topology = platform.topology
    regions = list(topology.regions)
    kong = rng.choice(regions)
    # the gorilla takes a zone of the region Kong spares, so both outages are distinct stories
    gorilla = rng.choice([z for r in regions if r != kong or len(regions) == 1 for z in topology.regions[r]])
    return [
        Strike("chaos-monkey", 0.10, rng.choice(KILL_APPS[:3])),
        Strike("latency-monkey", 0.20, "subscription", length=0.08, delay=0.9),
        Strike("fit", 0.32, "personalisation", length=0.08, percent=40.0),
        # every play's home-region manifest fails: the edges' region breakers open and plays cross over
        Strike("fit", 0.44, "manifest", length=0.06, percent=100.0),
        Strike("chaos-gorilla", 0.55, gorilla),
        # at the evening peak: a region carrying most of its traffic is evacuated, as Kong is
        # exercised for real, and the starts it loses are plain within two buckets
        Strike("chaos-kong", 0.66, kong),
    ]


def judge_strike(
    event: ChaosEvent,
    plays: Iterable[PlayRecord],
    end: float,
    *,
    hypotheses: Sequence[Hypothesis] = STEADY_STATE,
    min_plays: int = MIN_PLAYS,
    alpha: float = 0.05,
) -> Verdict:
    """The verdict on one strike: plays started while it lasted (until `end` if it never ended)
    against plays started in as long a span just before it. For Chaos Kong, plays answered by the
    evacuated region are left out on both sides; plays nobody answered count."""
    until = event.ends if event.ends is not None else end
    span = max(until - event.at, 1.0)
    since = max(event.at - span, 0.0)
    control, treatment = _Cohort(), _Cohort()
    for play in plays:
        if event.kind == "chaos-kong" and play.region == event.target:
            continue
        if since <= play.at < event.at:
            control.add(play.ok, play.latency if play.ok else None, play.ok, {})
        elif event.at <= play.at < until:
            treatment.add(play.ok, play.latency if play.ok else None, play.ok, {})
    checks = [judge(h, treatment, control, alpha, min_plays) for h in hypotheses]
    n = (treatment.requests, control.requests)
    name = f"{event.kind}:{event.target}"
    judged = [c for c in checks if min(c.samples) >= min_plays]
    breached = [c for c in judged if c.breached]
    if breached:
        outcome = "failed"
        reason = "; ".join(f"{c.describe()} beyond tolerance {_tolerance(c)}" for c in breached)
    elif len(judged) < len(checks):
        outcome = "inconclusive"
        reason = f"too few plays: {n[0]} during / {n[1]} before; {min_plays} each needed"
    else:
        outcome = "passed"
        reason = "; ".join(c.describe() for c in checks)
    return Verdict(name, outcome, reason, checks, event.at, until, n, event.description)


class _Narrowed:
    """A target seen through a filter: what one strike may touch."""

    name = "processes"

    def __init__(self, target: ProcessTarget, keep: Callable[[Member], bool]) -> None:
        self._target = target
        self._keep = keep

    def fleet(self) -> Fleet:
        return Fleet(m for m in self._target.fleet() if self._keep(m))

    def terminate(self, member: Member) -> None:
        self._target.terminate(member)


class Drill:
    """Runs `strikes` against `platform` over `duration` seconds, recording a `ChaosEvent` for each."""

    def __init__(
        self,
        platform: Platform,
        strikes: Sequence[Strike],
        duration: float,
        *,
        audit: AuditLog,
        board: FaultBoard,
        seed: int = 1,
        on_event: Callable[[ChaosEvent], None] | None = None,
    ) -> None:
        self.platform = platform
        self.strikes = sorted(strikes, key=lambda s: s.at)
        self.duration = duration
        self.audit = audit
        self.board = board
        self.seed = seed
        self.on_event = on_event
        self.events: list[ChaosEvent] = []
        self.codec = HeaderCodec(
            platform.fit_secret,
            ttl=max(duration, 60.0),
            max_ttl=max(duration * 2, 3600.0),
            audience=FIT_AUDIENCE,
        )
        self._scenarios: list[tuple[float, Scenario]] = []  # (ends at, scenario) of FIT strikes
        self._header: tuple[tuple[str, ...], str] = ((), "")  # the signed header for the active ones
        # one switch for every strike, the same file the fault board's injectors honour:
        # `touch OUT/chaos/kill-switch` stops all chaos, fleet-wide
        self.kill_switch = KillSwitch(board.kill_switch_path)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._lock = threading.Lock()
        self._plays: deque[PlayRecord] = deque(maxlen=MAX_PLAYS)
        self._judged = False

    # -- running -----------------------------------------------------------------------------------

    def start(self, t0: float | None = None) -> None:
        """Run the strikes on a background thread; times count from `t0` (time.monotonic())."""
        self._t0 = time.monotonic() if t0 is None else t0
        self._thread = threading.Thread(target=self._run, name="chaos-drill", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the strikes, withdraw every fault still posted, and judge every strike."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.board.remove("latency-monkey")
        now = self.elapsed()
        for event in self.events:
            if event.ends is None and event.outcome in ("terminated", "injected"):
                event.ends = None if event.kind in ("chaos-monkey", "chaos-gorilla", "chaos-kong") else now
        if not self._judged:  # once: stop() may be called again on the way out
            self._judged = True
            self._judge_all(now)

    # -- verdicts ----------------------------------------------------------------------------------

    def observe(self, play: PlayRecord) -> None:
        """Count one play (called as each play starts or fails) for the strikes' verdicts."""
        self._plays.append(play)

    def _judge_all(self, end: float) -> None:
        plays = list(self._plays)
        for event in self.events:
            if event.outcome not in ("terminated", "injected"):
                continue  # nothing happened: nothing to judge
            verdict = judge_strike(event, plays, end)
            event.verdict = verdict
            event.notes.append(f"verdict {verdict.outcome}: {verdict.reason}")
            try:
                self.audit.record(
                    KONG if event.kind == "chaos-kong" else event.kind,
                    EXPERIMENT,
                    verdict.outcome,
                    target=event.target,
                    region=event.target if event.kind == "chaos-kong" else "",
                    group=f"strike:{event.kind}",
                    reason=verdict.reason,
                )
            except AuditError as exc:  # the verdict still reaches the report, saying it is not on record
                event.notes.append(f"verdict not audited: {exc}")

    def elapsed(self) -> float:
        """Seconds since the drill's start."""
        return time.monotonic() - self._t0

    def _run(self) -> None:
        pending = list(self.strikes)
        watching: list[tuple[ChaosEvent, list[Any]]] = []
        while not self._stop.is_set() and (pending or watching):
            now = self.elapsed()
            while pending and pending[0].at * self.duration <= now:
                event, instances = self._strike(pending.pop(0))
                with self._lock:
                    self.events.append(event)
                if instances:
                    watching.append((event, instances))
                if self.on_event is not None:
                    self.on_event(event)
            for item in list(watching):  # an outage ends when every victim is back and healthy
                event, instances = item
                if all(i.healthy for i in instances):
                    event.ends = self.elapsed()
                    watching.remove(item)
                    self._rewarm(event, instances)
            self._stop.wait(0.1)

    def _rewarm(self, event: ChaosEvent, instances: list[Any]) -> None:
        """A replaced cache server starts empty: refill it from a sibling zone, as EVCache does."""
        emptied = {inst.zone for inst in instances if inst.app == CACHE_APP}
        for zone in sorted(emptied):
            try:
                event.notes.append(self.platform.warm_cache(zone, avoid=emptied))
            except Exception as exc:  # a cold cache only means more fallbacks miss; never stop the drill
                event.notes.append(f"could not warm {zone}: {exc}")

    # -- strikes -----------------------------------------------------------------------------------

    def _army(
        self,
        monkey: Any,
        keep: Callable[[Member], bool] = lambda m: True,
        limits: BlastRadius | None = None,
    ) -> SimianArmy:
        # the army's limits bound its monkeys: a zone or region strike brings its own, wider ones
        target = _Narrowed(ProcessTarget(self.platform.supervisor), keep)
        return SimianArmy(
            target,
            [monkey],
            audit=self.audit,
            schedule=Schedule.always(),
            limits=limits if limits is not None else BlastRadius(window=1.0, max_instances=1),
            kill_switch=self.kill_switch,
            seed=self.seed,
        )

    def _strike(self, strike: Strike) -> tuple[ChaosEvent, list[Any]]:
        at = self.elapsed()
        span = strike.length * self.duration
        if strike.kind == "fit" and self.kill_switch.engaged:
            self.audit.record("fit", "fit", "skipped", target=strike.target, reason="kill switch on")
            return ChaosEvent(
                "fit",
                strike.target,
                at,
                f"FIT would fail {strike.target}",
                outcome="skipped",
                reason=f"kill switch on ({self.kill_switch.reason()})",
            ), []
        if strike.kind == "fit":
            scenario = Scenario(
                f"fit-{strike.target}", strike.target, "error", percent=strike.percent, ttl=max(span, 1.0)
            )
            with self._lock:
                self._scenarios.append((at + span, scenario))
            event = ChaosEvent(
                "fit",
                strike.target,
                at,
                f"FIT fails {strike.target} for {strike.percent:g}% of plays for {span:.0f}s",
                ends=at + span,
                outcome="injected",
            )
            self.audit.record(
                "fit", "fit", "injected", target=strike.target, group="fit", reason=event.description
            )
            return event, []
        if strike.kind == "latency-monkey":
            latency = LatencyMonkey(
                delay=strike.delay,
                dependencies=[strike.target],
                apps=["*"],
                duration=span,
                mean_time_between=None,
                board=self.board,
                in_process=False,
            )
            report = self._army(latency).run_once()
            entry = report.entries[0] if report.entries else None
            return ChaosEvent(
                "latency-monkey",
                strike.target,
                at,
                f"Latency Monkey adds {strike.delay * 1000:.0f} ms to every {strike.target} call "
                f"for {span:.0f}s",
                ends=at + span,
                outcome=entry.outcome if entry else "skipped",
                reason=entry.reason if entry else report.summary(),
            ), []
        monkey: Any
        if strike.kind == "chaos-monkey":
            monkey = ChaosMonkey(
                mean_time_between_kills=None,
                min_time_between_kills=0.0,
                limits=BlastRadius(window=1.0, max_instances=1, max_zones=1, max_regions=1),
            )
            army = self._army(monkey, lambda m: m.app == strike.target)
            what = f"Chaos Monkey kills one {strike.target} instance"
        elif strike.kind == "chaos-gorilla":
            limits = BlastRadius(window=1.0, max_instances=None, max_zones=1, max_regions=1, max_share=0.5)
            monkey = ChaosGorilla(strike.target, mean_time_between=None, min_time_between=0.0, limits=limits)
            army = self._army(monkey, limits=limits)
            what = f"Chaos Gorilla takes down zone {strike.target}"
        else:
            limits = BlastRadius(window=1.0, max_instances=None, max_zones=None, max_regions=1, max_share=0.5)
            monkey = ChaosKong(strike.target, mean_time_between=None, min_time_between=0.0, limits=limits)
            army = self._army(monkey, limits=limits)
            what = f"Chaos Kong takes down region {strike.target}"
        report = army.run_once()
        killed = [e for e in report.entries if e.outcome == "terminated"]
        instances = [self.platform.supervisor.get(e.target) for e in killed]
        outcome = "terminated" if killed else (report.entries[0].outcome if report.entries else "skipped")
        reason = "" if killed else (report.entries[0].reason if report.entries else report.summary())
        return ChaosEvent(
            strike.kind,
            strike.target,
            at,
            what,
            outcome=outcome,
            victims=[e.target for e in killed],
            reason=reason,
        ), instances

    # -- what the viewers send ---------------------------------------------------------------------

    def fit_headers(self, play_id: str) -> dict[str, str]:
        """The signed FIT header while FIT strikes run (each scenario picks its own share of plays)."""
        if self.kill_switch.engaged:  # checked per play: FIT stops the moment the switch is thrown
            return {}
        now = self.elapsed()
        with self._lock:
            active = [(ends, s) for ends, s in self._scenarios if now < ends]
            if not active:
                return {}
            names = tuple(s.name for _, s in active)
            if self._header[0] != names:  # signed once per change, not once per play
                ttl = max(max(ends for ends, _ in active) - now, 1.0)
                self._header = (names, self.codec.sign([s for _, s in active], ttl=ttl))
            return {self.codec.header: self._header[1]}

    def fit_scenarios(self) -> list[Scenario]:
        """The FIT scenarios in force right now."""
        now = self.elapsed()
        with self._lock:
            return [s for ends, s in self._scenarios if now < ends]

    def active(self) -> list[ChaosEvent]:
        """Strikes whose effect is still going on."""
        now = self.elapsed()
        with self._lock:
            return [
                e
                for e in self.events
                if e.outcome in ("terminated", "injected") and (e.ends is None or e.ends > now)
            ]
