"""Adapters from the optional sources (signals, chaos audit log, FIT scenarios) to JSON for the page.

Every source is optional and duck-typed, so the dashboard runs with only a guard registry and the
parts above it can be plugged in as they are deployed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

MAX_ITEMS = 500  # the page never needs more than this many chaos events or alerts at once


def as_dict(item: Any) -> dict[str, Any]:
    """A JSON-ready dict from a dict, a dataclass-like object with `to_dict()`, or plain attributes."""
    if isinstance(item, Mapping):
        return dict(item)
    to_dict = getattr(item, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    names = [n for n in getattr(type(item), "__slots__", ()) if not n.startswith("_")]
    if not names and hasattr(item, "__dict__"):
        names = [n for n in vars(item) if not n.startswith("_")]
    return {n: _plain(getattr(item, n, None)) for n in names}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Iterable):
        return [_plain(v) for v in value]
    return getattr(value, "value", None) if hasattr(value, "value") else str(value)


def _first_callable(obj: Any, *names: str) -> Any:
    for name in names:
        fn = getattr(obj, name, None)
        if callable(fn):
            return fn
    return None


def indicator_view(signals: Any, window: float) -> dict[str, Any]:
    """`{"series": [...], "events": [...], "now": t}` from a `stoic.signals.Signals` (or empty)."""
    if signals is None:
        return {"series": [], "events": [], "alerts": [], "now": time.time()}
    # Never ask for more history than the source keeps (Signals refuses a longer window).
    retention, interval = getattr(signals, "retention", None), getattr(signals, "interval", None)
    if isinstance(retention, int | float) and isinstance(interval, int | float):
        window = min(window, float(retention) * float(interval))
    view = dict(signals.view(window=window))
    view.setdefault("series", [])
    view.setdefault("events", [])
    view.setdefault("alerts", [])
    view.setdefault("now", time.time())
    return view


def alert_list(signals: Any) -> list[dict[str, Any]]:
    """Alerts from the signals source, firing first (as the source orders them)."""
    if signals is None:
        return []
    fn = _first_callable(signals, "alerts")
    items = fn() if fn is not None else signals.view(window=3600.0).get("alerts", [])
    return [as_dict(a) for a in list(items)[:MAX_ITEMS]]


def _event_time(event: Mapping[str, Any]) -> float:
    # `wall` (real time) first: a chaos clock may run compressed, the page's time axis does not.
    for key in ("wall", "at", "time", "timestamp", "started_at", "ts"):
        value = event.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return 0.0


def chaos_events(chaos_log: Any, signals: Any = None, limit: int = 200) -> list[dict[str, Any]]:
    """Recent chaos events, oldest first, each with a numeric `at` (unix seconds).

    Reads the chaos audit log (anything with `entries()`, `events()`, `records()`, `tail()` or that is
    iterable); with no log, the chaos events the signals source has seen are used instead.
    """
    items: list[Any] = []
    if chaos_log is not None:
        fn = _first_callable(chaos_log, "entries", "events", "records", "tail", "read")
        raw = fn() if fn is not None else chaos_log
        items = list(raw)[-MAX_ITEMS:]
    elif signals is not None:
        items = [e for e in indicator_view(signals, 3600.0)["events"] if as_dict(e).get("kind") == "chaos"]
    events = []
    for item in items:
        event = as_dict(item)
        if "at" in event and "wall" in event:
            event["chaos_at"] = event["at"]
        event["at"] = _event_time(event)
        events.append(event)
    events.sort(key=lambda e: e["at"])
    return events[-limit:]
