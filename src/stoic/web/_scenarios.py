"""FIT scenario control: list, add and remove scenarios on a `ScenarioStore`."""

from __future__ import annotations

from typing import Any

from ._http import BadRequest
from ._sources import ScenarioStore, as_dict


def scenario_list(store: ScenarioStore | None) -> list[dict[str, Any]]:
    """Every active scenario in `store` as dicts."""
    if store is None:
        return []
    return [as_dict(s) for s in store.active()]


def scenario_add(store: ScenarioStore | None, body: Any) -> dict[str, Any]:
    """Validate `body` as a `stoic.fit.Scenario` and add it; BadRequest names the bad field."""
    from stoic.fit import InvalidScenario, Scenario  # only control requests need it

    if store is None:
        raise BadRequest("scenarios", "no scenario store: create_app(scenarios=stoic.fit.Catalog())", 503)
    try:
        scenario = Scenario.from_dict(body)
    except InvalidScenario as exc:
        raise BadRequest(exc.field, str(exc).partition(": ")[2] or str(exc)) from None
    try:
        store.add(scenario)
    except ValueError as exc:
        raise BadRequest("scenarios", str(exc), status=409) from None
    return as_dict(scenario)


def scenario_remove(store: ScenarioStore | None, name: str) -> bool:
    """Remove the scenario called `name`; False if there was none."""
    if store is None:
        return False
    present = any(s.get("name") == name for s in scenario_list(store))
    try:
        removed = store.remove(name)
    except ValueError as exc:
        raise BadRequest("scenarios", str(exc), status=409) from None
    return removed if isinstance(removed, bool) else present
