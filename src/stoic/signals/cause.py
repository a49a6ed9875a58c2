"""The cause chain: what happened before an alert, newest first, as one line a pager can read.

`likely_cause` picks the one event that best explains an anomaly; an operator also wants the
sequence: the payments breaker opened two minutes before the drop, because Latency Monkey hit
payments a minute before that. `chain` lists the context events in the alert's window that touch
its region (breaker transitions from a watched guard registry, chaos actions and experiment
verdicts from a watched audit log, FIT scenarios, deploys and notes sent to ingest), newest
first; `describe` writes them as `the payments breaker opened 2 min earlier <- Latency Monkey
hit payments 4 min earlier`.

```python
from stoic.signals.cause import chain, describe
from stoic.signals.context import ContextEvent

t = 1_764_064_800.0
events = [
    ContextEvent(t - 240, "chaos", "payments", "Latency Monkey hit payments"),
    ContextEvent(t - 120, "breaker", "payments", "The payments breaker opened"),
]
print(describe(chain(events, "eu-west", t, lookback=900.0), t))
# The payments breaker opened 2 min earlier <- Latency Monkey hit payments 4 min earlier
```
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from stoic.signals.context import ContextEvent

_FAULTS = ("chaos", "experiment", "fit")
MAX_LINKS = 5  # a longer chain is cut (the oldest links go): a page stays readable


def chain(
    events: Iterable[ContextEvent],
    region: str,
    start: float,
    *,
    lookback: float,
    lead: float = 0.0,
    limit: int = MAX_LINKS,
) -> list[ContextEvent]:
    """Events touching `region` in [start - lookback, start + lead], newest first, at most
    `limit`; the same description repeated (a breaker flapping) counts once, at its newest."""
    near = [e for e in events if start - lookback <= e.at <= start + lead]
    window = [e for e in near if e.touches(region)]
    # a fault injected on a dependency (no region: it is everywhere) belongs to the chain when a
    # breaker or deploy of that dependency is in it: Latency Monkey hit payments, then its breaker opened
    hit = {e.target for e in window if e.kind in ("breaker", "deploy")}
    window += [
        e
        for e in near
        if e.region is None and e.kind in _FAULTS and e.target in hit and not e.touches(region)
    ]
    window.sort(key=lambda e: -e.at)
    seen: set[tuple[str, str, str]] = set()
    out: list[ContextEvent] = []
    for e in window:
        key = (e.kind, e.target, e.description)
        if key in seen:
            continue
        seen.add(key)
        out.append(e)
        if len(out) == limit:
            break
    return out


def describe(links: list[ContextEvent], start: float) -> str:
    """`what happened, how long before` for each link, joined by ` <- ` (newest first)."""
    text = " <- ".join(f"{_what(e)} {_ago(start - e.at)}" for e in links)
    return text[:1].upper() + text[1:]


def _what(e: ContextEvent) -> str:
    return (e.description or f"{e.kind.replace('_', ' ')} on {e.target}").rstrip(".")


def _ago(seconds: float) -> str:
    if seconds < 0:
        return f"{max(1, round(-seconds / 60))} min after it started"
    minutes = round(seconds / 60)
    return "in the same minute" if minutes == 0 else f"{minutes} min earlier"


def watch_audit(audit: Any, add_event: Callable[..., Any]) -> Callable[[], None]:
    """Turn every entry of a chaos `AuditLog` into a context event through `add_event` (the
    shape of `Signals.add_event`): kills and faults as `chaos` (their outcome and reason in the
    description), experiment verdicts as `experiment`. Returns a function that stops listening."""

    def on_entry(entry: Any) -> None:
        if entry.outcome in ("intended", "leashed", "skipped", "finding"):
            return  # nothing happened to the system
        kind = "experiment" if entry.monkey == "experiment" and entry.outcome != "started" else "chaos"
        who = entry.monkey.replace("_", " ").title()
        what = f"{who} {entry.action} {entry.target} ({entry.outcome})"
        if entry.reason:
            what += f": {entry.reason}"
        add_event(
            kind,
            target=entry.target or entry.monkey,
            description=what[:500],
            region=entry.region or None,
            at=entry.at,
        )

    stop: Callable[[], None] = audit.listen(on_entry)
    return stop
