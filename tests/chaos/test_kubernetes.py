"""KubernetesTarget drives the official client: verified against a loopback API endpoint (no cluster).

The endpoint below answers the two calls the target makes (list pods by label selector, delete a pod)
in the Kubernetes wire format, and records every request, so the test checks what a real API server
would receive: the selector, the namespace, and ``gracePeriodSeconds=0``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from kubernetes import client

from stoic.chaos import (
    BlastRadius,
    ChaosGorilla,
    ChaosMonkey,
    CompressedClock,
    KubernetesTarget,
    Pod,
    Schedule,
    SimianArmy,
)

PODS = [
    ("api-1", {"app": "api", "region": "eu", "zone": "eu-a"}, "Running", False),
    (
        "api-2",
        {"app": "api", "topology.kubernetes.io/region": "eu", "topology.kubernetes.io/zone": "eu-b"},
        "Running",
        False,
    ),
    ("web-1", {"app": "web", "region": "eu", "zone": "eu-a"}, "Running", False),
    ("web-2", {"app": "web", "region": "eu", "zone": "eu-b"}, "Running", True),  # already terminating
    ("job-1", {"app": "job", "region": "eu", "zone": "eu-a"}, "Succeeded", False),
]


class FakeApi:
    """Pods in memory, served over HTTP on 127.0.0.1 in the Kubernetes JSON format."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, list[str]], dict[str, Any]]] = []
        self.pods = {name: (labels, phase, deleting) for name, labels, phase, deleting in PODS}
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, body: dict[str, Any], status: int = 200) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> tuple[str, dict[str, list[str]]]:
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                api.requests.append((self.command, url.path, parse_qs(url.query), body))
                return url.path, parse_qs(url.query)

            def do_GET(self) -> None:
                path, query = self._record()
                assert path == "/api/v1/namespaces/shop/pods", path
                wanted = dict(kv.split("=") for kv in query.get("labelSelector", [""])[0].split(",") if kv)
                items = [
                    api.pod_json(n)
                    for n, (labels, _, _) in api.pods.items()
                    if all(labels.get(k) == v for k, v in wanted.items())
                ]
                self._reply({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})

            def do_DELETE(self) -> None:
                path, _ = self._record()
                name = path.rsplit("/", 1)[1]
                body = api.pod_json(name)
                del api.pods[name]
                self._reply(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def pod_json(self, name: str) -> dict[str, Any]:
        labels, phase, deleting = self.pods[name]
        meta: dict[str, Any] = {"name": name, "namespace": "shop", "labels": labels}
        if deleting:
            meta["deletionTimestamp"] = "2026-11-23T10:00:00Z"
        return {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "status": {"phase": phase}}

    def deletes(self) -> list[tuple[str, dict[str, list[str]], dict[str, Any]]]:
        return [(p, q, b) for m, p, q, b in self.requests if m == "DELETE"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    api = FakeApi()
    try:
        yield api
    finally:
        api.close()


def core_v1(url: str) -> Any:
    cfg = client.Configuration()
    cfg.host = url
    return client.CoreV1Api(client.ApiClient(cfg))


def test_pods_are_listed_by_label_with_region_and_zone(fake_api: FakeApi) -> None:
    target = KubernetesTarget("shop", api=core_v1(fake_api.url))
    fleet = target.fleet()
    assert {p.id for p in fleet} == {"shop/api-1", "shop/api-2", "shop/web-1", "shop/web-2", "shop/job-1"}
    assert {p.id for p in fleet.alive()} == {"shop/api-1", "shop/api-2", "shop/web-1"}
    api2 = fleet.get("shop/api-2")
    assert isinstance(api2, Pod) and (api2.app, api2.region, api2.zone) == ("api", "eu", "eu-b")
    only_api = KubernetesTarget("shop", "app=api", api=core_v1(fake_api.url)).fleet()
    assert {p.id for p in only_api} == {"shop/api-1", "shop/api-2"}
    assert fake_api.requests[-1][2]["labelSelector"] == ["app=api"]


def test_chaos_monkey_deletes_pods_with_grace_period_zero(fake_api: FakeApi) -> None:
    target = KubernetesTarget("shop", api=core_v1(fake_api.url))
    monkey = ChaosMonkey(grouping="app", mean_time_between_kills=None, min_time_between_kills=0)
    army = SimianArmy(
        target,
        [monkey],
        schedule=Schedule.always(),
        limits=BlastRadius.unlimited(),
        clock=CompressedClock(speed=1, start=datetime(2026, 11, 23, 10, tzinfo=UTC)),
        seed=2,
    )
    report = army.run_once()
    assert (
        report.count("terminated") == 2
    )  # one api pod, one web pod; the terminating and finished pods are spared
    deletes = fake_api.deletes()
    assert len(deletes) == 2
    for path, query, body in deletes:
        assert path.startswith("/api/v1/namespaces/shop/pods/")
        assert query.get("gracePeriodSeconds") == ["0"] or body.get("gracePeriodSeconds") == 0
    assert "web-1" in {p.rsplit("/", 1)[1] for p, _, _ in deletes}
    assert sorted(e.app for e in army.audit.terminations()) == ["api", "web"]


def test_gorilla_deletes_a_zone_of_pods(fake_api: FakeApi) -> None:
    target = KubernetesTarget("shop", api=core_v1(fake_api.url))
    zone_at_a_time = BlastRadius(max_instances=None, max_share=1.0)
    gorilla = ChaosGorilla("eu-a", mean_time_between=None, min_time_between=0, limits=zone_at_a_time)
    # the army's limits bound every monkey, so they too must admit a whole zone
    army = SimianArmy(target, [gorilla], schedule=Schedule.always(), limits=zone_at_a_time)
    assert army.run_once().count("terminated") == 2
    assert sorted(p.rsplit("/", 1)[1] for p, _, _ in fake_api.deletes()) == ["api-1", "web-1"]
    assert set(fake_api.pods) == {"api-2", "web-2", "job-1"}
