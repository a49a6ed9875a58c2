"""A play's deadline travels: the edge sets it, every call made for the play carries the time left
as `x-stoic-timeout`, two hops deep; the expensive services are behind adaptive limits."""

from __future__ import annotations

from typing import Any

import httpx

from stoic.demo import Platform
from stoic.demo.edge import PLAY_DEADLINE


def guard_page(platform: Platform, app: str, zone: str) -> dict[str, Any]:
    page: dict[str, Any] = httpx.get(f"{platform.topology.endpoint(app, zone).url}/guard", timeout=5).json()
    return page


def test_a_plays_deadline_reaches_the_services_and_their_own_calls(platform: Platform) -> None:
    zone = "us-east-1a"
    body = {"user": "u00042", "device": "d-u00042-tv", "play_id": "deadline-1", "region": "us-east"}
    answer = httpx.post(f"{platform.edges[zone]}/play", json=body, timeout=10.0)
    assert answer.status_code == 200, answer.text
    budget_ms = PLAY_DEADLINE * 1000 * 0.9  # the edge keeps a tenth to answer the device
    account = guard_page(platform, "account", zone)["deadlines"]
    for service in ("device", "subscription"):
        assert account[service]["with_deadline"] == account[service]["requests"] >= 1, account
        assert 0 < account[service]["last_budget_ms"] <= budget_ms, account
    playback = guard_page(platform, "playback", zone)["deadlines"]
    assert playback["manifest"]["with_deadline"] >= 1, playback
    # steering is called by manifest, a second hop: it got what manifest had left, less its tenth
    assert playback["steering"]["with_deadline"] >= 1, playback
    assert 0 < playback["steering"]["last_budget_ms"] < playback["manifest"]["last_budget_ms"], playback
    edge = guard_page(platform, "edge", zone)["deadlines"]
    assert edge["play"]["with_deadline"] == 0  # the device sent none: the edge set the play's own


def test_adaptive_limits_show_in_the_guard_pages(platform: Platform) -> None:
    zone = "us-east-1a"
    body = {"user": "u00043", "device": "d-u00043-tv", "play_id": "deadline-2", "region": "us-east"}
    assert httpx.post(f"{platform.edges[zone]}/play", json=body, timeout=10.0).status_code == 200
    edge = {d["name"]: d for d in guard_page(platform, "edge", zone)["dependencies"]}
    limit = edge["personalisation"]["limit"]
    assert limit["algorithm"] == "gradient" and limit["min"] <= limit["current"] <= limit["max"], limit
    assert edge["personalisation"]["max_concurrent"] == limit["current"]
    assert edge["subscription"]["limit"] is None  # the others keep a fixed bulkhead
    playback = {d["name"]: d for d in guard_page(platform, "playback", zone)["dependencies"]}
    assert playback["steering"]["limit"]["algorithm"] == "gradient"
    assert playback["steering"]["counts"]["success"] >= 1  # manifest called it for the play


def test_a_malformed_deadline_header_is_refused_naming_it(platform: Platform) -> None:
    url = f"{platform.topology.endpoint('account', 'us-east-1a').url}/device/d-u00001-tv"
    answer = httpx.get(url, headers={"x-stoic-timeout": "soon"}, timeout=5)
    assert answer.status_code == 400
    assert "x-stoic-timeout: must be a duration" in answer.text
    fine = httpx.get(url, headers={"x-stoic-timeout": "500m"}, timeout=5)
    assert fine.status_code == 200
