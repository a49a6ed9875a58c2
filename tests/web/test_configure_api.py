"""Changing a running dependency's settings through the admin API, behind the token."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from stoic.fit import Catalog
from stoic.guard import Dependency, Fallback, Registry, SemaphoreBulkhead
from stoic.web import create_app

from .conftest import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}
URL = "/api/dependencies/personalisation/configure"


@pytest.fixture
def registry() -> Registry:
    registry = Registry()
    Dependency(
        "personalisation",
        registry=registry,
        timeout=0.5,
        bulkhead=SemaphoreBulkhead(max_concurrent=5),
        fallbacks=[Fallback.value([], name="popular")],
    )
    return registry


@pytest.fixture
def client(serve: Any, registry: Registry) -> Any:
    server = serve(create_app(registry, scenarios=Catalog(), token=TOKEN, interval=0.1))
    with httpx.Client(base_url=server.url, timeout=5) as client:
        yield client


def test_configure_applies_validated_settings(client: httpx.Client, registry: Registry) -> None:
    dep = registry.get("personalisation")
    body = {
        "timeout": 1.5,
        "breaker": {"error_rate": 0.2, "failure_on": ["ConnectionError"]},
        "bulkhead": {"kind": "semaphore", "max_concurrent": 8},
    }
    assert client.post(URL, json=body).status_code == 401
    done = client.post(URL, json=body, headers=AUTH)
    assert done.status_code == 200, done.text
    applied = ["breaker", "bulkhead", "timeout"]
    assert done.json() == {"name": "personalisation", "timeout": 1.5, "settings": applied}
    assert dep.timeout == 1.5 and dep.bulkhead == SemaphoreBulkhead(max_concurrent=8)
    assert dep.breaker_policy is not None and dep.breaker_policy.failure_on == (ConnectionError,)
    assert client.get("/api/dependencies/personalisation").json()["max_concurrent"] == 8


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"timeout": "fast"}, "body.timeout", "must be seconds (a number) or none"),
        ({"breaker": {"error_rate": 3}}, "body.breaker", "BreakerPolicy.error_rate"),
        ({"retries": 2}, "body.retries", "unknown setting; allowed: timeout, breaker, bulkhead, retry"),
        ({"breaker": {"failure_on": ["antigravity.Error"]}}, "body.breaker.failure_on[0]", "is not loaded"),
        ({"fallbacks": []}, "fallbacks", "cannot be changed over HTTP"),
        ([1, 2], "body", "must be a table of settings"),
        ({"bulkhead": {"kind": "pool", "workers": 2}}, "body", "configure() can resize a SemaphoreBulkhead"),
    ],
)
def test_bad_settings_are_refused_naming_the_field_and_change_nothing(
    client: httpx.Client, registry: Registry, body: object, field: str, words: str
) -> None:
    dep = registry.get("personalisation")
    refused = client.post(URL, json=body, headers=AUTH)
    assert refused.status_code == 400, refused.text
    assert refused.json()["field"] == field and words in refused.json()["error"], refused.json()
    assert dep.timeout == 0.5 and dep.bulkhead == SemaphoreBulkhead(max_concurrent=5)


def test_an_unknown_dependency_is_404(client: httpx.Client) -> None:
    missing = client.post("/api/dependencies/nope/configure", json={"timeout": 1}, headers=AUTH)
    assert missing.status_code == 404
