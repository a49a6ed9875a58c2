"""Chaos Monkey, Chaos Gorilla, Chaos Kong and the Conformity Monkey against real processes."""

from __future__ import annotations

import math
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest

from stoic.chaos import (
    AppSettings,
    AuditLog,
    BlastRadius,
    ChaosConfigError,
    ChaosGorilla,
    ChaosKong,
    ChaosMonkey,
    CompressedClock,
    ConformityMonkey,
    Fleet,
    Inbox,
    Instance,
    ProcessTarget,
    RunContext,
    Schedule,
    SimianArmy,
    Supervisor,
    runs_in_zones,
)
from stoic.chaos._monkey import chance
from stoic.chaos.chaos_monkey import daily_odds
from stoic.chaos.kubernetes import Pod
from stoic.guard import Dependency, Fallback, Registry

MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def grid(
    sup: Supervisor, argv: list[str], layout: list[tuple[str, str, str]], per: int = 1
) -> list[Instance]:
    insts = [
        sup.start(argv, app=app, region=region, zone=zone) for app, region, zone in layout for _ in range(per)
    ]
    sup.wait_healthy(insts, timeout=10)
    return insts


def make_army(sup: Supervisor, *monkeys: object, **kwargs: object) -> SimianArmy:
    kwargs.setdefault("limits", BlastRadius.unlimited())
    kwargs.setdefault("schedule", Schedule.always())
    kwargs.setdefault("clock", CompressedClock(speed=1, start=MONDAY_10))
    return SimianArmy(ProcessTarget(sup), monkeys, seed=11, **kwargs)  # type: ignore[arg-type]


LAYOUT = [("api", "eu", "eu-a"), ("api", "eu", "eu-b"), ("web", "eu", "eu-a"), ("web", "eu", "eu-b")]


def test_chaos_monkey_kills_one_per_group_per_run(supervisor: Supervisor, sleeper_argv: list[str]) -> None:
    insts = grid(supervisor, sleeper_argv, LAYOUT, per=2)
    monkey = ChaosMonkey(grouping="app+zone", mean_time_between_kills=None, min_time_between_kills=0)
    report = make_army(supervisor, monkey).run_once()
    dead = [i for i in insts if not i.alive]
    assert report.count("terminated") == 4 and len(dead) == 4
    assert Counter((i.app, i.zone) for i in dead) == Counter(
        {("api", "eu-a"): 1, ("api", "eu-b"): 1, ("web", "eu-a"): 1, ("web", "eu-b"): 1}
    )


def test_chaos_monkey_grouping_by_app(supervisor: Supervisor, sleeper_argv: list[str]) -> None:
    insts = grid(supervisor, sleeper_argv, LAYOUT, per=2)
    monkey = ChaosMonkey(grouping="app", mean_time_between_kills=None, min_time_between_kills=0)
    make_army(supervisor, monkey).run_once()
    assert Counter(i.app for i in insts if not i.alive) == Counter({"api": 1, "web": 1})


def test_min_time_between_kills_protects_a_group(supervisor: Supervisor, sleeper_argv: list[str]) -> None:
    insts = grid(supervisor, sleeper_argv, [("api", "eu", "eu-a")], per=3)
    monkey = ChaosMonkey(mean_time_between_kills=None, min_time_between_kills=3600)
    army = make_army(supervisor, monkey)
    army.run_once()
    second = army.run_once()
    assert sum(not i.alive for i in insts) == 1
    assert second.count("skipped") == 1 and "min_time_between_kills" in second.entries[0].reason


def test_mean_time_between_kills_sets_the_odds(supervisor: Supervisor, sleeper_argv: list[str]) -> None:
    assert chance(86400, None) == 1.0
    assert chance(86400, 86400) == pytest.approx(1 - math.exp(-1))
    assert chance(0, 3600) == 0.0
    insts = grid(supervisor, sleeper_argv, [("api", "eu", "eu-a")], per=2)
    rare = ChaosMonkey(mean_time_between_kills=1e12, min_time_between_kills=0)  # ~never
    army = make_army(supervisor, rare)
    for _ in range(20):
        army.run_once()
    assert all(i.alive for i in insts) and len(army.audit) == 0


def test_apps_shape_frequency_and_grouping(supervisor: Supervisor, sleeper_argv: list[str]) -> None:
    insts = grid(supervisor, sleeper_argv, LAYOUT, per=2)
    monkey = ChaosMonkey(
        grouping="app",
        mean_time_between_kills=None,
        min_time_between_kills=0,
        apps={
            "web": AppSettings(grouping="app+zone", mean_time_between_kills=None, min_time_between_kills=0)
        },
    )
    make_army(supervisor, monkey).run_once()
    assert Counter(i.app for i in insts if not i.alive) == Counter({"api": 1, "web": 2})
    with pytest.raises(ChaosConfigError, match="grouping must be one of app, app\\+region, app\\+zone"):
        AppSettings(grouping="rack")


def test_chaos_gorilla_takes_down_one_zone(supervisor: Supervisor, sleeper_argv: list[str]) -> None:
    insts = grid(supervisor, sleeper_argv, LAYOUT)
    gorilla = ChaosGorilla("eu-b", mean_time_between=None, min_time_between=0)
    report = make_army(supervisor, gorilla).run_once()
    assert report.count("terminated") == 2
    assert {i.zone for i in insts if not i.alive} == {"eu-b"} and all(
        i.alive for i in insts if i.zone == "eu-a"
    )
    assert {e.group for e in report.entries} == {"zone:eu-b"}


def test_chaos_kong_takes_down_one_region(supervisor: Supervisor, sleeper_argv: list[str]) -> None:
    layout = [("api", "eu", "eu-a"), ("api", "eu", "eu-b"), ("api", "us", "us-a"), ("api", "us", "us-b")]
    insts = grid(supervisor, sleeper_argv, layout)
    kong = ChaosKong(mean_time_between=None, min_time_between=0)  # a random region
    report = make_army(supervisor, kong).run_once()  # the army's limits are open; kong's own cap holds
    dead = {i.region for i in insts if not i.alive}
    assert len(dead) == 1 and report.count("terminated") == 2
    assert all(i.alive for i in insts if i.region not in dead)
    # Kong's cap: never a second region in the same window
    second = ChaosKong(next(iter({"eu", "us"} - dead)), mean_time_between=None, min_time_between=0)
    make_army(supervisor, second).run_once()
    assert sum(i.alive for i in insts) == 2


def test_conformity_monkey_reports_to_owners(supervisor: Supervisor, sleeper_argv: list[str]) -> None:
    reg = Registry()
    Dependency(
        "payments", owner="payments-team", registry=reg, fallbacks=[Fallback.value(None, name="queue")]
    )
    Dependency("geo", owner="maps-team", registry=reg)  # no fallback
    Dependency("legacy", registry=reg, fallbacks=[Fallback.value(None, name="x")])  # no owner
    supervisor.start(sleeper_argv, app="api", zone="a", owner="api-team")
    supervisor.start(sleeper_argv, app="api", zone="b", owner="api-team")
    supervisor.start(sleeper_argv, app="search", zone="a")  # one zone, and owned only via the book
    supervisor.start(sleeper_argv, app="orphan", zone="a")
    supervisor.start(sleeper_argv, app="orphan", zone="b")
    inbox = Inbox()
    monkey = ConformityMonkey(notifier=inbox, dependencies=reg.snapshot, owners={"search": "search-team"})
    army = make_army(supervisor, monkey)
    report = army.run_once()
    got = {(f.rule, f.subject) for fs in inbox.messages.values() for f in fs}
    assert got == {
        ("has_fallback", "geo"),
        ("runs_in_2_zones", "search"),
        ("has_owner", "orphan"),
        ("has_owner", "legacy"),
    }
    assert [f.subject for f in inbox.for_owner("maps-team")] == ["geo"]
    assert [f.subject for f in inbox.for_owner("search-team")] == ["search"]
    assert sorted(f.subject for f in inbox.for_owner("unowned")) == ["legacy", "orphan"]
    assert report.count("finding") == 4 and len(army.audit.entries(outcome="finding")) == 4
    assert army.run_once().entries == []  # not again until `every` has passed
    assert all(i.alive for i in supervisor.instances)  # conformity never kills
    three = ConformityMonkey([runs_in_zones(3)], notifier=Inbox(), dependencies=list)
    assert {f.subject for f in three.check(supervisor.fleet())} == {"api", "search", "orphan"}


def test_findings_reach_a_webhook_and_a_dead_one_stops_nothing(
    supervisor: Supervisor, sleeper_argv: list[str]
) -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from stoic.chaos import WebhookNotifier

    received: list[dict[str, object]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        supervisor.start(sleeper_argv, app="search", zone="a", owner="search-team")
        hook = WebhookNotifier(f"http://127.0.0.1:{server.server_address[1]}/findings")
        monkey = ConformityMonkey([runs_in_zones(2)], notifier=hook, dependencies=list)
        report = make_army(supervisor, monkey).run_once()
        assert report.count("finding") == 1 and "(told search-team)" in report.entries[0].reason
        assert received[0]["owner"] == "search-team"
        assert received[0]["findings"][0]["subject"] == "search"  # type: ignore[index]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    # the same webhook, now gone: the finding is still audited, with why nobody was told
    dead = ConformityMonkey([runs_in_zones(2)], notifier=hook, dependencies=list)
    army = make_army(supervisor, dead)
    report = army.run_once()
    assert report.count("finding") == 1 and "could not tell search-team" in report.entries[0].reason
    status = army.status()
    assert status["monkeys"] == ["conformity-monkey"] and status["runs"] == 1 and not status["kill_switch"]
    with pytest.raises(ValueError, match="webhook url must start with http"):
        WebhookNotifier("ftp://x")


def work_day_runs(days: int, every_minutes: int = 10) -> list[datetime]:
    """Run times every `every_minutes` inside 09:00-15:00 UTC on `days` weekdays from Monday 23 Nov."""
    out = []
    day = MONDAY_10.replace(hour=0)
    while len({t.date() for t in out}) < days:
        if day.weekday() < 5:
            out += [day + timedelta(hours=9, minutes=m) for m in range(0, 360, every_minutes)]
        day += timedelta(days=1)
    return out


def kills_per_day(monkey: ChaosMonkey, days: int) -> dict[date, list[datetime]]:
    """Drive `monkey.plan` through `days` work days of runs; the kills it proposed, per day."""
    fleet = Fleet(
        [Pod(f"shop/api-{i}", f"api-{i}", "shop", "api", "eu", "eu-a", "Running") for i in range(3)]
    )
    rng = random.Random(7)
    proposed: dict[date, list[datetime]] = {}
    with AuditLog() as audit:
        for now in work_day_runs(days):
            ctx = RunContext(now, fleet, rng, audit, 600.0, 1.0, Schedule())
            for _ in monkey.plan(ctx):
                proposed.setdefault(now.date(), []).append(now)
    return proposed


def test_chaos_monkeys_odds_follow_netflix() -> None:
    # a mean of one work day: a kill in the group every single work day, never two
    daily = kills_per_day(ChaosMonkey(mean_time_between_kills=86400.0, min_time_between_kills=0), 20)
    assert len(daily) == 20 and all(len(times) == 1 for times in daily.values())
    # ... at a random moment of the window, not at its first run
    assert len({t.hour for times in daily.values() for t in times}) >= 4
    # a mean of four work days: p = 1/4 per work day
    rarer = kills_per_day(ChaosMonkey(mean_time_between_kills=4 * 86400.0, min_time_between_kills=0), 400)
    assert 0.19 <= len(rarer) / 400 <= 0.31 and all(len(times) == 1 for times in rarer.values())
    assert daily_odds(2 * 86400.0) == 0.5 and daily_odds(3600.0) == 1.0 and daily_odds(None) == 1.0


def test_conformity_reports_unguarded_connections_to_the_apps_owner(
    supervisor: Supervisor, sleeper_argv: list[str]
) -> None:
    """calls_guarded reads what services' reviews found (`stoic.guard.review`): one finding per
    call site, to the owner of the app that made the connection."""
    import socket

    from stoic.chaos import calls_guarded
    from stoic.guard.review import Review

    supervisor.start(sleeper_argv, app="api", zone="a", owner="api-team")
    listener = socket.create_server(("127.0.0.1", 0))
    with Review() as review:
        for _ in range(3):  # one call site, three connections: one finding
            socket.create_connection(listener.getsockname()).close()
    listener.close()
    found = [{"app": "api", "address": f.address, "site": f.site} for f in review.findings]
    found.append({"app": "batch", "address": "10.0.0.9:5432", "site": "jobs.py:12 in nightly"})
    monkey = ConformityMonkey([calls_guarded], notifier=Inbox(), dependencies=list, unguarded=lambda: found)
    findings = monkey.check(supervisor.fleet())
    assert [f.owner for f in findings] == ["api-team", "unowned"]
    assert {f.rule for f in findings} == {"calls_guarded"}
    assert findings[0].subject == f"api: {review.findings[0].site}" and __file__ in findings[0].subject
    nightly = "batch connects to 10.0.0.9:5432 outside a guarded call, from jobs.py:12 in nightly"
    assert findings[1].message == nightly
    assert ConformityMonkey([calls_guarded], dependencies=list).check(supervisor.fleet()) == []
