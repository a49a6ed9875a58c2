"""/hystrix.stream speaks the Hystrix dashboard's format."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from stoic.guard import BreakerPolicy, Dependency, Fallback, Registry, ThreadPoolBulkhead
from stoic.web import create_app

from .conftest import trip

REQUIRED = {
    "type",
    "name",
    "group",
    "currentTime",
    "isCircuitBreakerOpen",
    "errorPercentage",
    "errorCount",
    "requestCount",
    "rollingCountSuccess",
    "rollingCountFailure",
    "rollingCountTimeout",
    "rollingCountShortCircuited",
    "rollingCountThreadPoolRejected",
    "rollingCountSemaphoreRejected",
    "rollingCountFallbackSuccess",
    "latencyExecute",
    "latencyExecute_mean",
    "latencyTotal",
    "reportingHosts",
    "propertyValue_circuitBreakerErrorThresholdPercentage",
    "propertyValue_executionIsolationStrategy",
    "currentConcurrentExecutionCount",
    "propertyValue_metricsRollingStatisticalWindowInMilliseconds",
}


def _read(url: str, want: int, seconds: float = 10.0) -> list[dict[str, Any]]:
    """The first `want` data objects of the stream (bounded in count and time)."""
    objects: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    with httpx.stream("GET", url, timeout=5) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                objects.append(json.loads(line[6:]))
            if len(objects) >= want or time.monotonic() > deadline:
                break
    return objects


def test_stream_reports_commands_and_thread_pools(serve: Any) -> None:
    registry = Registry()
    ratings = Dependency(
        "ratings",
        registry=registry,
        owner="ratings-team",
        timeout=0.25,
        breaker=BreakerPolicy(min_calls=4, error_rate=0.5, open_for=30.0),
        fallbacks=[Fallback.value(3.0, name="average")],
    )
    artwork = Dependency(
        "artwork",
        registry=registry,
        owner="artwork-team",
        timeout=1.0,
        bulkhead=ThreadPoolBulkhead(workers=2, queue=2),
    )
    for _ in range(3):
        assert ratings.call(lambda: 4.5) == 4.5
        assert artwork.call(lambda: b"png") == b"png"
    assert ratings.call(lambda: 1 / 0) == 3.0
    failed = 1 + trip(ratings, lambda: 1 / 0)

    server = serve(create_app(registry))
    objects = _read(f"{server.url}/hystrix.stream?delay=100", want=6)
    commands = {o["name"]: o for o in objects if o["type"] == "HystrixCommand"}
    pools = {o["name"]: o for o in objects if o["type"] == "HystrixThreadPool"}
    assert set(commands) == {"ratings", "artwork"}
    assert set(pools) == {"artwork"}, "only thread-pool isolated dependencies report a pool"
    for command in commands.values():
        assert set(command) >= REQUIRED, REQUIRED - set(command)
        assert set(command["latencyExecute"]) == {"0", "25", "50", "75", "90", "95", "99", "99.5", "100"}
        assert command["reportingHosts"] == 1
        assert abs(command["currentTime"] / 1000 - time.time()) < 30

    r = commands["ratings"]
    assert r["isCircuitBreakerOpen"] is True
    assert r["group"] == "ratings-team"
    assert r["rollingCountSuccess"] == 3
    assert r["rollingCountFailure"] + r["rollingCountShortCircuited"] == failed
    assert r["rollingCountFallbackSuccess"] == failed
    assert r["requestCount"] == 3 + failed
    assert r["errorCount"] == failed
    assert r["errorPercentage"] == round(100 * failed / (3 + failed))
    assert r["propertyValue_circuitBreakerRequestVolumeThreshold"] == 4
    assert r["propertyValue_circuitBreakerSleepWindowInMilliseconds"] == 30000
    assert r["propertyValue_executionTimeoutInMilliseconds"] == 250
    assert r["propertyValue_executionIsolationStrategy"] == "SEMAPHORE"

    a = commands["artwork"]
    assert a["isCircuitBreakerOpen"] is False
    assert a["rollingCountSuccess"] == 3
    assert a["errorPercentage"] == 0
    assert a["propertyValue_executionIsolationStrategy"] == "THREAD"
    assert pools["artwork"]["currentMaximumPoolSize"] == 2
    assert pools["artwork"]["propertyValue_queueSizeRejectionThreshold"] == 2
    assert pools["artwork"]["rollingCountThreadsExecuted"] == 3


def test_stream_follows_forced_breaker(serve: Any) -> None:
    registry = Registry()
    dep = Dependency("search", registry=registry)
    dep.call(lambda: "hit")
    server = serve(create_app(registry))
    before = _read(f"{server.url}/hystrix.stream?delay=100", want=1)[0]
    assert before["isCircuitBreakerOpen"] is False
    assert before["propertyValue_circuitBreakerForceOpen"] is False
    dep.breaker.force_open()
    after = _read(f"{server.url}/hystrix.stream?delay=100", want=1)[0]
    assert after["isCircuitBreakerOpen"] is True
    assert after["propertyValue_circuitBreakerForceOpen"] is True
