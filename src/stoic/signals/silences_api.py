"""Silences over HTTP for `stoic signals run`: list, create (who and why) and expire.

- `GET /api/silences` (`?active=1`: only those in force): every silence, oldest first.
- `POST /api/silences` with the bearer token: `{"matchers": ['team="payments"'], "ends_at":
  1767582000, "created_by": "ana", "comment": "provider maintenance"}` (`starts_at` optional,
  default now; `kind` "silence" or "maintenance"): 201 with the silence, or 400 with `error` and
  `field` naming what is wrong. It is kept in history and posted to every Alertmanager receiver.
- `DELETE /api/silences/{id}?by=ana` with the token: expires it now (404 if unknown).

Writes without the token answer 401; with no token configured, 403.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_FIELDS = ("matchers", "starts_at", "ends_at", "created_by", "comment", "kind")


def routes(service: Any, token: str | None) -> list[Route]:
    """The three routes, bound to `service` (a `SignalsService` or a `Signals`)."""

    def refused(request: Request) -> Response | None:
        if token is None:
            return JSONResponse({"error": "writes are off: no token is configured"}, status_code=403)
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return JSONResponse({"error": "a valid bearer token is required"}, status_code=401)
        return None

    async def listing(request: Request) -> Response:
        active = request.query_params.get("active", "") in ("1", "true")
        return JSONResponse(service.list_silences(active_only=active))

    async def create(request: Request) -> Response:
        denied = refused(request)
        if denied is not None:
            return denied
        try:
            body = await request.json()
        except ValueError:
            return _bad("body", "body: must be a JSON object")
        if not isinstance(body, Mapping):
            return _bad("body", f"body: must be a JSON object, got {type(body).__name__}")
        extra = sorted(set(body) - set(_FIELDS))
        if extra:
            return _bad(extra[0], f"{extra[0]}: unknown field; allowed: {', '.join(_FIELDS)}")
        for key in ("matchers", "ends_at", "created_by", "comment"):
            if key not in body:
                return _bad(key, f"{key}: required")
        if body.get("kind", "silence") not in ("silence", "maintenance"):
            return _bad("kind", f"kind: must be one of silence, maintenance, got {body.get('kind')!r}")
        try:
            made = service.silence(
                body["matchers"],
                ends_at=body["ends_at"],
                created_by=body["created_by"],
                comment=body["comment"],
                starts_at=body.get("starts_at"),
                kind=body.get("kind", "silence"),
            )
        except ValueError as exc:
            return _bad(str(exc).split(":", 1)[0], str(exc))
        return JSONResponse(made, status_code=201)

    async def expire(request: Request) -> Response:
        denied = refused(request)
        if denied is not None:
            return denied
        by = request.query_params.get("by", "")
        if not by.strip() or len(by) > 100:
            return _bad("by", "by: required, who expires the silence (1..100 characters)")
        try:
            return JSONResponse(service.expire_silence(request.path_params["silence_id"], by=by))
        except KeyError as exc:
            return JSONResponse({"error": str(exc.args[0]), "field": "silence_id"}, status_code=404)

    return [
        Route("/api/silences", listing, methods=["GET"]),
        Route("/api/silences", create, methods=["POST"]),
        Route("/api/silences/{silence_id}", expire, methods=["DELETE"]),
    ]


def _bad(field: str, message: str) -> Response:
    return JSONResponse({"error": message, "field": field}, status_code=400)
