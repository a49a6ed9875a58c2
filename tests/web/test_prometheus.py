"""A real Prometheus scrapes /metrics and answers queries about Stoic's series."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stoic.guard import BreakerPolicy, Dependency, Fallback, Registry, SemaphoreBulkhead
from stoic.web import create_app

from .conftest import free_port, trip

PROMETHEUS = "/usr/bin/prometheus"


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Any]:
    """`start(target_port)` runs Prometheus scraping 127.0.0.1:target_port every second."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(target_port: int) -> str:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: stoic\n"
            "    scrape_interval: 1s\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n"
        )
        log = (tmp_path / "prometheus.log").open("wb")
        proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    return url
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("prometheus was not ready within 30 s")

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _query(url: str, promql: str, seconds: float = 25.0) -> list[dict[str, Any]]:
    """Poll Prometheus until `promql` returns a non-empty vector (bounded in time)."""
    deadline = time.monotonic() + seconds
    while True:
        reply = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5).json()
        assert reply["status"] == "success", reply
        if reply["data"]["result"] or time.monotonic() > deadline:
            return list(reply["data"]["result"])
        time.sleep(0.5)


def test_prometheus_scrapes_guard_metrics(serve: Any, prometheus: Any) -> None:
    registry = Registry()
    playback = Dependency(
        "playback-api",
        registry=registry,
        timeout=1.0,
        owner="playback-team",
        breaker=BreakerPolicy(min_calls=5, error_rate=0.5, open_for=60.0),
        bulkhead=SemaphoreBulkhead(max_concurrent=7),
        fallbacks=[Fallback.value("cached", name="cache")],
    )
    server = serve(create_app(registry))  # its collector counts every call from here on
    for _ in range(4):
        assert playback.call(lambda: "live") == "live"
    assert playback.call(lambda: 1 / 0) == "cached"
    failed = 1 + trip(playback, lambda: 1 / 0)

    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'stoic_breaker_open{dependency="playback-api"} 1.0' in metrics

    url = prometheus(server.port)
    up = _query(url, 'up{job="stoic"} == 1')
    assert up, "Prometheus scraped the dashboard successfully"
    is_open = _query(url, 'stoic_breaker_open{dependency="playback-api"}')
    assert [float(r["value"][1]) for r in is_open] == [1.0]
    state = _query(url, 'stoic_breaker_state{dependency="playback-api"} == 1')
    assert [r["metric"]["state"] for r in state] == ["open"]
    calls = _query(url, 'stoic_dependency_calls_total{dependency="playback-api"}')
    by_outcome = {r["metric"]["outcome"]: float(r["value"][1]) for r in calls}
    assert by_outcome["success"] == 4
    assert by_outcome["failure"] + by_outcome.get("short_circuited", 0) == failed
    # one outcome per attempt, one answer per call: sums count each call once
    attempts = _query(url, 'sum(stoic_dependency_calls_total{dependency="playback-api"})')
    answers = _query(url, 'sum(stoic_dependency_answers_total{dependency="playback-api"})')
    assert float(attempts[0]["value"][1]) == float(answers[0]["value"][1]) == 4 + failed
    fallbacks = _query(url, 'stoic_dependency_fallbacks_total{dependency="playback-api",outcome="success"}')
    assert [(r["metric"]["fallback"], float(r["value"][1])) for r in fallbacks] == [("cache", failed)]
    capacity = _query(url, 'stoic_dependency_max_concurrent{dependency="playback-api"}')
    assert float(capacity[0]["value"][1]) == 7
    # the histogram counts attempts that reached the dependency and aggregates across processes
    count = _query(url, 'stoic_dependency_latency_seconds_count{dependency="playback-api"}')
    assert float(count[0]["value"][1]) == 4 + by_outcome["failure"]
    buckets = 'stoic_dependency_latency_seconds_bucket{dependency="playback-api"}'
    p99 = _query(url, f"histogram_quantile(0.99, sum by (le) ({buckets}))")
    assert p99 and 0 <= float(p99[0]["value"][1]) <= 0.005, "calls that return at once: the first bucket"
