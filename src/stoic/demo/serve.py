"""One platform process: ``python -m stoic.demo.serve --topology FILE --app APP --zone ZONE``.

Builds the Starlette app for the services its app hosts (see `topology.PROCESSES`), wraps it in the
FIT middleware, serves the chaos fault board to its guarded calls, and runs it under uvicorn.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from stoic.guard import DeadlineMiddleware, deadline_headers, registry, time_left
from stoic.guard.review import Review

from ._store import CacheStore, MemoryStore, Store
from .edge import Edge
from .services import ROUTES, ServiceContext
from .topology import CACHE_APP, FIT_AUDIENCE, OCA_APP, PROCESSES, Topology


def _fit(app: ASGIApp, topology: Topology, service: str) -> ASGIApp:
    """Bind each request's failure plan from its signed FIT header (when FIT is on).

    `service` is this process's app name (``edge``, ``playback``, ...): a header is honoured only when
    its audience names it.
    """
    if not topology.fit_secret:
        return app
    from stoic.fit import FitMiddleware, HeaderCodec

    return FitMiddleware(app, HeaderCodec(topology.fit_secret), service=service)


class DeadlinesSeen:
    """Counts, per service, the requests served under a travelling deadline (`x-stoic-timeout` from
    the caller, read by `DeadlineMiddleware` outside this), for the process's ``/guard`` page."""

    def __init__(self) -> None:
        self.services: dict[str, dict[str, Any]] = {}

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """`app`, with each of its requests counted here first."""

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                self._count(scope["path"])
            await app(scope, receive, send)

        return counted

    def _count(self, path: str) -> None:
        service = path.strip("/").split("/", 1)[0]
        seen = self.services.get(service)
        if seen is None and service in KNOWN_PATHS:  # only the routes there are: bounded
            seen = self.services[service] = {"requests": 0, "with_deadline": 0, "last_budget_ms": None}
        if seen is not None:
            seen["requests"] += 1
            left = time_left()
            if left is not None:
                seen["with_deadline"] += 1
                seen["last_budget_ms"] = round(left * 1000, 1)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per service: requests served, how many under a deadline, and the last one's budget."""
        return {name: dict(seen) for name, seen in sorted(self.services.items())}


async def _send_deadline(request: httpx.Request) -> None:
    # every platform process listens on loopback: the time left travels to each of them
    if request.url.host in ("127.0.0.1", "localhost"):
        request.headers.update(deadline_headers())


def _hooks(topology: Topology) -> dict[str, Any]:
    """httpx hooks that carry the request's failure plan and its deadline to the services it calls.

    Every process listens on loopback, where the plan is forwarded by default. A forwarded header keeps
    the audience it arrived with; a plan that starts in this process reaches the platform's processes.
    Without FIT, only the deadline (`x-stoic-timeout`, the time left less a tenth) is sent.
    """
    if not topology.fit_secret:
        return {"request": [_send_deadline]}
    from stoic.fit import HeaderCodec, forward_hooks

    return forward_hooks(HeaderCodec(topology.fit_secret, audience=FIT_AUDIENCE), asynchronous=True)


#: the first path segments counted by `DeadlinesSeen`: the services and the edge's play
KNOWN_PATHS = frozenset({*ROUTES, "play"})
#: the longest deadline a caller may ask of a platform process (seconds); a play's is PLAY_DEADLINE
DEADLINE_CAP = 10.0


def _store(topology: Topology, zone: str) -> Store:
    caches = {ep.zone: [f"127.0.0.1:{ep.port}"] for ep in topology.endpoints_of(CACHE_APP)}
    if not caches:
        return MemoryStore()
    from stoic.cache import ZonalCache

    # the region's zones first: cross-region copies are the last resort, like EVCache's replication
    region = topology.region_of(zone)
    ordered = dict(
        sorted(caches.items(), key=lambda kv: (topology.region_of(kv[0]) != region, kv[0] != zone))
    )
    return CacheStore(
        ZonalCache(
            ordered,
            local_zone=zone,
            backend="valkey",
            name="evcache",
            timeout=0.05,
            default_ttl=3600,
            owner="cache-team",
        )
    )


def create_app(topology: Topology, app: str, zone: str) -> ASGIApp:
    """The ASGI app of process `app` in `zone`."""
    services = (OCA_APP,) if app == OCA_APP else PROCESSES.get(app)
    if services is None:
        raise ValueError(f"app: must be one of {', '.join([*PROCESSES, OCA_APP])}; got {app!r}")
    topology.region_of(zone)  # raises naming the known zones
    hooks = _hooks(topology)
    client = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50), timeout=2.0, event_hooks=hooks
    )
    edge = Edge(topology, zone, client, _store(topology, zone)) if "edge" in services else None
    review = Review().start()  # every outbound connection this process makes, guarded or not
    seen = DeadlinesSeen()

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "app": app, "zone": zone, "pid": os.getpid()})

    async def guard(request: Request) -> Response:
        unguarded = sorted({(f.address, f.site) for f in review.findings})
        return JSONResponse(
            {
                "app": app,
                "zone": zone,
                "dependencies": registry.snapshot(),
                "unguarded": [{"address": a, "site": s} for a, s in unguarded],
                "deadlines": seen.snapshot(),
            }
        )

    routes: list[BaseRoute] = [Route("/health", health), Route("/guard", guard)]
    if edge is not None:
        routes += edge.routes()
    ctx = ServiceContext(topology, zone, client)
    for service in services:
        if service in ROUTES:
            routes += ROUTES[service](ctx)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        drain = asyncio.create_task(edge.drain_forever()) if edge is not None else None
        yield
        if drain is not None:
            drain.cancel()
        await client.aclose()

    counted = seen.middleware(Starlette(routes=routes, lifespan=lifespan))
    # a caller's x-stoic-timeout becomes this request's deadline; calls made for it carry the rest
    return _fit(DeadlineMiddleware(counted, max_seconds=DEADLINE_CAP), topology, app)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stoic.demo.serve", description=__doc__)
    parser.add_argument("--topology", type=Path, required=True, help="the platform's topology JSON file")
    parser.add_argument("--app", default=os.environ.get("STOIC_APP"), help="process app (default $STOIC_APP)")
    parser.add_argument("--zone", default=os.environ.get("STOIC_ZONE"), help="zone (default $STOIC_ZONE)")
    args = parser.parse_args(argv)
    if not args.app or not args.zone:
        parser.error("--app and --zone are required (or $STOIC_APP and $STOIC_ZONE)")
    topology = Topology.load(args.topology)
    endpoint = topology.endpoint(args.app, args.zone)
    if os.environ.get("STOIC_FAULT_BOARD"):
        from stoic.chaos.board import install

        install(app=args.app)
    app = create_app(topology, args.app, args.zone)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=endpoint.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
