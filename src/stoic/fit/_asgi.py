"""ASGI middleware: verify the header, bind the request's plan for the whole request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from stoic.fit._catalog import Catalog, catalog
from stoic.fit._codec import HeaderCodec
from stoic.fit._incoming import IncomingPlan
from stoic.fit._plan import bind

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class FitMiddleware:
    """Pure ASGI middleware: every HTTP and WebSocket request runs with its own failure plan bound.

    The plan comes from a verified header (ignored and logged when invalid, or when its audience does
    not admit `service`, this service's name) plus the scenarios of `catalog` that target the
    request; `None` turns the catalog off. Headers signed without an audience are ignored unless
    `allow_no_audience=True`.

    >>> app = FitMiddleware(app, HeaderCodec(SECRET), service="ratings")
    """

    def __init__(
        self,
        app: ASGIApp,
        codec: HeaderCodec,
        *,
        service: str,
        allow_no_audience: bool = False,
        catalog: Catalog | None = catalog,
        request_id_header: str = "x-request-id",
        user_header: str = "x-user-id",
        device_header: str = "x-device-type",
    ) -> None:
        self.app = app
        self.incoming = IncomingPlan(
            codec, catalog, request_id_header, user_header, device_header,
            service=service, allow_no_audience=allow_no_audience,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers", ()):
            # latin-1 is the HTTP header charset; it never fails to decode
            headers.setdefault(raw_name.decode("latin-1").lower(), raw_value.decode("latin-1"))
        with bind(self.incoming.plan(headers.get)):
            await self.app(scope, receive, send)
