"""The decorator runs the common case in a frame of its own: it must behave exactly as `call`.

Twin dependencies, one called through `call` and one through the decorator, take the same random
steps on clocks of their own; at every step both answer the same, and they report the same metrics
whenever they are looked at.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stoic.guard import (
    BreakerPolicy,
    Dependency,
    DependencyFailed,
    Fallback,
    Fault,
    InjectedFailure,
    ManualClock,
    Registry,
    SemaphoreBulkhead,
    inject,
)
from stoic.guard._inject import armed

from .helpers import Unavailable


class FailTwin:
    """An injector that fails every call to "twin"."""

    def fault_for(self, dependency: str) -> Fault | None:
        return Fault("error") if dependency == "twin" else None


class Ignored(Exception):
    """Passes to the caller untouched and counts as nothing (BreakerPolicy.ignore)."""


STEP = st.one_of(
    st.tuples(st.just("ok"), st.sampled_from([0.0, 0.002, 0.3, 0.9, 1.5])),  # 1.5: slower than the timeout
    st.tuples(st.sampled_from(["fail", "timeout", "ignored", "caller_error", "nested", "inject",
                               "coroutine"]), st.just(0.0)),
    st.tuples(st.just("advance"), st.sampled_from([0.001, 0.7, 2.0, 6.0, 30.0])),
    st.tuples(st.sampled_from(["force_open", "force_closed", "reset", "look"]), st.just(0.0)),
    st.tuples(st.just("configure"), st.sampled_from([0.0, 1.0, 2.0, 3.0])),
)

# configure() steps: the decorator reads what configure() changes (the window, the permits)
POLICY = {"window": 10.0, "buckets": 5, "min_calls": 3, "error_rate": 0.5, "open_for": 5.0,
          "check_interval": 0.0, "failure_on": (OSError, TimeoutError), "ignore": (Ignored,)}


class Twin:
    """One dependency and the function it guards; `call` picks the entry point."""

    def __init__(self, decorated: bool, bulkhead: SemaphoreBulkhead | None, listened: bool = False) -> None:
        self.clock = ManualClock()
        self.dep = Dependency(
            "twin", timeout=1.0, bulkhead=bulkhead, clock=self.clock, registry=Registry(),
            breaker=BreakerPolicy(**POLICY),  # type: ignore[arg-type]
            fallbacks=[Fallback.value("fallback", name="generic")],
        )
        self.guarded: Callable[..., Any] = self.dep(self.primary) if decorated else (
            lambda *args: self.dep.call(self.primary, *args))
        self.events: list[tuple[Any, ...]] = []
        if listened:  # a listener is told on the decorator's own fast path: it must hear the same
            self.dep.listen(lambda e: self.events.append((e.outcome, e.source, e.latency, e.state)))

    def primary(self, kind: str, seconds: float, depth: int = 0) -> Any:
        self.clock.advance(seconds)
        if kind == "fail":
            raise Unavailable("503")
        if kind == "timeout":
            raise TimeoutError("no answer")
        if kind == "ignored":
            raise Ignored("not the dependency's fault")
        if kind == "caller_error":
            raise ValueError("bad request")
        if kind == "nested" and depth < 3:  # holds a permit while the next level asks for one
            return [self.guarded("nested", 0.0, depth + 1)]
        if kind == "coroutine":  # an async call made through the sync API: refused, counted as nothing
            return asyncio.sleep(0)
        return f"{kind}:{depth}"

    def step(self, kind: str, seconds: float) -> tuple[str, Any]:
        if kind == "advance":
            self.clock.advance(seconds)
            return "advanced", None
        if kind == "look":  # a snapshot also brings the window up to date: only some steps look
            return "report", self.report()
        if kind in ("force_open", "force_closed", "reset"):
            getattr(self.dep.breaker, kind)()
            return "controlled", None
        if kind == "configure":
            self.configure(int(seconds))
            return "configured", None
        try:
            if kind == "inject":
                try:
                    with inject(FailTwin()):
                        return "value", self.guarded("ok", seconds)
                finally:
                    armed[0] = False  # the process stays armed after an injection: disarm for the next steps
            return "value", self.guarded(kind, seconds)
        except (Ignored, ValueError, TypeError, InjectedFailure, DependencyFailed) as exc:
            return "raised", repr(exc)

    def configure(self, which: int) -> None:
        if which == 0:  # another window: a fresh one
            self.dep.configure(breaker=BreakerPolicy(**{**POLICY, "window": 20.0, "buckets": 4}))
        elif which == 1:  # the same window, other thresholds: the window stays
            self.dep.configure(breaker=BreakerPolicy(**{**POLICY, "min_calls": 5, "check_interval": 1.0}))
        elif which == 2 and self.dep.bulkhead is not None:  # resized while nothing is in flight
            size = 3 if self.dep.bulkhead.max_concurrent == 2 else 2  # type: ignore[union-attr]
            self.dep.configure(bulkhead=SemaphoreBulkhead(max_concurrent=size, max_wait=0.0))
        else:
            self.dep.configure(timeout=0.5 if self.dep.timeout == 1.0 else 1.0)

    def report(self) -> dict[str, Any]:
        snapshot = self.dep.snapshot()
        return {key: snapshot[key] for key in ("state", "counts", "fallbacks", "latency_ms", "concurrent")}


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(STEP, min_size=1, max_size=40), bounded=st.booleans(), listened=st.booleans())
def test_the_decorator_and_call_agree_step_by_step(
    steps: list[tuple[str, float]], bounded: bool, listened: bool
) -> None:
    def bulkhead() -> SemaphoreBulkhead | None:
        return SemaphoreBulkhead(max_concurrent=2, max_wait=0.0) if bounded else None

    armed[0] = False  # an earlier test's injection would send every call through `call`
    by_call, by_decorator = Twin(False, bulkhead(), listened), Twin(True, bulkhead(), listened)
    for i, (kind, seconds) in enumerate(steps):
        answers = by_call.step(kind, seconds), by_decorator.step(kind, seconds)
        assert answers[0] == answers[1], (i, kind)
    assert by_call.report() == by_decorator.report()
    assert by_call.events == by_decorator.events
    assert by_decorator.dep.snapshot()["concurrent"] == 0  # every permit came back
