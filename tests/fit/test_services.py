"""Two real services on 127.0.0.1: an edge that calls a ratings service, both behind FitMiddleware."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from stoic.fit import (
    Catalog,
    FailurePlan,
    FitMiddleware,
    Forwarder,
    HeaderCodec,
    RequestIdentity,
    Scenario,
    bind,
    current_plan,
    forward_hooks,
)
from stoic.fit._scenario import share
from stoic.guard import Dependency, Fallback


class Services:
    """The edge and ratings services, and what their primaries were asked for."""

    def __init__(
        self, serve_asgi: Callable[[Any], str], codec: HeaderCodec, edge_catalog: Catalog | None
    ) -> None:
        self.store_calls: list[str] = []
        self.personalisation_calls: list[str] = []
        self.ratings_url = serve_asgi(
            FitMiddleware(self._ratings_app(), codec, service="ratings", catalog=None)
        )
        self.edge_url = serve_asgi(
            FitMiddleware(self._edge_app(codec), codec, service="edge", catalog=edge_catalog)
        )

    def _ratings_app(self) -> Starlette:
        store = Dependency(
            "ratings-store", timeout=1.0, fallbacks=[Fallback.value({}, name="no-ratings")], registry=None,
            breaker=None,  # these tests count injections, not breaker trips
        )

        async def read_store(user: str) -> dict[str, int]:
            self.store_calls.append(user)
            return {"title-1": 5}

        async def ratings(request: Request) -> JSONResponse:
            user = request.path_params["user"]
            result = await store.aexecute(read_store, user)
            plan = current_plan()
            assert plan is not None
            return JSONResponse({
                "source": result.source,
                "ratings": result.value,
                "request_id": plan.identity.request_id,
                "user_id": plan.identity.user_id,
                "device": plan.identity.device,
                "fit_header": request.headers.get("x-stoic-fit") is not None,
                "injected": [i.dependency for i in plan.injections],
            })

        return Starlette(routes=[Route("/ratings/{user}", ratings)])

    def _edge_app(self, codec: HeaderCodec) -> Starlette:
        personalisation = Dependency(
            "personalisation", timeout=1.0, fallbacks=[Fallback.value(["popular"], name="popular")],
            registry=None, breaker=None,
        )
        ratings_service = Dependency(
            "ratings-service", timeout=2.0,
            fallbacks=[Fallback.value({"source": "edge-default"}, name="stale")],
            registry=None,
        )

        async def pick_rows(user: str) -> list[str]:
            self.personalisation_calls.append(user)
            return [f"for-{user}"]

        async def home(request: Request) -> JSONResponse:
            user = request.path_params["user"]
            rows = await personalisation.aexecute(pick_rows, user)

            async def fetch_ratings(user: str) -> dict[str, Any]:
                # plain http on loopback: verify=False only skips loading CA certificates (slow)
                hooks = forward_hooks(codec, asynchronous=True)
                async with httpx.AsyncClient(event_hooks=hooks, verify=False) as client:
                    response = await client.get(f"{self.ratings_url}/ratings/{user}")
                    response.raise_for_status()
                    return dict(response.json())

            ratings = await ratings_service.acall(fetch_ratings, user)
            plan = current_plan()
            assert plan is not None
            return JSONResponse({
                "rows": rows.value, "rows_source": rows.source, "ratings": ratings,
                "request_id": plan.identity.request_id,
                "injected": [i.dependency for i in plan.injections],
            })

        return Starlette(routes=[Route("/home/{user}", home)])

    def home(self, user: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        response = httpx.get(f"{self.edge_url}/home/{user}", headers=headers or {}, timeout=10, verify=False)
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture
def services(serve_asgi: Callable[[Any], str], codec: HeaderCodec) -> Services:
    return Services(serve_asgi, codec, edge_catalog=None)


def test_without_a_header_both_services_answer_from_their_primaries(services: Services) -> None:
    body = services.home("u1", {"x-request-id": "req-plain", "x-user-id": "u1", "x-device-type": "TV"})
    assert body["rows_source"] == "primary" and body["rows"] == ["for-u1"]
    assert body["ratings"]["source"] == "primary"
    # the identity travelled downstream with the request
    assert body["ratings"]["request_id"] == "req-plain" == body["request_id"]
    assert (body["ratings"]["user_id"], body["ratings"]["device"]) == ("u1", "tv")
    assert body["ratings"]["fit_header"] is False  # nothing to inject: no header is sent downstream
    assert services.store_calls == ["u1"] and services.personalisation_calls == ["u1"]


def test_a_signed_header_fails_dependencies_in_both_services(services: Services, codec: HeaderCodec) -> None:
    header = codec.sign([
        Scenario("no-recs", "personalisation"),
        Scenario("no-ratings", "ratings-store"),  # lives only in the second service
    ])
    body = services.home("u1", {"x-stoic-fit": header, "x-request-id": "req-fit"})
    assert (body["rows_source"], body["rows"]) == ("popular", ["popular"])
    assert body["ratings"]["source"] == "no-ratings" and body["ratings"]["ratings"] == {}
    assert body["ratings"]["fit_header"] is True
    assert body["ratings"]["request_id"] == "req-fit"
    assert services.store_calls == [] and services.personalisation_calls == []
    assert (body["injected"], body["ratings"]["injected"]) == (["personalisation"], ["ratings-store"])
    # the very next request, untagged, is not affected
    assert services.home("u1")["ratings"]["source"] == "primary"
    assert services.store_calls == ["u1"]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _signed_by_hand(body: dict[str, Any] | str) -> str:
    """Signed with the right key around a payload no codec would write."""
    text = body if isinstance(body, str) else json.dumps(body)
    signed = "v1." + _b64(text.encode())
    mac = hmac.new(b"fit-test-secret-0123456789", signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{_b64(mac)}"


def _bad_headers(codec: HeaderCodec) -> dict[str, str]:
    fail_all = [Scenario("fail-all", "*")]
    now = time.time()
    fresh = {"iat": now, "exp": now + 60, "aud": ["*"]}
    good = codec.sign(fail_all)
    version, payload, signature = good.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["s"][0]["d"] = ["ratings-store"]
    tampered = f"{version}.{_b64(json.dumps(body).encode())}.{signature}"
    expired_codec = HeaderCodec("fit-test-secret-0123456789", ttl=1, leeway=0, clock=lambda: 1_000_000.0)
    return {
        "unsigned": f"{version}.{payload}",
        "forged": HeaderCodec("an-attacker-guessed-this-secret").sign(fail_all),
        "tampered": tampered,
        "expired": expired_codec.sign(fail_all),
        "malformed": "v1.!!!.???",
        "oversized": good + "A" * 5000,
        "wrong-audience": codec.sign(fail_all, audience=["search", "ratings-*"]),
        "no-audience": HeaderCodec("fit-test-secret-0123456789").sign(fail_all),
        "huge-percent": _signed_by_hand({**fresh, "s": [{"n": "a", "d": ["*"], "k": "error", "p": 10**400}]}),
        "huge-iat": _signed_by_hand({**fresh, "iat": 10**400, "s": [{"n": "a", "d": ["*"], "k": "error"}]}),
        "deep-nesting": _signed_by_hand(json.dumps(fresh)[:-1] + ', "s": ' + "[" * 1200 + "]" * 1200 + "}"),
    }


@pytest.mark.parametrize("kind", [
    "unsigned", "forged", "tampered", "expired", "malformed", "oversized", "wrong-audience", "no-audience",
    "huge-percent", "huge-iat", "deep-nesting",
])
def test_a_bad_header_changes_nothing(
    services: Services, codec: HeaderCodec, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    value = _bad_headers(codec)[kind]
    with caplog.at_level(logging.WARNING, logger="stoic.fit"):
        body = services.home("u1", {"x-stoic-fit": value, "x-request-id": f"req-{kind}"})
    assert body["rows_source"] == "primary" and body["ratings"]["source"] == "primary"
    assert body["ratings"]["fit_header"] is False  # nothing was forwarded either
    assert services.personalisation_calls == ["u1"] and services.store_calls == ["u1"]
    assert body["injected"] == [] and body["ratings"]["injected"] == []
    expected = {
        "unsigned": "unsigned", "forged": "bad-signature", "tampered": "bad-signature",
        "expired": "expired", "malformed": "bad-signature", "oversized": "oversized",
        "wrong-audience": "wrong-audience", "no-audience": "no-audience",
        "huge-percent": "invalid-scenario", "huge-iat": "malformed", "deep-nesting": "malformed",
    }[kind]
    assert f"ignored x-stoic-fit header: {expected}" in caplog.text


def test_percentage_decisions_agree_across_services(services: Services, codec: HeaderCodec) -> None:
    header = codec.sign([Scenario("half", ["personalisation", "ratings-store"], percent=50)])
    agreed = 0
    for i in range(30):
        request_id = f"req-share-{i}"
        body = services.home("u1", {"x-stoic-fit": header, "x-request-id": request_id})
        expected = share(request_id, "half") < 50
        edge_failed = body["rows_source"] == "popular"
        downstream_failed = body["ratings"]["source"] == "no-ratings"
        assert edge_failed == downstream_failed == expected, request_id
        assert body["injected"] == (["personalisation"] if expected else [])
        assert body["ratings"]["injected"] == (["ratings-store"] if expected else [])
        agreed += expected
    assert 0 < agreed < 30  # both branches were exercised


def test_user_and_device_targets_follow_the_request(services: Services, codec: HeaderCodec) -> None:
    both = ["personalisation", "ratings-store"]
    header = codec.sign([Scenario("tv-u1", both, user_ids=["u1"], devices=["tv"])])
    tv = services.home("u1", {"x-stoic-fit": header, "x-user-id": "u1", "x-device-type": "tv"})
    web = services.home("u1", {"x-stoic-fit": header, "x-user-id": "u1", "x-device-type": "web"})
    other = services.home("u2", {"x-stoic-fit": header, "x-user-id": "u2", "x-device-type": "tv"})
    assert (tv["rows_source"], tv["ratings"]["source"]) == ("popular", "no-ratings")
    assert (web["rows_source"], web["ratings"]["source"]) == ("primary", "primary")
    assert (other["rows_source"], other["ratings"]["source"]) == ("primary", "primary")


def test_an_edge_catalog_tags_live_traffic_without_any_header(
    serve_asgi: Callable[[Any], str], codec: HeaderCodec
) -> None:
    catalog = Catalog()
    catalog.add(Scenario("canary-user", "ratings-store", user_ids=["u-canary"], ttl=60))
    services = Services(serve_asgi, codec, edge_catalog=catalog)
    canary = services.home("u-canary", {"x-user-id": "u-canary"})
    assert canary["ratings"]["source"] == "no-ratings" and canary["ratings"]["fit_header"] is True
    assert services.home("u-other", {"x-user-id": "u-other"})["ratings"]["source"] == "primary"
    catalog.remove("canary-user")
    assert services.home("u-canary", {"x-user-id": "u-canary"})["ratings"]["source"] == "primary"


def test_hooks_forward_only_to_allowed_hosts(services: Services, codec: HeaderCodec) -> None:
    forwarder = Forwarder(codec, allow_hosts=["ratings.internal"])
    plan = FailurePlan([Scenario("s", "ratings-store")], RequestIdentity("req-hosts"))
    with bind(plan):
        assert forwarder.headers("example.com") == {}
        sent = forwarder.headers("ratings.internal")
        # a plain client with the same headers reaches the real service and is honoured there
        with httpx.Client(event_hooks={"request": [Forwarder(codec).hook]}, verify=False) as client:
            body = client.get(f"{services.ratings_url}/ratings/u1").json()
    assert set(sent) == {"x-request-id", "x-stoic-fit"}
    assert codec.verify(sent["x-stoic-fit"], service="ratings").identity == RequestIdentity("req-hosts")
    assert body["source"] == "no-ratings" and body["request_id"] == "req-hosts"
    with pytest.raises(ValueError, match="allow_hosts: must be a collection of host names or globs"):
        Forwarder(codec, allow_hosts="ratings.internal")


def test_hooks_send_nothing_to_third_parties_by_default(codec: HeaderCodec) -> None:
    plan = FailurePlan([Scenario("s", "ratings-store")], RequestIdentity("req-3p", "u-private", "tv"))
    own = forward_hooks(codec, allow_hosts=("*.internal", "orders"))["request"][0]
    default = forward_hooks(codec)["request"][0]
    asynchronous = forward_hooks(codec, asynchronous=True)["request"][0]

    def sent(hook: Callable[[httpx.Request], Any], url: str) -> set[str]:
        request = httpx.Request("GET", url)
        outcome = hook(request)
        if asyncio.iscoroutine(outcome):
            asyncio.run(outcome)
        return {name for name in ("x-stoic-fit", "x-user-id", "x-request-id") if name in request.headers}

    every = {"x-stoic-fit", "x-user-id", "x-request-id"}
    with bind(plan):
        for hook in (default, asynchronous, own):
            assert sent(hook, "https://api.example.com/v1/charge") == set()  # a third party: nothing
            for loopback in ("http://127.0.0.1:8000/", "http://localhost/", "http://[::1]:9/", "http://127.9.9.9/"):
                assert sent(hook, loopback) == every, loopback
        assert sent(default, "http://ratings.internal/") == set()
        assert sent(own, "http://ratings.internal/") == every
        assert sent(own, "http://orders:8080/") == every
        assert sent(own, "http://ratings.internal.example.com/") == set()  # a glob matches whole names
        anywhere = forward_hooks(codec, allow_hosts=["*"])["request"][0]  # an explicit choice
        assert sent(anywhere, "https://api.example.com/") == every
    assert Forwarder(codec, allow_hosts=["ORDERS"]).allows("orders")
