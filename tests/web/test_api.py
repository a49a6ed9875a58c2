"""The JSON and control APIs over a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from stoic.chaos.audit import AuditLog
from stoic.fit import Catalog, RequestIdentity
from stoic.guard import Dependency, Fallback, Registry, SemaphoreBulkhead
from stoic.web import create_app

from .conftest import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def registry() -> Registry:
    registry = Registry()
    dep = Dependency(
        "personalisation",
        registry=registry,
        owner="recs-team",
        timeout=0.5,
        bulkhead=SemaphoreBulkhead(max_concurrent=5),
        fallbacks=[Fallback.value([], name="popular")],
    )
    for i in range(12):
        dep.call(lambda i=i: 1 / 0 if i % 4 == 0 else i)
    return registry


@pytest.fixture
def catalog() -> Catalog:
    return Catalog()


@pytest.fixture
def client(serve: Any, registry: Registry, catalog: Catalog) -> Any:
    server = serve(create_app(registry, scenarios=catalog, token=TOKEN, interval=0.1))
    with httpx.Client(base_url=server.url, timeout=5) as client:
        yield client


def test_dependencies_reflect_real_calls(client: httpx.Client) -> None:
    deps = client.get("/api/dependencies").json()
    assert [d["name"] for d in deps] == ["personalisation"]
    dep = deps[0]
    assert dep["counts"]["success"] == 9
    assert dep["counts"]["failure"] == 3
    assert dep["fallbacks"] == {"popular": 3}
    assert dep["error_percentage"] == 25.0
    assert dep["health"] == "degraded"
    assert dep["max_concurrent"] == 5
    one = client.get("/api/dependencies/personalisation").json()
    assert one["owner"] == "recs-team"
    missing = client.get("/api/dependencies/nope")
    assert missing.status_code == 404
    assert missing.json()["field"] == "name"


def test_page_and_static_files_are_served(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "/static/dashboard.js" in page.text
    assert "EventSource" in client.get("/static/dashboard.js").text
    assert client.get("/static/dashboard.css").status_code == 200


def test_state_stream_pushes_fresh_state(client: httpx.Client, registry: Registry) -> None:
    dep = registry.get("personalisation")
    seen: list[int] = []
    with client.stream("GET", "/api/stream") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "state":
                state = json.loads(line[6:])
                seen.append(state["dependencies"][0]["counts"]["success"])
                if len(seen) == 1:
                    for _ in range(5):
                        dep.call(lambda: "ok")
                if len(seen) >= 3 or seen[-1] == 14:
                    break
    assert seen[0] == 9
    assert seen[-1] == 14, "a later event carries the calls made after the first one"


def test_scenarios_need_the_bearer_token(client: httpx.Client, catalog: Catalog) -> None:
    body = {"name": "no-recs", "dependencies": ["personalisation"], "kind": "error"}
    missing = client.post("/api/fit/scenarios", json=body)
    assert missing.status_code == 401
    assert missing.json()["field"] == "authorization"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = client.post("/api/fit/scenarios", json=body, headers={"Authorization": f"Bearer {TOKEN}x"})
    assert wrong.status_code == 401
    basic = client.post("/api/fit/scenarios", json=body, headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401
    assert len(catalog) == 0
    assert client.delete("/api/fit/scenarios/no-recs").status_code == 401


def test_scenario_add_list_remove(client: httpx.Client, catalog: Catalog) -> None:
    body = {"name": "tv-no-recs", "dependencies": ["personalisation"], "kind": "error", "devices": ["tv"]}
    created = client.post("/api/fit/scenarios", json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    assert created.json()["devices"] == ["tv"]
    # The scenario is live in the catalog the FIT middleware consults.
    scenario = catalog.get("tv-no-recs")
    assert scenario is not None and scenario.covers("personalisation")
    assert catalog.matching(RequestIdentity("r1", device="tv")) == (scenario,)
    assert catalog.matching(RequestIdentity("r2", device="phone")) == ()
    listed = client.get("/api/fit/scenarios").json()
    assert [s["name"] for s in listed] == ["tv-no-recs"]
    assert client.delete("/api/fit/scenarios/tv-no-recs", headers=AUTH).status_code == 204
    assert len(catalog) == 0
    gone = client.delete("/api/fit/scenarios/tv-no-recs", headers=AUTH)
    assert gone.status_code == 404
    assert gone.json()["field"] == "name"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ("{not json", "body", "valid JSON"),
        ("", "body", "empty"),
        (json.dumps([1, 2]), "scenario", "object"),
        (json.dumps({"dependencies": ["x"]}), "name", "required"),
        (
            json.dumps({"name": "a", "dependencies": ["x"], "kind": "explode"}),
            "kind",
            "error, delay, timeout",
        ),
        (json.dumps({"name": "a", "dependencies": ["x"], "percent": 140}), "percent", "(0, 100]"),
        (json.dumps({"name": "a", "dependencies": ["x"], "colour": "red"}), "colour", "allowed"),
    ],
)
def test_bad_scenario_bodies_get_400_naming_the_field(
    client: httpx.Client, catalog: Catalog, body: str, field: str, words: str
) -> None:
    response = client.post(
        "/api/fit/scenarios", content=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    reply = response.json()
    assert reply["field"] == field
    assert words in reply["error"]
    assert len(catalog) == 0


def test_oversized_body_is_refused(client: httpx.Client) -> None:
    response = client.post("/api/fit/scenarios", content=b"x" * (1_100_000), headers=AUTH)
    assert response.status_code == 413
    assert response.json()["field"] == "body"


def test_writes_are_disabled_without_a_token(serve: Any, registry: Registry) -> None:
    server = serve(create_app(registry, scenarios=Catalog(), token=None))
    body = {"name": "x", "dependencies": ["y"]}
    response = httpx.post(f"{server.url}/api/fit/scenarios", json=body, headers=AUTH)
    assert response.status_code == 403
    assert "token" in response.json()["error"]
    assert httpx.get(f"{server.url}/api/fit/scenarios").json() == []


def test_breaker_control(client: httpx.Client, registry: Registry) -> None:
    dep = registry.get("personalisation")
    url = "/api/dependencies/personalisation/breaker"
    assert client.post(url, json={"action": "force_open"}).status_code == 401
    opened = client.post(url, json={"action": "force_open"}, headers=AUTH)
    assert opened.json() == {"name": "personalisation", "state": "open"}
    assert dep.breaker.state == "open"
    assert dep.call(lambda: "primary") == [], "an open breaker sends calls to the fallback"
    assert client.get("/api/dependencies/personalisation").json()["health"] == "down"
    bad = client.post(url, json={"action": "explode"}, headers=AUTH)
    assert bad.status_code == 400
    assert bad.json()["field"] == "action"
    assert "force_open, force_closed, reset" in bad.json()["error"]
    assert client.post(url, json={"action": "reset"}, headers=AUTH).json()["state"] == "closed"
    assert (
        client.post("/api/dependencies/nope/breaker", json={"action": "reset"}, headers=AUTH).status_code
        == 404
    )


def test_query_parameters_are_validated(client: httpx.Client) -> None:
    for url, field in [("/api/indicators?window=5", "window"), ("/hystrix.stream?delay=abc", "delay")]:
        response = client.get(url)
        assert response.status_code == 400
        assert response.json()["field"] == field
        assert "[" in response.json()["error"], "the allowed range is named"


def test_chaos_timeline_reads_the_audit_log(serve: Any, registry: Registry) -> None:
    with AuditLog() as audit:
        audit.record("chaos-monkey", "terminate", "terminated", target="api-eu-west-1a-0", zone="eu-west-1a")
        audit.record("latency-monkey", "latency", "injected", target="ratings", reason="+300 ms")
        audit.record(
            "chaos-monkey", "terminate", "skipped", target="api-eu-west-1b-0", reason="outside schedule"
        )
        server = serve(create_app(registry, chaos_log=audit, scenarios=Catalog()))
        events = httpx.get(f"{server.url}/api/chaos").json()
        state = httpx.get(f"{server.url}/api/state").json()
    assert [e["monkey"] for e in events] == ["chaos-monkey", "latency-monkey", "chaos-monkey"]
    assert [e["outcome"] for e in events] == ["terminated", "injected", "skipped"]
    assert events[0]["at"] <= events[1]["at"] <= events[2]["at"]
    assert state["chaos"] == events


def test_without_optional_sources_the_api_still_answers(serve: Any, registry: Registry) -> None:
    server = serve(create_app(registry, scenarios=Catalog(), token=TOKEN))
    assert httpx.get(f"{server.url}/api/alerts").json() == []
    assert httpx.get(f"{server.url}/api/chaos").json() == []
    assert httpx.get(f"{server.url}/api/indicators").json()["series"] == []
    ingest = httpx.post(f"{server.url}/api/indicators", json={"observations": []}, headers=AUTH)
    assert ingest.status_code == 503
    assert ingest.json()["field"] == "signals"


def test_a_stream_ends_after_its_lifetime(serve: Any, registry: Registry) -> None:
    server = serve(create_app(registry, scenarios=Catalog(), interval=0.1, stream_lifetime=0.5))
    started = time.monotonic()
    with httpx.stream("GET", f"{server.url}/api/stream", timeout=5) as response:
        lines = list(response.iter_lines())  # returns only because the server closes the stream
    elapsed = time.monotonic() - started
    assert lines[0] == "retry: 2000", "browsers are told when to reconnect"
    assert 2 <= sum(line == "event: state" for line in lines) <= 8
    assert 0.4 <= elapsed < 4


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"interval": 0.0}, "interval"),
        ({"interval": 1.0, "stream_lifetime": 0.5}, "stream_lifetime"),
        ({"token": "short"}, "token"),
    ],
)
def test_bad_settings_are_refused_at_build_time(
    registry: Registry, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        create_app(registry, scenarios=Catalog(), **kwargs)


def test_a_failing_source_does_not_blank_the_state(serve: Any, registry: Registry) -> None:
    audit = AuditLog()
    audit.record("chaos-monkey", "terminate", "terminated", target="api-1")
    server = serve(create_app(registry, chaos_log=audit, scenarios=Catalog(), interval=0.1))
    assert len(httpx.get(f"{server.url}/api/state").json()["chaos"]) == 1
    audit.close()  # the chaos source now raises on every read
    state = httpx.get(f"{server.url}/api/state").json()
    assert state["chaos"] == []
    assert "chaos" in state["errors"]
    assert state["dependencies"][0]["name"] == "personalisation", "the rest of the page still has data"
