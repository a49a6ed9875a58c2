"""`Experiment`: a fault for a small share of real requests, judged against a control cohort of the
same size, ending in a verdict (Netflix's ChAP, without extra clusters).

Requests are split by the stable hash FIT already uses (`stoic.fit`): with share ``p``, the requests
in ``[0, p)`` of the hash form the treatment cohort and get the fault, those in ``[p, 2p)`` the control
cohort and get nothing. The fault is a FIT scenario named after the experiment with percent ``100 p``,
so every service a request reaches agrees on its cohort. Each observed request is tagged with its
cohort, and every `check_every` seconds each hypothesis (a KPI that must stay within its tolerance)
is tested: Mann-Whitney U for latencies, a two-proportion z-test for error and start rates. A
significant breach aborts at once: the experiment's own kill switch is engaged, and the next request
gets no fault. The verdict (passed, failed, aborted, inconclusive) goes to the audit log with its
actor and to `context` (e.g. `stoic.signals.Signals`) so an alert raised meanwhile names it.
"""

from __future__ import annotations

import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from stoic.fit import FailurePlan, HeaderCodec, RequestIdentity, Scenario
from stoic.fit._scenario import share as fit_share  # the hash FIT targets percentages with

from ._errors import AuditError, ChaosConfigError
from .audit import AuditEntry, AuditLog
from .safety import KillSwitch
from .stats import mann_whitney_u, percentile, two_proportions
from .stop import StopConditions

log = logging.getLogger("stoic.chaos.experiment")

Cohort = Literal["treatment", "control"]
#: how an experiment ended
VERDICTS = ("passed", "failed", "aborted", "inconclusive")
#: the audit `monkey` and `action` of every experiment entry
EXPERIMENT = "experiment"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
#: requests kept per cohort for the latency tests (counts stay exact beyond it)
MAX_SAMPLES = 50_000
#: latencies are compared relative to the control's, but never to less than this (seconds): a few
#: microseconds more on a call that takes fifty is not a deviation anyone would act on
LATENCY_FLOOR = 0.010


class ContextSink(Protocol):
    """Where an experiment reports itself, so alerts raised while it runs can name it
    (`stoic.signals.Signals.add_event` has this shape)."""

    def add_event(
        self,
        kind: str,
        *,
        target: str,
        description: str = "",
        region: str | None = None,
        at: float | None = None,
    ) -> Any: ...


@dataclass(frozen=True)
class _Kpi:
    kind: Literal["rate", "latency"]
    worse: Literal["higher", "lower"]
    q: float = 0.0  # latency percentile


#: the steady-state KPIs an experiment can judge; any other name is a per-request value given to
#: `observe(values=...)`, compared at its median like a latency (worse when higher unless told)
KPIS: dict[str, _Kpi] = {
    "error_rate": _Kpi("rate", "higher"),
    "start_rate": _Kpi("rate", "lower"),
    "p50_latency": _Kpi("latency", "higher", 50.0),
    "p90_latency": _Kpi("latency", "higher", 90.0),
    "p99_latency": _Kpi("latency", "higher", 99.0),
}


@dataclass(frozen=True)
class Hypothesis:
    """The treatment's `kpi` stays within `tolerance` of the control's.

    - ``error_rate`` / ``start_rate``: `tolerance` is a share of requests (0.02 = 2 points more errors,
      or fewer starts)
    - ``p50_latency`` / ``p90_latency`` / ``p99_latency`` and other values: `tolerance` is relative
      (0.25 = the treatment's percentile 25 % above the control's)

    >>> Hypothesis("error_rate", 0.02)
    Hypothesis(kpi='error_rate', tolerance=0.02, worse=None)
    """

    kpi: str
    tolerance: float
    worse: Literal["higher", "lower"] | None = None  # for values outside KPIS (default: higher)

    def __post_init__(self) -> None:
        if not isinstance(self.kpi, str) or not _NAME.fullmatch(self.kpi):
            raise ChaosConfigError(
                f"hypothesis.kpi must be one of {', '.join(KPIS)} or a value name of letters, digits, "
                f"'_', '.', ':' or '-'; got {self.kpi!r}"
            )
        if isinstance(self.tolerance, bool) or not isinstance(self.tolerance, int | float):
            raise ChaosConfigError(f"hypothesis.tolerance must be a number >= 0; got {self.tolerance!r}")
        if not math.isfinite(self.tolerance) or self.tolerance < 0:
            raise ChaosConfigError(f"hypothesis.tolerance must be a number >= 0; got {self.tolerance!r}")
        if self.kpi in ("error_rate", "start_rate") and self.tolerance >= 1:
            raise ChaosConfigError(
                f"hypothesis.tolerance for {self.kpi} must be a share in [0, 1); got {self.tolerance!r}"
            )
        if self.worse not in (None, "higher", "lower"):
            raise ChaosConfigError(f"hypothesis.worse must be higher, lower or None; got {self.worse!r}")

    @classmethod
    def parse(cls, text: str) -> Hypothesis:
        """``"error_rate:0.02"`` or ``"p99_latency:0.5"`` (the command line's form)."""
        kpi, sep, tol = str(text).partition(":")
        try:
            value = float(tol)
        except ValueError:
            value = math.nan
        if not sep or not math.isfinite(value):
            raise ChaosConfigError(
                f"hypothesis must be KPI:TOLERANCE such as error_rate:0.02 or p99_latency:0.5; got {text!r}"
            )
        return cls(kpi, value)

    @property
    def spec(self) -> _Kpi:
        known = KPIS.get(self.kpi)
        return known if known is not None else _Kpi("latency", self.worse or "higher", 50.0)

    def describe(self) -> str:
        spec = self.spec
        if spec.kind == "rate":
            return f"{self.kpi} within {self.tolerance * 100:g} points of control"
        return f"{self.kpi} within {self.tolerance:.0%} of control"


@dataclass(frozen=True)
class KpiCheck:
    """One hypothesis judged at one moment."""

    kpi: str
    treatment: float | None  # the KPI in each cohort (None: no samples yet)
    control: float | None
    deviation: float  # how much worse the treatment is (rates: points; latencies: relative); < 0 = better
    tolerance: float
    p_value: float  # one-sided: is the treatment worse?
    samples: tuple[int, int]  # (treatment, control)
    breached: bool  # worse beyond tolerance, with significance

    def describe(self) -> str:
        t, c = self.treatment, self.control
        if t is None or c is None:
            return f"{self.kpi}: no samples yet"
        if KPIS.get(self.kpi, _Kpi("latency", "higher")).kind == "rate":
            what = f"{self.kpi} {t:.1%} vs control {c:.1%} ({self.deviation * 100:+.1f} points"
        elif self.kpi in KPIS:  # a latency, in seconds
            what = f"{self.kpi} {_fmt(t)} vs control {_fmt(c)} ({self.deviation:+.0%}"
        else:  # a value of the caller's, in its own unit
            what = f"{self.kpi} {t:.4g} vs control {c:.4g} ({self.deviation:+.0%}"
        return f"{what}, p={self.p_value:.2g}, n={self.samples[0]}/{self.samples[1]})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kpi": self.kpi,
            "treatment": self.treatment,
            "control": self.control,
            "deviation": self.deviation,
            "tolerance": self.tolerance,
            "p_value": self.p_value,
            "samples": list(self.samples),
            "breached": self.breached,
        }


def _fmt(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if abs(seconds) < 10 else f"{seconds:.3g} s"


@dataclass
class Verdict:
    """How an experiment ended: `outcome` in `VERDICTS`, why, and the last KPI checks."""

    experiment: str
    outcome: str
    reason: str
    checks: list[KpiCheck] = field(default_factory=list)
    started: float = 0.0  # wall-clock seconds
    ended: float = 0.0
    samples: tuple[int, int] = (0, 0)  # requests observed (treatment, control)
    fault: str = ""

    def summary(self) -> str:
        return f"experiment {self.experiment} {self.outcome}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "outcome": self.outcome,
            "reason": self.reason,
            "checks": [c.to_dict() for c in self.checks],
            "started": self.started,
            "ended": self.ended,
            "samples": list(self.samples),
            "fault": self.fault,
        }


class _Cohort:
    """What one cohort's requests did: counts exactly; latencies and values as a uniform sample of at
    most MAX_SAMPLES each (reservoir sampling), so a long experiment judges all of its traffic."""

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.starts = 0
        self.latencies: list[float] = []
        self.values: dict[str, list[float]] = {}
        self._seen: dict[str, int] = {}
        self._rng = random.Random(0)

    def _keep(self, series: list[float], key: str, value: float) -> None:
        seen = self._seen[key] = self._seen.get(key, 0) + 1
        if len(series) < MAX_SAMPLES:
            series.append(value)
        else:
            slot = self._rng.randrange(seen)
            if slot < MAX_SAMPLES:
                series[slot] = value

    def add(self, ok: bool, latency: float | None, started: bool, values: Mapping[str, float]) -> None:
        self.requests += 1
        self.errors += 0 if ok else 1
        self.starts += 1 if started else 0
        if latency is not None:
            self._keep(self.latencies, "\x00latency", latency)
        for name, v in values.items():
            self._keep(self.values.setdefault(name, []), name, v)

    def copy(self) -> _Cohort:
        """A snapshot to judge outside the lock (observers keep adding meanwhile)."""
        out = _Cohort()
        out.requests, out.errors, out.starts = self.requests, self.errors, self.starts
        out.latencies = list(self.latencies)
        out.values = {k: list(v) for k, v in self.values.items()}
        return out


def _observation(ok: object, latency: object, values: Mapping[str, float] | None) -> dict[str, float]:
    """One finished request's values, checked: `ok` a bool, `latency` seconds or None, `values`
    finite numbers by name."""
    if not isinstance(ok, bool):
        raise TypeError(f"ok must be True or False; got {ok!r}")
    seconds = isinstance(latency, int | float) and not isinstance(latency, bool)
    if latency is not None and (not seconds or not math.isfinite(latency) or latency < 0):  # type: ignore[arg-type,operator]
        raise ValueError(f"latency must be seconds >= 0 or None; got {latency!r}")
    clean: dict[str, float] = {}
    for key, value in (values or {}).items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"values[{key!r}] must be a finite number; got {value!r}")
        clean[str(key)] = float(value)
    return clean


class _Trial:
    """What an experiment and a Kong drill share: a treatment and a control cohort of finished
    requests, judged by the same tests, a halt on the kill switch or a stop condition, and a run
    that checks until the verdict. Subclasses set the attributes below and give `start`, `check`,
    `_finish` and `_too_little`."""

    name: str
    hypotheses: tuple[Hypothesis, ...]
    min_samples: int
    alpha: float
    abort_alpha: float
    check_every: float
    kill_switch: KillSwitch | None
    stop_conditions: StopConditions | None
    verdict: Verdict | None
    started: float | None
    clock: Callable[[], float]

    def _new_cohorts(self) -> None:
        self._cohorts: dict[str, _Cohort] = {"treatment": _Cohort(), "control": _Cohort()}
        self._lock = threading.Lock()
        self._done = threading.Event()

    def _count(
        self, cohort: str, ok: bool, latency: float | None, started: bool | None, values: dict[str, float]
    ) -> None:
        """Add one checked request to `cohort` (nothing once there is a verdict)."""
        with self._lock:
            if self.verdict is None:
                seconds = None if latency is None else float(latency)
                self._cohorts[cohort].add(ok, seconds, ok if started is None else started, values)

    def samples(self) -> tuple[int, int]:
        """Requests counted so far: (treatment, control)."""
        with self._lock:
            return self._cohorts["treatment"].requests, self._cohorts["control"].requests

    def checks(self, alpha: float | None = None) -> list[KpiCheck]:
        """Every hypothesis judged now; a breach needs `alpha` significance (default: `abort_alpha`)."""
        level = self.abort_alpha if alpha is None else alpha
        with self._lock:
            t, c = self._cohorts["treatment"].copy(), self._cohorts["control"].copy()
        return [judge(h, t, c, level, self.min_samples) for h in self.hypotheses]

    def _halt_reason(self) -> str:
        if self.kill_switch is not None and self.kill_switch.engaged:
            return f"kill switch on ({self.kill_switch.reason()})"
        if self.stop_conditions is not None:
            return self.stop_conditions.reason()
        return ""

    def _final(self) -> tuple[str, str, list[KpiCheck]]:
        """(outcome, reason, checks) at the end: failed on a breach, inconclusive while a KPI lacks
        `min_samples` per cohort, else passed."""
        checks = self.checks(self.alpha)
        judged = [c for c in checks if min(c.samples) >= self.min_samples]
        breached = [c for c in judged if c.breached]
        if breached:
            why = "; ".join(f"{c.describe()} beyond tolerance {_tolerance(c)}" for c in breached)
            return "failed", why, checks
        if len(judged) < len(checks):
            short = ", ".join(c.kpi for c in checks if c not in judged)
            return "inconclusive", self._too_little(self.samples(), short), checks
        return "passed", "; ".join(c.describe() for c in checks), checks

    def _too_little(self, samples: tuple[int, int], short: str) -> str:
        raise NotImplementedError

    def start(self) -> AuditEntry:
        raise NotImplementedError

    def check(self) -> Verdict | None:
        raise NotImplementedError

    def _finish(self) -> Verdict:
        raise NotImplementedError

    def _record(self, outcome: str, reason: str) -> AuditEntry:
        raise NotImplementedError

    def _subject(self) -> str:
        """What was done, in words, for the verdict."""
        raise NotImplementedError

    def _cleanup(self, verdict: Verdict) -> None:
        """Undo what the trial did, before its verdict is audited (may add to `verdict.reason`)."""

    def _tell(self, kind: str, description: str) -> None:
        raise NotImplementedError

    def _conclude(self, outcome: str, reason: str, checks: list[KpiCheck]) -> Verdict:
        """The verdict, once: cleaned up after, audited (a failed write is said in its reason), told
        to the context sink; then `wait()` returns."""
        with self._lock:
            if self.verdict is not None:
                return self.verdict
            samples = (self._cohorts["treatment"].requests, self._cohorts["control"].requests)
            ended = self.clock()
            verdict = self.verdict = Verdict(
                self.name, outcome, reason, checks, self.started or 0.0, ended, samples, self._subject()
            )
        self._cleanup(verdict)
        try:
            self._record(outcome, verdict.reason)
        except AuditError as exc:  # what it did is undone; say loudly that the record is missing
            log.error("%s ended %s; its verdict could not be audited: %s", self, outcome, exc)
            verdict.reason += f" (not audited: {exc})"
        self._tell("experiment", self._verdict_words(verdict))
        self._done.set()
        return verdict

    def _verdict_words(self, verdict: Verdict) -> str:
        return verdict.summary()

    def _until_verdict(self, span: float, progress: Callable[[Any], None] | None = None) -> Verdict:
        """Start if needed, then `check` every `check_every` seconds until a verdict (bounded by
        `span` plus a few checks)."""
        if self.started is None:
            self.start()
        deadline = time.monotonic() + span + 2 * self.check_every + 5.0
        for _ in range(int((span + 10.0) / self.check_every) + 10):
            verdict = self.check()
            if verdict is not None:
                return verdict
            if progress is not None:
                progress(self)
            if time.monotonic() > deadline:
                break
            self._done.wait(self.check_every)
        return self.verdict or self._finish()

    def wait(self, timeout: float | None = None) -> Verdict | None:
        """The verdict, waiting up to `timeout` seconds for it."""
        self._done.wait(timeout)
        return self.verdict


class Experiment(_Trial):
    """One experiment: `fault` (a FIT scenario: error, delay, timeout or reject on its dependencies) for
    `share` of requests, judged by `hypotheses` against a control cohort of the same size.

    - `share`: the treatment cohort's share of requests, in (0, 0.5]; the control cohort is as large
    - `duration`: seconds the experiment runs unless it is aborted first
    - `min_samples`: requests each cohort needs before a KPI is judged (below it at the end:
      inconclusive)
    - `alpha`: significance for the verdict at the end; `abort_alpha` (stricter, as the KPIs are
      checked many times while running) for an abort
    - `audit`: every start, abort and verdict is written there (with `actor`); no audit, no experiment
    - `kill_switch`: the shared switch; engaged, it aborts the experiment like its own KPI check does
    - `stop`: `StopConditions`; any of them aborts the experiment
    - `codec`: signs the FIT header carried by treatment requests (`headers`); without one, bind
      `plan(request_id)` in process
    - `context`: told when the experiment starts and ends (`regions`: one event per region it touches);
      a `stoic.signals` sink also silences the alerts expected in those regions while it runs

    >>> exp = Experiment("recs-fallback", Scenario("recs-fallback", "personalisation"),
    ...                  [Hypothesis("error_rate", 0.01)], share=0.05, duration=60, audit=AuditLog())
    """

    def __init__(
        self,
        name: str,
        fault: Scenario,
        hypotheses: Iterable[Hypothesis],
        *,
        share: float = 0.01,
        duration: float = 300.0,
        min_samples: int = 20,
        alpha: float = 0.05,
        abort_alpha: float = 0.001,
        check_every: float = 0.5,
        audit: AuditLog,
        kill_switch: KillSwitch | None = None,
        stop: StopConditions | None = None,
        codec: HeaderCodec | None = None,
        context: ContextSink | None = None,
        regions: Sequence[str] = (),
        actor: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ChaosConfigError(
                f"experiment.name must be 1-64 letters, digits, '_', '.', ':' or '-'; got {name!r}"
            )
        if not isinstance(fault, Scenario):
            raise ChaosConfigError(
                f"experiment.fault must be a stoic.fit.Scenario; got {type(fault).__name__}"
            )
        self.hypotheses = tuple(hypotheses)
        if not self.hypotheses or not all(isinstance(h, Hypothesis) for h in self.hypotheses):
            raise ChaosConfigError("experiment.hypotheses must name at least one Hypothesis")
        _check_number("share", share, 0.0, 0.5, low_open=True)
        _check_number("duration", duration, 0.0, 7 * 86400.0, low_open=True)
        _check_number("alpha", alpha, 0.0, 0.5, low_open=True)
        _check_number("abort_alpha", abort_alpha, 0.0, 0.5, low_open=True)
        _check_number("check_every", check_every, 0.01, 60.0)
        whole = isinstance(min_samples, int) and not isinstance(min_samples, bool)
        if not whole or not 2 <= min_samples <= 1_000_000:
            raise ChaosConfigError(
                f"experiment.min_samples must be an integer in [2, 1000000]; got {min_samples!r}"
            )
        if not isinstance(audit, AuditLog):
            raise ChaosConfigError("experiment.audit must be an AuditLog: an experiment is always audited")
        self.name = name
        self.share = float(share)
        self.duration = float(duration)
        self.min_samples = min_samples
        self.alpha = float(alpha)
        self.abort_alpha = float(abort_alpha)
        self.check_every = float(check_every)
        self.audit = audit
        self.kill_switch = kill_switch
        self.stop_conditions = stop
        self.codec = codec
        self.context = context
        self.regions = tuple(regions)
        self.actor = actor or audit.actor
        self.clock = clock
        # the fault targets exactly the treatment cohort: same name (hash salt) and percent
        self.scenario = Scenario(
            name,
            fault.dependencies,
            fault.kind,
            delay=fault.delay,
            message=f"injected by experiment {name}",
            percent=self.share * 100.0,
            ttl=self.duration + 60.0,
            status=fault.status,
            retry_after=fault.retry_after,
            result=fault.result,
        )
        self.halt = KillSwitch()  # the experiment's own switch: engaged on abort and at the end
        self.verdict: Verdict | None = None
        self.started: float | None = None
        self._silence_id = ""  # the silence a signals sink made for this experiment
        self._new_cohorts()
        self._header: tuple[float, str] | None = None  # (signed at, monotonic; the header)
        self._thread: threading.Thread | None = None

    # -- who gets what ------------------------------------------------------------------------------

    def cohort(self, request_id: str) -> Cohort | None:
        """The request's cohort (the same in every service), or None when it is in neither."""
        at = fit_share(request_id, self.name)
        width = self.share * 100.0
        if at < width:
            return "treatment"
        if at < 2 * width:
            return "control"
        return None

    @property
    def running(self) -> bool:
        """True between `start` and the verdict, while no switch is engaged."""
        return (
            self.started is not None
            and self.verdict is None
            and not self.halt.engaged
            and not (self.kill_switch is not None and self.kill_switch.engaged)
        )

    def headers(self, request_id: str) -> dict[str, str]:
        """The signed FIT header a treatment request carries while the experiment runs ({} otherwise).

        Checked per request: an abort or the kill switch stops the fault from the next request on.
        """
        if self.codec is None or not self.running or self.cohort(request_id) != "treatment":
            return {}
        now = time.monotonic()
        header = self._header
        # signed with the codec's own lifetime (receivers refuse longer ones), again at half of it
        if header is None or now - header[0] > self.codec.ttl / 2:
            header = self._header = (now, self.codec.sign([self.scenario]))
        return {self.codec.header: header[1]}

    def plan(self, request_id: str, user_id: str | None = None, device: str | None = None) -> FailurePlan:
        """The failure plan for one request in this process (empty unless it is a treatment request
        of a running experiment); bind it with `stoic.fit.bind`."""
        identity = RequestIdentity(request_id, user_id, device)
        treated = self.running and self.cohort(request_id) == "treatment"
        return FailurePlan([self.scenario] if treated else [], identity)

    def observe(
        self,
        request_id: str,
        *,
        ok: bool,
        latency: float | None = None,
        started: bool | None = None,
        values: Mapping[str, float] | None = None,
    ) -> Cohort | None:
        """Count one finished request in its cohort (requests in neither cohort are ignored).

        `ok`: it answered without error; `latency`: seconds; `started`: a stream started (default:
        `ok`); `values`: other per-request KPIs by name.
        """
        clean = _observation(ok, latency, values)
        cohort = self.cohort(request_id)
        if cohort is None or self.started is None or self.verdict is not None:
            return cohort
        self._count(cohort, ok, latency, started, clean)
        return cohort

    # -- judging ----------------------------------------------------------------------------------

    def start(self) -> AuditEntry:
        """Write the start to the audit log, then let the fault out (raises `AuditError` if it cannot
        be written, and `RuntimeError` when a kill switch or stop condition forbids it)."""
        if self.started is not None:
            raise RuntimeError(f"experiment {self.name} was already started")
        why = self._halt_reason()
        if why:
            self._record("skipped", why)
            raise RuntimeError(f"experiment {self.name} not started: {why}")
        entry = self._record(
            "started", f"{self.describe()}; hypotheses: {'; '.join(h.describe() for h in self.hypotheses)}"
        )
        self.started = self.clock()
        self._tell("chaos", f"experiment {self.name} started: {self.describe()}")
        self._silence()
        return entry

    def _silence(self) -> None:
        # a sink that can silence (stoic.signals) holds back the alerts this experiment is expected
        # to raise in its regions, for its duration; anything beyond that still pages, naming it
        silence = getattr(self.context, "silence_experiment", None)
        if silence is None or self.started is None:
            return
        switch = self.kill_switch
        how = "the kill switch"
        if switch is not None and switch.path is not None:
            how = f"`touch {switch.path}`"
        try:
            made = silence(
                self.name,
                starts_at=self.started,
                ends_at=self.started + self.duration,
                created_by=self.actor,
                regions=list(self.regions),
                kill_switch=how,
            )
            self._silence_id = str(made["id"])
        except Exception:  # the signals are told, never obeyed: the experiment runs without a silence
            log.exception("experiment %s could not silence its expected alerts", self.name)

    def _group(self) -> str:
        return ",".join(self.scenario.dependencies)

    def describe(self) -> str:
        """The fault in words."""
        s = self.scenario
        what = {
            "delay": f"+{s.delay:g}s latency on",
            "error": "errors from",
            "timeout": "timeouts from",
            "reject": "rejections from",
            "status": f"HTTP {s.status} answers from",
            "result": "stand-in answers from",
        }[s.kind]
        return (
            f"{what} {', '.join(s.dependencies)} for {self.share:.2%} of requests "
            f"(control {self.share:.2%}) for {self.duration:g}s"
        )

    def check(self) -> Verdict | None:
        """Judge now: abort on a kill switch, a stop condition or a significant breach; end with a
        verdict once `duration` has passed. Returns the verdict once there is one."""
        if self.verdict is not None:
            return self.verdict
        if self.started is None:
            raise RuntimeError(f"experiment {self.name} has not started")
        why = self._halt_reason()
        if why:
            return self.abort(why)
        checks = self.checks()
        breached = [c for c in checks if c.breached]
        if breached:
            return self.abort(f"{breached[0].describe()} beyond tolerance {_tolerance(breached[0])}", checks)
        if self.clock() - self.started >= self.duration:
            return self._finish()
        return None

    def abort(self, reason: str, checks: list[KpiCheck] | None = None) -> Verdict:
        """Stop the fault now (the next request gets none) and record the abort with `reason`."""
        self.halt.engage(reason)  # first: no request may get the fault after this line
        return self._conclude("aborted", reason, checks if checks is not None else self.checks())

    def _finish(self) -> Verdict:
        self.halt.engage("finished")
        return self._conclude(*self._final())

    def _too_little(self, samples: tuple[int, int], short: str) -> str:
        return (
            f"too little traffic: {samples[0]} treatment / {samples[1]} control requests; {short} needs "
            f"{self.min_samples} per cohort"
        )

    def _record(self, outcome: str, reason: str) -> AuditEntry:
        return self.audit.record(
            EXPERIMENT, EXPERIMENT, outcome, target=self.name, group=self._group(), reason=reason,
            actor=self.actor,
        )

    def _subject(self) -> str:
        return self.describe()

    def _cleanup(self, verdict: Verdict) -> None:
        expire = getattr(self.context, "expire_silence", None)
        if expire is not None and self._silence_id:  # over early: what follows is not this experiment's
            try:
                expire(self._silence_id, by=self.actor)
            except Exception:
                log.exception("experiment %s could not end its silence", self.name)

    def _tell(self, kind: str, description: str) -> None:
        if self.context is None:
            return
        at = self.clock()  # one moment for every region: the report shows the verdict once
        try:
            for region in self.regions or (None,):
                self.context.add_event(
                    kind, target=self.name, description=description[:500], region=region, at=at
                )
        except Exception:  # the signals are told, never obeyed: a failing sink must not keep a fault on
            log.exception("experiment %s could not report to its context sink", self.name)

    def run(self, progress: Callable[[Experiment], None] | None = None) -> Verdict:
        """Start, check every `check_every` seconds until a verdict, and return it (bounded by
        `duration` plus one check)."""
        return self._until_verdict(self.duration, progress)

    def start_background(self) -> None:
        """`start()`, then judge on a background thread; `wait()` for the verdict."""
        self.start()
        self._thread = threading.Thread(target=self.run, name=f"experiment-{self.name}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        state = self.verdict.outcome if self.verdict else ("running" if self.running else "not started")
        return f"Experiment({self.name!r}, {self.describe()}, {state})"


def judge(h: Hypothesis, t: _Cohort, c: _Cohort, alpha: float, min_samples: int) -> KpiCheck:
    """One hypothesis judged on two cohorts: `t` (the one under the fault) against `c` (the one
    without); a breach needs `min_samples` requests in each and `alpha` significance."""
    spec = h.spec
    higher = spec.worse == "higher"
    if spec.kind == "rate":
        bad = {"error_rate": (t.errors, c.errors)}.get(h.kpi, (t.starts, c.starts))
        n = (t.requests, c.requests)
        if min(n) == 0:
            return KpiCheck(h.kpi, None, None, 0.0, h.tolerance, 1.0, n, False)
        rt, rc = bad[0] / n[0], bad[1] / n[1]
        deviation = (rt - rc) if higher else (rc - rt)
        p = two_proportions(bad[0], n[0], bad[1], n[1], "greater" if higher else "less").p_value
        enough = min(n) >= min_samples
        breached = enough and deviation > h.tolerance and p < alpha
        return KpiCheck(h.kpi, rt, rc, deviation, h.tolerance, p, n, breached)
    xs = t.latencies if h.kpi in KPIS else t.values.get(h.kpi, [])
    ys = c.latencies if h.kpi in KPIS else c.values.get(h.kpi, [])
    n = (len(xs), len(ys))
    if min(n) == 0:
        return KpiCheck(h.kpi, None, None, 0.0, h.tolerance, 1.0, n, False)
    qt, qc = percentile(xs, spec.q), percentile(ys, spec.q)
    worse = (qt - qc) if higher else (qc - qt)
    # near zero, any difference would be infinitely relative: latencies have a floor, and a value
    # of the caller's that moves off zero is infinitely worse
    base = max(abs(qc), LATENCY_FLOOR) if h.kpi in KPIS else abs(qc)
    deviation = worse / base if base else (math.inf if worse > 0 else 0.0)
    p = mann_whitney_u(xs, ys, "greater" if higher else "less").p_value
    enough = min(n) >= min_samples
    breached = enough and deviation > h.tolerance and p < alpha
    return KpiCheck(h.kpi, qt, qc, deviation, h.tolerance, p, n, breached)


def _tolerance(c: KpiCheck) -> str:
    rate = KPIS.get(c.kpi, _Kpi("latency", "higher")).kind == "rate"
    return f"{c.tolerance * 100:g} points" if rate else f"{c.tolerance:.0%}"


def _check_number(name: str, value: object, low: float, high: float, *, low_open: bool = False) -> None:
    ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    if ok and (value > low if low_open else value >= low) and value <= high:  # type: ignore[operator]
        return
    bracket = "(" if low_open else "["
    raise ChaosConfigError(
        f"experiment.{name} must be a number in {bracket}{low:g}, {high:g}]; got {value!r}"
    )


def verdicts(audit: AuditLog, limit: int | None = 100, name: str | None = None) -> list[AuditEntry]:
    """Experiment starts and verdicts in the audit log, newest first (`name`: one experiment's)."""
    entries = audit.entries(None if name is not None else limit, monkey=EXPERIMENT, action=EXPERIMENT)
    if name is not None:
        entries = [e for e in entries if e.target == name][:limit]
    return entries


def verified_fallbacks(audit: AuditLog) -> dict[str, AuditEntry]:
    """Dependency -> the newest experiment that failed it and passed (its fallback held)."""
    out: dict[str, AuditEntry] = {}
    for e in audit.entries(None, monkey=EXPERIMENT, action=EXPERIMENT, outcome="passed"):
        for dep in filter(None, e.group.split(",")):
            out.setdefault(dep, e)
    return out


__all__ = [
    "EXPERIMENT",
    "KPIS",
    "VERDICTS",
    "Cohort",
    "ContextSink",
    "Experiment",
    "Hypothesis",
    "KpiCheck",
    "Verdict",
    "verdicts",
    "verified_fallbacks",
]
