"""The weekly view: one self-contained HTML page for ops, support and leadership.

`weekly_report(history, config=...)` renders the view an indicators file declares
(`stoic.signals.weekly_page.weekly_view`); without a config it renders the embedded streaming
default of `Signals` (stream starts, errors, rebuffering, chaos and fallbacks). Either way a
section for something unused (chaos, fallbacks, churn) is left out, alerts firing since before
the week are included, and support reads one row per cause and next step.
"""

from __future__ import annotations

import html
import time
from collections import defaultdict

from stoic.signals import _charts
from stoic.signals.config import SignalsConfig
from stoic.signals.context import ContextEvent
from stoic.signals.history import History
from stoic.signals.indicators import LABELS, SPS
from stoic.signals.weekly import group_alerts
from stoic.signals.weekly_page import _CSS as _PRINT_CSS
from stoic.signals.weekly_page import _downsample, _duration, _when, weekly_view

WEEK = 7 * 86400.0
_CSS = """
body{font:14px/1.45 system-ui,sans-serif;color:#1f2937;max-width:1020px;margin:2em auto;padding:0 1em}
h1{font-size:22px;margin-bottom:0}h2{font-size:17px;margin-top:2em;border-bottom:1px solid #e5e7eb}
.sub{color:#6b7280}.tiles{display:flex;gap:12px;flex-wrap:wrap}
.tile{border:1px solid #e5e7eb;border-radius:8px;padding:10px 14px;min-width:150px}
.tile b{display:block;font-size:22px}table{border-collapse:collapse;width:100%;font-size:13px}
td,th{border-bottom:1px solid #f3f4f6;padding:4px 6px;text-align:left;vertical-align:top}
.crit{color:#dc2626}.ok{color:#059669}figure{margin:8px 0}figure svg{width:100%;height:auto}
"""


def _e(x: object) -> str:
    return html.escape(str(x))


def weekly_report(
    history: History,
    *,
    end: float | None = None,
    days: float = 7.0,
    title: str = "Stoic",
    config: SignalsConfig | None = None,
) -> str:
    """Render the week ending at `end` (default now) as a self-contained HTML page: the view
    `config` (an indicators file) declares, else the embedded streaming default."""
    end = time.time() if end is None else end
    if config is not None:
        return weekly_view(history, config, end=end, days=days)
    start = end - days * 86400.0
    alerts = history.alerts_overlapping(start, end)  # one firing since before the week counts
    incidents = history.incidents(start, end)
    events = history.events(start, end)
    fallbacks = history.fallbacks(start, end)
    churn = history.churn_accounts(end) or history.churn(end)
    keys = history.series_keys(start, end)
    verdicts = _experiments(events)
    chaos = [e for e in events if e.kind in ("chaos", "zone_outage")]  # an experiment by its start

    # chaos survived = no critical alert in that region within 15 minutes after the experiment
    def survived(ev_at: float, region: str | None) -> bool:
        return not any(
            a["severity"] == "critical"
            and ev_at <= float(a["starts_at"]) <= ev_at + 900
            and (region is None or a["region"] == region)
            for a in alerts
        )

    outage = sum(((i.ended or end) - max(i.started, start)) for i in incidents)
    survived_n = sum(survived(e.at, e.region) for e in chaos)
    fallback_total = sum(n for *_, n in fallbacks)
    availability = _availability(history, keys, start, end)

    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}: weekly signals</title>"
        f"<style>{_PRINT_CSS}{_CSS}</style></head><body>",
        f"<h1>{_e(title)}: the week in signals</h1>",
        f"<p class='sub'>{_e(_when(start))} to {_e(_when(end))}</p>",
        "<section class='audience'><h2>For leadership</h2><div class='tiles'>",
        _tile(
            "stream starts that succeeded, all regions",
            f"{availability:.3%}" if availability is not None else "-",
        ),
        _tile("incidents", str(len(incidents))),
        _tile("time in incident", _duration(outage)),
    ]
    if chaos:  # unused parts are left out, not shown as zeros
        parts.append(_tile("chaos experiments survived", f"{survived_n} of {len(chaos)}"))
    if fallback_total:
        parts.append(_tile("answers from fallbacks", f"{fallback_total:,}"))
    parts.append("</div></section>")

    parts.append("<section class='audience'><h2>For operations: indicators vs expected</h2>")
    spans = defaultdict(list)
    for a in alerts:
        spans[(a["indicator"], a["region"])].append((float(a["starts_at"]), float(a["ends_at"] or end)))
    width = max(60.0, days * 86400.0 / 700)
    for indicator, region in sorted(keys, key=lambda k: (k[0] != SPS, k[1], k[0])):
        rows = _downsample(history.points(indicator, region, start, end), width)
        if not rows:
            continue
        label, unit = LABELS.get(indicator, (indicator, ""))
        svg = _charts.indicator_chart(
            f"{label}, {region}",
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
            [r[3] for r in rows],
            alerts=spans[(indicator, region)],
            chaos=[e.at for e in chaos if e.region in (None, region)],
            unit=unit,
        )
        parts.append(f"<figure class='chart'>{svg}</figure>")

    parts.append("</section><section class='audience'><h2>For support: incidents</h2>")
    parts.append(
        _table(
            ["started", "region", "what happened", "lasted", "alerts"],
            [
                [
                    _when(i.started),
                    i.region,
                    i.title,
                    _duration((i.ended or end) - i.started) + ("" if i.ended else " (open)"),
                    str(i.alerts),
                ]
                for i in incidents
            ],
        )
        if incidents
        else "<p class='ok'>No incidents this week.</p>"
    )
    parts.append("<h3>Alerts, one row per cause and next step</h3>")
    parts.append(
        _table(
            ["likely cause", "next step", "alerts", "severity", "regions", "first", "last"],
            [
                [
                    g.cause,
                    g.next_step,
                    str(g.count),
                    g.severity,
                    ", ".join(g.regions) or "-",
                    _when(g.first),
                    _when(g.last),
                ]
                for g in group_alerts(alerts)
            ],
        )
        if alerts
        else "<p>No alerts.</p>"
    )
    if churn:
        parts.append("<h3>Accounts at risk of churning</h3>")
        parts.append(
            _table(
                ["account", "segment", "owner", "value", "score", "why"],
                [
                    [
                        f"{a.name} ({a.account})" if a.name else a.account,
                        a.segment or "-",
                        a.owner or "-",
                        f"{a.value:,.0f}",
                        f"{a.score:.2f}",
                        "; ".join(k for k, v in a.reasons.items() if v > 0),
                    ]
                    for a in churn[:20]
                ],
            )
        )
    parts.append("</section>")

    if chaos or fallbacks:
        parts.append("<section class='audience'><h2>Resilience: chaos survived and fallbacks used</h2>")
    if chaos:
        parts.append(
            _table(
                ["when", "what", "target", "survived"],
                [
                    [
                        _when(e.at),
                        e.description or e.kind,
                        e.target,
                        "yes" if survived(e.at, e.region) else "no: alerts followed",
                    ]
                    for e in chaos
                ],
            )
        )
    if verdicts:
        parts.append("<h2>Chaos experiments</h2>")
        parts.append(_table(["ended", "experiment", "verdict"], verdicts))
    if fallbacks:
        per: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for _, dep, src, n in fallbacks:
            per[dep][src] += n
        deps = sorted(per, key=lambda d: -sum(per[d].values()))
        sources = sorted({s for d in per.values() for s in d})
        stacks = {s: [per[d].get(s, 0.0) for d in deps] for s in sources}
        svg = _charts.bar_chart("Answers served by fallbacks", deps, stacks, unit="answers")
        parts.append(f"<figure class='chart'>{svg}</figure>")
    if chaos or fallbacks:
        parts.append("</section>")
    parts.append(
        f"<p class='sub'>Generated {_e(_when(time.time()))} by stoic signals report.</p></body></html>"
    )
    return "\n".join(parts)


def _availability(history: History, keys: list[tuple[str, str]], start: float, end: float) -> float | None:
    rates = [
        v
        for ind, region in keys
        if ind == "error_rate"
        for _, v, _, _ in history.points(ind, region, start, end)
        if v is not None
    ]
    return 1.0 - sum(rates) / len(rates) if rates else None


def _experiments(events: list[ContextEvent]) -> list[list[str]]:
    """One row per experiment verdict (reported once per region it touched: shown once)."""
    rows: dict[tuple[float, str], list[str]] = {}
    for e in events:
        if e.kind == "experiment":
            verdict = e.description.removeprefix(f"experiment {e.target} ")  # "passed: ...", "aborted: ..."
            rows.setdefault((e.at, e.target), [_when(e.at), e.target, verdict])
    return [rows[k] for k in sorted(rows)]


def _tile(label: str, value: str) -> str:
    return f"<div class='tile'><b>{_e(value)}</b>{_e(label)}</div>"


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"
