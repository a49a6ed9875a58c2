"""The OpenTelemetry bridge, read back through the OTel SDK's in-memory metric reader and span
exporter."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from stoic.guard import BreakerPolicy, Dependency, Fallback, Registry, Retry
from stoic.guard.otel import OpenTelemetry


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def bridge(registry: Registry, reader: InMemoryMetricReader) -> Iterator[OpenTelemetry]:
    bridge = OpenTelemetry(registry, meter_provider=MeterProvider(metric_readers=[reader]))
    yield bridge
    bridge.close()


def points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    """Metric name -> [(attributes, value or histogram point)]."""
    data = reader.get_metrics_data()
    out: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", point)
                    out.setdefault(metric.name, []).append((dict(point.attributes), value))
    return out


def by(rows: list[tuple[dict[str, Any], Any]], key: str) -> dict[str, Any]:
    return {attrs[key]: value for attrs, value in rows}


def test_metrics_count_each_call_once(registry: Registry, reader: InMemoryMetricReader, bridge: Any) -> None:
    dep = Dependency(
        "ratings",
        registry=registry,
        retry=Retry(attempts=2, initial=0.0, maximum=0.0, budget=None),
        fallbacks=[Fallback.value(3.5, name="average")],
    )
    for _ in range(3):
        assert dep.call(lambda: 4.0) == 4.0
    assert dep.call(lambda: 1 / 0) == 3.5  # two attempts, one retry, then the fallback

    seen = points(reader)
    assert by(seen["stoic.dependency.calls"], "outcome") == {"success": 3, "failure": 2}
    assert by(seen["stoic.dependency.answers"], "source") == {"primary": 3, "average": 1}
    assert seen["stoic.dependency.fallbacks"] == [
        ({"dependency": "ratings", "fallback": "average", "outcome": "success"}, 1)
    ]
    assert by(seen["stoic.dependency.retries"], "dependency") == {"ratings": 1}
    (attrs, histogram), = seen["stoic.dependency.latency"]
    assert attrs == {"dependency": "ratings"} and histogram.count == 5 and histogram.sum >= 0


def test_fallbacks_and_breaker_transitions_are_events_on_the_request_span(
    registry: Registry, bridge: Any
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    dep = Dependency(
        "payments",
        registry=registry,
        breaker=BreakerPolicy(min_calls=2, error_rate=0.5, check_interval=0.0),
        fallbacks=[Fallback.value("queued", name="queue")],
    )
    with tracer.start_as_current_span("checkout"):
        for _ in range(3):
            assert dep.call(lambda: 1 / 0) == "queued"
    (span,) = exporter.get_finished_spans()
    events = [(e.name, dict(e.attributes or {})) for e in span.events]
    assert ("stoic.breaker", {"stoic.dependency": "payments", "stoic.state": "open"}) in events
    fallbacks = [attrs for name, attrs in events if name == "stoic.fallback"]
    queued = {"stoic.dependency": "payments", "stoic.fallback": "queue", "stoic.outcome": "success"}
    assert fallbacks == [queued] * 3


def test_close_stops_listening(registry: Registry, reader: InMemoryMetricReader, bridge: Any) -> None:
    dep = Dependency("search", registry=registry)
    dep.call(lambda: 1)
    bridge.close()
    dep.call(lambda: 1)
    assert by(points(reader)["stoic.dependency.calls"], "outcome") == {"success": 1}


def test_the_guard_never_imports_opentelemetry() -> None:
    code = "import sys, stoic.guard; print(any(m.startswith('opentelemetry') for m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False"
