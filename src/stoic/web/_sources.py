"""What the dashboard reads, one protocol per source, and the adapters that turn each into JSON.

Every source is checked once, when the app is built: an object that does not fit its protocol is
refused there with a `TypeError` naming the argument and the methods it needs, so no handler has to
guess which method a source happens to have.

- `GuardSource`: the dependencies (`stoic.guard.Registry`, or a `HystrixMerge` of other processes).
- `SignalsSource`: indicators, alerts and ingest (`stoic.signals.Signals`).
- `ChaosLog`: the chaos audit trail (`stoic.chaos.AuditLog`, or any list of entries).
- `ScenarioStore`: the FIT scenarios switched on for live traffic (`stoic.fit.Catalog`, or anything
  holding `scenarios` with `add` and `remove`, such as a `stoic.fit.FailurePlan`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

MAX_ITEMS = 500  # the page never needs more than this many chaos events or alerts at once


@runtime_checkable
class GuardSource(Protocol):
    """The dependencies shown as tiles: snapshots to read, and each dependency by name."""

    def snapshot(self) -> Any:
        """Every dependency's snapshot dict, as a list or as a name -> snapshot mapping."""

    def get(self, name: str) -> Any:
        """The dependency called `name` (with `breaker`), or None / KeyError if unknown."""


@runtime_checkable
class SignalsSource(Protocol):
    """Indicators with their expected bands, alerts, and the ingest endpoint behind them."""

    def view(self, window: float = 3600.0) -> Mapping[str, Any]:
        """Series, alerts and events of the last `window` seconds."""

    def alerts(self) -> list[dict[str, Any]]:
        """Firing alerts, then recently resolved ones."""

    def ingest(self, body: object) -> Mapping[str, int]:
        """Record a validated body of observations; ValueError (with `field`) if it is refused."""


@runtime_checkable
class ChaosLog(Protocol):
    """The chaos audit trail, newest first."""

    def entries(self, limit: int | None = 100) -> Iterable[Any]:
        """At most `limit` entries, newest first."""


@runtime_checkable
class ScenarioStore(Protocol):
    """The FIT scenarios switched on for live traffic."""

    def active(self) -> Iterable[Any]:
        """Every scenario in force."""

    def add(self, scenario: Any) -> Any:
        """Switch `scenario` on (ValueError if the store is full)."""

    def remove(self, name: str) -> Any:
        """Switch the scenario called `name` off; True/False if it knows whether one was there."""


class _ListedChaos:
    """A plain list of chaos entries (oldest first) read as a `ChaosLog`."""

    def __init__(self, items: Iterable[Any]) -> None:
        self._items = items

    def entries(self, limit: int | None = 100) -> list[Any]:
        items = list(self._items)[::-1]
        return items if limit is None else items[:limit]


class _HeldScenarios:
    """Something holding `scenarios` (attribute or method) with `add`/`remove`, as a `ScenarioStore`."""

    def __init__(self, holder: Any) -> None:
        self._holder = holder

    def active(self) -> Iterable[Any]:
        held = self._holder.scenarios
        items: Iterable[Any] = held() if callable(held) else held
        return items

    def add(self, scenario: Any) -> Any:
        return self._holder.add(scenario)

    def remove(self, name: str) -> Any:
        return self._holder.remove(name)


class _ReadOnlyScenarios:
    """Something holding `scenarios` but no way to change them: listed, never written."""

    def __init__(self, holder: Any) -> None:
        self._held = _HeldScenarios(holder)

    def active(self) -> Iterable[Any]:
        return self._held.active()

    def add(self, scenario: Any) -> Any:
        raise ValueError("this scenario source cannot be changed from the dashboard")

    def remove(self, name: str) -> Any:
        raise ValueError("this scenario source cannot be changed from the dashboard")


def _refuse(field: str, needs: str, value: Any) -> TypeError:
    return TypeError(f"{field}: must be {needs}, got {type(value).__name__}")


def guard_source(value: Any) -> GuardSource:
    """`value` as a `GuardSource`; TypeError naming `registry` if it has no `snapshot()`/`get()`."""
    if not isinstance(value, GuardSource):
        raise _refuse("registry", "a stoic.guard.Registry (snapshot() and get(name))", value)
    return value


def signals_source(value: Any) -> SignalsSource | None:
    """`value` as a `SignalsSource` (None stays None); TypeError naming `signals` otherwise."""
    if value is None or isinstance(value, SignalsSource):
        return value
    raise _refuse("signals", "a stoic.signals.Signals (view(window), alerts() and ingest(body))", value)


def chaos_log(value: Any) -> ChaosLog | None:
    """`value` as a `ChaosLog`: one with `entries(limit)`, or a list of entries (oldest first)."""
    if value is None or isinstance(value, ChaosLog):
        return value
    if isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping):
        return _ListedChaos(value)
    raise _refuse("chaos_log", "a stoic.chaos.AuditLog (entries(limit)) or a list of entries", value)


def scenario_store(value: Any) -> ScenarioStore | None:
    """`value` as a `ScenarioStore`; TypeError naming `scenarios` if it fits no known shape."""
    if value is None or isinstance(value, ScenarioStore):
        return value
    if hasattr(value, "scenarios"):
        if callable(getattr(value, "add", None)) and callable(getattr(value, "remove", None)):
            return _HeldScenarios(value)
        return _ReadOnlyScenarios(value)
    raise _refuse("scenarios", "a stoic.fit.Catalog (active(), add(scenario), remove(name))", value)


def as_dict(item: Any) -> dict[str, Any]:
    """A JSON-ready dict from a dict, a dataclass-like object with `to_dict()`, or plain attributes."""
    if isinstance(item, Mapping):
        return dict(item)
    to_dict: Callable[[], Mapping[str, Any]] | None = getattr(item, "to_dict", None)
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


def indicator_view(signals: SignalsSource | None, window: float) -> dict[str, Any]:
    """`{"series": [...], "events": [...], "alerts": [...], "now": t}` from the signals (or empty)."""
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


def alert_list(signals: SignalsSource | None) -> list[dict[str, Any]]:
    """Alerts from the signals source, firing first (as the source orders them)."""
    if signals is None:
        return []
    return [as_dict(a) for a in list(signals.alerts())[:MAX_ITEMS]]


def _event_time(event: Mapping[str, Any]) -> float:
    # `wall` (real time) first: a chaos clock may run compressed, the page's time axis does not.
    for key in ("wall", "at", "time", "timestamp", "started_at", "ts"):
        value = event.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return 0.0


def chaos_events(
    log: ChaosLog | None, signals: SignalsSource | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Recent chaos events, oldest first, each with a numeric `at` (unix seconds).

    Reads the chaos audit log; with no log, the chaos events the signals source has seen are used.
    """
    items: list[Any] = []
    if log is not None:
        items = list(log.entries(MAX_ITEMS))
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
