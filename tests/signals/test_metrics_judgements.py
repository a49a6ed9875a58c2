"""`/metrics` of a real `stoic signals run` process exports every judgement: each label set's
value, expected value, band edges and anomaly score, the SLO burn rates per rule and window, the
firing alerts and the silences, with Prometheus types, parsed by prometheus-client's parser."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from stoic.chaos import free_port

from .test_run_cli import post, start, stop


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    file = tmp_path / "indicators.toml"
    file.write_text(
        f"""
[service]
listen = "127.0.0.1:{port}"
history = "{tmp_path / 'signals.db'}"

[[indicators]]
name = "payment_errors"
source = "push"
kind = "ratio"
labels = ["region"]
direction = "up"
slo = 0.999
team = "payments"
"""
    )
    proc = start(tmp_path, file, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def test_metrics_export_value_expected_band_score_burn_rates_and_alerts(server: str) -> None:
    now = time.time()
    first = (now // 60) * 60 - 180 * 60
    points = [
        {
            "type": "metric",
            "name": "payment_errors",
            "labels": {"region": "eu"},
            "value": 0.0005 if i < 150 else 0.05,  # the last half hour burns 50x the budget
            "at": first + 60 * i,
        }
        for i in range(178)
    ]
    assert post(server, {"observations": points}).status_code == 202
    text = ""
    for _ in range(100):  # bounded: the service judges the pushed hours at once
        text = httpx.get(f"{server}/metrics", timeout=10).text
        if 'alertname="SLOBurnRate"' in text:
            break
        time.sleep(0.2)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    series = '{region="eu"}'

    def one(name: str, **labels: str) -> float:
        family = families[name]
        want = {"indicator": "payment_errors", "series": series, **labels}
        values = [s.value for s in family.samples if all(s.labels.get(k) == v for k, v in want.items())]
        assert len(values) == 1, (name, labels, family.samples)
        return values[0]

    for name in ("stoic_signals_value", "stoic_signals_expected", "stoic_signals_anomaly_score",
                 "stoic_signals_band_lower", "stoic_signals_band_upper", "stoic_signals_burn_rate",
                 "stoic_signals_alert", "stoic_signals_silences_active"):  # fmt: skip
        assert families[name].type == "gauge", name
    assert families["stoic_signals_alerts_silenced"].type == "counter"
    assert one("stoic_signals_value") == pytest.approx(0.05)
    assert one("stoic_signals_expected") < 0.05
    assert one("stoic_signals_expected") < one("stoic_signals_band_upper") < 0.05  # out of its band
    assert families["stoic_signals_band_lower"].samples == []  # direction "up": no lower edge to judge
    # the evidence of the point, held for as long as the anomaly lasts (not only on its first point)
    assert 0.5 <= one("stoic_signals_anomaly_score") < 1.0
    assert one("stoic_signals_burn_rate", window="1h/5m", span="short") == pytest.approx(50.0)
    assert 14.4 <= one("stoic_signals_burn_rate", window="1h/5m", span="long") < 50.0
    windows = {s.labels["window"] for s in families["stoic_signals_burn_rate"].samples}
    assert windows == {"1h/5m", "6h/30m", "3d/6h"}
    assert one("stoic_signals_alert", alertname="SLOBurnRate", severity="critical", silenced="false") == 1.0


def test_an_embedded_signals_exports_the_same_judgements(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry, start_http_server

    from stoic.signals import BurnRateRule, Signals
    from stoic.signals.grouping import Grouping
    from stoic.signals.metrics import HubCollector

    now = [1_764_064_800.0]
    signals = Signals(
        interval=1.0,
        day=60.0,
        time_scale=60.0,
        clock=lambda: now[0],
        burn_rules=(BurnRateRule(3600, 300, 14.4, "page"),),
        grouping=Grouping(group_wait=0.0),
    )
    for second in range(70):
        bad = 50 if second >= 65 else 0
        signals.observe_start("eu-west", ok=True, count=100 - bad)
        if bad:
            signals.observe_start("eu-west", ok=False, count=bad)
        now[0] += 1.0
        signals.evaluate()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(signals))
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        server.shutdown()
        thread.join(5)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    values = {s.labels["indicator"]: s.value for s in families["stoic_signals_value"].samples}
    assert values["sps"] == pytest.approx(50.0) and values["error_rate"] == pytest.approx(0.5)
    short = [s.value for s in families["stoic_signals_burn_rate"].samples if s.labels["span"] == "short"]
    assert short == [pytest.approx(500.0)]
    alerts = {(s.labels["alertname"], s.labels["series"]) for s in families["stoic_signals_alert"].samples}
    assert ("SLOBurnRate", "eu-west") in alerts
    signals.close()
