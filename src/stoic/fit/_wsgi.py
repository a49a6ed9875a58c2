"""WSGI middleware: verify the header, bind the request's plan while the app runs and streams."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from stoic.fit._catalog import Catalog, catalog
from stoic.fit._codec import HeaderCodec
from stoic.fit._incoming import IncomingPlan
from stoic.fit._plan import FailurePlan, bind


class FitWSGIMiddleware:
    """WSGI middleware: each request runs with its own failure plan bound, body iteration included.

    Headers are checked as by `FitMiddleware`: `service` is this service's name, which a header's
    audience must admit.

    >>> app = FitWSGIMiddleware(app, HeaderCodec(SECRET), service="shop")
    """

    def __init__(
        self,
        app: WSGIApplication,
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

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def header(name: str) -> str | None:
            value = environ.get("HTTP_" + name.upper().replace("-", "_"))
            return value if isinstance(value, str) else None

        plan = self.incoming.plan(header)
        with bind(plan):
            body = self.app(environ, start_response)
        return _BoundBody(body, plan)


class _BoundBody:
    """The response body, iterated with the plan bound (a streaming app calls dependencies here too)."""

    def __init__(self, body: Iterable[bytes], plan: FailurePlan) -> None:
        self._body = body
        self._chunks: Iterator[bytes] | None = None
        self._plan = plan

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        with bind(self._plan):
            if self._chunks is None:
                self._chunks = iter(self._body)
            return next(self._chunks)

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()
