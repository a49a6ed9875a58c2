"""The Prometheus source against a loopback HTTP server speaking Prometheus's query API: an
outage is retried at a bounded pace, and the intervals it missed are filled from `query_range`
once it answers again, so no interval is judged without its value."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from stoic.signals.config import parse
from stoic.signals.prometheus import MAX_POINTS, PrometheusError, PrometheusSource
from stoic.signals.service import SignalsService


class QueryAPI:
    """Answers `/api/v1/query_range` with the value 1.0 for region eu at every step, or 503
    while `down`; counts requests and records each query's points."""

    def __init__(self) -> None:
        self.down = False
        self.requests = 0
        self.failed = 0
        self.points: list[int] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                q = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                server.requests += 1
                if server.down:
                    server.failed += 1
                    self._answer(503, {"status": "error", "errorType": "unavailable", "error": "overloaded"})
                    return
                start, end, step = float(q["start"]), float(q["end"]), float(q["step"])
                n = int((end - start) / step) + 1
                server.points.append(n)
                values = [[start + i * step, "1"] for i in range(n)]
                result = [{"metric": {"__name__": "up", "region": "eu", "job": "x"}, "values": values}]
                self._answer(200, {"status": "success", "data": {"resultType": "matrix", "result": result}})

            def _answer(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def prom() -> Iterator[QueryAPI]:
    p = QueryAPI()
    yield p
    p.close()


def test_a_long_range_is_asked_in_chunks_prometheus_accepts(prom: QueryAPI) -> None:
    source = PrometheusSource(prom.url, timeout=5.0)
    try:
        [series] = source.query_range("up", 1_764_000_000.0, 1_764_000_000.0 + 30_000 * 5, 5.0)
    finally:
        source.close()
    assert max(prom.points) <= MAX_POINTS and len(prom.points) == 3
    times = [t for t, _ in series.points]
    assert len(times) == 30_001 and times == sorted(set(times))  # merged, no point twice


def test_an_outage_is_retried_at_a_bounded_pace_and_its_gap_filled(
    prom: QueryAPI, tmp_path: Path
) -> None:
    config = parse(
        f"""
[service]
history = "{tmp_path / 'signals.db'}"
[prometheus]
url = "{prom.url}"
backfill = "2m"
[[indicators]]
name = "up_ratio"
source = "prometheus"
query = "up"
labels = ["region"]
kind = "ratio"
team = "infra"
interval = "1s"
"""
    )
    service = SignalsService(config)
    try:
        service.start()
        outage_from = time.time()
        prom.down = True
        time.sleep(3.0)
        prom.down = False
        outage_to = time.time()
        assert service.pull_errors >= 1
        assert prom.failed <= 10  # about one try a second, not a busy loop
        deadline = time.monotonic() + 20
        while True:
            [series] = service.view(window=300.0)["series"]
            ts = {p["t"]: p["value"] for p in series["points"]}
            gap = [t for t in range(int(outage_from), int(outage_to)) if t in ts]
            if len(gap) == int(outage_to) - int(outage_from):
                break
            assert time.monotonic() < deadline, "the outage's intervals were not filled"
            time.sleep(0.2)
        assert all(ts[t] == 1.0 for t in gap)  # every interval of the outage has its value
    finally:
        service.close()


def test_a_refusal_names_prometheus_and_its_error(prom: QueryAPI) -> None:
    prom.down = True
    source = PrometheusSource(prom.url, timeout=5.0)
    try:
        with pytest.raises(PrometheusError, match=r"/api/v1/query_range: 503: overloaded$"):
            source.query_range("up", 1_764_000_000.0, 1_764_000_060.0, 5.0)
    finally:
        source.close()
