"""A WSGI service (wsgiref on 127.0.0.1) that calls a raw-ASGI service (uvicorn) through httpx."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from stoic.fit import FitMiddleware, FitWSGIMiddleware, HeaderCodec, Scenario, current_plan, forward_hooks
from stoic.guard import Dependency, Fallback


def ratings_app() -> Any:
    """A raw ASGI app (no framework): answers with where its ratings came from."""
    store = Dependency("ratings-store", timeout=1.0, fallbacks=[Fallback.value({}, name="no-ratings")],
                       registry=None, breaker=None)

    async def read_store() -> dict[str, int]:
        return {"title-1": 5}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        result = await store.aexecute(read_store)
        plan = current_plan()
        body = json.dumps({"source": result.source, "request_id": plan.identity.request_id if plan else None})
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body.encode()})

    return app


class Shop:
    """A WSGI app: personalised rows (streamed) plus ratings from the downstream ASGI service."""

    def __init__(self, codec: HeaderCodec, ratings_url: str) -> None:
        self.codec = codec
        self.ratings_url = ratings_url
        self.closed = 0
        self.personalisation = Dependency(
            "personalisation", timeout=1.0, fallbacks=[Fallback.value("popular", name="popular")],
            registry=None, breaker=None,
        )
        self.client = httpx.Client(event_hooks=forward_hooks(codec), timeout=10, verify=False)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        ratings = self.client.get(f"{self.ratings_url}/ratings").json()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return self._stream(ratings)

    def _stream(self, ratings: dict[str, Any]) -> Iterator[bytes]:
        try:
            yield f"ratings={ratings['source']} rid={ratings['request_id']}\n".encode()
            # called while the server iterates the body, after __call__ returned
            row = self.personalisation.execute(lambda: "for-you")
            yield f"rows={row.value}\n".encode()
        finally:
            self.closed += 1


@pytest.fixture
def shop(serve_asgi: Callable[[Any], str], serve_wsgi: Callable[[Any], str], codec: HeaderCodec) -> Iterator[
        tuple[Shop, str]]:
    ratings_url = serve_asgi(FitMiddleware(ratings_app(), codec, service="ratings", catalog=None))
    app = Shop(codec, ratings_url)
    url = serve_wsgi(FitWSGIMiddleware(app, codec, service="shop", catalog=None))
    yield app, url
    app.client.close()


def _get(url: str, headers: dict[str, str]) -> str:
    response = httpx.get(url, headers=headers, timeout=10, verify=False)
    assert response.status_code == 200
    return response.text


def test_wsgi_plan_covers_the_streamed_body_and_travels_downstream(
    shop: tuple[Shop, str], codec: HeaderCodec
) -> None:
    app, url = shop
    header = codec.sign([Scenario("degrade", ["personalisation", "ratings-store"])])
    text = _get(url, {"x-stoic-fit": header, "x-request-id": "req-wsgi"})
    assert text == "ratings=no-ratings rid=req-wsgi\nrows=popular\n"
    assert _get(url, {"x-request-id": "req-plain"}) == "ratings=primary rid=req-plain\nrows=for-you\n"
    assert app.closed == 2  # the middleware passes close() through to the app's body


def test_wsgi_ignores_a_forged_header(
    shop: tuple[Shop, str], codec: HeaderCodec, caplog: pytest.LogCaptureFixture
) -> None:
    _, url = shop
    forged = HeaderCodec("someone-elses-secret-value").sign([Scenario("degrade", "*")])
    with caplog.at_level(logging.WARNING, logger="stoic.fit"):
        text = _get(url, {"x-stoic-fit": forged, "x-request-id": "req-forged"})
    assert text == "ratings=primary rid=req-forged\nrows=for-you\n"
    assert "ignored x-stoic-fit header: bad-signature" in caplog.text


def test_middleware_configuration_is_checked(codec: HeaderCodec) -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        return []

    with pytest.raises(ValueError, match="user_header: must be a header name"):
        FitWSGIMiddleware(app, codec, service="shop", user_header="x user")
    with pytest.raises(TypeError, match="codec: must be a HeaderCodec"):
        FitWSGIMiddleware(app, "secret", service="shop")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="catalog: must be a Catalog or None"):
        FitMiddleware(app, codec, service="shop", catalog=[])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"service: must be this service's name, 1-64 letters"):
        FitMiddleware(app, codec, service="the shop")
    with pytest.raises(TypeError, match="allow_no_audience: must be True or False"):
        FitWSGIMiddleware(app, codec, service="shop", allow_no_audience="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="service"):
        FitMiddleware(app, codec)  # type: ignore[call-arg]  # a receiver must say who it is
