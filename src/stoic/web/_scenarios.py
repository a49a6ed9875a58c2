"""FIT scenario control: list, add and remove scenarios on whatever holds them."""

from __future__ import annotations

from typing import Any

from ._http import BadRequest
from ._sources import as_dict


def scenario_list(store: Any) -> list[dict[str, Any]]:
    """Every active scenario in `store` as dicts.

    `store` is a `stoic.fit.Catalog` (`snapshot()`), or anything with `active()`, a `scenarios`
    attribute or method (e.g. a `FailurePlan`), or that iterates over scenarios.
    """
    if store is None:
        return []
    snapshot = getattr(store, "snapshot", None)
    if callable(snapshot):
        return [as_dict(s) for s in snapshot()]
    active = getattr(store, "active", None)
    items = active() if callable(active) else getattr(store, "scenarios", None)
    if items is None:
        items = store
    elif callable(items):
        items = items()
    return [as_dict(s) for s in items]


def scenario_add(store: Any, body: Any) -> dict[str, Any]:
    """Validate `body` as a `stoic.fit.Scenario` and add it; BadRequest names the bad field."""
    from stoic.fit import InvalidScenario, Scenario  # only control requests need it

    try:
        scenario = Scenario.from_dict(body)
    except InvalidScenario as exc:
        raise BadRequest(exc.field, str(exc).partition(": ")[2] or str(exc)) from None
    try:
        store.add(scenario)
    except ValueError as exc:
        raise BadRequest("scenarios", str(exc), status=409) from None
    return as_dict(scenario)


def scenario_remove(store: Any, name: str) -> bool:
    """Remove the scenario called `name`; False if there was none."""
    present = any(s.get("name") == name for s in scenario_list(store))
    removed = store.remove(name)
    return removed if isinstance(removed, bool) else present
