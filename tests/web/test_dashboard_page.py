"""A real Chromium loads the dashboard and follows live updates over SSE."""

from __future__ import annotations

import math
import time
from typing import Any

from stoic.chaos.audit import AuditLog
from stoic.fit import Catalog
from stoic.guard import BreakerPolicy, Dependency, Fallback, Registry, SemaphoreBulkhead
from stoic.signals import Signals
from stoic.web import create_app

from .conftest import TOKEN, csp_violations, trip

RED = "rgb(224, 49, 49)"
GREEN = "rgb(47, 158, 68)"


def _boom() -> None:
    raise ConnectionError("recommendations backend refused the connection")


def _circle_colour(page: Any, name: str) -> str:
    return str(
        page.evaluate(
            """(name) => {
                const el = document.querySelector(`.tile[data-name="${name}"] .health`);
                return el ? getComputedStyle(el).backgroundColor : null;
            }""",
            name,
        )
    )


def test_tripped_circuit_turns_its_tile_red(serve: Any, page: Any) -> None:
    registry = Registry()
    policy = BreakerPolicy(min_calls=5, error_rate=0.5, open_for=30.0)
    recs = Dependency(
        "recommendations",
        registry=registry,
        breaker=policy,
        owner="recs-team",
        bulkhead=SemaphoreBulkhead(max_concurrent=8),
        fallbacks=[Fallback.value([], name="popular")],
    )
    catalog = Dependency("catalog", registry=registry, owner="catalog-team")
    for _ in range(10):
        assert recs.call(lambda: ["r1"]) == ["r1"]
        assert catalog.call(lambda: "ok") == "ok"

    server = serve(create_app(registry, interval=0.2))
    page.goto(server.url + "/", wait_until="domcontentloaded")
    page.wait_for_selector('.tile[data-name="recommendations"]', timeout=10_000)
    page.wait_for_function("() => document.getElementById('link').dataset.status === 'live'", timeout=10_000)
    assert _circle_colour(page, "recommendations") == GREEN
    assert page.inner_text('.tile[data-name="recommendations"] .state').strip().lower() == "closed"

    # Fail the real dependency past its threshold: the breaker opens and the fallback answers.
    assert recs.call(_boom) == []
    trip(recs, _boom)

    page.wait_for_function(
        """() => {
            const el = document.querySelector('.tile[data-name="recommendations"] .health');
            return el && getComputedStyle(el).backgroundColor === 'rgb(224, 49, 49)';
        }""",
        timeout=10_000,
    )
    assert _circle_colour(page, "recommendations") == RED
    assert _circle_colour(page, "catalog") == GREEN, "a healthy neighbour must stay green"
    tile = page.inner_text('.tile[data-name="recommendations"]')
    assert "open" in tile.lower()
    assert "popular" in tile, "the fallback that answered is shown on the tile"
    assert "1 open" in page.inner_text("#summary")
    assert csp_violations(page) == []


def test_page_shows_latency_and_bulkhead_from_real_calls(serve: Any, page: Any) -> None:
    registry = Registry()
    dep = Dependency("ratings", registry=registry, bulkhead=SemaphoreBulkhead(max_concurrent=4))
    for _ in range(25):
        dep.call(lambda: sum(range(2000)))
    server = serve(create_app(registry, interval=0.2))
    page.goto(server.url + "/", wait_until="domcontentloaded")
    page.wait_for_selector('.tile[data-name="ratings"]', timeout=10_000)
    text = page.inner_text('.tile[data-name="ratings"]')
    assert "p50" in text and "p99" in text
    assert "bulkhead 0/4" in text
    assert "0.0%" in text
    # The circle is sized by an inline style attribute: the page's CSP must let it apply.
    sized = page.evaluate(
        """() => {
            const el = document.querySelector('.tile[data-name="ratings"] .health');
            return [el.style.width, getComputedStyle(el).width];
        }"""
    )
    assert sized[0] and sized[0] == sized[1], sized
    assert page.evaluate("() => typeof EventSource") == "function"
    assert csp_violations(page) == []


def test_fit_scenarios_are_controlled_from_the_page(serve: Any, page: Any) -> None:
    catalog = Catalog()
    registry = Registry()
    Dependency("personalisation", registry=registry)
    server = serve(create_app(registry, scenarios=catalog, token=TOKEN, interval=0.2))
    page.goto(server.url + "/", wait_until="domcontentloaded")
    form = "#add-scenario"
    page.fill(f"{form} [name=name]", "slow-recs")
    page.fill(f"{form} [name=dependencies]", "personalisation")
    page.select_option(f"{form} [name=kind]", "delay")
    page.fill("#token", TOKEN)
    page.click(f"{form} button[type=submit]")
    # kind=delay without a delay: the API's 400 is shown with the field it names.
    page.wait_for_function(
        "() => document.getElementById('fit-message').dataset.kind === 'error'", timeout=10_000
    )
    assert page.inner_text("#fit-message").startswith("delay:")
    assert len(catalog) == 0

    page.fill("#token", "not-the-token")
    page.fill(f"{form} [name=delay]", "0.25")
    page.click(f"{form} button[type=submit]")
    page.wait_for_function(
        "() => document.getElementById('fit-message').textContent.includes('authorization')"
    )
    assert len(catalog) == 0

    page.fill("#token", TOKEN)
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector('#scenarios tr[data-name="slow-recs"]', timeout=10_000)
    scenario = catalog.get("slow-recs")
    assert scenario is not None and scenario.kind == "delay" and scenario.delay == 0.25
    assert "0.25 s" in page.inner_text('#scenarios tr[data-name="slow-recs"]')

    page.click('#scenarios button.remove[data-name="slow-recs"]')
    page.wait_for_selector('#scenarios tr[data-name="slow-recs"]', state="detached", timeout=10_000)
    assert catalog.get("slow-recs") is None
    assert csp_violations(page) == []


def test_indicator_charts_chaos_and_alerts_render(serve: Any, page: Any) -> None:
    signals = Signals(interval=5.0, day=300.0)
    now = time.time()
    observations: list[dict[str, Any]] = []
    for i in range(118):
        t = now - (118 - i) * 5
        wave = 800 + 200 * math.sin(2 * math.pi * (t % 300) / 300)
        observations.append(
            {
                "type": "metric",
                "name": "sps",
                "region": "eu-west",
                "at": t,
                "value": wave * (0.5 if i >= 100 else 1),
            }
        )
    signals.ingest({"observations": observations})
    with AuditLog() as audit:
        audit.record("chaos-gorilla", "terminate", "terminated", target="eu-west-1a", zone="eu-west-1a")
        server = serve(create_app(Registry(), signals=signals, chaos_log=audit, interval=0.2))
        page.goto(server.url + "/", wait_until="domcontentloaded")
        page.wait_for_selector('.chart[data-indicator="sps"] svg', timeout=10_000)
        chart = '.chart[data-indicator="sps"]'
        assert page.locator(f"{chart} polygon").count() == 1, "the expected band is drawn"
        observed = page.get_attribute(f"{chart} path[stroke='#ffd43b']", "d") or ""
        assert observed.count("L") > 50, "the observed line has a point per bucket"
        assert page.locator(f"{chart} line[stroke='#ff6b6b']").count() == 1, "the chaos event is marked"
        assert "chaos-gorilla" in page.inner_text("#chaos")
        assert "eu-west-1a" in page.inner_text("#chaos")
        page.wait_for_selector(".alert[data-status='firing']", timeout=10_000)
        assert "below expected" in page.inner_text("#alerts")
        assert csp_violations(page) == []
    signals.close()
