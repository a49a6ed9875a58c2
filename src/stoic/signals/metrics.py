"""Prometheus exposition of a running `SignalsService`: what it took, what fires, what waits,
and every judgement: each label set's newest value, what was expected, the band edges, the
anomaly score and the SLO burn rates, so Grafana can draw them and Prometheus rules can use them.

Registered on the dashboard app's collector registry by `stoic signals run`, so `/metrics`
shows these next to the guard metrics. Label sets are bounded: one `series` per tracked label
set (at most `max_series` per indicator), one `window` per burn-rate rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stoic.signals.alerts import _alertname
from stoic.signals.series import labels_text
from stoic.signals.service import _judge, _mean_since, _span

if TYPE_CHECKING:
    from stoic.signals.hub import Signals
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
        yield GaugeMetricFamily(
            "stoic_signals_silences_active",
            "Silences and maintenance windows in force now",
            value=len(s.silences.all(active_only=True)),
        )
        yield CounterMetricFamily(
            "stoic_signals_alerts_silenced",
            "Firing alerts a silence held back (recorded, not delivered)",
            value=s.router.silenced_count,
        )
        point = ["indicator", "series"]
        score = GaugeMetricFamily(
            "stoic_signals_anomaly_score",
            "Anomaly score of the newest judged point (0 ordinary, 0.5 three decades out)",
            labels=point,
        )
        value = GaugeMetricFamily("stoic_signals_value", "Newest judged value", labels=point)
        expected = GaugeMetricFamily("stoic_signals_expected", "What was expected for it", labels=point)
        lower = GaugeMetricFamily("stoic_signals_band_lower", "Lower edge of the normal band", labels=point)
        upper = GaugeMetricFamily("stoic_signals_band_upper", "Upper edge of the normal band", labels=point)
        burn = GaugeMetricFamily(
            "stoic_signals_burn_rate",
            "SLO error-budget burn rate (1 = on budget) over each rule's long and short window",
            labels=["indicator", "series", "window", "span"],
        )
        alerting = GaugeMetricFamily(
            "stoic_signals_alert",
            "1 for each alert firing now; silenced=\"true\" when a silence holds it back",
            labels=["alertname", "indicator", "series", "severity", "silenced"],
        )
        firing = GaugeMetricFamily(
            "stoic_signals_alerts_firing", "Alerts firing", labels=["indicator", "team", "severity"]
        )
        counts: dict[tuple[str, str, str], int] = {}
        with s.store.lock:
            for per in s.store.series.values():
                for series in per.values():
                    judge = _judge(series)
                    key = [series.spec.name, labels_text(series.labels)]
                    if judge.points:
                        _t, v, e, lo, hi, sc = judge.points[-1]
                        score.add_metric(key, sc)
                        for family, x in ((value, v), (expected, e), (lower, lo), (upper, hi)):
                            if x is not None:
                                family.add_metric(key, x)
                    spec = series.spec
                    if spec.slo is not None and judge.burn_t:
                        t, budget = judge.burn_t[-1], 1.0 - spec.slo
                        for rule in s.burn_rules:
                            window = f"{_span(rule.long)}/{_span(rule.short)}"
                            for span, length in (("long", rule.long), ("short", rule.short)):
                                burn.add_metric([*key, window, span], _mean_since(judge, t - length) / budget)
                    for alert in judge.firing.values():
                        counts[(alert.indicator, alert.team, alert.severity)] = (
                            counts.get((alert.indicator, alert.team, alert.severity), 0) + 1
                        )
                        silenced = "true" if alert.silenced_by else "false"
                        alerting.add_metric([_alertname(alert), *key, alert.severity, silenced], 1.0)
        for k, n in sorted(counts.items()):
            firing.add_metric(list(k), n)
        yield from (score, value, expected, lower, upper, burn, alerting, firing)


class HubCollector(Collector):
    """The same judgements for an embedded `Signals` (`series` is the region), for a service
    that serves its own `/metrics`: `registry.register(HubCollector(signals))`."""

    def __init__(self, signals: Signals) -> None:
        self._signals = signals

    def collect(self) -> Iterator[Metric]:
        s = self._signals
        point = ["indicator", "series"]
        families = {
            name: GaugeMetricFamily(f"stoic_signals_{name}", text, labels=point)
            for name, text in (
                ("value", "Newest judged value"),
                ("expected", "What was expected for it"),
                ("band_lower", "Lower edge of the normal band"),
                ("band_upper", "Upper edge of the normal band"),
                ("anomaly_score", "Anomaly score of the newest judged point"),
            )
        }
        burn = GaugeMetricFamily(
            "stoic_signals_burn_rate",
            "SLO error-budget burn rate (1 = on budget) over each rule's long and short window",
            labels=["indicator", "series", "window", "span"],
        )
        alerting = GaugeMetricFamily(
            "stoic_signals_alert",
            "1 for each alert firing now; silenced=\"true\" when a silence holds it back",
            labels=["alertname", "indicator", "series", "severity", "silenced"],
        )
        now = s.clock()
        with s._lock:
            tracks = [(key, track.points[-1]) for key, track in s._tracks.items() if track.points]
            burns = sorted(s._burn.items())
            firing = list(s._firing.values())
        for (name, region), (_t, v, e, lo, hi, sc) in sorted(tracks):
            judged = {"value": v, "expected": e, "band_lower": lo, "band_upper": hi, "anomaly_score": sc}
            for fam, x in judged.items():
                if x is not None:
                    families[fam].add_metric([name, region], x)
        for region, rate in burns:
            for w in rate.status(at=now):
                window = f"{_span(w.rule.long)}/{_span(w.rule.short)}"
                burn.add_metric(["error_rate", region, window, "long"], w.long_burn)
                burn.add_metric(["error_rate", region, window, "short"], w.short_burn)
        for alert in firing:
            silenced = "true" if alert.silenced_by else "false"
            labels = [_alertname(alert), alert.indicator, alert.region, alert.severity, silenced]
            alerting.add_metric(labels, 1.0)
        yield from (*families.values(), burn, alerting)
        yield GaugeMetricFamily(
            "stoic_signals_silences_active",
            "Silences and maintenance windows in force now",
            value=len(s.silences.all(active_only=True)),
        )
