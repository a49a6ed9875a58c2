"""Chaos Kong drills against real processes: a region of HTTP servers is evacuated through the Simian
Army, real requests on loopback are judged in the regions that stay, and the verdict is audited."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time
from pathlib import Path

import httpx
import pytest

from stoic.chaos import (
    KONG,
    AuditLog,
    Cadence,
    ChaosConfigError,
    Hypothesis,
    Instance,
    KillSwitch,
    KongDrill,
    KongEntry,
    KongSchedule,
    ProcessTarget,
    Schedule,
    Supervisor,
    evacuation,
)
from stoic.chaos.experiment import verdicts

LAYOUT = [("eu", "eu-a"), ("eu", "eu-b"), ("us", "us-a"), ("us", "us-b")]
MONDAY_10 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


class Clock:
    """The drill's clock, moved by the test: phases change on request counts, not on wall time."""

    def __init__(self) -> None:
        self.now = MONDAY_10.timestamp()

    def __call__(self) -> float:
        return self.now


class ArmyClock:
    """The drill's clock as the army's `stoic.chaos.Clock`."""

    speed = 1.0

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now, UTC)


class Users:
    """Viewers in both regions: each request goes to its home region, failing over to the other region
    when `failover` is on and home has no live instance. Reports each request to the drill."""

    def __init__(self, instances: list[Instance], *, failover: bool) -> None:
        self.instances = instances
        self.failover = failover
        self.client = httpx.Client(timeout=2.0)

    def request(self, home: str, drill: KongDrill) -> None:
        regions = [home, *(r for r in ("eu", "us") if r != home)] if self.failover else [home]
        for region in regions:
            for inst in (i for i in self.instances if i.region == region):
                try:
                    ok = self.client.get(f"http://127.0.0.1:{inst.port}/").status_code == 200
                except httpx.TransportError:
                    continue  # gone: try the next instance
                drill.observe(region, ok=ok)
                return
        drill.observe(None, ok=False)  # nobody answered


@pytest.fixture
def regions(supervisor: Supervisor, http_argv: list[str]) -> list[Instance]:
    insts = [supervisor.start(http_argv, app="api", region=r, zone=z, port=0) for r, z in LAYOUT]
    supervisor.wait_healthy(insts, timeout=15)
    return insts


def drive(drill: KongDrill, users: Users, clock: Clock, rounds: int = 120) -> None:
    """Requests from both regions, 0.05 s of drill time per round, until the verdict (bounded)."""
    drill.start()
    for _ in range(rounds):
        users.request("eu", drill)
        users.request("us", drill)
        clock.now += 0.05
        if drill.check() is not None:
            return


def make_drill(supervisor: Supervisor, audit: AuditLog, clock: Clock, name: str = "kong-weekly",
               region: str = "eu") -> KongDrill:
    def restore(gone: str) -> None:
        for inst in supervisor.instances:
            if inst.region == gone and not inst.alive:
                supervisor.restart(inst)

    return KongDrill(
        name, region, [Hypothesis("error_rate", 0.05)],
        evacuate=evacuation(ProcessTarget(supervisor), audit=audit, clock=ArmyClock(clock)), restore=restore,
        baseline=2.0, duration=3.0, min_samples=20, audit=audit, clock=clock,
    )


def test_a_drill_with_working_failover_passes_and_is_audited(
    supervisor: Supervisor, regions: list[Instance], tmp_path: Path
) -> None:
    audit, clock = AuditLog(tmp_path / "audit.db"), Clock()
    drill = make_drill(supervisor, audit, clock)
    drive(drill, Users(regions, failover=True), clock)

    assert drill.verdict is not None and drill.verdict.outcome == "passed", drill.verdict
    assert drill.verdict.reason.startswith("error_rate 0.0% vs control 0.0% (+0.0 points")
    assert {i.region for i in regions if not i.alive} == set()  # restored after the verdict
    assert {i.region for i in regions if i.restarts} == {"eu"}
    during, before = drill.samples()
    assert during >= 20 and before >= 20
    # the army terminated the region (audited per instance), the drill audited its start and verdict
    kills = audit.entries(None, monkey="chaos-kong", outcome="terminated")
    assert sorted(e.zone for e in kills) == ["eu-a", "eu-b"]
    judged = audit.entries(None, monkey=KONG, action="experiment")
    assert [(e.outcome, e.region, e.group) for e in judged] == [
        ("passed", "eu", "region:eu"), ("started", "eu", "region:eu")
    ]
    assert "error_rate within 5 points of control" in judged[1].reason
    assert verdicts(audit) == []  # not mixed into the request experiments' verified fallbacks


def test_a_drill_whose_failover_is_broken_fails_with_the_deviation(
    supervisor: Supervisor, regions: list[Instance], tmp_path: Path
) -> None:
    audit, clock = AuditLog(tmp_path / "audit.db"), Clock()
    drill = make_drill(supervisor, audit, clock)
    drive(drill, Users(regions, failover=False), clock)  # eu's viewers get nothing once eu is out

    assert drill.verdict is not None and drill.verdict.outcome == "failed", drill.verdict
    (check,) = drill.verdict.checks
    assert check.breached and check.deviation > 0.3  # about half of all requests fail
    assert "beyond tolerance 5 points" in drill.verdict.reason
    assert audit.entries(1, monkey=KONG, action="experiment")[0].outcome == "failed"
    assert all(i.alive for i in regions)  # brought back as soon as the verdict was in


def test_the_kill_switch_aborts_a_drill_and_refuses_the_next(
    supervisor: Supervisor, regions: list[Instance], tmp_path: Path
) -> None:
    audit, clock = AuditLog(tmp_path / "audit.db"), Clock()
    switch = KillSwitch(tmp_path / "kill-switch")
    drill = make_drill(supervisor, audit, clock)
    drill.kill_switch = switch
    users = Users(regions, failover=True)
    drill.start()
    users.request("us", drill)
    switch.engage("game day cancelled")
    verdict = drill.check()
    assert verdict is not None and verdict.outcome == "aborted"
    assert verdict.reason == "kill switch on (game day cancelled)"
    assert all(i.alive for i in regions)  # aborted in the baseline: nothing was evacuated

    second = make_drill(supervisor, audit, clock, name="kong-again")
    second.kill_switch = switch
    with pytest.raises(RuntimeError, match="not started: kill switch on"):
        second.start()
    assert audit.entries(1, monkey=KONG)[0].outcome == "skipped"


def test_the_schedule_runs_due_drills_in_turn_from_the_audit_log(
    supervisor: Supervisor, regions: list[Instance], tmp_path: Path
) -> None:
    audit, clock = AuditLog(tmp_path / "audit.db"), Clock()
    users = Users(regions, failover=True)
    built: list[str] = []

    def build(name: str, region: str) -> KongDrill:
        built.append(region)
        drill = make_drill(supervisor, audit, clock, name=name, region=region)
        # the schedule runs it: traffic comes from the users while it does
        original = drill.check

        def check_with_traffic() -> object:
            users.request("eu", drill)
            users.request("us", drill)
            clock.now += 0.05
            return original()

        drill.check = check_with_traffic  # type: ignore[method-assign]
        drill.check_every = 0.01
        return drill

    weekdays = Schedule(start=time(9), end=time(15), weekdays=frozenset(range(5)))
    entry = KongEntry("kong-weekly", ["eu", "us"], Cadence(7 * 86400, weekdays), build)
    schedule = KongSchedule([entry], audit=audit)

    assert [(e.name, r) for e, r in schedule.due(MONDAY_10)] == [("kong-weekly", "eu")]
    (first,) = schedule.run_due(MONDAY_10)
    assert first.outcome == "passed"
    assert schedule.due(datetime.fromtimestamp(clock.now + 3600, UTC)) == []  # a week has not passed
    saturday = datetime.fromtimestamp(MONDAY_10.timestamp() + 5 * 86400 + 3600, UTC)
    assert schedule.due(saturday) == []  # nor is Saturday a drill day
    next_monday = datetime.fromtimestamp(clock.now + 7 * 86400, UTC)
    assert [r for _, r in schedule.due(next_monday)] == ["us"]  # the other region's turn
    clock.now = next_monday.timestamp()
    (second,) = schedule.run_due(next_monday)
    assert second.outcome == "passed" and built == ["eu", "us"]
    assert [e.region for e in audit.entries(None, monkey=KONG, outcome="passed")] == ["us", "eu"]


def test_bad_settings_are_refused_naming_the_field(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.db")
    fine: dict[str, object] = dict(evacuate=lambda region: "", audit=audit)
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: KongDrill("k", "eu", [], **fine), "kong_drill.hypotheses must name at least one Hypothesis"),
        (lambda: KongDrill("k", "", [Hypothesis("error_rate", 0.1)], **fine), "kong_drill.region must be"),
        (lambda: KongDrill("k", "eu", [Hypothesis("error_rate", 0.1)], **{**fine, "duration": 0}),
         r"kong_drill.duration must be a number in \(0, 604800\]; got 0"),
        (lambda: KongDrill("k", "eu", [Hypothesis("error_rate", 0.1)], **{**fine, "evacuate": None}),
         "kong_drill.evacuate must be a function of the region"),
        (lambda: Cadence(10), r"cadence.every must be seconds in \[60, 31622400\]"),
        (lambda: KongEntry("k", [], Cadence(3600), lambda n, r: None), "kong.regions must name at least one"),
    ]
    for make, message in cases:
        with pytest.raises(ChaosConfigError, match=message):
            make()
