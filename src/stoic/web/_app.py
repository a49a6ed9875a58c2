"""The dashboard application: one page, JSON APIs, SSE streams, /metrics and /hystrix.stream.

Each route is a module-level handler reading what it serves from `request.app.state.stoic` (a
`Sources`), so a handler can be read and tested without building the whole app around it.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ._edge import LOOPBACK_HOSTS, EdgeMiddleware, check_hosts
from ._http import (
    BadRequest,
    check_token,
    error,
    event_stream,
    finite,
    json_body,
    number_param,
    sse_frame,
    token_problem,
)
from ._hystrix import hystrix_command, hystrix_thread_pool
from ._metrics import GuardCollector
from ._scenarios import scenario_add, scenario_list, scenario_remove
from ._sources import alert_list, chaos_events, indicator_view
from ._views import dependency_views, find, snapshots

BREAKER_ACTIONS = ("force_open", "force_closed", "reset")
WINDOW = ("window", 3600.0, 60.0, 7 * 86400.0)  # query name, default, low, high (seconds)


@dataclass(frozen=True, slots=True)
class Sources:
    """Everything the handlers read, fixed when the app is built."""

    registry: Any
    signals: Any
    chaos_log: Any
    scenarios: Any
    token: str | None
    interval: float
    stream_lifetime: float
    title: str
    page: str
    metrics: CollectorRegistry


def _sources(request: Request) -> Sources:
    sources: Sources = request.app.state.stoic
    return sources


def _ok(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(finite(data), status_code=status)


def _not_found(name: str) -> JSONResponse:
    return error(404, f"no dependency called {name!r}", "name")


async def _indicators(src: Sources, window: float) -> dict[str, Any]:
    return await run_in_threadpool(indicator_view, src.signals, window)


def _without_accounts(view: dict[str, Any]) -> dict[str, Any]:
    # Churn risk names customers: the public view keeps the scores and drops who they belong to.
    churn = view.get("churn")
    if not isinstance(churn, list):
        return view
    hidden = [{k: v for k, v in r.items() if k != "account"} if isinstance(r, dict) else {} for r in churn]
    return {**view, "churn": hidden}


async def _state(src: Sources, window: float) -> dict[str, Any]:
    # One failing source must not blank the page: its part is empty and the error is shown.
    errors: dict[str, str] = {}
    try:
        view = await _indicators(src, window)
    except Exception as exc:
        errors["signals"] = f"{type(exc).__name__}: {exc}"
        view = indicator_view(None, window)
    try:
        chaos = await run_in_threadpool(chaos_events, src.chaos_log, src.signals)
    except Exception as exc:
        errors["chaos"] = f"{type(exc).__name__}: {exc}"
        chaos = []
    return {
        "errors": errors,
        "title": src.title,
        "now": time.time(),
        "dependencies": dependency_views(src.registry),
        "indicators": {"series": view["series"], "interval": view.get("interval"), "now": view["now"]},
        "alerts": view["alerts"],
        "chaos": chaos,
        "scenarios": scenario_list(src.scenarios),
        "sources": {
            "signals": src.signals is not None,
            "chaos": src.chaos_log is not None or src.signals is not None,
            "control": src.token is not None,
        },
    }


async def index(request: Request) -> HTMLResponse:
    return HTMLResponse(_sources(request).page)


async def healthz(request: Request) -> JSONResponse:
    return _ok({"ok": True})


async def api_state(request: Request) -> JSONResponse:
    return _ok(await _state(_sources(request), number_param(request, *WINDOW)))


async def api_stream(request: Request) -> Response:
    src = _sources(request)
    window = number_param(request, *WINDOW)

    async def produce() -> list[str]:
        return [sse_frame(await _state(src, window), event="state")]

    return event_stream(produce, src.interval, src.stream_lifetime)


async def api_dependencies(request: Request) -> JSONResponse:
    return _ok(dependency_views(_sources(request).registry))


async def api_dependency(request: Request) -> JSONResponse:
    name = request.path_params["name"]
    for view in dependency_views(_sources(request).registry):
        if view.get("name") == name:
            return _ok(view)
    return _not_found(name)


async def api_breaker(request: Request) -> Response:
    src = _sources(request)
    denied = check_token(request, src.token)
    if denied is not None:
        return denied
    name = request.path_params["name"]
    dependency = find(src.registry, name)
    if dependency is None:
        return _not_found(name)
    body = await json_body(request)
    action = body.get("action") if isinstance(body, dict) else None
    if action not in BREAKER_ACTIONS:
        return error(400, f"must be one of {', '.join(BREAKER_ACTIONS)}, got {action!r}", "action")
    getattr(dependency.breaker, action)()
    return _ok({"name": name, "state": dependency.breaker.state})


async def api_indicators(request: Request) -> Response:
    src = _sources(request)
    # Public without credentials; a request that offers a token must offer the right one.
    trusted = False
    if "authorization" in request.headers:
        denied = check_token(request, src.token)
        if denied is not None:
            return denied
        trusted = True
    view = await _indicators(src, number_param(request, *WINDOW))
    return _ok(view if trusted else _without_accounts(view))


async def api_ingest(request: Request) -> Response:
    src = _sources(request)
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


async def api_chaos(request: Request) -> JSONResponse:
    src = _sources(request)
    return _ok(await run_in_threadpool(chaos_events, src.chaos_log, src.signals))


async def api_alerts(request: Request) -> JSONResponse:
    return _ok(await run_in_threadpool(alert_list, _sources(request).signals))


async def api_scenarios(request: Request) -> Response:
    src = _sources(request)
    if request.method == "GET":
        return _ok(scenario_list(src.scenarios))
    denied = check_token(request, src.token)
    if denied is not None:
        return denied
    body = await json_body(request)
    return _ok(scenario_add(src.scenarios, body), status=201)


async def api_scenario(request: Request) -> Response:
    src = _sources(request)
    denied = check_token(request, src.token)
    if denied is not None:
        return denied
    name = request.path_params["name"]
    if not scenario_remove(src.scenarios, name):
        return error(404, f"no scenario called {name!r}", "name")
    return Response(status_code=204)


async def prometheus(request: Request) -> Response:
    return Response(generate_latest(_sources(request).metrics), media_type=CONTENT_TYPE_LATEST)


async def hystrix_stream(request: Request) -> Response:
    src = _sources(request)
    # Hystrix's own servlet takes ?delay=<ms> (default 500) between reports.
    delay = number_param(request, "delay", 500.0, 50.0, 60000.0) / 1000.0

    async def produce() -> list[str]:
        now = time.time()
        frames = []
        for snap in snapshots(src.registry):
            dependency = find(src.registry, snap.get("name"))
            frames.append(f"data: {json.dumps(hystrix_command(snap, dependency, now))}\n\n")
            if snap.get("isolation") == "thread":
                frames.append(f"data: {json.dumps(hystrix_thread_pool(snap, dependency, now))}\n\n")
        return frames

    return event_stream(produce, delay, src.stream_lifetime)


async def bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadRequest)
    message = str(exc).partition(": ")[2] or str(exc)
    return error(exc.status, message, exc.field)


ROUTES = [
    Route("/", index),
    Route("/healthz", healthz),
    Route("/api/state", api_state),
    Route("/api/stream", api_stream),
    Route("/api/dependencies", api_dependencies),
    # Names may hold "/" (every cache server: cache/zone-a/10.0.0.5:11211), raw or as %2F. A GET
    # for ".../x/breaker" reads a dependency of that name; the POST below controls "x".
    Route("/api/dependencies/{name:path}", api_dependency, methods=["GET"]),
    Route("/api/dependencies/{name:path}/breaker", api_breaker, methods=["POST"]),
    Route("/api/indicators", api_indicators, methods=["GET"]),
    Route("/api/indicators", api_ingest, methods=["POST"]),
    # The paths docs/signals.md names, for apps written against it.
    Route("/api/signals", api_indicators, methods=["GET"]),
    Route("/api/signals/ingest", api_ingest, methods=["POST"]),
    Route("/api/chaos", api_chaos),
    Route("/api/alerts", api_alerts),
    Route("/api/fit/scenarios", api_scenarios, methods=["GET", "POST"]),
    Route("/api/fit/scenarios/{name}", api_scenario, methods=["DELETE"]),
    Route("/metrics", prometheus),
    Route("/hystrix.stream", hystrix_stream),
    Mount("/static", StaticFiles(packages=[("stoic.web", "static")]), name="static"),
]


def create_app(
    registry: Any = None,
    *,
    signals: Any = None,
    chaos_log: Any = None,
    scenarios: Any = None,
    token: str | None = None,
    interval: float = 1.0,
    stream_lifetime: float = 300.0,
    title: str = "Stoic",
    allowed_hosts: Iterable[str] = LOOPBACK_HOSTS,
) -> Starlette:
    """Build the dashboard app.

    - `registry`: a `stoic.guard.Registry` (default: the process-wide `stoic.guard.registry`).
    - `scenarios`: the FIT scenarios switched on for live traffic (default: the process-wide
      `stoic.fit.catalog`); anything with `add(scenario)`, `remove(name)` and `snapshot()` or
      `scenarios` (e.g. a `stoic.fit.FailurePlan`) works.
    - `signals`: a `stoic.signals.Signals` for indicators, alerts and ingest (optional).
    - `chaos_log`: the chaos audit log, anything with `entries()` or iterable (optional).
    - `token`: bearer token for every write and for churn account ids; with None the write APIs
      answer 403.
    - `interval`: seconds between SSE updates; `stream_lifetime`: seconds before a stream is closed
      (browsers reconnect on their own).
    - `allowed_hosts`: the `Host` names served (default: loopback names and addresses);
      `"*.example.com"` allows subdomains, `"*"` any name. Any other host gets 400.
    """
    if registry is None:
        from stoic.guard import registry as default_registry

        registry = default_registry
    if scenarios is None:
        from stoic.fit import catalog as default_catalog

        scenarios = default_catalog
    if not 0.05 <= interval <= 60:
        raise ValueError(f"interval: must be in [0.05, 60] seconds, got {interval!r}")
    if not interval <= stream_lifetime <= 86400:
        raise ValueError(f"stream_lifetime: must be in [interval, 86400] seconds, got {stream_lifetime!r}")
    problem = None if token is None else token_problem(token)
    if problem is not None:
        # The value is a secret: the message gives the rule, never the token.
        raise ValueError(f"token: {problem} (or None to disable writes)")
    hosts = check_hosts(allowed_hosts)

    collector = GuardCollector(registry)
    metrics = CollectorRegistry(auto_describe=False)
    metrics.register(collector)
    page = resources.files("stoic.web").joinpath("static/index.html").read_text("utf-8")
    page = page.replace("{{title}}", title.replace("<", "&lt;").replace(">", "&gt;"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            collector.close()

    app = Starlette(
        routes=ROUTES,
        exception_handlers={BadRequest: bad_request},
        middleware=[Middleware(EdgeMiddleware, allowed_hosts=hosts)],
        lifespan=lifespan,
    )
    app.state.stoic = Sources(
        registry, signals, chaos_log, scenarios, token, interval, stream_lifetime, title, page, metrics
    )
    app.state.registry = registry
    app.state.metrics = metrics
    return app
