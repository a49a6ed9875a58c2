"""Building the dashboard app: checking the sources once, and choosing the routes a view serves.

The handlers live in `_handlers.py` and read everything from `app.state.stoic`; this module only
validates what `create_app` is given and wires it up.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Iterable
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from . import _handlers as h
from ._edge import LOOPBACK_HOSTS, EdgeMiddleware, check_hosts
from ._http import BadRequest, token_problem
from ._merge import HystrixMerge
from ._metrics import GuardCollector
from ._page import check_view, page_template
from ._sources import chaos_log as as_chaos_log
from ._sources import guard_source, scenario_store, signals_source
from ._streams import Streams

BREAKER_ACTIONS = h.BREAKER_ACTIONS

# Both views read the same APIs; only the operator's view can change anything.
READ_ROUTES: list[BaseRoute] = [
    Route("/", h.index),
    Route("/healthz", h.healthz),
    Route("/api/state", h.api_state),
    Route("/api/stream", h.api_stream),
    Route("/api/dependencies", h.api_dependencies),
    # Names may hold "/" (every cache server: cache/zone-a/10.0.0.5:11211), raw or as %2F. A GET
    # for ".../x/breaker" reads a dependency of that name; the POST below controls "x".
    Route("/api/dependencies/{name:path}", h.api_dependency, methods=["GET"]),
    Route("/api/indicators", h.api_indicators, methods=["GET"]),
    # The paths docs/signals.md names, for apps written against it.
    Route("/api/signals", h.api_indicators, methods=["GET"]),
    Route("/api/chaos", h.api_chaos),
    Route("/api/alerts", h.api_alerts),
    Route("/api/fit/scenarios", h.api_scenarios, methods=["GET"]),
    Route("/api/merge", h.api_merge),
    Route("/metrics", h.prometheus),
    Route("/hystrix.stream", h.hystrix_stream),
    Mount("/static", StaticFiles(packages=[("stoic.web", "static")]), name="static"),
]
WRITE_ROUTES: list[BaseRoute] = [
    Route("/api/dependencies/{name:path}/breaker", h.api_breaker, methods=["POST"]),
    Route("/api/dependencies/{name:path}/configure", h.api_configure, methods=["POST"]),
    Route("/api/indicators", h.api_ingest, methods=["POST"]),
    Route("/api/signals/ingest", h.api_ingest, methods=["POST"]),
    Route("/api/fit/scenarios", h.api_scenario_add, methods=["POST"]),
    Route("/api/fit/scenarios/{name}", h.api_scenario_remove, methods=["DELETE"]),
    # Reads, but names customers: only the operator's view serves it, behind the token.
    Route("/api/churn", h.api_churn, methods=["GET"]),
]
MAX_STREAMS = 100


def _bounded(field: str, value: Any, low: float, high: float, integer: bool = False) -> None:
    kind = "an integer" if integer else "a number"
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or not low <= value <= high:
        raise ValueError(f"{field}: must be {kind} in [{low:g}, {high:g}], got {value!r}")


def create_app(
    registry: Any = None,
    *,
    signals: Any = None,
    chaos_log: Any = None,
    scenarios: Any = None,
    token: str | None = None,
    interval: float = 1.0,
    stream_lifetime: float = 300.0,
    max_streams: int = MAX_STREAMS,
    title: str = "Stoic",
    view: str = "operator",
    merge: HystrixMerge | None = None,
    allowed_hosts: Iterable[str] = LOOPBACK_HOSTS,
) -> Starlette:
    """Build the dashboard app.

    - `registry`: a `stoic.guard.Registry` (default: the process-wide `stoic.guard.registry`, or
      the merged processes when `merge` is given).
    - `scenarios`: the FIT scenarios switched on for live traffic (default: the process-wide
      `stoic.fit.catalog`); a `stoic.fit.Catalog`, or anything holding `scenarios` with `add` and
      `remove` (e.g. a `stoic.fit.FailurePlan`).
    - `signals`: a `stoic.signals.Signals` for indicators, alerts and ingest (optional).
    - `chaos_log`: the chaos audit log, a `stoic.chaos.AuditLog` or a list of entries (optional).
    - `token`: bearer token for every write and for churn account ids; with None the write APIs
      answer 403.
    - `interval`: seconds between SSE updates; `stream_lifetime`: seconds before a stream is closed
      (browsers reconnect on their own); `max_streams`: live streams served at once, past which a
      stream request gets 503 with `Retry-After`.
    - `view`: `"operator"` (everything, with the FIT controls) or `"support"` (read-only: no write
      API at all, no forms, no token).
    - `merge`: a `HystrixMerge`; `/hystrix.stream` then serves the merged processes.
    - `allowed_hosts`: the `Host` names served (default: loopback names and addresses);
      `"*.example.com"` allows subdomains, `"*"` any name. Any other host gets 400.
    """
    view = check_view(view)
    if merge is not None and not isinstance(merge, HystrixMerge):
        raise TypeError(f"merge: must be a HystrixMerge, got {type(merge).__name__}")
    if registry is None:
        if merge is not None:
            registry = merge
        else:
            from stoic.guard import registry as default_registry

            registry = default_registry
    if scenarios is None:
        from stoic.fit import catalog as default_catalog

        scenarios = default_catalog
    _bounded("interval", interval, 0.05, 60)
    _bounded("stream_lifetime", stream_lifetime, interval, 86400)
    _bounded("max_streams", max_streams, 1, 100_000, integer=True)
    if view == "support" and token is not None:
        raise ValueError("token: the support view takes no token (it has no write API); pass None")
    problem = None if token is None else token_problem(token)
    if problem is not None:
        # The value is a secret: the message gives the rule, never the token.
        raise ValueError(f"token: {problem} (or None to disable writes)")
    hosts = check_hosts(allowed_hosts)
    guard = guard_source(registry)

    collector = GuardCollector(guard)
    metrics = CollectorRegistry(auto_describe=False)
    metrics.register(collector)
    streams = Streams(max_streams, stream_lifetime)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if merge is not None:
            await merge.start()
        try:
            yield
        finally:
            await streams.close()
            if merge is not None:
                await merge.stop()
            collector.close()

    routes = READ_ROUTES if view == "support" else [*WRITE_ROUTES, *READ_ROUTES]
    app = Starlette(
        routes=routes,
        exception_handlers={BadRequest: h.bad_request, HTTPException: h.http_error},
        middleware=[Middleware(EdgeMiddleware, allowed_hosts=hosts)],
        lifespan=lifespan,
    )
    app.state.stoic = h.Sources(
        registry=guard,
        signals=signals_source(signals),
        chaos_log=as_chaos_log(chaos_log),
        scenarios=scenario_store(scenarios),
        token=token,
        interval=interval,
        title=title,
        view=view,
        page=page_template(title, view),
        metrics=metrics,
        streams=streams,
        hystrix=merge.objects if merge is not None else functools.partial(h.local_hystrix, guard),
        merge=merge,
    )
    app.state.registry = registry
    app.state.metrics = metrics
    return app
