"""`call` and the decorator each run the common case in a frame of their own: both must behave
exactly as the reference path (`Dependency._call`), which takes every case the long way.

Triplet dependencies, one called through the reference path, one through `call` and one through the
decorator, take the same random steps on clocks of their own; at every step all three answer the
same, and they report the same metrics and tell their listeners the same events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stoic.guard import (
    AdaptiveBulkhead,
    BreakerPolicy,
    Dependency,
    DependencyFailed,
    Fallback,
    Fault,
    InjectedFailure,
    ManualClock,
    Registry,
    SemaphoreBulkhead,
    deadline,
    inject,
)
from stoic.guard._inject import armed

from .helpers import Ignored, fail_as


class FailTwin:
    """An injector that fails every call to "twin"."""

    def fault_for(self, dependency: str) -> Fault | None:
        return Fault("error") if dependency == "twin" else None


STEP = st.one_of(
    st.tuples(st.just("ok"), st.sampled_from([0.0, 0.002, 0.3, 0.9, 1.5])),  # 1.5: slower than the timeout
    st.tuples(st.sampled_from(["fail", "timeout", "ignored", "caller_error", "nested", "inject",
                               "coroutine"]), st.just(0.0)),
    st.tuples(st.just("advance"), st.sampled_from([0.001, 0.7, 2.0, 6.0, 30.0])),
    st.tuples(st.sampled_from(["force_open", "force_closed", "reset", "look"]), st.just(0.0)),
    st.tuples(st.just("configure"), st.sampled_from([0.0, 1.0, 2.0, 3.0])),
    st.tuples(st.just("in_deadline"), st.sampled_from([0.0, 0.5, 5.0])),  # 0.0: passed already
)

# configure() steps: the decorator reads what configure() changes (the window, the permits)
POLICY = {"window": 10.0, "buckets": 5, "min_calls": 3, "error_rate": 0.5, "open_for": 5.0,
          "check_interval": 0.0, "failure_on": (OSError, TimeoutError), "ignore": (Ignored,)}


ENTRY_POINTS = ("reference", "call", "decorator")


class Twin:
    """One dependency and the function it guards; `entry` picks the entry point (ENTRY_POINTS)."""

    def __init__(self, entry: str, bulkhead: SemaphoreBulkhead | AdaptiveBulkhead | None,
                 listeners: int = 0) -> None:
        self.clock = ManualClock()
        self.dep = Dependency(
            "twin", timeout=1.0, bulkhead=bulkhead, clock=self.clock, registry=Registry(),
            breaker=BreakerPolicy(**POLICY),  # type: ignore[arg-type]
            fallbacks=[Fallback.value("fallback", name="generic")],
        )
        self.guarded: Callable[..., Any] = {
            "reference": lambda *args: self.dep._call(self.primary, args, {}),
            "call": lambda *args: self.dep.call(self.primary, *args),
            "decorator": self.dep(self.primary),
        }[entry]
        self.events: list[tuple[Any, ...]] = []
        for i in range(listeners):  # listeners are told on the fast paths: they must hear the same
            self.dep.listen(lambda e, i=i: self.events.append((i, e.outcome, e.source, e.latency, e.state)))

    def primary(self, kind: str, seconds: float, depth: int = 0) -> Any:
        self.clock.advance(seconds)
        fail_as(kind)
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
            if kind == "in_deadline":  # a request deadline with `seconds` left: none, some, plenty
                with deadline(seconds, clock=self.clock):
                    return "value", self.guarded("ok", 0.002)
            return "value", self.guarded(kind, seconds)
        except (Ignored, ValueError, TypeError, InjectedFailure, DependencyFailed) as exc:
            return "raised", repr(exc)

    def configure(self, which: int) -> None:
        if which == 0:  # another window: a fresh one
            self.dep.configure(breaker=BreakerPolicy(**{**POLICY, "window": 20.0, "buckets": 4}))
        elif which == 1:  # the same window, other thresholds: the window stays
            self.dep.configure(breaker=BreakerPolicy(**{**POLICY, "min_calls": 5, "check_interval": 1.0}))
        elif which == 2 and isinstance(self.dep.bulkhead, SemaphoreBulkhead):  # resized, nothing in flight
            size = 3 if self.dep.bulkhead.max_concurrent == 2 else 2
            self.dep.configure(bulkhead=SemaphoreBulkhead(max_concurrent=size, max_wait=0.0))
        else:
            self.dep.configure(timeout=0.5 if self.dep.timeout == 1.0 else 1.0)

    def report(self) -> dict[str, Any]:
        snapshot = self.dep.snapshot()
        return {key: snapshot[key] for key in ("state", "counts", "fallbacks", "latency_ms", "concurrent",
                                               "max_concurrent", "limit")}


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(STEP, min_size=1, max_size=40), kind=st.sampled_from(["none", "semaphore", "adaptive"]),
       listeners=st.integers(0, 2))
def test_call_and_the_decorator_agree_with_the_reference_step_by_step(
    steps: list[tuple[str, float]], kind: str, listeners: int
) -> None:
    def bulkhead() -> SemaphoreBulkhead | AdaptiveBulkhead | None:
        if kind == "adaptive":  # small batches, so the limit moves within a few steps
            return AdaptiveBulkhead(algorithm="aimd", initial=2, min_limit=1, max_limit=4, samples=2,
                                    slow=0.2, probe_every=0)
        return SemaphoreBulkhead(max_concurrent=2, max_wait=0.0) if kind == "semaphore" else None

    armed[0] = False  # an earlier test's injection would send every call the long way
    reference, *fast = (Twin(entry, bulkhead(), listeners) for entry in ENTRY_POINTS)
    for i, (kind, seconds) in enumerate(steps):
        expected = reference.step(kind, seconds)
        for twin in fast:
            assert twin.step(kind, seconds) == expected, (i, kind, twin.guarded)
    for twin in fast:
        assert twin.report() == reference.report()
        assert twin.events == reference.events
        assert twin.dep.snapshot()["concurrent"] == 0  # every permit came back
        assert twin.dep.snapshot()["deadline_skipped"] == reference.dep.snapshot()["deadline_skipped"]


def test_the_fast_paths_are_taken() -> None:
    """The twins above only prove something if `call` and the decorator really run their own fast
    path: a plain success through either never reaches the reference path."""
    armed[0] = False
    for entry, bulkhead in [(entry, bulkhead) for entry in ("call", "decorator") for bulkhead in (
            SemaphoreBulkhead(max_concurrent=2, max_wait=0.0), AdaptiveBulkhead(initial=2, samples=1))]:
        twin = Twin(entry, bulkhead, listeners=1)
        taken: list[str] = []
        reference = twin.dep._call

        def spy(*args: Any, reference: Callable[..., Any] = reference, taken: list[str] = taken) -> Any:
            taken.append("reference")
            return reference(*args)

        twin.dep._call = spy  # type: ignore[method-assign]
        with deadline(5.0, clock=twin.clock):
            assert twin.step("ok", 0.002) == ("value", "ok:0")
        assert twin.step("ok", 0.002) == ("value", "ok:0")
        assert twin.step("fail", 0.0) == ("value", "fallback")  # a failure recovers without it too
        assert taken == [], (entry, bulkhead)
        twin.dep.breaker.force_open()
        assert twin.step("ok", 0.0) == ("value", "fallback")
        assert taken == ["reference"], (entry, bulkhead)  # an open breaker takes the long way
