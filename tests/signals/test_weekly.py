"""The weekly view's parts on their own: the `[weekly]`/`[churn]` keys, incidents real or noise,
support rows grouped by cause, history kept for it, and the service feeding churn from an
indicators file. The whole path on a generated shop is tests/web/test_weekly_shop.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stoic.signals.alerts import Alert
from stoic.signals.churn import AccountRisk
from stoic.signals.config import ConfigError, parse
from stoic.signals.context import ContextEvent
from stoic.signals.history import History
from stoic.signals.report import weekly_report
from stoic.signals.service import SignalsService
from stoic.signals.weekly import group_alerts, merge_incidents
from stoic.signals.weekly_page import weekly_view

T0 = 1_795_000_000.0
PUSH = """
[[indicators]]
name = "orders"
source = "push"
kind = "count"
team = "shop"
"""


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return str(info.value)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[weekly]\nsections = ["board"]\n',
         "weekly.sections[0]: must be one of leadership, operations, support, customers, got 'board'"),
        ('[weekly]\nsections = ["support", "support"]\n', "weekly.sections: each section once"),
        ('[weekly]\nnoise_under = "forever"\n', "weekly.noise_under: must be seconds or a duration"),
        ('[weekly]\nmerge_gap = "2d"\n', "weekly.merge_gap: must be between 0 s and 86400 s, got '2d'"),
        ('[weekly]\ncolour = "red"\n', "weekly.colour: unknown key; allowed: title, sections, merge_gap, "
         "noise_under"),
        ('[churn]\naccounts = "accounts.csv"\n',
         'churn: needs at least one indicator with churn = "activity"'),
        ("[churn]\ntop = 0\n", 'churn: needs at least one indicator'),
    ],
)  # fmt: skip
def test_weekly_and_churn_tables_name_the_key_at_fault(extra: str, message: str) -> None:
    assert message in _error(extra + PUSH)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ('tile = "yes"', "indicators[0].tile: must be true or false, got 'yes'"),
        ('tile_stat = "median"',
         "indicators[0].tile_stat: must be one of total, mean, max, min, last, got 'median'"),
        ('churn = "activity"', 'indicators[0].churn: needs "account" among the labels'),
        ('churn = "buyers"\nlabels = ["account"]', "indicators[0].churn: must be one of activity, problem, "
         "own_error, got 'buyers'"),
    ],
)  # fmt: skip
def test_indicator_tile_and_churn_keys_name_the_key_at_fault(lines: str, message: str) -> None:
    assert message in _error(PUSH + lines + "\n")


def test_churn_needs_a_count_or_gauge_and_distinct_labels() -> None:
    ratio = '[[indicators]]\nname = "ok"\nsource = "push"\nkind = "ratio"\nteam = "t"\n'
    assert "indicators[0].churn: only for kind count or gauge" in _error(
        ratio + 'labels = ["account"]\nchurn = "problem"\n'
    )
    two = "".join(
        f'[[indicators]]\nname = "{n}"\nsource = "push"\nkind = "count"\nteam = "t"\n'
        f'labels = ["account"]\nchurn = "activity"\ntile_label = "orders"\n'
        for n in ("a", "b")
    )
    assert "indicators[1].tile_label: churn reasons would call it 'orders', as indicators[0]" in _error(two)
    weekly = '[weekly]\ntitle = "Northwind"\nsections = ["customers", "leadership"]\n'
    config = parse(PUSH + "tile = true\n" + weekly)
    assert config.weekly.title == "Northwind" and config.weekly.sections == ("customers", "leadership")
    assert config.indicators[0].tile_stat == "total" and config.weekly.noise_under == 1800.0


def _alert(start: float, end: float | None, *, severity: str = "critical", region: str = "eu",
           cause: str = "c", step: str = "s", indicator: str = "orders") -> dict[str, Any]:  # fmt: skip
    return {
        "starts_at": start, "ends_at": end, "severity": severity, "region": region, "cause": cause,
        "next_step": step, "indicator": indicator, "status": "resolved" if end else "firing",
        "summary": f"{indicator} moved", "labels": {"region": region},
    }  # fmt: skip


def test_incidents_merge_near_alerts_and_tell_real_from_noise() -> None:
    alerts = [
        _alert(T0, T0 + 600),
        _alert(T0 + 900, T0 + 3600, region="us"),  # 5 min after the first ended: same incident
        _alert(T0 + 1000, T0 + 1200, severity="warning"),  # joins it
        _alert(T0 + 20_000, T0 + 20_300),  # a 5-minute blip nobody explained: noise
        _alert(T0 + 40_000, T0 + 40_300),  # a 5-minute blip someone noted: real
        _alert(T0 + 60_000, T0 + 60_100, severity="warning"),  # a warning alone is no incident
        _alert(T0 + 80_000, None),  # still firing at the end of the week
    ]
    events = [ContextEvent(T0 + 40_100, "note", "on-call", "payments provider confirmed a blip", "eu")]
    found = merge_incidents(alerts, events, end=T0 + 90_000, gap=900.0, noise_under=1800.0)
    assert [(i.started, i.ended, i.real) for i in found] == [
        (T0, T0 + 3600, True),
        (T0 + 20_000, T0 + 20_300, False),
        (T0 + 40_000, T0 + 40_300, True),
        (T0 + 80_000, None, True),
    ]
    assert found[0].regions == ["eu", "us"] and len(found[0].alerts) == 3
    assert [e.description for e in found[2].causes] == ["payments provider confirmed a blip"]
    assert found[3].lasted(T0 + 90_000) == 10_000


def test_support_rows_group_one_cause_read_at_different_times() -> None:
    cause = "Deploy of payments-api 4.2 in eu at 09:55 UTC ({} min before)."
    alerts = [
        _alert(T0, T0 + 60, cause=cause.format(5), region="eu"),
        _alert(T0 + 2400, None, cause=cause.format(45), region="us", indicator="checkout_errors"),
        _alert(T0 + 99, T0 + 120, cause="other", severity="warning"),
    ]
    groups = group_alerts(alerts)
    assert [(g.cause, g.count, g.regions, g.still_firing) for g in groups] == [
        ("Deploy of payments-api 4.2 in eu.", 2, ("eu", "us"), 1),
        ("other", 1, ("eu",), 0),
    ]
    assert groups[0].indicators == ("checkout_errors", "orders")


def _firing(start: float, summary: str = "Logins fail in us") -> Alert:
    return Alert(
        id=f"burn-{start}", kind="burn_rate", status="firing", severity="critical", indicator="logins",
        region="us", team="identity", receivers=(), summary=summary, cause="No deploy reported.",
        next_step="Check the identity provider.", starts_at=start,
    )  # fmt: skip


def test_history_keeps_alerts_firing_into_the_week_and_who_churn_accounts_are(tmp_path: Path) -> None:
    week = T0 + 7 * 86400
    with History(tmp_path / "h.db") as history:
        history.record_alert(_firing(T0 - 3600))  # began before the week, still firing
        history.record_alert(_firing(T0 - 7200, "over").resolved(T0 - 3700))  # over before it
        assert history.alerts(T0, week) == []
        assert [a["summary"] for a in history.alerts_overlapping(T0, week)] == ["Logins fail in us"]
        risk = AccountRisk("acct-7", 0.9, {"no orders for 9 days": 0.9}, T0, "Café Nord", "cafés",
                           "cs-north", 12_000.0, "silent", "Call Café Nord.", (3.0, 0.0))  # fmt: skip
        history.record_churn(T0, [risk])
        history.record_churn(T0 + 86400, [])
        assert history.churn_accounts(T0 + 10) == [risk]
        assert history.churn_accounts(T0 - 1) == []
        assert history.churn_accounts_after(T0 - 10, week) == [risk]
        assert [a.account for a in history.churn(T0 + 10)] == ["acct-7"]  # the old reader still works
        page = weekly_report(history, end=week)
    # the streaming default: the alert from before the week is in support; unused parts are out
    assert "No deploy reported." in page and "Check the identity provider." in page
    assert "chaos experiments survived" not in page and "answers from fallbacks" not in page
    assert "Resilience" not in page


def test_a_week_without_churn_or_incidents_leaves_those_sections_out(tmp_path: Path) -> None:
    config = parse(PUSH + 'tile = true\ntile_label = "Orders"\n[weekly]\ntitle = "Northwind"\n')
    with History(tmp_path / "h.db") as history:
        history.record_points([("orders", "", T0 + 60 * i, 2.0, 2.0, 1.0) for i in range(60)])
        page = weekly_view(history, config, end=T0 + 3600)
    assert "<b>7,200</b>Orders" in page  # a count is per second: 60 minutes of 2/s
    assert "no figure for last week" in page and "<b>0 real incidents</b>" in page
    assert "id='customers'" not in page and "id='support'" not in page and "id='resilience'" not in page
    assert "customers at risk" not in page


def test_the_service_feeds_churn_from_a_per_account_indicator(tmp_path: Path) -> None:
    (tmp_path / "accounts.csv").write_text(
        "id,name,segment,owner,value\nacct-1,Café Nord,cafés,cs-north,1200\n", encoding="utf-8"
    )
    config = parse(
        f'[service]\nhistory = "{tmp_path / "s.db"}"\n[churn]\naccounts = "accounts.csv"\n'
        + PUSH
        + '[[indicators]]\nname = "account_orders"\nsource = "push"\nkind = "gauge"\nteam = "cs"\n'
        'labels = ["account"]\nchurn = "activity"\ninterval = "1d"\ntile_label = "orders"\n',
        base=tmp_path,
    )
    now = [T0]
    service = SignalsService(config, clock=lambda: now[0])
    try:
        assert service.churn is not None and service.churn.activity == ("orders",)
        for day in range(3):
            now[0] = T0 + (day + 1) * 86400 + 5
            service.ingest({"observations": [
                {"type": "metric", "name": "account_orders", "labels": {"account": a}, "value": 3.0,
                 "at": T0 + day * 86400 + 60} for a in ("acct-1", "acct-2")]})  # fmt: skip
        now[0] += 86400
        service.evaluate()
        assert len(service.churn) == 2
        assert service.churn.account("acct-1").name == "Café Nord"
        view = service.view()
        # per-account series are the churn model's, not charts that would name every customer
        assert {s["indicator"] for s in view["series"]} <= {"orders"}
        assert {r["account"] for r in view["churn"]} <= {"acct-1", "acct-2"}
        assert service.history.churn_accounts(now[0]) is not None
    finally:
        service.close()
    # a service with no churn indicator has no model and no "churn" in its view
    plain = SignalsService(parse(f'[service]\nhistory = "{tmp_path / "p.db"}"\n' + PUSH))
    try:
        assert plain.churn is None and "churn" not in plain.view()
    finally:
        plain.close()


def test_a_daily_indicator_is_judged_without_a_daily_season(tmp_path: Path) -> None:
    daily = 'interval = "1d"\nexpire_after = "30d"\n'
    config = parse(f'[service]\nhistory = "{tmp_path / "d.db"}"\n' + PUSH + daily)
    now = [T0]
    service = SignalsService(config, clock=lambda: now[0])
    try:
        for day in range(4):
            now[0] = T0 + (day + 1) * 86400 + 5
            service.ingest({"observations": [{"type": "metric", "name": "orders", "value": 1.0,
                                              "at": T0 + day * 86400 + 60}]})  # fmt: skip
        now[0] += 2 * 86400
        service.evaluate()  # judged; a detector with a one-day season used to refuse this interval
        assert len(service.view(window=10 * 86400)["series"][0]["points"]) >= 3
    finally:
        service.close()


def test_cli_report_renders_the_view_an_indicators_file_declares(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stoic.cli import main

    db, out, indicators = tmp_path / "h.db", tmp_path / "week.html", tmp_path / "indicators.toml"
    with History(db) as history:
        history.record_points([("orders", "", T0 + 60 * i, 2.0, 2.0, 1.0) for i in range(60)])
    indicators.write_text(PUSH + 'tile = true\ntile_label = "Orders"\n[weekly]\ntitle = "Northwind"\n')
    args = ["signals", "report", "--db", str(db), "--out", str(out), "--indicators", str(indicators)]
    assert main(args) == 0
    page = out.read_text()
    assert "Northwind: the week" in page and "<b>7,200</b>Orders" in page
    indicators.write_text(PUSH + '[weekly]\nsections = ["board"]\n')
    assert main(args) == 2
    assert "--indicators: weekly.sections[0]: must be one of leadership" in capsys.readouterr().err
    assert main([*args[:-1], str(tmp_path / "missing.toml")]) == 2
    assert "--indicators: file: cannot read" in capsys.readouterr().err
