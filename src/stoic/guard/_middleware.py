"""ASGI and WSGI middlewares that set the request's deadline from the header the caller sent.

Both are thin glue over `parse_timeout`: a request with the header is served inside
`deadline(seconds)`, capped by `max_seconds`; one without it gets `default` (None: no deadline);
a malformed header is answered 400 with a message naming the header and its format.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from ._errors import ConfigError
from ._travel import DEADLINE_HEADER, deadline, parse_timeout
from ._validate import number

_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _Reader:
    """The settings both middlewares share, checked once."""

    def __init__(self, owner: str, header: str, default: float | None, max_seconds: float) -> None:
        if not isinstance(header, str) or not _HEADER_NAME.fullmatch(header):
            raise ConfigError(f"{owner}.header must be a header name of letters, digits and '-', "
                              f"got {header!r}")
        self.header = header.lower()
        self.default = None if default is None else number(owner, "default", default, low=0.0,
                                                           high=86400.0, low_open=True)
        self.max_seconds = number(owner, "max_seconds", max_seconds, low=0.0, high=86400.0, low_open=True)

    def seconds(self, value: str | None) -> float | None:
        """The request's budget; ConfigError (its message is the 400's body) for a malformed header."""
        if value is None:
            return self.default
        return min(parse_timeout(value, self.header), self.max_seconds)


class DeadlineMiddleware:
    """ASGI: serve each request inside `deadline(...)` read from `header` (`x-stoic-timeout`).

    >>> app = DeadlineMiddleware(app, default=2.0)
    """

    def __init__(self, app: ASGIApp, *, header: str = DEADLINE_HEADER, default: float | None = None,
                 max_seconds: float = 60.0) -> None:
        self.app = app
        self.reader = _Reader("DeadlineMiddleware", header, default, max_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = self.reader.header.encode("latin-1")
        value = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == wanted), None)
        try:
            seconds = self.reader.seconds(value)
        except ConfigError as exc:
            body = str(exc).encode("utf-8")
            await send({"type": "http.response.start", "status": 400,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        async with deadline(seconds):
            await self.app(scope, receive, send)


class DeadlineWSGIMiddleware:
    """WSGI: the same as `DeadlineMiddleware`, around the application call (calls made while the
    body is being iterated are not under the deadline)."""

    def __init__(self, app: WSGIApp, *, header: str = DEADLINE_HEADER, default: float | None = None,
                 max_seconds: float = 60.0) -> None:
        self.app = app
        self.reader = _Reader("DeadlineWSGIMiddleware", header, default, max_seconds)
        self.environ_key = "HTTP_" + self.reader.header.upper().replace("-", "_")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            seconds = self.reader.seconds(environ.get(self.environ_key))
        except ConfigError as exc:
            body = str(exc).encode("utf-8")
            start_response("400 Bad Request", [("Content-Type", "text/plain; charset=utf-8"),
                                               ("Content-Length", str(len(body)))])
            return [body]
        with deadline(seconds):
            return self.app(environ, start_response)
