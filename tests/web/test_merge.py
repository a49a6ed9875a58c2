"""`stoic web --merge` reads several real processes' /hystrix.stream and serves them as one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from stoic.web import HystrixMerge, merge_hystrix

from .conftest import free_port, wait_healthy

# One service process: its own registry, `successes` calls to "ratings" (every process has it)
# and, in the first process only, a dependency nobody else reports.
SERVICE = """
import sys, uvicorn
from stoic.guard import BreakerPolicy, Dependency, Registry, SemaphoreBulkhead
from stoic.fit import Catalog
from stoic.web import create_app
port, successes, failures, only = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
registry = Registry()
# A ten-minute window and a breaker that never trips: the counts stay put however slow the test.
policy = BreakerPolicy(window=600.0, min_calls=1000)
ratings = Dependency("ratings", registry=registry, owner="ratings-team", breaker=policy,
                     bulkhead=SemaphoreBulkhead(max_concurrent=4))
for _ in range(successes):
    ratings.call(lambda: 4.5)
for _ in range(failures):
    try:
        ratings.call(lambda: 1 / 0)
    except Exception:
        pass
if only != "-":
    Dependency(only, registry=registry, breaker=policy).call(lambda: "ok")
uvicorn.run(create_app(registry, scenarios=Catalog()), host="127.0.0.1", port=port, log_level="warning",
            timeout_graceful_shutdown=1)
"""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def processes() -> Iterator[Callable[[list[str]], tuple[str, subprocess.Popen[bytes]]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str]) -> tuple[str, subprocess.Popen[bytes]]:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, *[a.replace("{port}", str(port)) for a in argv]],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "STOIC_WEB_TOKEN": "merge-test-token"},
        )
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        return url, proc

    yield start
    for proc in started:
        _stop(proc)


Commands = dict[str, dict[str, Any]]


def _commands(url: str, want: Callable[[Commands], bool], seconds: float = 20.0) -> Commands:
    """Reads the merged stream until `want(commands by name)` holds (bounded in lines and time)."""
    deadline = time.monotonic() + seconds
    latest: Commands = {}
    while time.monotonic() < deadline:
        with httpx.stream("GET", f"{url}/hystrix.stream?delay=100", timeout=5) as response:
            assert response.status_code == 200
            for n, line in enumerate(response.iter_lines()):
                if line.startswith("data: "):
                    obj = json.loads(line[6:])
                    if obj["type"] == "HystrixCommand":
                        latest[obj["name"]] = obj
                if want(latest):
                    return latest
                if n > 2000 or time.monotonic() > deadline:
                    break
    raise AssertionError(f"the merged stream never showed what was expected: {latest}")


def test_merge_sums_processes_and_counts_reporting_hosts(processes: Any) -> None:
    a, _ = processes(["-c", SERVICE, "{port}", "3", "1", "search"])
    b, _ = processes(["-c", SERVICE, "{port}", "5", "0", "-"])
    c, third = processes(["-c", SERVICE, "{port}", "7", "2", "-"])
    streams = [f"{u}/hystrix.stream?delay=100" for u in (a, b, c)]
    flags = ["--port", "{port}", "--interval", "0.2", "--stale-after", "2", "--merge", *streams]
    merger, _ = processes(["-m", "stoic", "web", *flags])

    merged = _commands(merger, lambda m: m.get("ratings", {}).get("reportingHosts") == 3 and "search" in m)
    ratings = merged["ratings"]
    assert ratings["rollingCountSuccess"] == 3 + 5 + 7
    assert ratings["rollingCountFailure"] == 1 + 0 + 2
    assert ratings["requestCount"] == 18
    assert ratings["errorPercentage"] == round(100 * 3 / 18), "recomputed from the summed counts"
    assert ratings["group"] == "ratings-team"
    assert merged["search"]["reportingHosts"] == 1, "a command only one process has counts one host"

    # The merged commands are also this dashboard's tiles.
    tiles = {d["name"]: d for d in httpx.get(f"{merger}/api/dependencies").json()}
    assert tiles["ratings"]["hosts"] == 3
    assert tiles["ratings"]["counts"]["success"] == 15
    assert tiles["ratings"]["max_concurrent"] == 12, "each process's bulkhead of 4, three times"
    status = httpx.get(f"{merger}/api/merge").json()
    assert [s["connected"] for s in status] == [True, True, True]

    # A process that stops stops counting once its last report is older than --stale-after.
    _stop(third)
    merged = _commands(merger, lambda m: m.get("ratings", {}).get("reportingHosts") == 2)
    assert merged["ratings"]["rollingCountSuccess"] == 3 + 5
    deadline = time.monotonic() + 10
    while True:  # the merge notices the closed connection on its own schedule
        status = httpx.get(f"{merger}/api/merge").json()
        if status[2]["connected"] is False or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [s["connected"] for s in status] == [True, True, False]
    assert status[2]["error"], "why the third stream is down is reported"
    # Writes make no sense on a merged view: there is no breaker here to force.
    forced = httpx.post(
        f"{merger}/api/dependencies/ratings/breaker",
        json={"action": "force_open"},
        headers={"Authorization": "Bearer merge-test-token"},
    )
    assert forced.status_code == 409
    assert forced.json()["field"] == "name"


def test_merging_merged_streams_adds_their_hosts() -> None:
    one = {"type": "HystrixCommand", "name": "x", "requestCount": 10, "errorCount": 1, "reportingHosts": 3,
           "latencyExecute": {"50": 10, "99": 100}, "latencyExecute_mean": 12, "isCircuitBreakerOpen": False}
    two = {"type": "HystrixCommand", "name": "x", "requestCount": 30, "errorCount": 9, "reportingHosts": 1,
           "latencyExecute": {"50": 20, "99": 200}, "latencyExecute_mean": 24, "isCircuitBreakerOpen": True}
    merged = merge_hystrix([one, two])
    assert merged["reportingHosts"] == 4
    assert merged["requestCount"] == 40
    assert merged["errorPercentage"] == 25
    assert merged["isCircuitBreakerOpen"] is True, "open anywhere is shown as open"
    # Weighted by requests: (10*10 + 30*20) / 40 = 17.5 -> 18
    assert merged["latencyExecute"] == {"50": 18, "99": 175}
    assert merged["latencyExecute_mean"] == 21


@pytest.mark.parametrize(
    ("urls", "words"),
    [
        (["ftp://x/hystrix.stream"], "merge: must be an http(s) URL"),
        (["http:///nohost"], "merge: must be an http(s) URL"),
        ("http://one-string", "merge: must be a list of http(s) URLs"),
        ([], "merge: must name 1 to 1000 streams, got 0"),
        ([3], "merge: must be an http(s) URL"),
    ],
)
def test_bad_merge_urls_are_named(urls: Any, words: str) -> None:
    with pytest.raises(ValueError, match=r"^merge: ") as caught:
        HystrixMerge(urls)
    assert words in str(caught.value)


def test_bad_stale_after_is_named() -> None:
    with pytest.raises(ValueError, match=r"^HystrixMerge.stale_after: must be a number in \[0.5, 300\]"):
        HystrixMerge(["http://127.0.0.1:1/hystrix.stream"], stale_after=0)
