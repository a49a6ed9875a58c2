"""`stoic signals run` as a real process: push ingest over HTTP (all or nothing, errors name the
field), the dashboard API and /metrics; a Prometheus that cannot be reached stops the start with
exit 2 and one line, never a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stoic.chaos import free_port

TOKEN = "s3cret-token-for-tests-0123456789abcdef"


def indicators(tmp_path: Path, port: int, interval: str = "60s") -> Path:
    file = tmp_path / "indicators.toml"
    file.write_text(
        f"""
[service]
listen = "127.0.0.1:{port}"
history = "{tmp_path / 'signals.db'}"

[[indicators]]
name = "orders"
source = "push"
kind = "count"
labels = ["region", "channel"]
direction = "down"
team = "shop"
interval = "{interval}"
"""
    )
    return file


def start(tmp_path: Path, file: Path, port: int, name: str = "run") -> subprocess.Popen[bytes]:
    """`stoic signals run FILE`, once it serves (bounded in time)."""
    log = (tmp_path / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "stoic", "signals", "run", str(file)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "STOIC_SIGNALS_TOKEN": TOKEN},
    )
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, (tmp_path / f"{name}.log").read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/alerts", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "stoic signals run did not serve within 60 s"
        time.sleep(0.2)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = start(tmp_path, indicators(tmp_path, port), port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def post(url: str, body: object, token: str | None = TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{url}/api/signals/ingest", json=body, headers=headers, timeout=10)


def test_push_ingest_is_all_or_nothing_over_http(server: str) -> None:
    good = {"type": "metric", "name": "orders", "labels": {"region": "eu", "channel": "web"}, "value": 12.0}
    bad = {**good, "labels": {"region": "eu", "channel": "web", "shop": "x"}}
    refused = post(server, {"observations": [good, bad]})
    assert refused.status_code == 400
    answer = refused.json()
    assert answer["field"] == "observations[1].labels.shop"
    assert "not a label of orders; declared: region, channel" in answer["error"]
    assert httpx.get(f"{server}/api/signals", timeout=10).json()["series"] == []  # nothing recorded

    assert post(server, {"observations": [good]}, token=None).status_code in (401, 403)
    accepted = post(server, {"observations": [good]})
    assert accepted.status_code == 202 and accepted.json() == {"accepted": 1}
    metrics = httpx.get(f"{server}/metrics", timeout=10).text
    assert "stoic_signals_samples_accepted_total 1.0" in metrics
    assert "stoic_signals_outbox_undelivered 0.0" in metrics


def test_an_unreachable_prometheus_stops_the_start_with_one_line(tmp_path: Path) -> None:
    file = tmp_path / "indicators.toml"
    file.write_text(
        f"""
[service]
listen = "127.0.0.1:{free_port()}"
history = "{tmp_path / 'signals.db'}"
[prometheus]
url = "http://127.0.0.1:{free_port()}"
timeout = "2s"
[[indicators]]
name = "errors"
source = "prometheus"
query = "sum(rate(errors_total[1m]))"
kind = "count"
team = "shop"
"""
    )
    done = subprocess.run(
        [sys.executable, "-m", "stoic", "signals", "run", str(file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "stoic signals: prometheus http://127.0.0.1:" in done.stderr and "ConnectError" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_acknowledged_push_survives_a_crash(tmp_path: Path) -> None:
    port = free_port()
    file = indicators(tmp_path, port, interval="2s")
    url = f"http://127.0.0.1:{port}"
    first = start(tmp_path, file, port, "first")
    try:
        at = time.time() + 0.5  # the interval still open: not judged before the crash
        good = {"type": "metric", "name": "orders", "labels": {"region": "eu", "channel": "app"}}
        assert post(url, {"observations": [{**good, "value": 7.0, "at": at}]}).status_code == 202
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        stop(first)
    second = start(tmp_path, file, port, "second")
    try:
        deadline = time.monotonic() + 30
        while True:
            series = httpx.get(f"{url}/api/signals", timeout=5).json()["series"]
            values = [p["value"] for s in series for p in s["points"] if p["value"] is not None]
            if values:
                break
            assert time.monotonic() < deadline, "the pushed point was not judged after the restart"
            time.sleep(0.5)
        assert values == [7.0]
        assert series[0]["labels"] == {"region": "eu", "channel": "app"}
    finally:
        stop(second)
