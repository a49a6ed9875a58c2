"""OpenTelemetry for the guard: metrics through the OTel API, and span events for what a request
lived through. `pip install stoic[otel]`; `import stoic.guard` itself never loads OpenTelemetry.

    from stoic.guard.otel import OpenTelemetry
    bridge = OpenTelemetry()          # the global meter and the current span, for every dependency
    ...
    bridge.close()

Instruments (meter `stoic.guard`), each counting one kind of thing so sums count a call once:

- `stoic.dependency.calls` {dependency, outcome}: one per attempt of the primary (success, failure,
  timeout, rejected, short_circuited, injected);
- `stoic.dependency.answers` {dependency, source}: one per call answered (primary or a fallback);
- `stoic.dependency.fallbacks` {dependency, fallback, outcome}: one per fallback level tried;
- `stoic.dependency.retries` {dependency};
- `stoic.dependency.latency` (s) {dependency}: a histogram of the attempts that reached the
  dependency;
- `stoic.breaker.transitions` {dependency, state}.

Span events, on the span current when it happened (the request's, since listeners run on the
caller's thread or task): `stoic.fallback` with `stoic.dependency`, `stoic.fallback` and
`stoic.outcome`, and `stoic.breaker` with `stoic.dependency` and `stoic.state`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from opentelemetry import metrics, trace

from ._events import Event, Outcome
from ._registry import Registry
from ._registry import registry as default_registry

__all__ = ["OpenTelemetry"]

_ATTEMPTS = frozenset(
    {
        Outcome.SUCCESS,
        Outcome.FAILURE,
        Outcome.TIMEOUT,
        Outcome.REJECTED,
        Outcome.SHORT_CIRCUITED,
        Outcome.INJECTED,
    }
)
_TIMED = frozenset({Outcome.SUCCESS, Outcome.FAILURE, Outcome.TIMEOUT})
_FALLBACKS = {Outcome.FALLBACK_SUCCESS: "success", Outcome.FALLBACK_FAILURE: "failure"}


class OpenTelemetry:
    """Listens to a guard `Registry` (every dependency in it, now and later) and reports through
    OpenTelemetry: `meter_provider` (default: the global one) for the instruments, the current span
    for events. `close()` stops listening."""

    def __init__(
        self, registry: Registry = default_registry, *, meter_provider: metrics.MeterProvider | None = None
    ) -> None:
        meter = (meter_provider or metrics.get_meter_provider()).get_meter("stoic.guard")
        self._calls = meter.create_counter(
            "stoic.dependency.calls", unit="{call}", description="Attempts of the primary, by outcome."
        )
        self._answers = meter.create_counter(
            "stoic.dependency.answers", unit="{call}", description="Calls answered, by who answered."
        )
        self._fallbacks = meter.create_counter(
            "stoic.dependency.fallbacks", unit="{call}", description="Fallback levels tried."
        )
        self._retries = meter.create_counter(
            "stoic.dependency.retries", unit="{call}", description="Retries of the primary."
        )
        self._latency = meter.create_histogram(
            "stoic.dependency.latency", unit="s", description="Attempts that reached the dependency."
        )
        self._transitions = meter.create_counter(
            "stoic.breaker.transitions", unit="{transition}", description="Circuit breaker state changes."
        )
        self._unsubscribe: Callable[[], None] | None = registry.listen(self._on_event)

    def close(self) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            with contextlib.suppress(ValueError):
                unsubscribe()

    def _on_event(self, event: Event) -> None:
        outcome, dependency = event.outcome, event.dependency
        if outcome in _ATTEMPTS:
            self._calls.add(1, {"dependency": dependency, "outcome": outcome.label})
            if outcome in _TIMED:
                self._latency.record(event.latency, {"dependency": dependency})
            if outcome is Outcome.SUCCESS:
                self._answers.add(1, {"dependency": dependency, "source": event.source})
        elif outcome in _FALLBACKS:
            result = _FALLBACKS[outcome]
            self._fallbacks.add(1, {"dependency": dependency, "fallback": event.source, "outcome": result})
            if outcome is Outcome.FALLBACK_SUCCESS:
                self._answers.add(1, {"dependency": dependency, "source": event.source})
            trace.get_current_span().add_event(
                "stoic.fallback",
                {"stoic.dependency": dependency, "stoic.fallback": event.source, "stoic.outcome": result},
            )
        elif outcome is Outcome.RETRY:
            self._retries.add(1, {"dependency": dependency})
        elif outcome is Outcome.STATE_CHANGE:
            state = event.state or "unknown"
            self._transitions.add(1, {"dependency": dependency, "state": state})
            trace.get_current_span().add_event(
                "stoic.breaker", {"stoic.dependency": dependency, "stoic.state": state}
            )
