"""The facts of one week, from history and the indicators file: tiles, SLAs, incidents, churn.

`week_facts(history, config, end=...)` reads everything the weekly view shows; `weekly_page.py`
only lays it out. Definitions a reader can check:

- **Incident**: critical alerts (and the warnings that fire alongside them) that overlap or lie
  within `weekly.merge_gap` of each other, whatever their region or indicator: one outage that
  trips three indicators in two regions is one incident. Alerts firing since before the week
  count too.
- **Noise**: an incident shorter than `weekly.noise_under` for which nothing explains it and
  nobody noted it: no context event (deploy, breaker, chaos, zone outage, or a `note`, which is
  how a person acknowledges it) in its regions from 15 minutes before it began to its end.
  Every other incident is **real**.
- **SLA** (an indicator with `slo`): met when the week's mean good fraction is at least the
  objective; **error budget left** is `1 - bad / (1 - slo)`, negative when overspent.
- **At risk**: accounts in the latest churn snapshot scoring at least `churn.alert_at`;
  **saved**: accounts at risk in the first snapshot of the week that no longer are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from stoic.signals.churn import AccountRisk
from stoic.signals.config import IndicatorSpec, SignalsConfig
from stoic.signals.context import ContextEvent
from stoic.signals.history import History

WEEK = 7 * 86400.0
CAUSE_LOOKBACK = 900.0  # a context event this long before an incident may explain it
# "at 09:55 UTC (5 min before)": the same cause read by alerts that started at different times
_WHEN = re.compile(r" at \d\d:\d\d UTC(?: \(\d+ min before\))?| as of \d\d:\d\d UTC")


@dataclass(frozen=True, slots=True)
class Tile:
    """One indicator summed up over the week, with last week's figure for the change."""

    spec: IndicatorSpec
    value: float | None
    previous: float | None

    @property
    def change(self) -> float | None:
        """Relative change against last week (0.05 = 5 % more), None without both weeks."""
        if self.value is None or self.previous is None or self.previous == 0:
            return None
        return (self.value - self.previous) / abs(self.previous)

    @property
    def better(self) -> bool | None:
        """Whether the change is good news: an indicator that alerts going up is better down."""
        change = self.change
        if change is None or change == 0 or self.spec.direction == "both":
            return None
        return (change < 0) == (self.spec.direction == "up")


@dataclass(frozen=True, slots=True)
class Sla:
    """An SLO's week: the good fraction achieved and the error budget left."""

    spec: IndicatorSpec
    achieved: float

    @property
    def met(self) -> bool:
        assert self.spec.slo is not None
        return self.achieved >= self.spec.slo

    @property
    def budget_left(self) -> float:
        assert self.spec.slo is not None
        return 1.0 - (1.0 - self.achieved) / (1.0 - self.spec.slo)


@dataclass(slots=True)
class Incident:
    """Alerts merged into one incident (see the module docstring)."""

    started: float
    ended: float | None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    causes: list[ContextEvent] = field(default_factory=list)
    real: bool = True

    @property
    def regions(self) -> list[str]:
        return sorted({str(a["region"]) for a in self.alerts if a.get("region")})

    @property
    def indicators(self) -> list[str]:
        return sorted({str(a["indicator"]) for a in self.alerts})

    @property
    def first(self) -> dict[str, Any]:
        """The alert that opened it: its first critical one."""
        return next((a for a in self.alerts if a["severity"] == "critical"), self.alerts[0])

    def lasted(self, end: float) -> float:
        return (self.ended if self.ended is not None else end) - self.started


@dataclass(frozen=True, slots=True)
class AlertGroup:
    """Alerts that share a likely cause and next step: one row for support."""

    cause: str
    next_step: str
    count: int
    severity: str
    first: float
    last: float
    regions: tuple[str, ...]
    indicators: tuple[str, ...]
    still_firing: int


@dataclass(frozen=True, slots=True)
class WeekFacts:
    """Everything the weekly view shows, computed once."""

    start: float
    end: float
    tiles: list[Tile]
    slas: list[Sla]
    incidents: list[Incident]
    groups: list[AlertGroup]
    at_risk: list[AccountRisk]
    saved: list[AccountRisk]
    churn_declared: bool
    events: list[ContextEvent]
    fallbacks: list[tuple[float, str, str, int]]
    series: list[tuple[str, str]]

    @property
    def real(self) -> list[Incident]:
        return [i for i in self.incidents if i.real]

    @property
    def noise(self) -> list[Incident]:
        return [i for i in self.incidents if not i.real]


def week_facts(history: History, config: SignalsConfig, *, end: float, days: float = 7.0) -> WeekFacts:
    """Read the `days` ending at `end` from `history`, as `config` declares it."""
    start = end - days * 86400.0
    weekly = config.weekly
    specs = {s.name: s for s in config.indicators}
    keys = [k for k in history.series_keys(start, end) if k[0] in specs and not specs[k[0]].churn]
    tiles = [
        Tile(spec, _stat(history, spec, start, end), _stat(history, spec, start - (end - start), start))
        for spec in config.indicators
        if spec.tile
    ]
    slas = []
    for spec in config.indicators:
        if spec.slo is not None:
            good = _good_fraction(history, spec, start, end)
            if good is not None:
                slas.append(Sla(spec, good))
    alerts = [a for a in history.alerts_overlapping(start, end) if a.get("kind") != "churn"]
    events = history.events(start - weekly.merge_gap - CAUSE_LOOKBACK, end)
    incidents = merge_incidents(alerts, events, end=end, gap=weekly.merge_gap, noise_under=weekly.noise_under)
    at_risk: list[AccountRisk] = []
    saved: list[AccountRisk] = []
    if any(s.churn for s in config.indicators):
        latest = history.churn_accounts(end)
        at_risk = [r for r in latest if r.score >= config.churn.alert_at]
        earlier = _first_snapshot(history, start, end)
        still = {r.account for r in at_risk}
        saved = [r for r in earlier if r.score >= config.churn.alert_at and r.account not in still]
    return WeekFacts(
        start=start,
        end=end,
        tiles=tiles,
        slas=slas,
        incidents=incidents,
        groups=group_alerts(alerts),
        at_risk=at_risk,
        saved=saved,
        churn_declared=any(s.churn for s in config.indicators),
        events=[e for e in events if e.at >= start],
        fallbacks=history.fallbacks(start, end),
        series=keys,
    )


def merge_incidents(
    alerts: list[dict[str, Any]],
    events: list[ContextEvent],
    *,
    end: float,
    gap: float,
    noise_under: float,
) -> list[Incident]:
    """Critical alerts within `gap` of each other as incidents, warnings joining those they
    overlap; each judged real or noise (see the module docstring). Oldest first."""
    spans = sorted(
        (float(a["starts_at"]), float(a["ends_at"]) if a.get("ends_at") is not None else None, a)
        for a in alerts
        if a["severity"] == "critical"
    )
    incidents: list[Incident] = []
    reach = -float("inf")  # where the current incident ends, plus the gap
    for started, ended, alert in spans:
        stop = ended if ended is not None else end
        if incidents and started <= reach:
            current = incidents[-1]
            current.alerts.append(alert)
            if ended is None or current.ended is None:
                current.ended = None
            else:
                current.ended = max(current.ended, ended)
            reach = max(reach, stop + gap)
        else:
            incidents.append(Incident(started, ended, [alert]))
            reach = stop + gap
    for incident in incidents:
        stop = incident.ended if incident.ended is not None else end
        for a in alerts:
            if a["severity"] != "critical" and incident.started <= float(a["starts_at"]) <= stop:
                incident.alerts.append(a)
        regions = set(incident.regions)
        incident.causes = [
            e
            for e in events
            if incident.started - CAUSE_LOOKBACK <= e.at <= stop
            and (e.region is None or not regions or e.region in regions)
        ]
        incident.real = bool(incident.causes) or incident.lasted(end) >= noise_under
    return incidents


def group_alerts(alerts: list[dict[str, Any]]) -> list[AlertGroup]:
    """One row per likely cause and next step, most alerts first."""
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for a in alerts:
        by.setdefault((_WHEN.sub("", str(a["cause"])), str(a["next_step"])), []).append(a)
    rank = {"critical": 0, "warning": 1, "info": 2}
    groups = [
        AlertGroup(
            cause=cause,
            next_step=step,
            count=len(members),
            severity=min((str(a["severity"]) for a in members), key=lambda s: rank.get(s, 3)),
            first=min(float(a["starts_at"]) for a in members),
            last=max(float(a["starts_at"]) for a in members),
            regions=tuple(sorted({str(a["region"]) for a in members if a.get("region")})),
            indicators=tuple(sorted({str(a["indicator"]) for a in members})),
            still_firing=sum(1 for a in members if a.get("status") == "firing"),
        )
        for (cause, step), members in by.items()
    ]
    return sorted(groups, key=lambda g: (rank.get(g.severity, 3), -g.count, g.first))


def _values(history: History, spec: IndicatorSpec, start: float, end: float) -> list[list[float]]:
    """The values of each label set of `spec` in the range (None points left out)."""
    out = []
    for indicator, labels in history.series_keys(start, end):
        if indicator == spec.name:
            out.append([v for _, v, _, _ in history.points(indicator, labels, start, end) if v is not None])
    return [v for v in out if v]


def _stat(history: History, spec: IndicatorSpec, start: float, end: float) -> float | None:
    per_set = _values(history, spec, start, end)
    if not per_set:
        return None
    if spec.tile_stat == "total":
        # a count is per second: each point stands for its interval's events, summed over label sets
        scale = spec.interval if spec.kind == "count" else 1.0
        return sum(sum(v) for v in per_set) * scale
    flat = [x for v in per_set for x in v]
    if spec.tile_stat == "max":
        return max(flat)
    if spec.tile_stat == "min":
        return min(flat)
    if spec.tile_stat == "last":
        last = [v[-1] for v in per_set]
        return sum(last) if spec.kind == "count" else sum(last) / len(last)
    return sum(flat) / len(flat)


def _good_fraction(history: History, spec: IndicatorSpec, start: float, end: float) -> float | None:
    flat = [x for v in _values(history, spec, start, end) for x in v]
    if not flat:
        return None
    bad = sum(flat) / len(flat) if spec.direction != "down" else 1.0 - sum(flat) / len(flat)
    return 1.0 - bad


def _first_snapshot(history: History, start: float, end: float) -> list[AccountRisk]:
    """The churn snapshot in force when the week began (else the week's first one)."""
    before = history.churn_accounts(start)
    if before:
        return before
    return history.churn_accounts_after(start, end)
