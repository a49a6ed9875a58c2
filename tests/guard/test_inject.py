"""The fault injection point: per-context and process-wide injectors, every fault kind."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from stoic.guard import (
    BreakerPolicy,
    BulkheadFull,
    Dependency,
    DependencyFailed,
    Fallback,
    Fault,
    InjectedFailure,
    ManualClock,
    Outcome,
    Registry,
    ThreadPoolBulkhead,
    current_fault,
    inject,
    set_process_injector,
)

from .helpers import boom

Runner = Callable[[Coroutine[Any, Any, Any]], Any]


class Plan:
    """Fault `fault` for the named dependencies ("*" for all)."""

    def __init__(self, fault: Fault, *names: str) -> None:
        self.fault = fault
        self.names = set(names) or {"*"}
        self.asked: list[str] = []

    def fault_for(self, dependency: str) -> Fault | None:
        self.asked.append(dependency)
        return self.fault if "*" in self.names or dependency in self.names else None


class Primary:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, value: str = "fresh") -> str:
        self.calls += 1
        return value


def guarded(clock: ManualClock, reg: Registry, name: str = "svc", **kw: Any) -> Dependency:
    kw.setdefault("fallbacks", [Fallback.value("fallback", name="generic")])
    return Dependency(name, registry=reg, clock=clock, **kw)


def test_error_fault(clock: ManualClock, reg: Registry) -> None:
    dep, primary = guarded(clock, reg, fallbacks=[]), Primary()
    plan = Plan(Fault("error", message="chaos says no"), "svc")
    with inject(plan), pytest.raises(DependencyFailed) as info:
        dep.call(primary)
    error = info.value.causes[0][1]
    assert isinstance(error, InjectedFailure) and "chaos says no" in str(error)
    assert primary.calls == 0
    counts = dep.snapshot()["counts"]
    assert (counts["injected"], counts["failure"]) == (1, 0)  # this request's fault, not the dependency's


def test_timeout_fault(clock: ManualClock, reg: Registry) -> None:
    dep, primary = guarded(clock, reg), Primary()
    with inject(Plan(Fault("timeout"), "svc")):
        result = dep.execute(primary)
    assert (result.value, result.outcome) == ("fallback", Outcome.TIMEOUT)
    assert primary.calls == 0
    counts = dep.snapshot()["counts"]
    assert (counts["injected"], counts["timeout"]) == (1, 0)


def test_reject_fault(clock: ManualClock, reg: Registry) -> None:
    dep, primary = guarded(clock, reg, fallbacks=[]), Primary()
    with inject(Plan(Fault("reject"), "svc")), pytest.raises(DependencyFailed) as info:
        dep.call(primary)
    assert isinstance(info.value.causes[0][1], BulkheadFull)
    assert primary.calls == 0
    snap = dep.snapshot()
    assert (snap["counts"]["injected"], snap["counts"]["rejected"], snap["concurrent"]) == (1, 0, 0)


def test_delay_fault_sync(clock: ManualClock, reg: Registry) -> None:
    dep, primary = guarded(clock, reg, timeout=0.5), Primary()
    with inject(Plan(Fault("delay", delay=0.2), "svc")):
        result = dep.execute(primary)
    assert (result.value, result.source) == ("fresh", "primary")
    assert result.latency == pytest.approx(0.2)
    with inject(Plan(Fault("delay", delay=0.8), "svc")):  # past the deadline: a sync call is slow
        assert dep.call(primary) == "fresh"
    counts = dep.snapshot()["counts"]  # the calls ran, but their latency was the request's doing
    assert (counts["injected"], counts["success"], counts["slow"], primary.calls) == (2, 0, 0, 2)


def test_delay_fault_async_is_inside_the_deadline(clock: ManualClock, reg: Registry,
                                                  run_virtual: Runner) -> None:
    dep = guarded(clock, reg, timeout=0.5)

    async def primary() -> str:
        await asyncio.sleep(0.01)
        return "fresh"

    async def main() -> tuple[Any, Any]:
        with inject(Plan(Fault("delay", delay=0.2), "svc")):
            short = await dep.aexecute(primary)
        with inject(Plan(Fault("delay", delay=2.0), "svc")):
            long = await dep.aexecute(primary)
        return short, long

    short, long = run_virtual(main())
    assert (short.value, short.latency) == ("fresh", pytest.approx(0.21))
    assert (long.value, long.outcome) == ("fallback", Outcome.TIMEOUT)
    assert long.latency == pytest.approx(0.5)  # cancelled at the deadline, not after the 2 s delay


def test_real_loop_delay_fault_times_out(reg: Registry) -> None:
    dep = Dependency("svc", timeout=0.05, registry=reg,
                     fallbacks=[Fallback.value("fallback", name="generic")])

    async def primary() -> str:
        return "fresh"

    async def main() -> Any:
        with inject(Plan(Fault("delay", delay=10.0), "svc")):
            return await dep.aexecute(primary)

    result = asyncio.run(main())
    assert (result.value, result.outcome) == ("fallback", Outcome.TIMEOUT)


def test_async_fault_kinds(clock: ManualClock, reg: Registry, run_virtual: Runner) -> None:
    dep = guarded(clock, reg, timeout=0.5)

    async def primary() -> str:
        return "fresh"

    async def main() -> list[Outcome]:
        outcomes = []
        for kind in ("error", "timeout", "reject"):
            with inject(Plan(Fault(kind), "svc")):  # type: ignore[arg-type]
                outcomes.append((await dep.aexecute(primary)).outcome)
        return outcomes

    assert run_virtual(main()) == [Outcome.FAILURE, Outcome.TIMEOUT, Outcome.REJECTED]


def test_only_the_named_dependency_is_hit(clock: ManualClock, reg: Registry) -> None:
    ratings, catalog = guarded(clock, reg, "ratings"), guarded(clock, reg, "catalog")
    with inject(Plan(Fault("error"), "ratings")):
        assert ratings.execute(Primary()).source == "generic"
        assert catalog.execute(Primary()).source == "primary"


def test_fallbacks_are_never_injected(clock: ManualClock, reg: Registry) -> None:
    plan = Plan(Fault("error"))  # every dependency
    asked: list[str] = []

    def snapshot() -> str:
        asked.append("snapshot")
        return "snapshot"

    dep = guarded(clock, reg, fallbacks=[Fallback(snapshot, name="snapshot")])
    with inject(plan):
        assert dep.execute(Primary()).source == "snapshot"
    assert plan.asked == ["svc"] and asked == ["snapshot"]


def test_inject_affects_only_this_thread(clock: ManualClock, reg: Registry) -> None:
    dep = guarded(clock, reg)
    inside, outside = threading.Event(), threading.Event()
    seen: dict[str, str] = {}

    def other_thread() -> None:
        inside.wait(10)
        seen["other"] = dep.execute(Primary()).source
        outside.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with inject(Plan(Fault("error"))):
        inside.set()
        outside.wait(10)  # the other thread calls while this one is injected
        seen["this"] = dep.execute(Primary()).source
    thread.join(10)
    assert seen == {"other": "primary", "this": "generic"}
    assert dep.execute(Primary()).source == "primary"  # the context manager undid it


def test_inject_affects_only_this_task(clock: ManualClock, reg: Registry, run_virtual: Runner) -> None:
    dep = guarded(clock, reg, timeout=1.0)

    async def primary() -> str:
        await asyncio.sleep(0.1)
        return "fresh"

    async def injected() -> str:
        with inject(Plan(Fault("error"))):
            await asyncio.sleep(0.05)  # the plain task runs its call in between
            return (await dep.aexecute(primary)).source

    async def plain() -> str:
        await asyncio.sleep(0.05)
        return (await dep.aexecute(primary)).source

    async def main() -> list[str]:
        return list(await asyncio.gather(injected(), plain(), injected(), plain()))

    assert run_virtual(main()) == ["generic", "primary", "generic", "primary"]


def test_process_injector_hits_every_context_until_removed(clock: ManualClock, reg: Registry) -> None:
    dep = guarded(clock, reg)
    set_process_injector(Plan(Fault("error"), "svc"))
    sources: list[str] = []
    thread = threading.Thread(target=lambda: sources.append(dep.execute(Primary()).source))
    thread.start()
    thread.join(10)
    sources.append(dep.execute(Primary()).source)
    assert sources == ["generic", "generic"]
    assert current_fault("svc") == Fault("error")
    set_process_injector(None)
    assert dep.execute(Primary()).source == "primary"
    assert current_fault("svc") is None


def test_the_request_injector_comes_first(clock: ManualClock, reg: Registry) -> None:
    set_process_injector(Plan(Fault("error"), "svc"))
    with inject(Plan(Fault("timeout"), "svc")):
        assert current_fault("svc") == Fault("timeout")
    with inject(Plan(Fault("timeout"), "other")):  # no opinion on svc: the process injector decides
        assert current_fault("svc") == Fault("error")


def test_context_follows_calls_into_thread_pool_workers(clock: ManualClock, reg: Registry) -> None:
    inner = guarded(clock, reg, "inner")
    outer = Dependency("outer", timeout=5.0, bulkhead=ThreadPoolBulkhead(workers=2), registry=reg)
    worker_threads: list[str] = []

    def handler() -> str:
        worker_threads.append(threading.current_thread().name)
        return inner.execute(Primary()).source

    try:
        with inject(Plan(Fault("error"), "inner")):
            assert outer.call(handler) == "generic"  # the worker saw this request's plan
        assert outer.call(handler) == "primary"  # and a request without one does not
    finally:
        outer.close()
    assert all(name.startswith("stoic-outer") for name in worker_threads)


def test_delay_in_a_thread_pool_past_the_deadline_times_out(reg: Registry) -> None:
    dep = Dependency("svc", timeout=0.05, bulkhead=ThreadPoolBulkhead(workers=1), registry=reg,
                     fallbacks=[Fallback.value("fallback", name="generic")])
    try:
        with inject(Plan(Fault("delay", delay=0.3), "svc")):
            result = dep.execute(Primary())
        assert (result.value, result.outcome) == ("fallback", Outcome.TIMEOUT)
    finally:
        dep.close()


# -- a request's own faults stay out of the shared breaker ---------------------------------------
def breaking(clock: ManualClock, reg: Registry, **kw: Any) -> Dependency:
    return guarded(clock, reg, timeout=1.0, breaker=BreakerPolicy(min_calls=5, check_interval=0.0,
                                                                   open_for=5.0), **kw)


def test_a_requests_injected_failures_never_open_the_breaker(clock: ManualClock, reg: Registry) -> None:
    dep = breaking(clock, reg)
    for kind in ("error", "timeout", "reject") * 4:  # twelve injected failures from one developer
        with inject(Plan(Fault(kind), "svc")):  # type: ignore[arg-type]
            assert dep.execute(Primary()).source == "generic"  # the fallback is still exercised
    assert dep.breaker.state == "closed"
    snap = dep.snapshot()
    assert (snap["counts"]["injected"], snap["requests"], snap["error_percentage"]) == (12, 0, 0.0)
    assert dep.execute(Primary()).source == "primary"  # every other user still reaches it


def test_injected_outcomes_are_events(clock: ManualClock, reg: Registry) -> None:
    dep = breaking(clock, reg)
    seen: list[Outcome] = []
    dep.listen(lambda event: seen.append(event.outcome))
    with inject(Plan(Fault("error"), "svc")):
        dep.execute(Primary())
    assert seen == [Outcome.INJECTED, Outcome.FALLBACK_SUCCESS]


def test_an_injected_request_never_takes_the_half_open_trial(clock: ManualClock, reg: Registry) -> None:
    dep = breaking(clock, reg)
    for _ in range(5):
        dep.execute(boom)
    assert dep.breaker.state == "open"
    clock.advance(5.0)
    for kind in ("error", "delay"):
        with inject(Plan(Fault(kind), "svc")):  # type: ignore[arg-type]
            assert dep.execute(Primary()).source == "generic"
    assert dep.breaker.state == "open"  # neither took the trial nor judged it
    primary = Primary()
    assert dep.execute(primary).source == "primary"  # the next real call is the trial
    assert primary.calls == 1
    assert dep.breaker.state == "closed"


def test_an_injected_delay_is_counted_apart(clock: ManualClock, reg: Registry) -> None:
    dep = breaking(clock, reg)
    for _ in range(5):
        with inject(Plan(Fault("delay", delay=2.0), "svc")):  # slower than the timeout: slow calls
            assert dep.execute(Primary()).source == "primary"
    assert dep.breaker.state == "closed"
    snap = dep.snapshot()
    assert (snap["counts"]["injected"], snap["counts"]["slow"], snap["counts"]["success"]) == (5, 0, 0)
    assert snap["concurrent"] == 0


def test_process_wide_faults_still_open_the_breaker(clock: ManualClock, reg: Registry) -> None:
    dep = breaking(clock, reg)
    set_process_injector(Plan(Fault("error"), "svc"))  # Latency Monkey, the fault board
    for _ in range(5):
        assert dep.execute(Primary()).source == "generic"
    set_process_injector(None)
    assert dep.breaker.state == "open"
    counts = dep.snapshot()["counts"]
    assert (counts["failure"], counts["injected"]) == (5, 0)


def test_a_broken_injector_injects_nothing(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def fault_for(self, dependency: str) -> None:
            raise TypeError("'<' not supported between instances of 'str' and 'float'")

    dep = Dependency("broken-board", timeout=None, registry=None)
    set_process_injector(Broken())  # type: ignore[arg-type]
    try:
        with caplog.at_level("ERROR", logger="stoic.guard"):
            assert dep.call(lambda: "answer") == "answer"
    finally:
        set_process_injector(None)
    assert "fault injector" in caplog.text and "injecting nothing" in caplog.text
