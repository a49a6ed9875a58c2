"""Alerts in plain language: what happened, the likely cause, the next step, who owns it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from stoic.signals.burnrate import BurnWindow
from stoic.signals.cause import describe
from stoic.signals.context import ContextEvent
from stoic.signals.detector import Detection
from stoic.signals.indicators import ERROR_RATE, REBUFFER_RATIO, SPS
from stoic.signals.ownership import Ownership


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert. `id` is stable for the same problem (kind, indicator, region, rule), so a
    repeat is recognised as the same alert and a resolve message closes it."""

    id: str
    kind: str  # "drop", "burn_rate" or "no_data"
    status: str  # "firing" or "resolved"
    severity: str  # "critical" or "warning"
    indicator: str
    region: str
    team: str
    receivers: tuple[str, ...]
    summary: str
    cause: str
    next_step: str
    starts_at: float
    ends_at: float | None = None
    value: float | None = None
    expected: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    description: str = ""  # the detail behind the summary (value, expected, band); "" = the cause
    runbook_url: str = ""
    silenced_by: str = ""  # the id of the silence or maintenance window holding it back
    revision: int = 0  # an update of a firing alert (a group that changed) is sent as a new revision

    def label_set(self) -> dict[str, str]:
        """The labels that identify this alert (what silences match and Alertmanager routes on):
        `alertname`, `team`, `severity`, `indicator`, `region` and the alert's own dimensions."""
        labels = {
            "alertname": _alertname(self),
            "team": self.team,
            "severity": self.severity,
            "indicator": self.indicator,
            "region": self.region,
            **self.labels,
        }
        return {k: v for k, v in labels.items() if v}

    def resolved(self, at: float) -> Alert:
        """The same alert, resolved at `at`."""
        return replace(self, status="resolved", ends_at=at)

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "status": self.status,
            "kind": self.kind,
            "severity": self.severity,
            "indicator": self.indicator,
            "region": self.region,
            "team": self.team,
            "receivers": list(self.receivers),
            "summary": self.summary,
            "cause": self.cause,
            "next_step": self.next_step,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "value": self.value,
            "expected": self.expected,
            "labels": dict(self.labels),
            "description": self.description,
            "runbook_url": self.runbook_url,
            "silenced_by": self.silenced_by,
        }

    def to_alertmanager(self, generator_url: str = "") -> dict[str, Any]:
        """This alert as one entry of an Alertmanager webhook payload."""
        labels = {
            "alertname": _alertname(self),
            "severity": self.severity,
            "region": self.region,
            "indicator": self.indicator,
            "team": self.team,
            **self.labels,
        }
        return {
            "status": self.status,
            "labels": labels,
            "annotations": {
                "summary": self.summary,
                "description": self.description or self.cause,
                "cause": self.cause,
                "next_step": self.next_step,
            },
            "startsAt": iso(self.starts_at),
            "endsAt": iso(self.ends_at) if self.ends_at is not None else "0001-01-01T00:00:00Z",
            "generatorURL": generator_url,
            "fingerprint": self.id[:16],
        }


def iso(ts: float) -> str:
    """RFC 3339 in UTC, as Alertmanager writes it."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def clock_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M UTC")


def alert_id(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()


def _alertname(alert: Alert) -> str:
    if alert.kind == "burn_rate":
        return "SLOBurnRate"
    if alert.kind == "no_data":
        return "IndicatorNoData"
    return {SPS: "StreamStartsDrop", ERROR_RATE: "StartErrorsHigh", REBUFFER_RATIO: "RebufferingHigh"}.get(
        alert.indicator, "IndicatorAnomaly"
    )


def _what(indicator: str, region: str, d: Detection) -> str:
    when = clock_time(d.at)
    if indicator == ERROR_RATE:
        return (
            f"The stream start error rate in {region} is {d.value or 0.0:.1%}, "
            f"expected {d.expected or 0.0:.1%}, for {when}"
        )
    if indicator == REBUFFER_RATIO:
        return (
            f"Rebuffering in {region} is {d.value or 0.0:.1%} of viewing time, "
            f"expected {d.expected or 0.0:.1%}, for {when}"
        )
    side = "above" if d.move == "up" else "below"
    if indicator == SPS:
        return f"Stream starts in {region} are {d.change:.0%} {side} expected for {when}"
    return f"{indicator} in {region} is {d.change:.0%} {side} expected for {when}"


def _explain(
    cause: ContextEvent | None,
    region: str,
    start: float,
    lookback: float,
    team: str,
    links: list[ContextEvent] | None = None,
) -> tuple[str, str]:
    """(cause text, next step): the cause chain when several events led up to it (see
    `stoic.signals.cause`), else the one likely cause and when it happened."""
    if cause is None:
        minutes = max(1, round(lookback / 60))
        return (
            f"No chaos experiment, breaker change, zone outage or deploy was reported in {region} "
            f"in the {minutes} min before.",
            f"Check the edge error logs and the dependency dashboard for {region}; "
            f"{team} owns the next step and should be engaged if it lasts.",
        )
    ago = start - cause.at
    when = (
        f"at {clock_time(cause.at)} ({max(0, round(ago / 60))} min before)"
        if ago >= 0
        else f"at {clock_time(cause.at)}"
    )
    what = cause.description or f"{cause.kind.replace('_', ' ')} on {cause.target}"
    text = f"{what.rstrip('.')} {when}."
    if links is not None and len(links) > 1:
        text = f"{describe(links, start)}."
    steps = {
        "zone_outage": f"Confirm the other {region} zones absorb the traffic and cache reads fail over to "
        f"another zone; if they do not within minutes, evacuate {region}.",
        "chaos": f"Confirm fallbacks are answering in {region}; if this experiment was not planned or "
        f"exceeds its blast radius, stop it with the chaos kill switch.",
        "breaker": f"Check the health and recent changes of {cause.target}; its fallbacks answer meanwhile. "
        f"If the breaker does not close within minutes, {team} should take over.",
        "deploy": f"Roll back {cause.target} if the drop lines up with the rollout, then compare versions.",
        "note": f"Read the note on {cause.target} and confirm with {team} whether the drop is expected.",
        "fit": f"Check whether the FIT scenario on {cause.target} was meant to reach this traffic; remove "
        "it if not.",
    }
    return text, steps.get(cause.kind, steps["chaos"])


def drop_alert(
    indicator: str,
    region: str,
    detection: Detection,
    *,
    cause: ContextEvent | None,
    ownership: Ownership,
    lookback: float,
    links: list[ContextEvent] | None = None,
) -> Alert:
    """The alert for a detected drop (or rise, for error and rebuffering rates); `links`: the
    cause chain (`stoic.signals.cause.chain`)."""
    dependency = cause.target if cause is not None and cause.kind == "breaker" else None
    team = ownership.team_for(dependency=dependency, region=region, indicator=indicator)
    cause_text, next_step = _explain(cause, region, detection.at, lookback, team.name, links)
    severity = "critical" if _critical(indicator, detection) else "warning"
    return Alert(
        id=alert_id("drop", indicator, region),
        kind="drop",
        status="firing",
        severity=severity,
        indicator=indicator,
        region=region,
        team=team.name,
        receivers=team.receivers,
        summary=_what(indicator, region, detection),
        cause=cause_text,
        next_step=next_step,
        starts_at=detection.at,
        value=detection.value,
        expected=detection.expected,
    )


def no_data_alert(indicator: str, region: str, since: float, *, ownership: Ownership, at: float) -> Alert:
    """The alert for an indicator that stopped arriving: not a drop, a silent source."""
    team = ownership.team_for(region=region, indicator=indicator)
    minutes = max(1, round((at - since) / 60))
    return Alert(
        id=alert_id("no_data", indicator, region),
        kind="no_data",
        status="firing",
        severity="warning",
        indicator=indicator,
        region=region,
        team=team.name,
        receivers=team.receivers,
        summary=f"No data for {indicator} in {region} since {clock_time(since)} ({minutes} min)",
        cause="Nothing arrived for this indicator: the source or the pipeline that sends it stopped. "
        "This is not judged as a drop.",
        next_step=f"Check that what sends {indicator} for {region} is running and can reach Stoic; "
        f"{team.name} owns it.",
        starts_at=at,
    )


def _critical(indicator: str, d: Detection) -> bool:
    """A third of the starts gone, or errors/rebuffering up five points or fivefold, wakes someone."""
    if indicator in (ERROR_RATE, REBUFFER_RATIO):
        value, expected = d.value or 0.0, max(d.expected or 0.0, 0.0)
        return value - expected >= 0.05 or (expected > 0 and value / expected >= 5.0)
    return d.change >= 0.3


def burn_group_alert(
    region: str,
    windows: list[BurnWindow],
    slo: float,
    severity: str,
    starts_at: float,
    *,
    cause: ContextEvent | None,
    ownership: Ownership,
    lookback: float,
    links: list[ContextEvent] | None = None,
) -> Alert:
    """One alert for every burn-rate rule active on stream start errors in `region` (see
    `stoic.signals.grouping`): the fastest-burning rule leads the summary, the others follow."""
    dependency = cause.target if cause is not None and cause.kind == "breaker" else None
    team = ownership.team_for(dependency=dependency, region=region, indicator=ERROR_RATE)
    cause_text, next_step = _explain(cause, region, starts_at, lookback, team.name, links)
    lead = windows[0]
    others = [f"{_span(w.rule.long)}/{_span(w.rule.short)}" for w in windows[1:]]
    also = f"; also {', '.join(others)}" if others else ""
    summary = (
        f"Stream start errors in {region} are burning the {slo:.2%} SLO error budget "
        f"{lead.short_burn:.1f}x faster than sustainable (over {_span(lead.rule.long)} and "
        f"{_span(lead.rule.short)}{also}) as of {clock_time(starts_at)}"
    )
    return Alert(
        id=alert_id("burn_rate", region),
        kind="burn_rate",
        status="firing",
        severity=severity,
        indicator=ERROR_RATE,
        region=region,
        team=team.name,
        receivers=team.receivers,
        summary=summary,
        cause=cause_text,
        next_step=next_step,
        starts_at=starts_at,
        value=lead.short_burn,
        expected=lead.rule.factor,
        labels={"slo": f"{slo:g}"},
        description=burn_description(windows),
    )


def burn_description(windows: list[BurnWindow]) -> str:
    """Each active rule's burn in one sentence: `1h/5m: 20.0x over 1h, 21.3x over 5m (pages at 14.4x)`."""
    parts = [
        f"{_span(w.rule.long)}/{_span(w.rule.short)}: {w.long_burn:.1f}x over {_span(w.rule.long)}, "
        f"{w.short_burn:.1f}x over {_span(w.rule.short)} "
        f"({'pages' if w.rule.severity == 'page' else 'opens a ticket'} at {w.rule.factor:g}x"
        f"{'' if w.firing else ', cleared, held'})"
        for w in windows
    ]
    return "Burn rates: " + "; ".join(parts) + "."


def _span(seconds: float) -> str:
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{seconds / 86400:g}d"
    if seconds >= 3600:
        return f"{seconds / 3600:g}h"
    return f"{seconds / 60:g}m"
