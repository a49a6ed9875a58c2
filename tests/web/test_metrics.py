"""GuardCollector: Prometheus text from a real registry, counters that never go backwards."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stoic.guard import Dependency, Fallback, ManualClock, Registry, SemaphoreBulkhead
from stoic.web import GuardCollector


def _samples(metrics: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_totals_outlive_the_rolling_window() -> None:
    clock = ManualClock()
    registry = Registry()
    dep = Dependency(
        "catalog",
        registry=registry,
        clock=clock,
        bulkhead=SemaphoreBulkhead(max_concurrent=3),
        fallbacks=[Fallback.value("stale", name="snapshot")],
    )
    collector = GuardCollector(registry)
    metrics = CollectorRegistry(auto_describe=False)
    metrics.register(collector)
    for _ in range(5):
        dep.call(lambda: "fresh")
    dep.call(lambda: 1 / 0)
    first = _samples(metrics)
    key = ("stoic_dependency_calls_total", (("dependency", "catalog"), ("outcome", "success")))
    assert first[key] == 5
    assert first[("stoic_dependency_answers_total", (("dependency", "catalog"), ("source", "snapshot")))] == 1
    assert first[("stoic_dependency_requests", (("dependency", "catalog"),))] == 6
    assert first[("stoic_dependency_max_concurrent", (("dependency", "catalog"),))] == 3

    clock.advance(60.0)  # the rolling window empties; the lifetime counters must not
    dep.call(lambda: "fresh")
    later = _samples(metrics)
    assert later[key] == 6
    assert later[("stoic_dependency_requests", (("dependency", "catalog"),))] == 1
    assert later[("stoic_breaker_state", (("dependency", "catalog"), ("state", "closed")))] == 1

    collector.close()
    dep.call(lambda: "fresh")
    assert _samples(metrics)[key] == 6, "a closed collector stops counting"


def test_new_dependencies_appear_without_restarting() -> None:
    registry = Registry()
    metrics = CollectorRegistry(auto_describe=False)
    metrics.register(GuardCollector(registry, namespace="shop"))
    assert not any(name.startswith("shop_dependency_requests") for name, _ in _samples(metrics))
    Dependency("basket", registry=registry).call(lambda: 1)
    samples = _samples(metrics)
    assert samples[("shop_dependency_requests", (("dependency", "basket"),))] == 1
    assert samples[("shop_breaker_open", (("dependency", "basket"),))] == 0
