"""The whole path on a generated shop: indicators file -> backfill and live pushes -> history ->
the weekly view and the operator's churn panel, checked in text and in a real Chromium.

The screenshots and the PDF are the documentation's images (docs/weekly-*.png, docs/weekly.pdf).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stoic.guard import Registry
from stoic.signals.report import weekly_report
from stoic.web import create_app

from .conftest import TOKEN
from .weekly_shop import CHURNERS, END, SAVED, Shop, run_shop

DOCS = Path(__file__).resolve().parents[2] / "docs"
SECTIONS = ("leadership", "operations", "support", "customers")


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    shop = run_shop(tmp_path_factory.mktemp("shop"))
    yield shop
    shop.service.close()


@pytest.fixture(scope="module")
def week(shop: Shop) -> str:
    # through the same call `stoic signals report --indicators` makes
    return weekly_report(shop.service.history, end=END, config=shop.service.config)


def _section(page: str, name: str) -> str:
    match = re.search(rf"<section class='audience' id='{name}'>(.*?)</section>", page, re.S)
    assert match is not None, f"no {name} section"
    return match.group(1)


def _get(url: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_leadership_reads_the_shops_own_indicators_and_real_incidents(week: str) -> None:
    lead = _section(week, "leadership")
    # the business's own tiles, with last week's comparison; nothing about streams
    for label in ("Orders", "Checkout errors", "Lowest capacity headroom"):
        assert f"{label}<small" in lead
    assert "vs last week" in lead and "stream" not in week.lower()
    orders = re.search(r"<b>([\d,]+)</b>Orders<small class='(\w*)'>([+-][\d.]+)% vs last week", lead)
    assert orders is not None and orders.group(2) == "good"  # more orders is good news
    assert 2.0 < float(orders.group(3)) < 6.0  # the week sold 4 % more
    # both SLOs: met, with budget left
    assert lead.count("SLA met") == 2 and "Logins that succeed (objective 99.00%)" in lead
    assert "of the error budget left" in lead
    # two real incidents (the planted ones), the unexplained blip counted as noise
    assert "<b>2 real incidents</b>" in lead and "1 more were noise" in lead
    assert "Checkout errors in eu" in lead and "after: Deploy of payments-api 4.2 in eu" in lead
    assert "Logins that succeed in us" in lead and "began before the week" in lead
    # customers at risk (the cluster) and saved (recovered within the week)
    assert f"<b>{len(CHURNERS)} customers at risk</b>" in lead and "1 saved" in lead


def test_customers_are_named_with_segment_owner_value_and_reasons(week: str) -> None:
    customers = _section(week, "customers")
    at_risk, _, saved = customers.partition("Saved this week")
    rows = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td>"
                      r"<td>([\d.]+)</td><td>([^<]*)</td>", at_risk)  # fmt: skip
    named = {who: (segment, owner, why) for who, segment, owner, _, _, why in rows}
    for account, name in CHURNERS.items():
        segment, owner, why = named[f"{name} ({account})"]
        assert (segment, owner) == ("cafés", "cs-north")
        assert "no orders for" in why and "orders down" in why  # in words, its own name
    assert len(rows) == len(CHURNERS)  # nobody else is at risk
    assert f"{SAVED[1]} ({SAVED[0]})" in saved and "no orders for" in saved
    # no bare account ids anywhere in the page: each id follows its name
    assert re.findall(r"acct-\d+", week) == re.findall(r"\((acct-\d+)\)", week)


def test_support_reads_one_row_per_cause_including_an_alert_from_before_the_week(week: str) -> None:
    support = _section(week, "support")
    rows = re.findall(r"<tr>(.*?)</tr>", support.split("<tbody>")[1])
    pairs = [tuple(re.findall(r"<td>(.*?)</td>", r)[:2]) for r in rows]
    assert len(pairs) == len(set(pairs)), pairs  # each cause and next step once
    deploy = next(r for r in rows if "Deploy of payments-api 4.2 in eu" in r)
    assert "<td>2</td>" in deploy  # the anomaly and the burn rate, on one row
    assert "login_success" in support  # the burn that began before the week and went on


def test_unused_sections_are_absent(week: str) -> None:
    assert "id='resilience'" not in week
    assert "chaos experiments survived" not in week and "answers from fallbacks" not in week.lower()
    assert "FIT" not in week
    assert [m for m in re.findall(r"id='(\w+)'", week)] == list(SECTIONS)


def test_weekly_view_screenshots_and_pdf_in_chromium(week: str, shop: Shop, page: Any) -> None:
    html_file = shop.directory / "week.html"
    html_file.write_text(week, encoding="utf-8")
    page.set_viewport_size({"width": 1100, "height": 900})
    page.goto(html_file.as_uri())
    assert page.locator("svg").count() >= 8  # the operations charts drew
    # print: each audience is a printed page of its own
    page.emulate_media(media="print")
    breaks = page.evaluate(
        "() => [...document.querySelectorAll('section.audience')].map(s => getComputedStyle(s).breakBefore)"
    )
    assert breaks == ["auto", "page", "page", "page"]
    for name in SECTIONS:
        page.locator(f"#{name}").screenshot(path=str(DOCS / f"weekly-{name}.png"))
        assert (DOCS / f"weekly-{name}.png").stat().st_size > 10_000
    pdf = page.pdf(format="A4", print_background=True)
    (DOCS / "weekly.pdf").write_bytes(pdf)
    pages = len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf))
    assert pdf.startswith(b"%PDF") and pages >= len(SECTIONS)


def test_the_operator_dashboard_has_a_churn_panel_behind_the_token(shop: Shop, serve: Any, page: Any) -> None:
    app = create_app(Registry(), signals=shop.service, token=TOKEN, title="Northwind Supplies")
    server = serve(app)
    # the API names customers only with the token
    assert _get(server.url + "/api/churn")[0] == 401
    assert _get(server.url + "/api/churn", "wrong-token-0123")[0] == 401
    status, body = _get(server.url + "/api/churn", TOKEN)
    assert status == 200 and body["declared"] is True
    ranked = body["accounts"]  # the ten most at risk: the cluster first, then low scores
    assert {r["name"] for r in ranked[: len(CHURNERS)]} == set(CHURNERS.values())
    assert all(r["score"] < 0.5 for r in ranked[len(CHURNERS) :])
    assert all(r["segment"] == "cafés" and r["reasons"] for r in ranked[: len(CHURNERS)])
    closed = serve(create_app(Registry(), signals=shop.service))  # no token: names are never served
    status, body = _get(closed.url + "/api/churn", TOKEN)
    assert status == 403 and body["field"] == "authorization"
    # per-account series are not on the public indicator API
    status, view = _get(server.url + "/api/indicators")
    assert status == 200 and not any("acct-" in json.dumps(s) for s in view["series"])

    page.goto(server.url + "/", wait_until="domcontentloaded")
    assert page.locator("#churn tr[data-account]").count() == 0  # no token, no names
    page.fill("#token", TOKEN)
    page.click("#churn-load")
    page.wait_for_selector("#churn tr[data-account]", timeout=10_000)
    names = page.locator("#churn tr[data-account] td:first-child").all_inner_texts()
    assert len(names) == len(ranked) and all(n.startswith("Café") for n in names[: len(CHURNERS)])
    page.wait_for_function("() => document.getElementById('link').dataset.status === 'live'", timeout=10_000)
    _unused_parts_are_left_out(page)
    page.screenshot(path=str(DOCS / "weekly-dashboard-operator.png"), full_page=True)


def _unused_parts_are_left_out(page: Any) -> None:
    # the shop calls no guarded dependency and runs no chaos or FIT: those panels are left out
    page.wait_for_selector("#charts .chart", timeout=10_000)
    for unused in ("#deps-section", "#chaos-section", "#fit-section"):
        assert page.locator(unused).is_hidden(), unused
    assert page.inner_text("#summary") == ""  # not "0 dependencies, 0 open, 0 degraded"


def test_the_support_view_has_no_churn_panel_and_no_churn_api(shop: Shop, serve: Any, page: Any) -> None:
    server = serve(create_app(Registry(), signals=shop.service, view="support", title="Northwind Supplies"))
    status, body = _get(server.url + "/api/churn")
    assert status == 404 and body["field"] == "path"
    page.goto(server.url + "/", wait_until="domcontentloaded")
    page.wait_for_function("() => document.getElementById('link').dataset.status === 'live'", timeout=10_000)
    assert page.locator("#churn-section").count() == 0
    assert "Café" not in page.content()
    _unused_parts_are_left_out(page)
    page.screenshot(path=str(DOCS / "weekly-dashboard-support.png"), full_page=True)
