"""The platform for real: 22 processes on loopback, plays through the edge, faults injected for real."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from stoic.chaos import FaultBoard, FaultRule
from stoic.demo import Platform
from stoic.fit import HeaderCodec, Scenario

_ids = itertools.count(1)


def play(platform: Platform, zone: str, user: int, headers: dict[str, str] | None = None) -> httpx.Response:
    who = f"u{user:05d}"
    kind = ("tv", "phone", "browser", "console", "tablet")[user % 5]
    body = {
        "user": who,
        "device": f"d-{who}-{kind}",
        "play_id": f"t-{next(_ids)}",
        "region": platform.topology.region_of(zone),
    }
    return httpx.post(f"{platform.edges[zone]}/play", json=body, headers=headers or {}, timeout=10.0)


def ok_play(
    platform: Platform, zone: str, user: int, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    resp = play(platform, zone, user, headers)
    assert resp.status_code == 200, resp.text
    answer: dict[str, Any] = resp.json()
    return answer


def fit_header(
    platform: Platform, *scenarios: Scenario, audience: str | list[str] = "edge"
) -> dict[str, str]:
    """A signed FIT header; by default for the edge only, where a play's calls are guarded."""
    codec = HeaderCodec(platform.fit_secret)
    return {codec.header: codec.sign(list(scenarios), audience=audience)}


def until(check: Any, timeout: float = 5.0) -> Any:
    """Poll `check()` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_a_play_walks_every_service_and_the_segments_stream(platform: Platform) -> None:
    answer = ok_play(platform, "us-east-1a", 101)
    assert set(answer["sources"]) == {
        "device",
        "subscription",
        "personalisation",
        "manifest",
        "licence",
        "steering",
        "playback-log",
        "region",
    }
    assert set(answer["sources"].values()) == {"primary"}
    assert answer["region"] == "us-east" and answer["edge"] == "us-east-1a"
    oca = {ep.region: f"{ep.url}/oca" for ep in platform.topology.endpoints_of("oca")}
    assert answer["cdns"] == [oca["us-east"], oca["eu-west"]]  # the viewer's own region first
    segment = httpx.get(f"{answer['cdns'][0]}/segment/{answer['title']}/3", timeout=5.0)
    assert segment.status_code == 200 and len(segment.content) == 24 * 1024


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"device": "d-u00001-tv", "play_id": "x1"}, "user"),
        ({"user": "u 1", "device": "d-u00001-tv", "play_id": "x1"}, "user"),
        ({"user": "u00001", "device": "d-u00001-tv", "play_id": "x1", "region": "mars"}, "region"),
        (["not", "an", "object"], "body"),
    ],
)
def test_bad_play_requests_are_refused_naming_the_field(platform: Platform, body: Any, field: str) -> None:
    resp = httpx.post(f"{platform.edges['eu-west-1a']}/play", json=body, timeout=5.0)
    assert resp.status_code == 400
    assert resp.json()["field"] == field
    if field == "region":
        assert "us-east, eu-west" in resp.json()["message"]


def test_services_check_their_input_too(platform: Platform) -> None:
    manifest = f"{platform.topology.endpoint('playback', 'us-east-1b').url}/manifest"
    resp = httpx.get(f"{manifest}/t999", timeout=5.0)
    assert resp.status_code == 400 and resp.json()["field"] == "title"
    resp = httpx.get(f"{manifest}/t001", params={"height": "tall"}, timeout=5.0)
    assert resp.status_code == 400 and resp.json()["field"] == "height"


def test_fit_fails_personalisation_for_that_play_only_and_the_snapshot_answers(platform: Platform) -> None:
    user = 202
    first = ok_play(platform, "eu-west-1b", user)  # primary answer; the edge stores a snapshot in the cache
    assert first["sources"]["personalisation"] == "primary"
    failing = fit_header(platform, Scenario("no-recs", "personalisation", "error"))

    def from_snapshot() -> dict[str, Any] | None:
        answer = ok_play(platform, "eu-west-1b", user, failing)
        return answer if answer["sources"]["personalisation"] == "snapshot" else None

    answer = until(from_snapshot)  # the snapshot write is off the play path: it lands a moment later
    assert answer, "the zonal-cache snapshot never answered"
    assert answer["title"] == first["title"]  # the same row as the real answer
    never_seen = ok_play(platform, "eu-west-1b", 4242, failing)
    assert never_seen["sources"]["personalisation"] == "popular"
    assert ok_play(platform, "eu-west-1b", user)["sources"]["personalisation"] == "primary"
    forged = {
        HeaderCodec("some other secret, 16+ bytes").header: HeaderCodec("some other secret, 16+ bytes").sign(
            [Scenario("x", "personalisation")], audience="edge"
        )
    }
    assert ok_play(platform, "eu-west-1b", user, forged)["sources"]["personalisation"] == "primary"


def test_a_fit_header_counts_only_in_the_services_its_audience_names(platform: Platform) -> None:
    no_recs = Scenario("no-recs", "personalisation", "error")
    codec = HeaderCodec(platform.fit_secret)
    unaddressed = {codec.header: codec.sign([no_recs])}
    # personalisation is guarded in the edge: a header for other processes, or for none, changes nothing
    for headers in (fit_header(platform, no_recs, audience=["account", "play*"]), unaddressed):
        assert ok_play(platform, "us-east-1b", 205, headers)["sources"]["personalisation"] == "primary"
    # steering is guarded in playback, behind the edge: the forwarded plan keeps the audience it came with
    no_steering = Scenario("no-steering", "steering", "error")
    answer = ok_play(platform, "us-east-1b", 205, fit_header(platform, no_steering))
    assert answer["sources"]["steering"] == "primary"
    answer = ok_play(
        platform, "us-east-1b", 205, fit_header(platform, no_steering, audience=["edge", "playback"])
    )
    assert answer["sources"]["steering"] == "default-cdn"


def test_the_drills_fit_header_reaches_the_services_behind_the_edge(
    platform: Platform, board: FaultBoard, tmp_path: Path
) -> None:
    from stoic.chaos import AuditLog
    from stoic.demo import Drill, Strike

    audit = AuditLog(tmp_path / "audit.sqlite")
    drill = Drill(
        platform, [Strike("fit", 0.0, "steering", length=0.9)], duration=30.0, audit=audit, board=board
    )
    try:
        drill.start()
        assert until(lambda: drill.fit_headers("p-drill"))
        answer = ok_play(platform, "eu-west-1b", 206, drill.fit_headers("p-drill"))
    finally:
        drill.stop()
        audit.close()
    assert [e.outcome for e in drill.events] == ["injected"]
    assert answer["sources"]["steering"] == "default-cdn"
    assert ok_play(platform, "eu-west-1b", 206)["sources"]["steering"] == "primary"


def test_latency_from_the_fault_board_trips_the_timeout_and_assume_active_answers(
    platform: Platform, board: FaultBoard
) -> None:
    board.post(FaultRule(dependency="subscription", kind="delay", delay=0.9, app="edge", monkey="test"))
    try:

        def slowed() -> dict[str, Any] | None:
            answer = ok_play(platform, "us-east-1b", 303)
            return answer if answer["sources"]["subscription"] == "assume-active" else None

        assert until(slowed), "the board's delay never reached the edge"
    finally:
        board.remove("test")
    assert until(lambda: ok_play(platform, "us-east-1b", 303)["sources"]["subscription"] == "primary")


def test_a_killed_instance_is_replaced_and_calls_go_to_the_other_zone_meanwhile(platform: Platform) -> None:
    victim = platform.instances["discovery-us-east-1a"]
    pid = victim.pid
    assert platform.supervisor.kill(victim)
    answers = [ok_play(platform, "us-east-1a", 400 + i) for i in range(6)]
    assert {a["sources"]["personalisation"] for a in answers} == {"other-zone"}
    platform.supervisor.wait_healthy(victim, timeout=30.0)
    assert victim.pid != pid and victim.restarts == 1
    assert until(
        lambda: ok_play(platform, "us-east-1a", 410)["sources"]["personalisation"] == "primary", timeout=10.0
    )


def test_the_region_breaker_opens_and_plays_cross_to_the_other_region(platform: Platform) -> None:
    """FIT fails every home-region manifest call: plays cross over, then the breaker skips the attempt."""
    failing = fit_header(platform, Scenario("no-manifest", "manifest", "error"))
    stats = f"{platform.edges['eu-west-1a']}/edge/stats"
    answers: list[dict[str, Any]] = []

    def opened() -> bool:
        answers.append(ok_play(platform, "eu-west-1a", 500 + len(answers), failing))
        return bool(httpx.get(stats, timeout=5.0).json()["region_breaker"] == "open")

    assert until(opened, timeout=20.0), "the region breaker never opened"
    assert len(answers) >= 6  # the breaker's min_calls
    assert {a["region"] for a in answers} == {"us-east"}
    assert {a["sources"]["region"] for a in answers} == {"other-region"}
    # open: even a play without the fault is sent straight to the other region
    assert ok_play(platform, "eu-west-1a", 520)["sources"]["region"] == "other-region"
    # after open_for the trial play succeeds at home and the breaker closes
    assert until(lambda: ok_play(platform, "eu-west-1a", 521)["region"] == "eu-west", timeout=10.0)
    assert httpx.get(stats, timeout=5.0).json()["region_breaker"] == "closed"


def test_a_cache_server_replaced_empty_is_warmed_from_its_sibling_zone(platform: Platform) -> None:
    import redis

    ok_play(platform, "us-east-1a", 601)  # the edge writes this member's snapshot to every zone's cache
    node = platform.topology.endpoint("evcache", "us-east-1b")
    client = redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=2.0)
    assert until(lambda: client.exists("rows:u00601")), "the snapshot never reached us-east-1b"
    victim = platform.instances[node.id]
    assert platform.supervisor.kill(victim)
    platform.supervisor.wait_healthy(victim, timeout=30.0)
    client = redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=2.0)
    assert not client.exists("rows:u00601")  # back, but cold
    account = platform.warm_cache("us-east-1b", avoid={"us-east-1b"})
    assert account.startswith("warmed us-east-1b from us-east-1a:")
    assert client.exists("rows:u00601")
    client.close()


def test_the_kill_switch_stops_every_strike(platform: Platform, board: FaultBoard, tmp_path: Path) -> None:
    from stoic.chaos import AuditLog
    from stoic.demo import Drill, Strike

    audit = AuditLog(tmp_path / "audit.sqlite")
    strikes = [Strike("chaos-monkey", 0.0, "account"), Strike("fit", 0.0, "manifest", length=0.5)]
    drill = Drill(platform, strikes, duration=10.0, audit=audit, board=board)
    drill.kill_switch.engage("game day paused")
    alive = {i.id: i.pid for i in platform.instances.values() if i.app == "account"}
    try:
        drill.start()
        assert until(lambda: len(drill.events) == 2)
    finally:
        drill.stop()
        drill.kill_switch.release()
        audit.close()
    assert [e.outcome for e in drill.events] == ["paused", "skipped"]
    assert all("game day paused" in e.reason for e in drill.events)
    assert {i.id: i.pid for i in platform.instances.values() if i.app == "account"} == alive
    assert drill.fit_headers("p1") == {}


def test_every_connection_the_platform_makes_is_guarded(platform: Platform) -> None:
    """The review gate over the whole platform: each process runs a `Review` and lists in `/guard`
    the connections it made outside a guarded call; Conformity Monkey's calls_guarded rule finds
    none after plays through every edge (every service, the caches, the cross-region hops)."""
    from stoic.chaos import ConformityMonkey, Fleet, calls_guarded

    for user in range(4):
        for zone in platform.edges:
            ok_play(platform, zone, user)
    unguarded: list[dict[str, Any]] = []
    processes = 0
    for ep in platform.topology.endpoints:
        if ep.app == "evcache":
            continue
        body = httpx.get(f"{ep.url}/guard", timeout=5).json()
        processes += 1
        unguarded += [{"app": body["app"], **found} for found in body["unguarded"]]
    assert processes >= 16
    monkey = ConformityMonkey(rules=[calls_guarded], dependencies=list, unguarded=lambda: unguarded)
    assert monkey.check(Fleet()) == [], unguarded
