"""The mid-tier services a play touches, and the Open Connect appliance that serves segments.

Each service is a handful of Starlette routes under ``/<service>/``; a process hosts the services
`topology.PROCESSES` gives its app. Work is simulated with short awaits, not CPU, so a 2-core machine
can carry the whole platform.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from stoic.guard import AdaptiveBulkhead, Dependency, Fallback

from . import catalog
from ._zones import ZonePool
from .topology import OCA_APP, Topology

Handler = Callable[[Request], Awaitable[Response]]
_LICENCE_KEY = b"stoic-demo-licence-key"
SEGMENT_BYTES = 24 * 1024


def bad_request(field: str, message: str) -> JSONResponse:
    """A 400 naming the field at fault."""
    return JSONResponse({"error": "bad_request", "field": field, "message": message}, status_code=400)


async def work(rng: random.Random, low_ms: float, high_ms: float) -> None:
    """Stand-in for a service's own work: a short await, so latency is real but CPU is not spent."""
    await asyncio.sleep(rng.uniform(low_ms, high_ms) / 1000.0)


class ServiceContext:
    """What every service in a process shares: where it runs and a client for its own calls."""

    def __init__(self, topology: Topology, zone: str, client: httpx.AsyncClient, seed: int = 0) -> None:
        self.topology = topology
        self.zone = zone
        self.region = topology.region_of(zone)
        self.client = client
        self.rng = random.Random(f"{seed}:{zone}")


# -- device ------------------------------------------------------------------------------------


def device_routes(ctx: ServiceContext) -> list[BaseRoute]:
    """``GET /device/{device_id}``: the device record."""

    async def device(request: Request) -> Response:
        device_id = request.path_params["device_id"]
        await work(ctx.rng, 1, 4)
        dtype = device_id.rsplit("-", 1)[-1]
        known = catalog.device_known(device_id)
        return JSONResponse(
            {
                "device_id": device_id,
                "type": dtype if known else "unknown",
                "known": known,
                "max_height": 2160 if dtype in ("tv", "console") else 1080,
                "zone": ctx.zone,
            }
        )

    return [Route("/device/{device_id}", device)]


# -- subscription ------------------------------------------------------------------------------


def subscription_routes(ctx: ServiceContext) -> list[BaseRoute]:
    """``GET /subscription/{user_id}``: membership and plan."""

    async def subscription(request: Request) -> Response:
        user_id = request.path_params["user_id"]
        if not user_id.startswith("u"):
            return bad_request("user_id", f"must look like 'u00042', got {user_id!r}")
        await work(ctx.rng, 2, 6)
        return JSONResponse(
            {"user_id": user_id, "active": True, "plan": catalog.plan_of(user_id), "zone": ctx.zone}
        )

    return [Route("/subscription/{user_id}", subscription)]


# -- personalisation ---------------------------------------------------------------------------


def personalisation_routes(ctx: ServiceContext) -> list[BaseRoute]:
    """``GET /personalisation/{user_id}?region=``: the member's rows."""

    async def rows(request: Request) -> Response:
        user_id = request.path_params["user_id"]
        region = request.query_params.get("region", ctx.region)
        if region not in ctx.topology.regions:
            return bad_request("region", f"must be one of {', '.join(ctx.topology.regions)}; got {region!r}")
        await work(ctx.rng, 8, 20)  # the expensive one: ranking
        return JSONResponse(
            {
                "user_id": user_id,
                "rows": {
                    "continue": catalog.recommendations(user_id, region, 3),
                    "top_picks": catalog.recommendations(user_id + ":picks", region, 10),
                },
                "zone": ctx.zone,
            }
        )

    return [Route("/personalisation/{user_id}", rows)]


# -- CDN steering ------------------------------------------------------------------------------


def oca_urls(topology: Topology, region: str) -> list[str]:
    """Open Connect appliances for a viewer in `region`: the region's own first."""
    ocas = topology.endpoints_of(OCA_APP)
    ocas.sort(key=lambda ep: ep.region != region)
    return [f"{ep.url}/oca" for ep in ocas]


def steering_routes(ctx: ServiceContext) -> list[BaseRoute]:
    """``GET /steering/cdns?region=``: the OCAs to stream from, best first."""

    async def cdns(request: Request) -> Response:
        region = request.query_params.get("region", ctx.region)
        if region not in ctx.topology.regions:
            return bad_request("region", f"must be one of {', '.join(ctx.topology.regions)}; got {region!r}")
        await work(ctx.rng, 2, 5)
        return JSONResponse({"cdns": oca_urls(ctx.topology, region), "steered": True, "zone": ctx.zone})

    return [Route("/steering/cdns", cdns)]


# -- manifest ----------------------------------------------------------------------------------


def manifest_routes(ctx: ServiceContext) -> list[BaseRoute]:
    """``GET /manifest/{title}?height=&region=``: renditions and CDNs (asks steering)."""
    pool = ZonePool(
        "steering",
        ctx.topology.service_urls("steering", ctx.zone),
        ctx.client,
        timeout=0.25,
        owner="open-connect-team",
    )

    async def steered(region: str) -> dict[str, Any]:
        answer = await pool.request("GET", "/cdns", params={"region": region})
        return {"cdns": answer.body["cdns"], "source": "other-zone" if answer.failed_over else "primary"}

    async def default_cdn(region: str) -> dict[str, Any]:
        # the appliances every manifest may name, in a fixed order: no steering, but still playable
        return {"cdns": oca_urls(ctx.topology, region), "source": "default-cdn"}

    # an adaptive limit: when steering slows down or sheds load, manifests stop piling onto it and
    # the default CDN list answers at once
    steering = Dependency(
        "steering",
        timeout=0.5,
        fallbacks=[Fallback(default_cdn, name="default-cdn")],
        owner="open-connect-team",
        bulkhead=AdaptiveBulkhead(initial=20, min_limit=4, max_limit=100),
    )

    async def manifest(request: Request) -> Response:
        title = request.path_params["title"]
        if title not in catalog.TITLES:
            return bad_request(
                "title", f"unknown title {title!r}; titles are t000..t{catalog.TITLE_COUNT - 1:03d}"
            )
        try:
            height = int(request.query_params.get("height", "1080"))
        except ValueError:
            return bad_request("height", "must be an integer number of lines, e.g. 1080")
        region = request.query_params.get("region", ctx.region)
        if region not in ctx.topology.regions:
            return bad_request("region", f"must be one of {', '.join(ctx.topology.regions)}; got {region!r}")
        cdns = await steering.acall(steered, region)
        await work(ctx.rng, 3, 8)
        return JSONResponse(
            {
                "title": title,
                "name": catalog.title_name(title),
                "height": min(height, 2160),
                "segments": catalog.SEGMENTS_PER_TITLE,
                "segment_seconds": catalog.SEGMENT_SECONDS,
                "cdns": cdns["cdns"],
                "steering": cdns["source"],
                "zone": ctx.zone,
            }
        )

    return [Route("/manifest/{title}", manifest)]


# -- DRM licence -------------------------------------------------------------------------------


def licence_token(device_id: str, title: str, expires: int) -> str:
    """A licence bound to a device and a title until `expires`."""
    mac = hmac.new(_LICENCE_KEY, f"{device_id}:{title}:{expires}".encode(), hashlib.sha256).hexdigest()
    return f"{expires}.{mac[:32]}"


def licence_routes(ctx: ServiceContext) -> list[BaseRoute]:
    """``POST /licence/{title}?device=``: a DRM licence."""

    async def licence(request: Request) -> Response:
        title = request.path_params["title"]
        device_id = request.query_params.get("device", "")
        if not device_id:
            return bad_request("device", "required: the device id the licence is bound to")
        if title not in catalog.TITLES:
            return bad_request("title", f"unknown title {title!r}")
        await work(ctx.rng, 4, 10)
        expires = int(time.time()) + 3600
        return JSONResponse(
            {
                "title": title,
                "device": device_id,
                "licence": licence_token(device_id, title, expires),
                "expires": expires,
                "zone": ctx.zone,
            }
        )

    return [Route("/licence/{title}", licence, methods=["POST"])]


# -- playback log ------------------------------------------------------------------------------


def playback_log_routes(ctx: ServiceContext) -> list[BaseRoute]:
    """``POST /playback-log/start``: record play events (one or a batch)."""
    seen: dict[str, int] = {"events": 0}

    async def start(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return bad_request("body", "must be JSON: an object or a list of objects with play_id")
        events = body if isinstance(body, list) else [body]
        if not all(isinstance(e, dict) and isinstance(e.get("play_id"), str) for e in events):
            return bad_request("play_id", "every event needs a string play_id")
        await work(ctx.rng, 1, 3)
        seen["events"] += len(events)
        return JSONResponse({"logged": len(events), "total": seen["events"], "zone": ctx.zone})

    return [Route("/playback-log/start", start, methods=["POST"])]


# -- Open Connect appliance --------------------------------------------------------------------


def oca_routes(ctx: ServiceContext) -> list[BaseRoute]:
    """``GET /oca/segment/{title}/{number}``: one media segment."""
    blob = bytes(random.Random(7).getrandbits(8) for _ in range(SEGMENT_BYTES))

    async def segment(request: Request) -> Response:
        title = request.path_params["title"]
        number = request.path_params["number"]
        if title not in catalog.TITLES:
            return bad_request("title", f"unknown title {title!r}")
        if not 0 <= number < catalog.SEGMENTS_PER_TITLE:
            return bad_request("number", f"must be in 0..{catalog.SEGMENTS_PER_TITLE - 1}, got {number}")
        await work(ctx.rng, 2, 6)
        return Response(blob, media_type="video/mp4")

    return [Route("/oca/segment/{title}/{number:int}", segment)]


ROUTES: dict[str, Callable[[ServiceContext], list[BaseRoute]]] = {
    "device": device_routes,
    "subscription": subscription_routes,
    "personalisation": personalisation_routes,
    "steering": steering_routes,
    "manifest": manifest_routes,
    "licence": licence_routes,
    "playback-log": playback_log_routes,
    OCA_APP: oca_routes,
}
