"""End to end with real processes: Prometheus holds two weeks of an exporter's history and then
scrapes its live incident; `stoic signals run` learns from `query_range`, pages through a real
Alertmanager to a loopback webhook receiver, is killed and restarted mid-incident, and the
receiver sees exactly one firing and one resolved notification for the incident."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from stoic.chaos import free_port

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
INTERVAL = 5.0  # Stoic's interval for the indicator
HISTORY_DAYS = 14
HISTORY_STEP = 30.0
METRIC = "checkout_error_ratio"

pytestmark = pytest.mark.skipif(
    not all(os.path.exists(p) for p in (PROMETHEUS, PROMTOOL, ALERTMANAGER)),
    reason="needs prometheus, promtool and prometheus-alertmanager (./run setup_system installs them)",
)


def normal(region: str, t: float, rng: random.Random) -> float:
    """The usual error ratio: a daily wave around 1 % (2 % in us) with a little noise."""
    base = 0.01 if region == "eu" else 0.02
    return base * (1.0 + 0.3 * math.sin(2 * math.pi * (t % 86400) / 86400)) * rng.uniform(0.95, 1.05)


class Exporter:
    """/metrics with the error ratio of two regions; `incident` raises eu's to 30 %."""

    def __init__(self) -> None:
        self.incident = False
        self._rng = random.Random(3)
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                now = time.time()
                lines = [f"# TYPE {METRIC} gauge"]
                for region in ("eu", "us"):
                    v = 0.30 if exporter.incident and region == "eu" else normal(region, now, exporter._rng)
                    lines.append(f'{METRIC}{{region="{region}",status="5xx"}} {v}')
                body = ("\n".join(lines) + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class WebhookSink:
    """Alertmanager's webhook receiver: records every notification body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                sink.bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def notifications(self, status: str) -> list[dict[str, Any]]:
        return [b for b in self.bodies if b["status"] == status]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def write_history(path: Path, end: float, instance: str) -> None:
    """Two weeks of the usual ratios, every 30 s, ending at `end` (OpenMetrics for promtool),
    with the labels Prometheus adds when it scrapes the exporter."""
    rng = random.Random(1)
    start = end - HISTORY_DAYS * 86400
    with path.open("w") as f:
        f.write(f"# TYPE {METRIC} gauge\n")
        for region in ("eu", "us"):
            t = start
            while t < end:
                f.write(
                    f'{METRIC}{{instance="{instance}",job="shop",region="{region}",status="5xx"}} '
                    f"{normal(region, t, rng):.6f} {t:.0f}\n"
                )
                t += HISTORY_STEP
        f.write("# EOF\n")


def wait_until(what: str, check: Any, seconds: float, procs: list[subprocess.Popen[bytes]]) -> Any:
    """Poll `check()` until it returns something truthy; bounded in time, fails naming `what`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for p in procs:
            assert p.poll() is None, f"{p.args[0]} exited with {p.returncode} while waiting for {what}"
        result = check()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"gave up waiting {seconds:g} s for {what}")


def ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)


def test_pages_through_alertmanager_and_survives_a_restart_mid_incident(
    tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    exporter, sink = Exporter(), WebhookSink()
    try:
        _run(tmp_path, procs, exporter, sink)
    finally:
        exporter.close()
        sink.close()


def _run(tmp_path: Path, procs: list[subprocess.Popen[bytes]], exporter: Exporter, sink: WebhookSink) -> None:
    # Prometheus: two weeks of history written as blocks before it starts, then live scrapes.
    data = tmp_path / "prometheus"
    history = tmp_path / "history.om"
    write_history(history, time.time() - 60, f"127.0.0.1:{exporter.port}")
    # day-long blocks: far fewer to write than the default two-hour ones
    create = [PROMTOOL, "tsdb", "create-blocks-from", "--max-block-duration=24h", "openmetrics"]
    subprocess.run(
        [*create, str(history), str(data)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    prom_port, am_port, stoic_port = free_port(), free_port(), free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: shop\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{exporter.port}']}}]\n"
    )
    prom_log = (tmp_path / "prometheus.log").open("wb")
    procs.append(
        subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={data}",
                "--storage.tsdb.retention.time=30d",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--log.level=warn",
            ],
            stdout=prom_log,
            stderr=subprocess.STDOUT,
        )
    )
    # Alertmanager: group quickly, never repeat within the test, tell the sink about resolves.
    (tmp_path / "alertmanager.yml").write_text(
        "route:\n"
        "  receiver: sink\n"
        "  group_by: [alertname, indicator, region]\n"
        "  group_wait: 1s\n"
        "  group_interval: 1s\n"
        "  repeat_interval: 1h\n"
        "receivers:\n"
        "  - name: sink\n"
        "    webhook_configs:\n"
        f"      - url: http://127.0.0.1:{sink.port}/\n"
        "        send_resolved: true\n"
    )
    am_log = (tmp_path / "alertmanager.log").open("wb")
    procs.append(
        subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'alertmanager'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=am_log,
            stderr=subprocess.STDOUT,
        )
    )
    prom, am = f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{am_port}"
    wait_until("prometheus ready", lambda: ready(f"{prom}/-/ready"), 60, procs)
    wait_until("alertmanager ready", lambda: ready(f"{am}/-/ready"), 60, procs)
    # the history is there: two weeks ago Prometheus already knew the ratio
    old = httpx.get(
        f"{prom}/api/v1/query", params={"query": METRIC, "time": str(time.time() - 13 * 86400)}, timeout=10
    ).json()
    assert len(old["data"]["result"]) == 2, old

    indicators = tmp_path / "indicators.toml"
    indicators.write_text(
        f"""
[service]
listen = "127.0.0.1:{stoic_port}"
history = "{tmp_path / 'signals.db'}"

[prometheus]
url = "{prom}"
backfill = "2d"

[receivers]
alertmanager = ["{am}"]
resend = "30s"

[[indicators]]
name = "checkout_errors"
source = "prometheus"
query = '{METRIC}'
labels = ["region", "status"]
kind = "ratio"
direction = "up"
team = "payments"
severity = "critical"
interval = "{INTERVAL:g}s"
summary = "Checkout errors in {{region}} ({{status}}) are {{value:.1%}}, expected {{expected:.1%}}"
next_step = "Check the payment provider's status page, then fail over to the backup provider."
runbook_url = "https://runbooks.example/checkout-errors"
"""
    )
    checked = subprocess.run(
        [sys.executable, "-m", "stoic", "signals", "check", str(indicators)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr

    def start_stoic(name: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "stoic", "signals", "run", str(indicators)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        wait_until(f"{name} serving", lambda: ready(f"http://127.0.0.1:{stoic_port}/api/alerts"), 90, procs)
        return proc

    first = start_stoic("stoic-1")
    # a live stretch of ordinary ratios: nothing pages
    wait_until(
        "live points judged",
        lambda: _judged_live(stoic_port, since=time.time() - 3 * INTERVAL),
        60,
        procs,
    )
    assert sink.bodies == []

    incident_at = time.time()
    exporter.incident = True
    firing = wait_until("a firing notification", lambda: sink.notifications("firing"), 60, procs)
    alert = firing[0]["alerts"][0]
    assert alert["labels"]["alertname"] == "IndicatorAnomaly"
    assert {k: alert["labels"][k] for k in ("team", "severity", "indicator", "region", "status")} == {
        "team": "payments",
        "severity": "critical",
        "indicator": "checkout_errors",
        "region": "eu",
        "status": "5xx",
    }
    notes = alert["annotations"]
    assert notes["summary"].startswith("Checkout errors in eu (5xx) are 30.0%, expected ")
    assert notes["next_step"].startswith("Check the payment provider's status page")
    assert notes["runbook_url"] == "https://runbooks.example/checkout-errors"
    assert "30%" in notes["description"] or "0.3" in notes["description"]
    assert notes["cause"]
    # paged for the first interval judged after the incident began (at most two intervals on)
    starts = _epoch(alert["startsAt"])
    assert incident_at - INTERVAL <= starts <= incident_at + INTERVAL, (starts, incident_at)

    # killed mid-incident, without a chance to clean up, and started again
    killed_at = time.time()
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    procs.remove(first)
    start_stoic("stoic-2")
    assert _firing(stoic_port) == ["eu"]
    metrics = httpx.get(f"http://127.0.0.1:{stoic_port}/metrics", timeout=10).text
    labels = 'indicator="checkout_errors",severity="critical",team="payments"'
    assert f"stoic_signals_alerts_firing{{{labels}}} 1.0" in metrics
    # the restarted process re-sends the firing alert to Alertmanager (it is still active there)
    wait_until("the re-sent alert", lambda: _am_updated_after(am, killed_at), 30, procs)

    exporter.incident = False
    wait_until("a resolved notification", lambda: sink.notifications("resolved"), 90, procs)
    time.sleep(3)  # group_interval is 1 s: anything else Alertmanager would send has been sent
    eu = [b for b in sink.bodies if b["commonLabels"].get("region") == "eu"]
    assert [b["status"] for b in eu] == ["firing", "resolved"], json.dumps(sink.bodies)[:2000]
    resolved = eu[1]["alerts"][0]
    assert resolved["labels"]["region"] == "eu" and resolved["endsAt"] > resolved["startsAt"]
    assert [b for b in sink.bodies if b["commonLabels"].get("region") != "eu"] == []


def _epoch(rfc3339: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def _judged_live(port: int, since: float) -> bool:
    view = httpx.get(f"http://127.0.0.1:{port}/api/signals", params={"window": "600"}, timeout=5).json()
    series = view.get("series", [])
    return len(series) == 2 and all(any(p["t"] >= since for p in s["points"]) for s in series)


def _firing(port: int) -> list[str]:
    alerts = httpx.get(f"http://127.0.0.1:{port}/api/alerts", timeout=5).json()
    items = alerts if isinstance(alerts, list) else alerts.get("alerts", [])
    return sorted(a["labels"]["region"] for a in items if a["status"] == "firing")


def _am_updated_after(am: str, t: float) -> bool:
    alerts = httpx.get(f"{am}/api/v2/alerts", timeout=5).json()
    return any(
        a["labels"].get("region") == "eu" and _epoch(a["updatedAt"]) >= t for a in alerts
    )
