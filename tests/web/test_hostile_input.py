"""Hostile input over a real uvicorn server: huge numbers, deep nesting, odd names, foreign hosts."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from stoic.chaos.audit import AuditLog
from stoic.fit import Catalog
from stoic.guard import Dependency, Registry
from stoic.signals import Signals
from stoic.web import create_app

from .conftest import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
HUGE = "1" + "0" * 400
CACHE_NAMES = ["cache/zone-a/127.0.0.1:11211", "cache/zone-b/[::1]:11211"]


@pytest.fixture
def registry() -> Registry:
    registry = Registry()
    Dependency("personalisation", registry=registry)
    for name in CACHE_NAMES:
        Dependency(name, registry=registry, owner="cache-team")
    return registry


@pytest.fixture
def url(serve: Any, registry: Registry, signals: Signals) -> str:
    server = serve(create_app(registry, signals=signals, scenarios=Catalog(), token=TOKEN, interval=0.1))
    return str(server.url)


# --- JSON bodies: every JSON endpoint answers 400 naming the field ------------------------------

BODY_ENDPOINTS = [
    "/api/fit/scenarios",
    "/api/indicators",
    "/api/signals/ingest",
    "/api/dependencies/personalisation/breaker",
]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/fit/scenarios", f'{{"name": "a", "dependencies": ["x"], "percent": {HUGE}}}', "percent"),
        ("/api/fit/scenarios", f'{{"name": "a", "dependencies": ["x"], "ttl": -{HUGE}}}', "ttl"),
        ("/api/fit/scenarios", f'{{"name": "a", "dependencies": ["x"], "delay": {HUGE}.5}}', "delay"),
        (
            "/api/indicators",
            f'{{"observations": [{{"type": "metric", "name": "sps", "value": {HUGE}}}]}}',
            "observations[0].value",
        ),
        (
            "/api/signals/ingest",
            f'{{"observations": [{{"type": "metric", "name": "sps", "value": 1, "at": {HUGE}}}]}}',
            "observations[0].at",
        ),
        ("/api/dependencies/personalisation/breaker", f'{{"action": {HUGE}}}', "action"),
        ("/api/fit/scenarios", HUGE, "body"),
    ],
)
def test_huge_numbers_get_400_naming_the_field(url: str, path: str, body: str, field: str) -> None:
    response = httpx.post(f"{url}{path}", content=body, headers=AUTH)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field
    assert "finite number" in response.json()["error"]


@pytest.mark.parametrize("path", BODY_ENDPOINTS)
def test_deeply_nested_bodies_get_400(url: str, path: str) -> None:
    for body in ["[" * 200_000, '{"a": ' * 100_000]:
        response = httpx.post(f"{url}{path}", content=body, headers=AUTH, timeout=30)
        assert response.status_code == 400, response.text
        assert response.json()["field"] == "body"


@pytest.mark.parametrize("path", BODY_ENDPOINTS)
def test_nesting_that_parses_is_still_bounded(url: str, path: str) -> None:
    # Deep enough to parse, too deep for code that walks it: refused at the edge, where it was found.
    body = json.dumps({"observations": [{"type": "metric", "name": "sps", "value": [[[[[[1]]]]]] * 1}]})
    body = body.replace("[[[[[[1]]]]]]", "[" * 500 + "1" + "]" * 500)
    response = httpx.post(f"{url}{path}", content=body, headers=AUTH)
    assert response.status_code == 400, response.text
    assert response.json()["field"].startswith("observations[0].value")
    assert "nested" in response.json()["error"]


def test_non_finite_literals_are_refused(url: str) -> None:
    body = '{"name": "a", "dependencies": ["x"], "percent": NaN}'
    response = httpx.post(f"{url}/api/fit/scenarios", content=body, headers=AUTH)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "percent"


# --- dependency names with "/" -----------------------------------------------------------------


@pytest.mark.parametrize("name", CACHE_NAMES)
def test_dependency_names_with_slashes_can_be_read(url: str, name: str) -> None:
    for path in [name, name.replace("/", "%2F"), httpx.URL(f"/{name}").raw_path.decode()[1:]]:
        response = httpx.get(f"{url}/api/dependencies/{path}")
        assert response.status_code == 200, (path, response.text)
        assert response.json()["name"] == name
        assert response.json()["owner"] == "cache-team"
    missing = httpx.get(f"{url}/api/dependencies/{name}/nope")
    assert missing.status_code == 404
    assert missing.json()["field"] == "name"


@pytest.mark.parametrize("name", CACHE_NAMES)
def test_dependency_names_with_slashes_can_be_controlled(url: str, registry: Registry, name: str) -> None:
    dependency = registry.get(name)
    breaker = f"{url}/api/dependencies/{name}/breaker"
    assert httpx.post(breaker, json={"action": "force_open"}).status_code == 401
    opened = httpx.post(breaker, json={"action": "force_open"}, headers=AUTH)
    assert opened.status_code == 200, opened.text
    assert opened.json() == {"name": name, "state": "open"}
    assert dependency.breaker.state == "open"
    encoded = f"{url}/api/dependencies/{name.replace('/', '%2F')}/breaker"
    assert httpx.post(encoded, json={"action": "reset"}, headers=AUTH).json()["state"] == "closed"
    assert dependency.breaker.state == "closed"
    assert registry.get("personalisation").breaker.state == "closed", "only the named one changed"


# --- hosts, headers, tokens and customer identifiers -------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.evil.example", ""])
def test_foreign_host_headers_are_refused(url: str, host: str) -> None:
    for path in ["/api/state", "/api/dependencies", "/", "/metrics"]:
        response = httpx.get(f"{url}{path}", headers={"Host": host})
        assert response.status_code == 400, (path, response.text)
        assert response.json()["field"] == "host"
        assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost:8700", "[::1]:8700", "LOCALHOST"])
def test_loopback_hosts_are_served_by_default(url: str, host: str) -> None:
    assert httpx.get(f"{url}/api/dependencies", headers={"Host": host}).status_code == 200


def test_allowed_hosts_are_configurable(serve: Any, registry: Registry) -> None:
    app = create_app(registry, scenarios=Catalog(), allowed_hosts=["stoic.internal", "*.ops.example"])
    url = serve(app).url
    for host, status in [
        ("stoic.internal", 200),
        ("stoic.internal:8700", 200),
        ("eu.ops.example", 200),
        ("ops.example", 400),
        ("127.0.0.1", 400),
    ]:
        assert httpx.get(f"{url}/healthz", headers={"Host": host}).status_code == status, host
    anything = serve(create_app(registry, scenarios=Catalog(), allowed_hosts=["*"])).url
    assert httpx.get(f"{anything}/healthz", headers={"Host": "whatever.example"}).status_code == 200


@pytest.mark.parametrize("hosts", [[], [""], ["a b"], ["http://x"], ["*foo"], ["*."], "localhost", [3]])
def test_bad_allowed_hosts_are_refused_at_build_time(registry: Registry, hosts: Any) -> None:
    with pytest.raises(ValueError, match=r"^allowed_hosts: "):
        create_app(registry, scenarios=Catalog(), allowed_hosts=hosts)


def test_every_response_forbids_framing(url: str) -> None:
    for path in ["/", "/api/state", "/static/dashboard.js", "/metrics", "/api/nope", "/healthz"]:
        response = httpx.get(f"{url}{path}")
        assert response.headers["x-frame-options"] == "DENY", path
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp
        assert "script-src 'self'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
    with httpx.stream("GET", f"{url}/api/stream") as stream:
        assert stream.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("token", ["short", "has space in it", "tab\tinside-it", "naïve-token-é"])
def test_bad_tokens_are_refused_without_echoing_them(registry: Registry, token: str) -> None:
    with pytest.raises(ValueError, match=r"^token: must be at least 8 characters") as caught:
        create_app(registry, scenarios=Catalog(), token=token)
    assert token not in str(caught.value)


def test_churn_accounts_need_the_token(url: str, signals: Signals) -> None:
    signals.observe_start("eu-west", ok=False, account="acct-secret-17")
    public = httpx.get(f"{url}/api/indicators")
    assert public.status_code == 200
    assert "acct-secret-17" not in public.text
    assert public.json()["churn"] and public.json()["churn"][0]["score"] > 0, "the rest stays public"
    for path in ["/api/signals", "/api/state"]:
        assert "acct-secret-17" not in httpx.get(f"{url}{path}").text
    authorised = httpx.get(f"{url}/api/indicators", headers=AUTH).json()
    assert authorised["churn"][0]["account"] == "acct-secret-17"
    wrong = httpx.get(f"{url}/api/indicators", headers={"Authorization": "Bearer wrong-token-123"})
    assert wrong.status_code == 401
    assert "acct-secret-17" not in wrong.text


def test_churn_accounts_stay_hidden_when_writes_are_disabled(serve: Any, signals: Signals) -> None:
    signals.observe_start("eu-west", ok=False, account="acct-secret-18")
    url = serve(create_app(Registry(), signals=signals, scenarios=Catalog(), token=None)).url
    assert "acct-secret-18" not in httpx.get(f"{url}/api/indicators").text
    assert "acct-secret-18" not in httpx.get(f"{url}/api/indicators", headers=AUTH).text


def test_a_failing_source_still_answers_with_the_headers(serve: Any, registry: Registry) -> None:
    audit = AuditLog()
    url = serve(create_app(registry, chaos_log=audit, scenarios=Catalog())).url
    audit.close()  # the chaos source now raises on every read
    response = httpx.get(f"{url}/api/chaos")
    assert response.status_code == 500
    assert response.json() == {"error": "internal error; see the server log"}
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
