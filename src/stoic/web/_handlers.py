"""One handler per route, each reading what it serves from `request.app.state.stoic` (a `Sources`).

The handlers know nothing of how the app was built, so each can be read on its own; `_app.py`
decides which of them a view serves.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from ._http import BadRequest, check_token, error, finite, json_body, number_param, sse_frame
from ._hystrix import hystrix_command, hystrix_thread_pool
from ._merge import HystrixMerge
from ._page import render
from ._scenarios import scenario_add, scenario_list, scenario_remove
from ._sources import (
    ChaosLog,
    GuardSource,
    ScenarioStore,
    SignalsSource,
    alert_list,
    chaos_events,
    indicator_view,
)
from ._streams import Streams
from ._views import dependency_views, find, snapshots

BREAKER_ACTIONS = ("force_open", "force_closed", "reset")
WINDOW = ("window", 3600.0, 60.0, 7 * 86400.0)  # query name, default, low, high (seconds)
DELAY = ("delay", 500.0, 50.0, 60000.0)  # Hystrix's servlet takes ?delay=<ms>, default 500


@dataclass(frozen=True, slots=True)
class Sources:
    """Everything the handlers read, fixed when the app is built."""

    registry: GuardSource
    signals: SignalsSource | None
    chaos_log: ChaosLog | None
    scenarios: ScenarioStore | None
    token: str | None
    interval: float
    title: str
    view: str
    page: str
    metrics: CollectorRegistry
    streams: Streams
    hystrix: Callable[[], list[dict[str, Any]]]
    merge: HystrixMerge | None


def sources(request: Request) -> Sources:
    """The `Sources` of the app serving `request`."""
    found: Sources = request.app.state.stoic
    return found


async def _following(src: Sources) -> None:
    # A mounted app's lifespan is not run by Starlette or FastAPI: start the merge on first use.
    if src.merge is not None:
        await src.merge.start()


def _ok(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(finite(data), status_code=status)


def _not_found(name: str) -> JSONResponse:
    return error(404, f"no dependency called {name!r}", "name")


def local_hystrix(registry: GuardSource) -> list[dict[str, Any]]:
    """Hystrix objects for every dependency of `registry` (a pool object for thread-isolated ones)."""
    now = time.time()
    objects = []
    for snap in snapshots(registry):
        dependency = find(registry, snap.get("name"))
        objects.append(hystrix_command(snap, dependency, now))
        if snap.get("isolation") == "thread":
            objects.append(hystrix_thread_pool(snap, dependency, now))
    return objects


IDENTIFYING = ("account", "name")  # the fields of a churn record that say who the customer is


def _anonymous(record: Any) -> dict[str, Any]:
    if not isinstance(record, dict):
        return {}
    who = [str(record[k]) for k in IDENTIFYING if isinstance(record.get(k), str | int) and str(record[k])]
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key in IDENTIFYING:
            continue
        if isinstance(value, str):
            # Advice text quotes the account ("Tell acct-17 about the fix"): that goes too.
            for ident in who:
                value = value.replace(ident, "the customer")
        out[key] = value
    return out


def _without_accounts(view: dict[str, Any]) -> dict[str, Any]:
    # Churn risk names customers: the public view keeps the scores and drops who they belong to.
    churn = view.get("churn")
    if not isinstance(churn, list):
        return view
    return {**view, "churn": [_anonymous(r) for r in churn]}


async def state(src: Sources, window: float) -> dict[str, Any]:
    """Everything the page shows, in one object. One failing source leaves its part empty and
    names the error, so the rest of the page still has data."""
    await _following(src)
    errors: dict[str, str] = {}
    try:
        view = await run_in_threadpool(indicator_view, src.signals, window)
    except Exception as exc:
        errors["signals"] = f"{type(exc).__name__}: {exc}"
        view = indicator_view(None, window)
    try:
        chaos = await run_in_threadpool(chaos_events, src.chaos_log, src.signals)
    except Exception as exc:
        errors["chaos"] = f"{type(exc).__name__}: {exc}"
        chaos = []
    # Off the event loop: with many dependencies this is the expensive part of a round.
    dependencies = await run_in_threadpool(dependency_views, src.registry)
    return {
        "errors": errors,
        "title": src.title,
        "view": src.view,
        "now": time.time(),
        "dependencies": dependencies,
        "indicators": {"series": view["series"], "interval": view.get("interval"), "now": view["now"]},
        "alerts": view["alerts"],
        "chaos": chaos,
        "scenarios": scenario_list(src.scenarios),
        "sources": {
            "signals": src.signals is not None,
            "chaos": src.chaos_log is not None or src.signals is not None,
            "control": src.token is not None and src.view == "operator",
            "merge": src.merge is not None,
        },
    }


async def index(request: Request) -> HTMLResponse:
    return HTMLResponse(render(sources(request).page, request.scope.get("root_path", "")))


async def healthz(request: Request) -> JSONResponse:
    return _ok({"ok": True})


async def api_state(request: Request) -> JSONResponse:
    return _ok(await state(sources(request), number_param(request, *WINDOW)))


async def api_stream(request: Request) -> Response:
    src = sources(request)
    window = number_param(request, *WINDOW)

    async def produce() -> str:
        return sse_frame(await state(src, window), event="state")

    response: Response = src.streams.subscribe(("state", window), produce, src.interval)
    return response


async def api_dependencies(request: Request) -> JSONResponse:
    await _following(sources(request))
    return _ok(await run_in_threadpool(dependency_views, sources(request).registry))


async def api_dependency(request: Request) -> JSONResponse:
    name = request.path_params["name"]
    await _following(sources(request))
    for view in await run_in_threadpool(dependency_views, sources(request).registry):
        if view.get("name") == name:
            return _ok(view)
    return _not_found(name)


async def api_breaker(request: Request) -> Response:
    src = sources(request)
    denied = check_token(request, src.token)
    if denied is not None:
        return denied
    name = request.path_params["name"]
    dependency = find(src.registry, name)
    if dependency is None:
        if src.merge is not None:
            message = "a merged view has no breakers to control: use the process's own dashboard"
            return error(409, message, "name")
        return _not_found(name)
    body = await json_body(request)
    action = body.get("action") if isinstance(body, dict) else None
    if action not in BREAKER_ACTIONS:
        return error(400, f"must be one of {', '.join(BREAKER_ACTIONS)}, got {action!r}", "action")
    getattr(dependency.breaker, action)()
    return _ok({"name": name, "state": dependency.breaker.state})


async def api_configure(request: Request) -> Response:
    """Change a running dependency's settings (`Dependency.configure`): a JSON object with any of
    timeout, breaker, bulkhead, retry, each policy a table of its fields as in a guard TOML file;
    classes and functions by dotted name, from modules the process has already loaded."""
    from stoic.guard import ConfigError
    from stoic.guard.loader import settings

    src = sources(request)
    denied = check_token(request, src.token)
    if denied is not None:
        return denied
    name = request.path_params["name"]
    dependency = find(src.registry, name)
    if dependency is None or not callable(getattr(dependency, "configure", None)):
        if src.merge is not None:
            message = "a merged view has no dependencies to configure: use the process's own dashboard"
            return error(409, message, "name")
        return _not_found(name)
    body = await json_body(request)
    if isinstance(body, dict) and "fallbacks" in body:
        message = "cannot be changed over HTTP: fallbacks run code; configure them in the service"
        return error(400, message, "fallbacks")
    try:
        dependency.configure(**settings(body, "body", imports=False))
    except ConfigError as exc:
        message = str(exc)
        field = message.split(":", 1)[0] if message.startswith("body") else "body"
        return error(400, message, field)
    return _ok({"name": name, "timeout": dependency.timeout, "settings": sorted(body)})


async def api_indicators(request: Request) -> Response:
    src = sources(request)
    # Public without credentials; a request that offers a token must offer the right one.
    trusted = False
    if "authorization" in request.headers:
        denied = check_token(request, src.token)
        if denied is not None:
            return denied
        trusted = True
    view = await run_in_threadpool(indicator_view, src.signals, number_param(request, *WINDOW))
    return _ok(view if trusted else _without_accounts(view))


async def api_ingest(request: Request) -> Response:
    src = sources(request)
    denied = check_token(request, src.token)
    if denied is not None:
        return denied
    if src.signals is None:
        return error(503, "no signals source: create_app(signals=stoic.signals.Signals())", "signals")
    body = await json_body(request)
    if not isinstance(body, dict):
        return error(400, f"must be a JSON object, got {type(body).__name__}", "body")
    try:
        accepted = await run_in_threadpool(src.signals.ingest, body)
    except ValueError as exc:
        field = getattr(exc, "field", None) or str(exc).partition(":")[0] or "body"
        return error(400, str(exc), field)
    return _ok(accepted, status=202)


async def api_churn(request: Request) -> Response:
    """The accounts most at risk of churning, with who they are: the operator's churn panel.
    Behind the token always (it names customers); the support view does not route it."""
    src = sources(request)
    denied = check_token(request, src.token)
    if denied is not None:
        return denied
    if src.signals is None:
        return _ok({"declared": False, "accounts": []})
    view = await run_in_threadpool(indicator_view, src.signals, 60.0)
    churn = view.get("churn")
    # A source that declares no churn model sends no "churn" key: the panel says so, not "none".
    accounts = [r for r in churn if isinstance(r, dict)] if isinstance(churn, list) else []
    return _ok({"declared": isinstance(churn, list), "accounts": accounts})


async def api_chaos(request: Request) -> JSONResponse:
    src = sources(request)
    return _ok(await run_in_threadpool(chaos_events, src.chaos_log, src.signals))


async def api_alerts(request: Request) -> JSONResponse:
    return _ok(await run_in_threadpool(alert_list, sources(request).signals))


async def api_scenarios(request: Request) -> JSONResponse:
    return _ok(scenario_list(sources(request).scenarios))


async def api_scenario_add(request: Request) -> Response:
    src = sources(request)
    denied = check_token(request, src.token)
    if denied is not None:
        return denied
    body = await json_body(request)
    return _ok(scenario_add(src.scenarios, body), status=201)


async def api_scenario_remove(request: Request) -> Response:
    src = sources(request)
    denied = check_token(request, src.token)
    if denied is not None:
        return denied
    name = request.path_params["name"]
    if not scenario_remove(src.scenarios, name):
        return error(404, f"no scenario called {name!r}", "name")
    return Response(status_code=204)


async def api_merge(request: Request) -> JSONResponse:
    merge = sources(request).merge
    if merge is None:
        return error(404, "this dashboard merges no streams (stoic web --merge URL ...)", "merge")
    await merge.start()
    return _ok(merge.status())


async def prometheus(request: Request) -> Response:
    return Response(generate_latest(sources(request).metrics), media_type=CONTENT_TYPE_LATEST)


async def hystrix_stream(request: Request) -> Response:
    src = sources(request)
    delay = number_param(request, *DELAY) / 1000.0

    await _following(src)

    async def produce() -> str:
        objects = await run_in_threadpool(src.hystrix)
        return "".join(sse_frame(o) for o in objects) or ": ping\n\n"

    response: Response = src.streams.subscribe(("hystrix", delay), produce, delay)
    return response


async def bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadRequest)
    message = str(exc).partition(": ")[2] or str(exc)
    return error(exc.status, message, exc.field)


async def http_error(request: Request, exc: Exception) -> Response:
    """404 and 405 as JSON naming what was wrong, like every other error of the API."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"must be one of {allowed}, got {request.method}"
        if sources(request).view == "support":
            message += " (the support view is read-only)"
        return error(405, message, "method", headers=exc.headers)
    if exc.status_code == 404:
        return error(404, f"no such page or API: {request.url.path[:200]!r}", "path")
    return error(exc.status_code, str(exc.detail), None, headers=exc.headers)
