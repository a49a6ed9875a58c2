"""Prometheus exposition of a running `SignalsService`: what it took, what fires, what waits.

Registered on the dashboard app's collector registry by `stoic signals run`, so `/metrics`
shows these next to the guard metrics.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stoic.signals.series import labels_text
from stoic.signals.service import _judge

if TYPE_CHECKING:
    from stoic.signals.service import SignalsService


class SignalsCollector(Collector):
    """Reads the service at every scrape (no state of its own)."""

    def __init__(self, service: SignalsService) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        s = self._service
        yield CounterMetricFamily(
            "stoic_signals_samples_accepted", "Samples taken from every source", value=s.accepted
        )
        yield CounterMetricFamily(
            "stoic_signals_samples_refused", "Samples refused from pull sources", value=s.store.refused
        )
        yield CounterMetricFamily(
            "stoic_signals_pull_errors", "Prometheus queries that failed", value=s.pull_errors
        )
        yield GaugeMetricFamily(
            "stoic_signals_outbox_undelivered",
            "Alert notifications written but not yet delivered",
            value=s.router.outbox.undelivered(),
        )
        score = GaugeMetricFamily(
            "stoic_signals_anomaly_score",
            "Anomaly score of the newest judged point (0 ordinary, 0.5 three decades out)",
            labels=["indicator", "series"],
        )
        firing = GaugeMetricFamily(
            "stoic_signals_alerts_firing", "Alerts firing", labels=["indicator", "team", "severity"]
        )
        counts: dict[tuple[str, str, str], int] = {}
        with s.store.lock:
            for per in s.store.series.values():
                for series in per.values():
                    judge = _judge(series)
                    if judge.points:
                        score.add_metric([series.spec.name, labels_text(series.labels)], judge.points[-1][5])
                    for alert in judge.firing.values():
                        key = (alert.indicator, alert.team, alert.severity)
                        counts[key] = counts.get(key, 0) + 1
        for key, n in sorted(counts.items()):
            firing.add_metric(list(key), n)
        yield score
        yield firing
