"""Prometheus exposition of guard metrics, read from the registry at every scrape.

Counters and the latency histogram are lifetime values kept from the registry's events, so they
only grow and aggregate across processes (`histogram_quantile(0.99, sum by (le) (rate(...)))`);
the rolling window is exported as gauges. Each kind of event has its own counter, so summing a
counter over its labels counts each thing once: `calls` one per attempt of the primary, `answers`
one per call answered, `fallbacks` one per fallback level tried, `retries` one per retry.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ._views import snapshots

BREAKER_STATES = ("closed", "open", "half_open")
_QUANTILES = (("0.5", "p50"), ("0.9", "p90"), ("0.99", "p99"), ("0.999", "p999"))
#: what happened to one attempt of the primary: exactly one of these per attempt
ATTEMPTS = ("success", "failure", "timeout", "rejected", "short_circuited", "injected")
#: attempts whose latency is the dependency's (not the guard refusing at once)
_TIMED = ("success", "failure", "timeout")
#: seconds: Prometheus' default buckets, which suit request latencies
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GuardCollector(Collector):
    """A prometheus-client collector for every dependency in a guard `Registry`.

    Snapshot values (rolling window) are exported as gauges and a summary; lifetime totals per
    outcome come from the registry's event stream so the `_total` counters never go backwards.
    """

    def __init__(self, registry: Any, namespace: str = "stoic") -> None:
        self._registry = registry
        self._ns = namespace
        self._lock = threading.Lock()
        self._totals: dict[tuple[str, str], int] = {}
        self._answers: dict[tuple[str, str], int] = {}
        self._fallbacks: dict[tuple[str, str, str], int] = {}
        self._retries: dict[str, int] = {}
        self._transitions: dict[tuple[str, str], int] = {}
        self._latency: dict[str, list[float]] = {}  # per dependency: a count per bucket, +Inf, sum
        self._unsubscribe: Any = None
        # Guard keeps no lifetime totals: start from what the rolling window still holds, then count
        # every event, so calls made shortly before the dashboard started are not lost.
        for snap in snapshots(registry):
            name = str(snap.get("name", "unknown"))
            counts = snap.get("counts") or {}
            for outcome, n in counts.items():
                if n and outcome in ATTEMPTS:
                    self._totals[(name, str(outcome))] = int(n)
            if counts.get("retry"):
                self._retries[name] = int(counts["retry"])
            if counts.get("success"):
                self._answers[(name, "primary")] = int(counts["success"])
            for level, n in (snap.get("fallbacks") or {}).items():
                if n:
                    self._answers[(name, str(level))] = int(n)
                    self._fallbacks[(name, str(level), "success")] = int(n)
        listen = getattr(registry, "listen", None)
        if callable(listen):
            self._unsubscribe = listen(self._on_event)

    def close(self) -> None:
        """Stop listening to the registry's events."""
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if callable(unsubscribe):
            with contextlib.suppress(ValueError):  # already removed
                unsubscribe()

    def _on_event(self, event: Any) -> None:
        outcome = getattr(event.outcome, "label", str(event.outcome)).lower()
        with self._lock:
            if outcome == "state_change":
                key = (event.dependency, str(event.state or "unknown"))
                self._transitions[key] = self._transitions.get(key, 0) + 1
                return
            dep = event.dependency
            if outcome == "retry":
                self._retries[dep] = self._retries.get(dep, 0) + 1
                return
            if outcome in ("fallback_success", "fallback_failure"):
                level = (dep, str(event.source), outcome.removeprefix("fallback_"))
                self._fallbacks[level] = self._fallbacks.get(level, 0) + 1
            else:
                self._totals[(dep, outcome)] = self._totals.get((dep, outcome), 0) + 1
                if outcome in _TIMED:
                    self._observe(dep, float(event.latency))
            if outcome in ("success", "fallback_success"):
                src = (dep, str(event.source))
                self._answers[src] = self._answers.get(src, 0) + 1

    def _observe(self, dependency: str, seconds: float) -> None:
        counts = self._latency.get(dependency)
        if counts is None:
            counts = self._latency[dependency] = [0.0] * (len(BUCKETS) + 2)
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                counts[i] += 1
                break
        else:
            counts[len(BUCKETS)] += 1
        counts[-1] += seconds

    def describe(self) -> list[Metric]:
        # Collected lazily: the set of dependencies changes while the process runs.
        return []

    def collect(self) -> Iterator[Metric]:
        ns = self._ns
        snaps = snapshots(self._registry)
        deps = ["dependency"]

        calls = CounterMetricFamily(
            f"{ns}_dependency_calls",
            "Attempts of the primary since process start, by outcome (one outcome per attempt).",
            labels=[*deps, "outcome"],
        )
        fallbacks = CounterMetricFamily(
            f"{ns}_dependency_fallbacks",
            "Fallback levels tried, by level and whether it answered.",
            labels=[*deps, "fallback", "outcome"],
        )
        retries = CounterMetricFamily(f"{ns}_dependency_retries", "Retries of the primary.", labels=deps)
        histogram = HistogramMetricFamily(
            f"{ns}_dependency_latency_seconds",
            "Latency of the primary's attempts that reached the dependency (success, failure, timeout).",
            labels=deps,
        )
        answers = CounterMetricFamily(
            f"{ns}_dependency_answers",
            "Calls answered, by the level that answered (primary or a fallback name).",
            labels=[*deps, "source"],
        )
        transitions = CounterMetricFamily(
            f"{ns}_breaker_transitions",
            "Circuit breaker state changes, by new state.",
            labels=[*deps, "state"],
        )
        with self._lock:
            for (dep, outcome), n in sorted(self._totals.items()):
                calls.add_metric([dep, outcome], n)
            for (dep, source), n in sorted(self._answers.items()):
                answers.add_metric([dep, source], n)
            for (dep, new_state), n in sorted(self._transitions.items()):
                transitions.add_metric([dep, new_state], n)
            for (dep, level, outcome), n in sorted(self._fallbacks.items()):
                fallbacks.add_metric([dep, level, outcome], n)
            for dep, n in sorted(self._retries.items()):
                retries.add_metric([dep], n)
            for dep, observed in sorted(self._latency.items()):
                cumulative, buckets = 0.0, []
                for bound, seen in zip((*BUCKETS, float("inf")), observed[:-1], strict=True):
                    cumulative += seen
                    buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
                histogram.add_metric([dep], buckets, sum_value=observed[-1])
        yield from (calls, answers, fallbacks, retries, transitions, histogram)

        rolling = GaugeMetricFamily(
            f"{ns}_dependency_rolling_calls", "Outcomes in the rolling window.", labels=[*deps, "outcome"]
        )
        requests = GaugeMetricFamily(
            f"{ns}_dependency_requests", "Requests in the rolling window.", labels=deps
        )
        errors = GaugeMetricFamily(
            f"{ns}_dependency_error_ratio", "Error ratio (0..1) in the rolling window.", labels=deps
        )
        state = GaugeMetricFamily(
            f"{ns}_breaker_state",
            "1 for the breaker's current state, 0 for the others.",
            labels=[*deps, "state"],
        )
        is_open = GaugeMetricFamily(f"{ns}_breaker_open", "1 when the breaker is not closed.", labels=deps)
        concurrent = GaugeMetricFamily(f"{ns}_dependency_concurrent", "Calls in flight.", labels=deps)
        max_concurrent = GaugeMetricFamily(
            f"{ns}_dependency_max_concurrent", "Bulkhead capacity (concurrent calls allowed).", labels=deps
        )
        latency = GaugeMetricFamily(
            f"{ns}_dependency_rolling_latency_seconds",
            "Latency percentiles in the rolling window (for one process; aggregate the histogram instead).",
            labels=[*deps, "quantile"],
        )
        for snap in snaps:
            name = str(snap.get("name", "unknown"))
            counts = snap.get("counts") or {}
            for outcome, n in sorted(counts.items()):
                rolling.add_metric([name, str(outcome)], float(n or 0))
            n_requests = float(snap.get("requests", 0) or 0)
            requests.add_metric([name], n_requests)
            errors.add_metric([name], float(snap.get("error_percentage", 0) or 0) / 100.0)
            current = snap.get("state", "closed")
            for s in BREAKER_STATES:
                state.add_metric([name, s], 1.0 if current == s else 0.0)
            is_open.add_metric([name], 0.0 if current == "closed" else 1.0)
            concurrent.add_metric([name], float(snap.get("concurrent", 0) or 0))
            if snap.get("max_concurrent") is not None:  # None: no bulkhead, no capacity to report
                max_concurrent.add_metric([name], float(snap["max_concurrent"]))
            lat = snap.get("latency_ms") or {}
            for q, key in _QUANTILES:
                latency.add_metric([name, q], float(lat.get(key, 0) or 0) / 1000.0)
        yield from (rolling, requests, errors, state, is_open, concurrent, max_concurrent, latency)
