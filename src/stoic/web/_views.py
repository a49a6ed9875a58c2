"""Turn guard snapshots into what the dashboard shows: health, rate, bulkhead use."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Health levels, worst last; the page colours them green, yellow, orange, red.
HEALTH_LEVELS = ("ok", "warn", "degraded", "down")

DEFAULT_WINDOW_SECONDS = 10.0


def snapshots(registry: Any) -> list[dict[str, Any]]:
    """Every dependency snapshot of `registry` as a list of dicts sorted by name.

    Accepts either shape a registry may return (a list of snapshots or a name -> snapshot mapping).
    """
    if registry is None:
        return []
    raw = registry.snapshot()
    items: Iterable[Any] = raw.values() if isinstance(raw, Mapping) else raw
    out = [dict(item) for item in items if isinstance(item, Mapping)]
    out.sort(key=lambda s: str(s.get("name", "")))
    return out


def health(snap: Mapping[str, Any]) -> str:
    """One word for a dependency's health, from its breaker state and rolling error rate."""
    state = snap.get("state", "closed")
    if state == "open":
        return "down"
    errors = float(snap.get("error_percentage", 0) or 0)
    if state == "half_open" or errors >= 25:
        return "degraded"
    counts = snap.get("counts") or {}
    degraded_answers = int(counts.get("fallback_success", 0) or 0) + int(counts.get("rejected", 0) or 0)
    if errors >= 5 or degraded_answers > 0:
        return "warn"
    return "ok"


def dependency_view(snap: Mapping[str, Any]) -> dict[str, Any]:
    """A snapshot plus the derived fields a tile needs (health, rate per second, bulkhead use)."""
    view = dict(snap)
    window = float(snap.get("window_s") or DEFAULT_WINDOW_SECONDS)
    requests = int(snap.get("requests", 0) or 0)
    concurrent = int(snap.get("concurrent", 0) or 0)
    max_concurrent = int(snap.get("max_concurrent", 0) or 0)
    view["health"] = health(snap)
    view["rate"] = round(requests / window, 2) if window > 0 else 0.0
    view["bulkhead_use"] = round(concurrent / max_concurrent, 3) if max_concurrent > 0 else 0.0
    view.setdefault("counts", {})
    view.setdefault("fallbacks", {})
    view.setdefault("latency_ms", {})
    return view


def find(registry: Any, name: Any) -> Any:
    """The dependency called `name` in `registry`, or None."""
    try:
        return registry.get(name)
    except (KeyError, AttributeError, TypeError):
        return None


def dependency_views(registry: Any) -> list[dict[str, Any]]:
    """`dependency_view` for every dependency in `registry`."""
    return [dependency_view(s) for s in snapshots(registry)]
