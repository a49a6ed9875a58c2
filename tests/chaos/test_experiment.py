"""Experiments in one process: real guarded dependencies, real FIT plans, a real SQLite audit log.

The traffic is a loop of guarded calls; each request binds the experiment's plan for its id, exactly
as a FIT middleware binds the plan of an incoming request.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from stoic.chaos import AuditLog, ChaosConfigError, KillSwitch
from stoic.chaos.experiment import Experiment, Hypothesis, Verdict
from stoic.fit import HeaderCodec, RequestIdentity, Scenario, bind
from stoic.guard import Dependency, Fallback, Registry
from stoic.signals import Signals, likely_cause


def guarded(with_fallback: bool) -> Dependency:
    fallbacks = [Fallback.value(["popular"], name="popular")] if with_fallback else []
    return Dependency("recs", fallbacks=fallbacks, registry=Registry())


def traffic(exp: Experiment, dep: Dependency, requests: int, *, judge: bool = True) -> Verdict | None:
    """`requests` requests through `dep`, each observed in its cohort; judged every 50."""
    for i in range(requests):
        rid = uuid.uuid4().hex
        start = time.perf_counter()
        try:
            with bind(exp.plan(rid)):
                dep.call(lambda: ["row"])
            ok = True
        except Exception:
            ok = False
        exp.observe(rid, ok=ok, latency=time.perf_counter() - start)
        if judge and i % 50 == 49 and exp.check() is not None:
            return exp.verdict
    return exp.verdict


def experiment(log: AuditLog, **kw: object) -> Experiment:
    options: dict[str, object] = {
        "share": 0.1,
        "duration": 3600.0,
        "min_samples": 20,
        "audit": log,
        "actor": "user:ada",
    }
    options.update(kw)
    return Experiment(
        str(options.pop("name", "fail-recs")),
        Scenario("any-name", "recs"),
        [Hypothesis("error_rate", 0.02)],
        **options,  # type: ignore[arg-type]
    )


def test_cohorts_are_two_equal_disjoint_bands_and_the_fault_targets_exactly_the_treatment() -> None:
    exp = experiment(AuditLog(), share=0.05)
    ids = [f"req-{i}" for i in range(20_000)]
    cohorts = [exp.cohort(i) for i in ids]
    treated = cohorts.count("treatment")
    control = cohorts.count("control")
    assert 800 < treated < 1200 and 800 < control < 1200  # 5 % each of 20,000, give or take
    # the FIT scenario (the same hash, named after the experiment) fails exactly the treatment
    for rid, cohort in zip(ids[:3000], cohorts[:3000], strict=True):
        assert exp.scenario.targets(RequestIdentity(rid)) == (cohort == "treatment")
    assert exp.scenario.name == "fail-recs" and exp.scenario.percent == pytest.approx(5.0)


def test_a_fault_without_fallback_is_aborted_and_the_fault_stops_at_once(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.db")
    exp = experiment(audit, codec=HeaderCodec("s" * 32))
    exp.start()
    treated = next(i for i in (uuid.uuid4().hex for _ in range(1000)) if exp.cohort(i) == "treatment")
    assert exp.headers(treated) and exp.plan(treated).scenarios
    verdict = traffic(exp, guarded(with_fallback=False), 5000)
    assert verdict is not None and verdict.outcome == "aborted", exp
    assert verdict.reason.startswith("error_rate 100.0% vs control 0.0%")
    assert "beyond tolerance 2 points" in verdict.reason
    # from now on no request gets the fault: no header, an empty plan
    assert exp.headers(treated) == {} and exp.plan(treated).scenarios == ()
    newest, first = audit.entries(2, monkey="experiment")
    assert (first.outcome, newest.outcome) == ("started", "aborted")
    assert newest.actor == "user:ada" and newest.target == "fail-recs" and newest.group == "recs"
    assert newest.reason == verdict.reason


def test_a_fallback_that_holds_passes(tmp_path: Path) -> None:
    clock = [1000.0]
    audit = AuditLog(tmp_path / "audit.db")
    exp = experiment(audit, duration=60.0, clock=lambda: clock[0])
    exp.start()
    assert traffic(exp, guarded(with_fallback=True), 2000) is None  # nothing to abort
    clock[0] += 60.0
    verdict = exp.check()
    assert verdict is not None and verdict.outcome == "passed", verdict
    assert verdict.samples[0] >= 20 and verdict.samples[1] >= 20
    assert audit.entries(1, monkey="experiment")[0].outcome == "passed"


def test_a_breach_too_weak_to_abort_fails_the_experiment_at_the_end(tmp_path: Path) -> None:
    clock = [1000.0]
    audit = AuditLog(tmp_path / "audit.db")
    # an abort would need overwhelming evidence; the verdict at the end needs the usual 5 %
    exp = experiment(audit, duration=60.0, abort_alpha=1e-300, clock=lambda: clock[0])
    exp.start()
    assert traffic(exp, guarded(with_fallback=False), 600) is None
    clock[0] += 60.0
    verdict = exp.check()
    assert verdict is not None and verdict.outcome == "failed", verdict
    assert "error_rate 100.0% vs control 0.0%" in verdict.reason


def test_too_little_traffic_is_inconclusive(tmp_path: Path) -> None:
    clock = [1000.0]
    exp = experiment(AuditLog(tmp_path / "audit.db"), duration=60.0, clock=lambda: clock[0])
    exp.start()
    traffic(exp, guarded(with_fallback=True), 40, judge=False)
    clock[0] += 60.0
    verdict = exp.check()
    assert verdict is not None and verdict.outcome == "inconclusive"
    assert verdict.reason.startswith("too little traffic: ")
    assert "error_rate needs 20 per cohort" in verdict.reason


def test_the_kill_switch_aborts_a_running_experiment(tmp_path: Path) -> None:
    switch = KillSwitch(tmp_path / "kill-switch")
    exp = experiment(AuditLog(tmp_path / "audit.db"), kill_switch=switch)
    exp.start()
    assert exp.check() is None
    switch.engage("incident 42")
    treated = next(i for i in (uuid.uuid4().hex for _ in range(1000)) if exp.cohort(i) == "treatment")
    assert exp.plan(treated).scenarios == ()  # per request, before anyone calls check()
    verdict = exp.check()
    assert verdict is not None and verdict.outcome == "aborted"
    assert verdict.reason == "kill switch on (incident 42)"


def test_an_engaged_kill_switch_refuses_the_start_and_audits_it(tmp_path: Path) -> None:
    switch = KillSwitch()
    switch.engage("freeze")
    audit = AuditLog(tmp_path / "audit.db")
    exp = experiment(audit, kill_switch=switch)
    with pytest.raises(RuntimeError, match=r"experiment fail-recs not started: kill switch on \(freeze\)"):
        exp.start()
    assert audit.entries(1)[0].outcome == "skipped"


def test_the_start_and_verdict_reach_signals_and_an_alert_meanwhile_names_the_experiment() -> None:
    signals = Signals(interval=60.0)
    clock = [time.time()]
    exp = experiment(AuditLog(), context=signals, regions=["eu-west"], clock=lambda: clock[0])
    exp.start()
    cause = likely_cause(list(signals._events), "eu-west", clock[0] + 30, lookback=900)
    assert cause is not None
    assert cause.description.startswith("experiment fail-recs started: errors from recs")
    exp.abort("manual stop")
    described = [e.description for e in signals._events]
    assert described[-1] == "experiment fail-recs aborted: manual stop"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"share": 0.6}, r"experiment.share must be a number in \(0, 0.5\]; got 0.6"),
        ({"share": True}, r"experiment.share must be a number in \(0, 0.5\]; got True"),
        ({"duration": 0}, r"experiment.duration must be a number in \(0, 604800\]; got 0"),
        ({"min_samples": 1}, r"experiment.min_samples must be an integer in \[2, 1000000\]; got 1"),
        ({"name": "no spaces"}, "experiment.name must be 1-64 letters"),
        ({"audit": None}, "experiment.audit must be an AuditLog: an experiment is always audited"),
    ],
)
def test_bad_settings_name_the_field(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ChaosConfigError, match=message):
        experiment(AuditLog(), **kw)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("error_rate", "hypothesis must be KPI:TOLERANCE such as error_rate:0.02"),
        ("error_rate:lots", "hypothesis must be KPI:TOLERANCE"),
        ("error_rate:1.5", r"hypothesis.tolerance for error_rate must be a share in \[0, 1\); got 1.5"),
        ("p99_latency:-1", "hypothesis.tolerance must be a number >= 0; got -1.0"),
        ("bad kpi:0.1", "hypothesis.kpi must be one of error_rate, start_rate, p50_latency"),
    ],
)
def test_bad_hypotheses_name_the_field(text: str, message: str) -> None:
    with pytest.raises(ChaosConfigError, match=message):
        Hypothesis.parse(text)


def test_observations_are_checked_at_the_edge() -> None:
    exp = experiment(AuditLog())
    with pytest.raises(ValueError, match="latency must be seconds >= 0 or None; got -1"):
        exp.observe("r1", ok=True, latency=-1)
    with pytest.raises(TypeError, match="ok must be True or False; got 'yes'"):
        exp.observe("r1", ok="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"values\['rebuffer'\] must be a finite number; got nan"):
        exp.observe("r1", ok=True, values={"rebuffer": float("nan")})


def test_the_weekly_report_lists_verdicts_only_when_there_were_experiments(tmp_path: Path) -> None:
    from stoic.signals import History
    from stoic.signals.report import weekly_report

    history = History(tmp_path / "signals.db")
    signals = Signals(interval=60.0)
    assert "Chaos experiments" not in weekly_report(history)
    exp = experiment(AuditLog(), context=signals, regions=["eu-west", "us-east"])
    exp.start()
    exp.abort("error_rate 97.0% vs control 0.5%")
    for event in signals._events:
        history.record_event(event)
    html = weekly_report(history)
    assert "<h2>Chaos experiments</h2>" in html
    section = html.split("<h2>Chaos experiments</h2>")[1].split("</table>")[0]
    # one row per verdict, though it was reported to both regions
    assert section.count("<tr><td>") == 1
    assert "<td>fail-recs</td><td>aborted: error_rate 97.0% vs control 0.5%</td>" in section


def test_a_long_experiment_judges_all_of_its_traffic_not_just_the_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import stoic.chaos.experiment as module

    monkeypatch.setattr(module, "MAX_SAMPLES", 100)
    exp = Experiment(
        "slow-later", Scenario("x", "recs"), [Hypothesis("p50_latency", 0.5)], share=0.5, audit=AuditLog()
    )
    exp.start()
    ids = [f"r{i}" for i in range(4000)]
    # the first few hundred requests are fast, every later one slow: a sample of only the first
    # requests would call the median fast
    for n, rid in enumerate(ids):
        exp.observe(rid, ok=True, latency=0.001 if n < 300 else 1.0)
    check = exp.checks()[0]
    assert check.treatment == 1.0 and check.control == 1.0
    assert check.samples == (100, 100)


def test_a_value_of_the_callers_is_judged_at_its_median_in_its_own_unit() -> None:
    exp = Experiment(
        "rebuffer",
        Scenario("x", "cdn"),
        [Hypothesis("rebuffer_ratio", 0.5), Hypothesis("bitrate", 0.2, worse="lower")],
        share=0.5,
        min_samples=10,
        audit=AuditLog(),
    )
    exp.start()
    for i in range(400):
        rid = f"v{i}"
        treated = exp.cohort(rid) == "treatment"
        values = {"rebuffer_ratio": 0.09 if treated else 0.03, "bitrate": 3000.0}
        exp.observe(rid, ok=True, values=values)
    rebuffer, bitrate = exp.checks()
    assert rebuffer.breached and rebuffer.deviation == pytest.approx(2.0)
    assert rebuffer.describe().startswith("rebuffer_ratio 0.09 vs control 0.03 (+200%, p=")
    assert not bitrate.breached and bitrate.deviation == 0.0
    verdict = exp.check()
    assert verdict is not None and verdict.outcome == "aborted"
    assert verdict.reason.endswith("beyond tolerance 50%")
