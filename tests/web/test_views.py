"""Each audience in a real Chromium: under any prefix, grouped and filtered, operator and support."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from stoic.chaos.audit import AuditLog
from stoic.fit import Catalog, Scenario
from stoic.guard import BreakerPolicy, Dependency, Fallback, Registry, SemaphoreBulkhead
from stoic.signals import Signals
from stoic.web import create_app

from .conftest import TOKEN, csp_violations, trip

DOCS = Path(__file__).resolve().parents[2] / "docs"
BACKGROUND = "rgb(17, 20, 24)"  # --bg in dashboard.css: the stylesheet was applied
TEAMS = {
    "search": "search-team",
    "ratings": "ratings-team",
    "catalog": "catalog-team",
    "playback": "playback-team",
}


def _fleet(per_team: int = 10) -> Registry:
    """`per_team` dependencies for each of four teams, named `<service>/api-<i>`, with real calls."""
    registry = Registry()
    for service, team in TEAMS.items():
        for i in range(per_team):
            dep = Dependency(
                f"{service}/api-{i}",
                registry=registry,
                owner=team,
                bulkhead=SemaphoreBulkhead(max_concurrent=8),
                fallbacks=[Fallback.value(None, name="cached")],
            )
            for _ in range(5 + i):
                dep.call(lambda: "ok")
    return registry


def _wait_live(page: Any) -> None:
    page.wait_for_function("() => document.getElementById('link').dataset.status === 'live'", timeout=10_000)


def _next_update(page: Any) -> None:
    before = page.evaluate("document.body.dataset.updated")
    page.wait_for_function(f"() => document.body.dataset.updated !== '{before}'", timeout=10_000)


def test_dashboard_mounted_under_a_prefix_in_fastapi(serve: Any, page: Any) -> None:
    registry = Registry()
    Dependency("catalog", registry=registry, owner="catalog-team").call(lambda: "ok")
    catalog = Catalog()
    service = FastAPI()

    @service.get("/")
    def home() -> dict[str, str]:
        return {"service": "shop"}

    service.mount("/ops/stoic", create_app(registry, scenarios=catalog, token=TOKEN, interval=0.2))
    server = serve(service)

    page.goto(server.url + "/ops/stoic/", wait_until="domcontentloaded")
    page.wait_for_selector('.tile[data-name="catalog"]', timeout=10_000)
    _wait_live(page)
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == BACKGROUND
    assert "catalog-team" in page.inner_text('.tile[data-name="catalog"]')
    # Writes go through the prefix too.
    page.fill("#add-scenario [name=name]", "slow-catalog")
    page.fill("#add-scenario [name=dependencies]", "catalog")
    page.fill("#token", TOKEN)
    page.click("#add-scenario button[type=submit]")
    page.wait_for_selector('#scenarios tr[data-name="slow-catalog"]', timeout=10_000)
    assert catalog.get("slow-catalog") is not None
    assert csp_violations(page) == []
    # The host service keeps its own routes.
    assert httpx.get(server.url + "/").json() == {"service": "shop"}

    # Without the trailing slash the page is redirected to it, and works the same.
    page.goto(server.url + "/ops/stoic", wait_until="domcontentloaded")
    page.wait_for_selector('.tile[data-name="catalog"]', timeout=10_000)
    assert page.url.endswith("/ops/stoic/")


def test_dashboard_behind_a_proxy_that_strips_its_prefix(serve: Any) -> None:
    registry = Registry()
    Dependency("catalog", registry=registry)
    # uvicorn --root-path: the proxy forwards /dash/x as /x and the app writes its URLs under /dash.
    server = serve(create_app(registry, scenarios=Catalog()), root_path="/dash")
    page = httpx.get(f"{server.url}/").text
    assert 'href="/dash/static/dashboard.css"' in page
    assert 'src="/dash/static/dashboard.js"' in page
    assert httpx.get(f"{server.url}/static/dashboard.css").status_code == 200


def test_support_view_is_read_only(serve: Any, page: Any) -> None:
    registry = _fleet(per_team=2)
    catalog = Catalog()
    catalog.add(Scenario.from_dict({"name": "tv-no-recs", "dependencies": ["ratings/api-0"]}))
    server = serve(create_app(registry, scenarios=catalog, view="support", interval=0.2))
    url = server.url

    html = httpx.get(f"{url}/").text
    assert 'data-view="support"' in html
    assert "add-scenario" not in html and 'type="password"' not in html, "no form and no token box"
    for method, path in [
        ("POST", "/api/fit/scenarios"),
        ("POST", "/api/indicators"),
        ("POST", "/api/dependencies/ratings/api-0/breaker"),
    ]:
        response = httpx.request(method, f"{url}{path}", json={"action": "force_open"})
        assert response.status_code == 405, (path, response.text)
        assert response.json()["field"] == "method"
        assert "read-only" in response.json()["error"]
    assert httpx.delete(f"{url}/api/fit/scenarios/tv-no-recs").status_code in (404, 405)
    assert catalog.get("tv-no-recs") is not None
    assert registry.get("ratings/api-0").breaker.state == "closed"

    page.goto(url + "/", wait_until="domcontentloaded")
    page.wait_for_selector('.tile[data-name="ratings/api-0"]', timeout=10_000)
    page.wait_for_selector('#scenarios tr[data-name="tv-no-recs"]', timeout=10_000)
    assert page.locator("#scenarios button").count() == 0, "scenarios are listed, not removable"
    assert page.locator("input[type=password], form").count() == 0
    assert "support view" in page.inner_text("header").lower()
    assert csp_violations(page) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"view": "support", "token": TOKEN}, "token: the support view takes no token"),
        ({"view": "admin"}, "view: must be one of operator, support, got 'admin'"),
        ({"max_streams": 0}, "max_streams: must be an integer in [1, 100000], got 0"),
    ],
)
def test_bad_view_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        create_app(Registry(), scenarios=Catalog(), **kwargs)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"registry": object()}, "registry: must be a stoic.guard.Registry"),
        ({"signals": "signals"}, "signals: must be a stoic.signals.Signals"),
        ({"chaos_log": 42}, "chaos_log: must be a stoic.chaos.AuditLog"),
        ({"scenarios": 3.5}, "scenarios: must be a stoic.fit.Catalog"),
    ],
)
def test_sources_that_fit_no_protocol_are_refused_when_built(kwargs: dict[str, Any], message: str) -> None:
    kwargs = {"registry": Registry(), "scenarios": Catalog(), **kwargs}
    with pytest.raises(TypeError) as caught:
        create_app(**kwargs)
    assert str(caught.value).startswith(message)


def test_many_dependencies_are_grouped_collapsed_and_filterable(serve: Any, page: Any) -> None:
    registry = _fleet(per_team=10)  # 40 tiles: more than the 1400x1000 window holds
    registry.get("ratings/api-3").breaker.force_open()
    server = serve(create_app(registry, scenarios=Catalog(), interval=0.2))
    page.goto(server.url + "/", wait_until="domcontentloaded")
    page.wait_for_selector(".group", timeout=10_000)
    _wait_live(page)

    groups = page.eval_on_selector_all(".group", "els => els.map(e => [e.dataset.group, e.dataset.open])")
    assert groups[0] == ["ratings-team", "true"], "the group in trouble comes first, open"
    assert sorted(g for g, _ in groups) == sorted(TEAMS.values())
    opened = [g for g, is_open in groups if is_open == "true"]
    assert opened == ["ratings-team"], "healthy groups start collapsed"
    assert page.locator(".tile").count() == 10
    assert "1 not ok" in page.inner_text('.group[data-group="ratings-team"] .group-head')

    # Opening a group by hand keeps it open through the next live updates.
    page.click('.group[data-group="catalog-team"] .group-head')
    assert page.locator(".tile").count() == 20
    _next_update(page)
    _next_update(page)
    assert page.locator('.group[data-group="catalog-team"] .tile').count() == 10

    # A filter shows only what matches, in whatever group it is, open.
    page.fill("#dep-filter", "playback api-7")
    assert page.locator(".tile").count() == 1
    assert page.locator('.tile[data-name="playback/api-7"]').count() == 1
    assert page.inner_text("#dep-shown") == "1 of 40 match"
    page.fill("#dep-filter", "open")
    _next_update(page)
    assert [e.get_attribute("data-name") for e in page.query_selector_all(".tile")] == ["ratings/api-3"]
    page.fill("#dep-filter", "")

    page.select_option("#dep-group", "service")
    names = page.eval_on_selector_all(".group", "els => els.map(e => e.dataset.group)")
    assert sorted(names) == sorted(TEAMS)
    assert csp_violations(page) == []


def _ingest_flat(signals: Signals, now: float) -> None:
    def metric(name: str, region: str, t: float, value: float) -> dict[str, Any]:
        return {"type": "metric", "name": name, "region": region, "at": t, "value": value}

    observations: list[dict[str, Any]] = []
    for i in range(60):
        t = now - (60 - i) * 5
        wiggle = i % 2
        # Nearly flat: a 1/10 000 wiggle must not stretch the axis into two equal labels.
        observations.append(metric("sps", "eu-west", t, 116.0 + 0.01 * wiggle))
        observations.append(metric("error_rate", "eu-west", t, 0.02 + 0.000001 * wiggle))
        # A small count that is mostly zero: padding must not push its axis below zero.
        observations.append(metric("sps", "ap-south", t, 2.0 if i % 7 == 0 else 0.0))
    signals.ingest({"observations": observations})


def _ticks(page: Any, indicator: str, region: str) -> list[str]:
    selector = f'.chart[data-indicator="{indicator}"][data-region="{region}"] text.tick'
    return [t.strip() for t in page.eval_on_selector_all(selector, "els => els.map(e => e.textContent)")]


def test_chart_axes_start_at_zero_and_flat_series_get_distinct_labels(
    serve: Any, page: Any, signals: Signals
) -> None:
    _ingest_flat(signals, time.time())
    server = serve(create_app(Registry(), signals=signals, scenarios=Catalog(), interval=0.2))
    page.goto(server.url + "/", wait_until="domcontentloaded")
    page.wait_for_selector('.chart[data-indicator="sps"] text.tick', timeout=10_000)
    for indicator, region in [("sps", "eu-west"), ("error_rate", "eu-west"), ("sps", "ap-south")]:
        labels = _ticks(page, indicator, region)
        assert len(labels) >= 2, (indicator, region, labels)
        assert len(set(labels)) == len(labels), f"{indicator} {region}: the same label twice: {labels}"
        values = [float(label.rstrip("%")) for label in labels]
        assert min(values) >= 0, f"{indicator} {region}: a count's axis went below zero: {labels}"
        assert values == sorted(values), labels
    assert _ticks(page, "sps", "ap-south")[0] == "0"
    # a flat ratio is drawn from zero; SPS is a count of starts, whose band is Poisson's (about
    # +-9 starts/s around 116 in 5 s buckets), so its axis spans the band instead
    first = _ticks(page, "error_rate", "eu-west")[0]
    assert float(first.rstrip("%")) == 0.0, f"a flat ratio is drawn from zero, not {first}"
    assert all(label.endswith("%") for label in _ticks(page, "error_rate", "eu-west"))
    assert csp_violations(page) == []


def _showcase(signals: Signals) -> tuple[Registry, Catalog, AuditLog]:
    """A service in the middle of an incident: what the documentation's screenshots show."""
    registry = _fleet(per_team=6)  # more tiles than a screen holds: healthy teams start collapsed
    recs = Dependency(
        "recommendations",
        registry=registry,
        owner="recs-team",
        breaker=BreakerPolicy(min_calls=5, error_rate=0.5, open_for=60.0),
        fallbacks=[Fallback.value([], name="popular")],
    )
    for _ in range(6):
        recs.call(lambda: ["r1"])
    trip(recs, lambda: 1 / 0)
    now = time.time()
    observations = []
    for i in range(118):
        t = now - (118 - i) * 5
        wave = 800 + 200 * math.sin(2 * math.pi * (t % 300) / 300)
        value = wave * (0.55 if i >= 104 else 1)
        observations.append({"type": "metric", "name": "sps", "region": "eu-west", "at": t, "value": value})
    signals.ingest({"observations": observations})
    catalog = Catalog()
    catalog.add(Scenario.from_dict({"name": "tv-no-recs", "dependencies": ["recommendations"], "percent": 5}))
    audit = AuditLog()
    audit.record("chaos-monkey", "terminate", "terminated", target="api-eu-west-1a-0", zone="eu-west-1a")
    audit.record("latency-monkey", "latency", "injected", target="ratings/api-1", reason="+300 ms")
    return registry, catalog, audit


def test_screenshots_of_both_views(serve: Any, page: Any, signals: Signals) -> None:
    registry, catalog, audit = _showcase(signals)
    with audit:
        service = FastAPI()
        service.mount("/stoic", create_app(registry, signals=signals, chaos_log=audit, scenarios=catalog,
                                           token=TOKEN, interval=0.5, title="Shop"))
        service.mount("/status", create_app(registry, signals=signals, chaos_log=audit, scenarios=catalog,
                                            view="support", interval=0.5, title="Shop"))
        server = serve(service)
        for path, image in [("/stoic/", "dashboard.png"), ("/status/", "dashboard-support.png")]:
            page.goto(server.url + path, wait_until="domcontentloaded")
            page.wait_for_selector('.tile[data-name="recommendations"]', timeout=10_000)
            page.wait_for_selector('.chart[data-indicator="sps"] svg', timeout=10_000)
            page.wait_for_selector(".alert", timeout=10_000)
            _wait_live(page)
            target = DOCS / image
            page.screenshot(path=str(target), full_page=True)
            assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert target.stat().st_size > 20_000
            assert csp_violations(page) == []
        assert page.locator("#add-scenario").count() == 0, "the support screenshot has no form"


class _Drill:
    """A scenario holder with nothing but `scenarios()`, as a running drill exposes them."""

    def __init__(self, scenarios: list[Scenario]) -> None:
        self._scenarios = scenarios

    def scenarios(self) -> list[Scenario]:
        return list(self._scenarios)


def test_a_scenario_holder_without_add_is_listed_and_never_written(serve: Any) -> None:
    drill = _Drill([Scenario.from_dict({"name": "zone-out", "dependencies": ["*"]})])
    url = serve(create_app(Registry(), scenarios=drill, token=TOKEN)).url
    assert [s["name"] for s in httpx.get(f"{url}/api/fit/scenarios").json()] == ["zone-out"]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    added = httpx.post(f"{url}/api/fit/scenarios", json={"name": "x", "dependencies": ["y"]}, headers=auth)
    assert added.status_code == 409
    assert added.json()["field"] == "scenarios"
    removed = httpx.delete(f"{url}/api/fit/scenarios/zone-out", headers=auth)
    assert removed.status_code == 409
    assert len(drill.scenarios()) == 1
