"""Safety rails hold with real processes: schedule, blast radius, kill switch, leashed mode, outages."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest
from _chaos_support import pid_gone

from stoic.chaos import (
    AuditLog,
    BlastRadius,
    ChaosConfigError,
    ChaosGorilla,
    ChaosMonkey,
    CompressedClock,
    Instance,
    KillSwitch,
    ProcessTarget,
    Schedule,
    SimianArmy,
    Supervisor,
    url_outage,
)
from stoic.cli import main as stoic_main

MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SATURDAY_10 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
UNLIMITED = BlastRadius.unlimited()


def every_run() -> ChaosMonkey:
    return ChaosMonkey(grouping="app+zone", mean_time_between_kills=None, min_time_between_kills=0)


def fleet_of(sup: Supervisor, argv: list[str], zones: list[str], app: str = "api") -> list[Instance]:
    insts = [sup.start(argv, app=app, region="eu", zone=z) for z in zones]
    sup.wait_healthy(insts, timeout=10)
    return insts


def army(sup: Supervisor, *, start: datetime = MONDAY_10, **kwargs: object) -> SimianArmy:
    kwargs.setdefault("limits", UNLIMITED)
    kwargs.setdefault("schedule", Schedule())
    return SimianArmy(
        ProcessTarget(sup),
        [every_run()],
        clock=CompressedClock(speed=1, start=start),
        seed=3,
        **kwargs,  # type: ignore[arg-type]
    )


def test_outside_the_schedule_nothing_is_killed(supervisor: Supervisor, sleeper_argv: list[str]) -> None:
    insts = fleet_of(supervisor, sleeper_argv, ["a", "b"])
    weekend = army(supervisor, start=SATURDAY_10)
    report = weekend.run_once()
    assert report.entries == [] and all(i.alive for i in insts)
    assert weekend.audit.terminations() == []
    holiday = army(supervisor, schedule=Schedule(holidays=frozenset({date(2026, 11, 23)})))
    holiday.run_once()
    assert all(i.alive for i in insts) and holiday.audit.terminations() == []
    # the same monkey inside business hours kills: the schedule was the only thing in the way
    weekday = army(supervisor)
    assert weekday.run_once().count("terminated") == 2
    assert not any(i.alive for i in insts)


def test_an_apps_schedule_narrows_the_armys(supervisor: Supervisor, sleeper_argv: list[str]) -> None:
    from stoic.chaos import AppSettings

    api = fleet_of(supervisor, sleeper_argv, ["a"], app="api")[0]
    web = fleet_of(supervisor, sleeper_argv, ["a"], app="web")[0]
    afternoons = Schedule(start=time(13), end=time(15))
    monkey = ChaosMonkey(
        mean_time_between_kills=None,
        min_time_between_kills=0,
        apps={
            "web": AppSettings(mean_time_between_kills=None, min_time_between_kills=0, schedule=afternoons)
        },
    )
    a = SimianArmy(
        ProcessTarget(supervisor), [monkey], limits=UNLIMITED, clock=CompressedClock(speed=1, start=MONDAY_10)
    )
    a.run_once()
    assert not api.alive and web.alive


def test_blast_radius_caps_instances_per_window(supervisor: Supervisor, sleeper_argv: list[str]) -> None:
    insts = fleet_of(supervisor, sleeper_argv, ["a", "b", "c", "d"])
    a = army(supervisor, limits=BlastRadius(window=3600, max_instances=2, max_zones=None, max_share=None))
    report = a.run_once()
    assert report.count("terminated") == 2 and report.count("skipped") == 2
    assert sum(i.alive for i in insts) == 2
    skipped = a.audit.entries(outcome="skipped")
    assert all("max_instances 2" in e.reason for e in skipped)
    # the window still holds on the next run: the survivors survive
    a.run_once()
    assert sum(i.alive for i in insts) == 2


def test_blast_radius_caps_zones_and_share(supervisor: Supervisor, sleeper_argv: list[str]) -> None:
    insts = fleet_of(supervisor, sleeper_argv, ["a", "b", "c"])
    zones = army(supervisor, limits=BlastRadius(max_instances=None, max_zones=1, max_share=None))
    assert zones.run_once().count("terminated") == 1
    assert sum(i.alive for i in insts) == 2
    assert any("max_zones 1" in e.reason for e in zones.audit.entries(outcome="skipped"))
    more = fleet_of(supervisor, sleeper_argv, ["x", "y"], app="web")
    share = army(supervisor, limits=BlastRadius(max_instances=None, max_zones=None, max_share=0.5))
    share.run_once()
    assert sum(i.alive for i in more) == 1  # one of two web instances is half: the second would be more


def test_gorilla_over_its_cap_kills_nothing(supervisor: Supervisor, sleeper_argv: list[str]) -> None:
    # "solo" runs only in zone a: taking zone a down would take all of it (share 1.0 > 0.5)
    insts = fleet_of(supervisor, sleeper_argv, ["a", "b"]) + fleet_of(
        supervisor, sleeper_argv, ["a"], app="solo"
    )
    gorilla = ChaosGorilla("a", mean_time_between=None, min_time_between=0)
    a = SimianArmy(ProcessTarget(supervisor), [gorilla], schedule=Schedule.always())
    report = a.run_once()
    assert report.count("terminated") == 0 and report.count("skipped") == 2
    assert all(i.alive for i in insts)
    assert "1 of 1 alive solo instances > max_share 0.5" in report.entries[0].reason


def test_kill_switch_file_stops_everything(
    supervisor: Supervisor, sleeper_argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    insts = fleet_of(supervisor, sleeper_argv, ["a", "b"])
    switch = KillSwitch(tmp_path / "state" / "kill-switch")
    a = army(supervisor, kill_switch=switch)
    # flipped from the command line, as an operator would
    assert stoic_main(["chaos", "kill-switch", "on", "--state-dir", str(tmp_path / "state")]) == 0
    assert "kill switch ON" in capsys.readouterr().out
    report = a.run_once()
    assert report.paused.startswith("kill switch on") and all(i.alive for i in insts)
    assert [e.outcome for e in a.audit.entries()] == ["paused"]
    a.run_once()
    assert len(a.audit) == 1  # a pause is recorded once, not every run
    assert stoic_main(["chaos", "kill-switch", "off", "--state-dir", str(tmp_path / "state")]) == 0
    report = a.run_once()
    assert report.count("terminated") == 2 and not any(i.alive for i in insts)
    assert [e.outcome for e in a.audit.entries(None)][-1] == "paused"
    assert a.audit.entries(None, outcome="resumed")


def test_kill_switch_is_checked_before_every_action(supervisor: Supervisor, sleeper_argv: list[str]) -> None:
    insts = fleet_of(supervisor, sleeper_argv, ["a", "b", "c"])
    switch = KillSwitch()
    a = army(supervisor, kill_switch=switch)
    a.audit.listen(lambda e: switch.engage("pulled mid-run") if e.outcome == "terminated" else None)
    report = a.run_once()
    assert report.count("terminated") == 1 and report.count("skipped") == 2
    assert sum(i.alive for i in insts) == 2


def test_leashed_mode_decides_and_audits_but_kills_nothing(
    supervisor: Supervisor, sleeper_argv: list[str]
) -> None:
    insts = fleet_of(supervisor, sleeper_argv, ["a", "b"])
    a = army(supervisor, leashed=True)
    report = a.run_once()
    assert report.count("leashed") == 2 and report.count("terminated") == 0
    assert all(i.alive for i in insts)
    assert sorted(e.target for e in a.audit.entries(outcome="leashed")) == sorted(i.id for i in insts)


def test_chaos_pauses_during_an_outage(
    supervisor: Supervisor, sleeper_argv: list[str], http_argv: list[str]
) -> None:
    insts = fleet_of(supervisor, sleeper_argv, ["a", "b"])
    health = supervisor.start(http_argv, app="status", zone="a", port=0, wait=True)
    monkey = ChaosMonkey(grouping="app+zone", mean_time_between_kills=None, min_time_between_kills=0)
    status_url = f"http://127.0.0.1:{health.port}/"
    only_api = lambda: supervisor.fleet().select(app="api")  # noqa: E731

    class ApiOnly(ProcessTarget):
        def fleet(self):  # type: ignore[no-untyped-def]
            return only_api()

    a = SimianArmy(
        ApiOnly(supervisor),
        [monkey],
        limits=UNLIMITED,
        schedule=Schedule.always(),
        outage=url_outage(status_url, timeout=0.5),
    )
    supervisor.stop(health)  # the status page is down: we are in an outage
    report = a.run_once()
    assert report.paused == "outage in progress" and all(i.alive for i in insts)
    broken = SimianArmy(
        ApiOnly(supervisor), [monkey], limits=UNLIMITED, schedule=Schedule.always(), outage=lambda: 1 / 0 > 0
    )
    assert broken.run_once().paused.startswith("outage check failed") and all(i.alive for i in insts)
    supervisor.restart(health)
    supervisor.wait_healthy(health)
    assert a.run_once().count("terminated") == 2 and not any(i.alive for i in insts)


def test_schedule_reads_its_own_time_zone() -> None:
    la = Schedule(timezone="America/Los_Angeles")
    # 17:00 UTC on a Monday is 09:00 in Los Angeles: open there, still closed in Tokyo (02:00 Tuesday)
    at = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
    assert la.allows(at)
    assert not Schedule(timezone="Asia/Tokyo").allows(at)
    assert la.why_not(datetime(2026, 11, 23, 16, 59, tzinfo=UTC)) == (
        "08:59 America/Los_Angeles is outside 09:00-15:00"
    )
    assert "sat is not a chaos day" in (la.why_not(SATURDAY_10 + (at - MONDAY_10)) or "")
    overnight = Schedule(start=time(22), end=time(2), weekdays=frozenset(range(7)))
    assert overnight.allows(datetime(2026, 11, 23, 23, tzinfo=UTC))
    assert not overnight.allows(datetime(2026, 11, 23, 12, tzinfo=UTC))
    with pytest.raises(ChaosConfigError, match=r"schedule.timezone must be an IANA time zone"):
        Schedule(timezone="Mars/Olympus")
    with pytest.raises(ChaosConfigError, match=r"schedule.weekdays entries must be one of mon, tue"):
        Schedule.parse(weekdays=["funday"])


def test_blast_radius_rejects_bad_limits() -> None:
    with pytest.raises(ChaosConfigError, match=r"limits.max_share must be in \(0, 1\]"):
        BlastRadius(max_share=1.5)
    with pytest.raises(ChaosConfigError, match=r"limits.max_zones must be an integer >= 0"):
        BlastRadius(max_zones=-1)
    with pytest.raises(ChaosConfigError, match=r"limits.window must be > 0"):
        BlastRadius(window=0)


def test_pid_really_goes(supervisor: Supervisor, sleeper_argv: list[str]) -> None:
    inst = fleet_of(supervisor, sleeper_argv, ["a"])[0]
    pid = inst.pid or -1
    army(supervisor).run_once()
    assert pid_gone(pid)
    assert sys.executable  # the child was a real interpreter process


def test_audit_entries_are_in_the_db_file(
    tmp_path: Path, supervisor: Supervisor, sleeper_argv: list[str]
) -> None:
    fleet_of(supervisor, sleeper_argv, ["a"])
    a = army(supervisor, audit=AuditLog(tmp_path / "a.db"))
    a.run_once()
    a.audit.close()
    with AuditLog(tmp_path / "a.db") as again:
        assert [e.outcome for e in again.entries()] == ["terminated"]


def test_a_compressed_clock_runs_a_day_in_seconds() -> None:
    friday = datetime(2026, 11, 27, 14, 59, tzinfo=UTC)
    clock = CompressedClock(speed=3600, start=friday)  # an hour per second
    hours = Schedule()
    assert hours.allows(clock.now())
    import time as _time

    _time.sleep(0.1)  # six chaos minutes: past 15:00, the schedule has closed
    assert 300 <= (clock.now() - friday).total_seconds() < 3600
    assert not hours.allows(clock.now())
    with pytest.raises(ChaosConfigError, match="speed must be a number in"):
        CompressedClock(speed=0)


def test_an_unreachable_target_pauses_the_run(supervisor: Supervisor) -> None:
    class Broken(ProcessTarget):
        def fleet(self):  # type: ignore[no-untyped-def]
            raise ConnectionError("api server unreachable")

    a = SimianArmy(Broken(supervisor), [every_run()], schedule=Schedule.always())
    report = a.run_once()
    assert report.paused.startswith("target unavailable") and "unreachable" in report.paused
    assert [e.outcome for e in a.audit.entries()] == ["paused"]


def test_the_armys_cap_bounds_a_gorilla(supervisor: Supervisor, sleeper_argv: list[str]) -> None:
    # the Gorilla's own limits allow any number of instances; the army's allow one: the army wins
    insts = fleet_of(supervisor, sleeper_argv, ["a", "a", "a", "b"])
    gorilla = ChaosGorilla(
        "a", mean_time_between=None, min_time_between=0, limits=BlastRadius(max_instances=None, max_share=1.0)
    )
    a = army(supervisor, limits=BlastRadius(max_instances=1, max_share=None), schedule=Schedule.always())
    a.monkeys = [gorilla]
    report = a.run_once()
    assert report.count("terminated") == 0 and report.count("skipped") == 3
    assert all(i.alive for i in insts)
    assert all(e.reason.endswith("> max_instances 1 (army limits)") for e in report.entries)
    # a monkey's own limits still narrow the army's
    narrow = army(supervisor, limits=UNLIMITED, schedule=Schedule.always())
    narrow.monkeys = [
        ChaosGorilla(
            "a",
            mean_time_between=None,
            min_time_between=0,
            limits=BlastRadius(max_instances=2, max_share=None),
        )
    ]
    refused = narrow.run_once().entries[0].reason
    assert refused.endswith("> max_instances 2 (chaos-gorilla limits)") and all(i.alive for i in insts)


def test_the_cap_counts_kills_not_instances(supervisor: Supervisor, sleeper_argv: list[str]) -> None:
    # one instance, replaced under the same id after each kill: two kills use up max_instances = 2
    inst = supervisor.start(sleeper_argv, app="api", region="eu", zone="a", restart_after=0.05, wait=True)
    a = army(supervisor, limits=BlastRadius(max_instances=2, max_zones=None, max_share=None))
    for _ in range(2):
        assert a.run_once().count("terminated") == 1
        supervisor.wait_healthy(inst, timeout=10)
    third = a.run_once()
    assert third.count("terminated") == 0 and inst.alive and inst.restarts == 2
    assert "2 killed in the last 3600s + 1 planned > max_instances 2" in third.entries[0].reason


def test_kill_switch_on_a_full_disk_says_it_is_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    state.mkdir()
    # /dev/full accepts the open and refuses every write with ENOSPC, like a full disk
    (state / "kill-switch").symlink_to("/dev/full")
    assert stoic_main(["chaos", "kill-switch", "on", "--state-dir", str(state), "--reason", "incident"]) == 0
    captured = capsys.readouterr()
    assert "kill switch ON" in captured.out and "Traceback" not in captured.err
    assert (
        "chaos is stopped, but the reason could not be written" in captured.err and "No space" in captured.err
    )
    assert KillSwitch(state / "kill-switch").engaged
    assert KillSwitch(state / "kill-switch").reason() == "engaged"  # read bounded, not forever


def test_kill_switch_that_cannot_be_set_says_chaos_may_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_dir = tmp_path / "state"
    not_a_dir.write_text("a file where the state directory should be")
    assert stoic_main(["chaos", "kill-switch", "on", "--state-dir", str(not_a_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(not_a_dir / "kill-switch") in err
    assert "the switch is NOT on: chaos may run" in err
