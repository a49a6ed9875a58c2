"""The weekly view as one self-contained HTML page: a section per audience, each a printed page.

```python
from stoic.signals.config import parse
from stoic.signals.history import History
from stoic.signals.weekly_page import weekly_view

config = parse('''
[weekly]
title = "Northwind Supplies"
[[indicators]]
name = "orders"
source = "push"
kind = "count"
team = "shop"
tile = true
tile_label = "Orders"
''')
with History(":memory:") as history:
    page = weekly_view(history, config, end=1_767_225_600.0)
print("Northwind Supplies" in page, "chaos" in page.lower())
```

prints `True False`: a week with no data names the business and shows no section for what it
does not use. Sections follow `[weekly] sections`; one with nothing to say is left out.
"""

from __future__ import annotations

import html
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

from stoic.signals import _charts
from stoic.signals.churn import AccountRisk
from stoic.signals.config import IndicatorSpec, SignalsConfig
from stoic.signals.history import History
from stoic.signals.weekly import Incident, Sla, Tile, WeekFacts, week_facts

MAX_CHARTS = 24  # label sets drawn for operations; the rest are named
MAX_ACCOUNTS = 50

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;color:#1f2937;max-width:1040px;margin:1.5em auto;padding:0 1em}
h1{font-size:23px;margin:0}h2{font-size:18px;margin:0 0 .6em;border-bottom:2px solid #1f2937}
h3{font-size:15px;margin:1.2em 0 .4em}.sub{color:#6b7280;margin:.2em 0 1.2em}
section.audience{margin-top:2.2em}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:10px}
.tile{border:1px solid #d1d5db;border-radius:8px;padding:10px 12px}
.tile b{display:block;font-size:22px}.tile small{display:block;color:#6b7280}
.good,.tile small.good{color:#047857}.bad,.tile small.bad{color:#b91c1c}.muted{color:#6b7280}
table{border-collapse:collapse;width:100%;font-size:13px}
td,th{border-bottom:1px solid #e5e7eb;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f3f4f6}td.n{text-align:right;white-space:nowrap}
figure{margin:6px 0;break-inside:avoid}figure svg{width:100%;height:auto}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:6px}
@page{size:A4;margin:12mm}
@media print{
 body{max-width:none;margin:0;padding:0;font-size:12px}
 section.audience{break-before:page;margin-top:0}
 section.audience:first-of-type{break-before:auto}
 tr,.tile,figure{break-inside:avoid}
 *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
}
"""


def weekly_view(
    history: History, config: SignalsConfig, *, end: float | None = None, days: float = 7.0
) -> str:
    """The week ending at `end` (default now) of the business `config` declares, as HTML."""
    end = time.time() if end is None else float(end)
    facts = week_facts(history, config, end=end, days=days)
    title = config.weekly.title
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)}: the week</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}: the week</h1>",
        f"<p class='sub'>{_e(_when(facts.start))} to {_e(_when(end))}</p>",
    ]
    render: dict[str, Callable[[WeekFacts], str]] = {
        "leadership": lambda f: _leadership(f, config),
        "operations": lambda f: _operations(f, history, config),
        "support": _support,
        "customers": lambda f: _customers(f, config),
    }
    for name in config.weekly.sections:
        body = render[name](facts)
        if body:
            parts.append(f"<section class='audience' id='{name}'>{body}</section>")
    resilience = _resilience(facts)
    if resilience:
        parts.append(f"<section class='audience' id='resilience'>{resilience}</section>")
    parts.append(f"<p class='sub'>Generated {_e(_when(time.time()))} by Stoic.</p></body></html>")
    return "\n".join(parts)


# ---- leadership -------------------------------------------------------------------------------
def _leadership(f: WeekFacts, config: SignalsConfig) -> str:
    tiles = [_indicator_tile(t) for t in f.tiles]
    tiles += [_sla_tile(s) for s in f.slas]
    real, noise = f.real, f.noise
    lasted = sum(i.lasted(f.end) for i in real)
    tiles.append(
        _tile(
            f"{len(real)} real incident{'s' if len(real) != 1 else ''}",
            f"{_duration(lasted)} in incident" if real else "none this week",
            f"{len(noise)} more were noise (short, unexplained, not noted)" if noise else "no noise",
            "bad" if real else "good",
        )
    )
    if f.churn_declared:
        value = sum(r.value for r in f.at_risk)
        tiles.append(
            _tile(
                f"{len(f.at_risk)} customers at risk",
                f"{value:,.0f} value at risk" if value else "of churning",
                f"{len(f.saved)} saved: at risk when the week began, not any more",
                "bad" if f.at_risk else "good",
            )
        )
    out = ["<h2>For leadership</h2>", f"<div class='tiles'>{''.join(tiles)}</div>"]
    if real:
        out.append("<h3>Real incidents</h3><ul>")
        for i in real:
            out.append(f"<li>{_e(_incident_line(i, f, config))}</li>")
        out.append("</ul>")
    return "".join(out)


def _indicator_tile(t: Tile) -> str:
    change = t.change
    if change is None:
        note, tone = "no figure for last week" if t.previous is None else "", ""
    else:
        note = f"{change:+.1%} vs last week"
        tone = {True: "good", False: "bad", None: ""}[t.better]
    return _tile(_figure(t.spec, t.value), t.spec.title, note, tone)


def _sla_tile(s: Sla) -> str:
    assert s.spec.slo is not None
    verdict = "SLA met" if s.met else "SLA missed"
    left = s.budget_left
    budget = f"{left:.0%} of the error budget left" if left >= 0 else f"budget overspent {-left:.0%}"
    return _tile(
        f"{s.achieved:.3%}",
        f"{s.spec.title} (objective {s.spec.slo:.2%})",
        f"{verdict}; {budget}",
        "good" if s.met else "bad",
    )


def _incident_line(i: Incident, f: WeekFacts, config: SignalsConfig) -> str:
    specs = {s.name: s for s in config.indicators}
    what = ", ".join(specs[n].title if n in specs else n for n in i.indicators)
    where = ", ".join(i.regions) or "every region"
    lasted = _duration(i.lasted(f.end)) + ("" if i.ended is not None else ", still open")
    if i.started < f.start:
        lasted += ", began before the week"
    cause = f"after: {i.causes[0].description}" if i.causes else "no cause reported"
    return f"{_when(i.started)}: {what} in {where}, {lasted}; {cause}."


# ---- operations -------------------------------------------------------------------------------
def _operations(f: WeekFacts, history: History, config: SignalsConfig) -> str:
    if not f.series and not f.incidents:
        return ""
    specs = {s.name: s for s in config.indicators}
    out = ["<h2>For operations</h2>"]
    if f.incidents:
        rows = [
            [
                _when(i.started),
                _duration(i.lasted(f.end)) + ("" if i.ended is not None else " (open)"),
                "real" if i.real else "noise",
                ", ".join(i.regions) or "-",
                ", ".join(specs[n].title if n in specs else n for n in i.indicators),
                str(len(i.alerts)),
                i.causes[0].description if i.causes else "-",
            ]
            for i in f.incidents
        ]
        head = ["started", "lasted", "real or noise", "regions", "indicators", "alerts", "cause"]
        out.append("<h3>Incidents</h3>" + _table(head, rows))
    spans: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for i in f.incidents:
        for a in i.alerts:
            key = (str(a["indicator"]), _labels(a))
            spans[key].append((float(a["starts_at"]), float(a["ends_at"] or f.end)))
    width = max(300.0, (f.end - f.start) / 500)
    charts = []
    for indicator, labels in f.series[:MAX_CHARTS]:
        points = _downsample(history.points(indicator, labels, f.start, f.end), width)
        if not points:
            continue
        spec = specs[indicator]
        svg = _charts.indicator_chart(
            f"{spec.title} {labels}".strip(),
            [p[0] for p in points],
            [p[1] for p in points],
            [p[2] for p in points],
            [p[3] for p in points],
            alerts=spans[(indicator, labels)],
            chaos=[],
            unit=spec.unit,
        )
        charts.append(f"<figure>{svg}</figure>")
    if charts:
        out.append("<h3>Indicators against what was expected</h3>")
        out.append(f"<div class='charts'>{''.join(charts)}</div>")
    if len(f.series) > MAX_CHARTS:
        out.append(f"<p class='muted'>{len(f.series) - MAX_CHARTS} more label sets not drawn.</p>")
    return "".join(out)


def _labels(alert: dict[str, object]) -> str:
    labels = alert.get("labels")
    if not isinstance(labels, dict):
        return ""
    items = sorted((str(k), str(v)) for k, v in labels.items() if k != "window")
    return "{" + ", ".join(f'{k}="{v}"' for k, v in items) + "}" if items else ""


# ---- support ----------------------------------------------------------------------------------
def _support(f: WeekFacts) -> str:
    if not f.groups:
        return ""
    rows = [
        [
            g.cause,
            g.next_step,
            f"{g.count}" + (f" ({g.still_firing} firing)" if g.still_firing else ""),
            g.severity,
            ", ".join(g.regions) or "-",
            ", ".join(g.indicators),
            _when(g.first) if g.first == g.last else f"{_when(g.first)} to {_when(g.last)}",
        ]
        for g in f.groups
    ]
    head = ["likely cause", "next step", "alerts", "severity", "regions", "indicators", "when"]
    return "<h2>For support</h2><p class='muted'>Alerts this week, one row per cause and next step " \
        "(alerts firing since before the week included).</p>" + _table(head, rows)


# ---- customers --------------------------------------------------------------------------------
def _customers(f: WeekFacts, config: SignalsConfig) -> str:
    if not f.churn_declared:
        return ""
    out = ["<h2>Customers at risk of churning</h2>"]
    if f.at_risk:
        out.append(_table(
            ["customer", "segment", "owner", "value", "risk", "why", "next step"],
            [_account_row(r) for r in f.at_risk[:MAX_ACCOUNTS]],
        ))  # fmt: skip
    else:
        out.append(f"<p class='good'>No account scores {config.churn.alert_at:g} or more.</p>")
    if f.saved:
        out.append("<h3>Saved this week</h3>")
        out.append(_table(["customer", "segment", "owner", "value", "was at risk because"],
                          [[*_account_row(r)[:4], _why(r)] for r in f.saved[:MAX_ACCOUNTS]]))  # fmt: skip
    return "".join(out)


def _account_row(r: AccountRisk) -> list[str]:
    who = f"{r.name} ({r.account})" if r.name else r.account
    return [who, r.segment or "-", r.owner or "-", f"{r.value:,.0f}", f"{r.score:.2f}", _why(r), r.next_step]


def _why(r: AccountRisk) -> str:
    return "; ".join(k for k, v in r.reasons.items() if v > 0) or r.kind


# ---- resilience (only when used) --------------------------------------------------------------
def _resilience(f: WeekFacts) -> str:
    chaos = [e for e in f.events if e.kind in ("chaos", "zone_outage", "experiment")]
    if not chaos and not f.fallbacks:
        return ""
    out = ["<h2>Resilience</h2>"]
    if chaos:
        rows = [[_when(e.at), e.description, e.target] for e in chaos]
        out.append(_table(["when", "what", "target"], rows))
    if f.fallbacks:
        per: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for _, dep, src, n in f.fallbacks:
            per[dep][src] += n
        deps = sorted(per, key=lambda d: -sum(per[d].values()))
        sources = sorted({s for d in per.values() for s in d})
        stacks = {s: [per[d].get(s, 0.0) for d in deps] for s in sources}
        svg = _charts.bar_chart("Answers served by fallbacks", deps, stacks, unit="answers")
        out.append(f"<figure>{svg}</figure>")
    return "".join(out)


# ---- small pieces -----------------------------------------------------------------------------
def _figure(spec: IndicatorSpec, value: float | None) -> str:
    if value is None:
        return "-"
    if spec.kind == "ratio":
        return f"{value:.2%}"
    if spec.kind == "latency":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if spec.kind == "count" and spec.tile_stat == "total":
        return f"{value:,.0f}"
    unit = spec.unit if spec.kind == "gauge" else ""
    return f"{value:,.4g} {unit}".strip()


def _tile(value: str, label: str, note: str = "", tone: str = "") -> str:
    small = f"<small class='{tone}'>{_e(note)}</small>" if note else ""
    return f"<div class='tile'><b>{_e(value)}</b>{_e(label)}{small}</div>"


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _e(x: object) -> str:
    return html.escape(str(x))


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%a %d %b %H:%M UTC")


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes >= 48 * 60:
        return f"{minutes / 1440:.1f} days"
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _downsample(
    rows: list[tuple[float, float | None, float | None, float | None]], width: float
) -> list[tuple[float, float | None, float | None, float | None]]:
    """Mean per `width`-second slot, so a week of minutely points draws as a light SVG."""
    slots: dict[int, list[list[float]]] = defaultdict(lambda: [[], [], []])
    for t, *vals in rows:
        cell = slots[int(t // width)]
        for i, v in enumerate(vals):
            if v is not None:
                cell[i].append(v)
    out = []
    for k in sorted(slots):
        vals = [sum(c) / len(c) if c else None for c in slots[k]]
        out.append((k * width, vals[0], vals[1], vals[2]))
    return out
