"""A hedged `acall` runs its common case in one frame of its own (`Dependency._hedged`): it must
behave exactly as the reference path (`Dependency._race`, the race around `_attempt_async`).

Twin dependencies, one called through the reference path and one through `acall`, take the same
random steps, each on an event loop and a clock of its own: hedges fire, win, lose and are
cancelled, attempts fail, time out and are cancelled by deadlines, the breaker opens, calls come
several at once. At every step both answer the same at the same time, and they report the same
metrics, hedges and events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stoic.guard import (
    AdaptiveBulkhead,
    BreakerPolicy,
    Dependency,
    DependencyFailed,
    Fallback,
    Hedge,
    ManualClock,
    Registry,
    SemaphoreBulkhead,
    VirtualTimeLoop,
    deadline,
)
from stoic.guard._inject import armed

from .helpers import Ignored, fail_as

POLICY = {"window": 10.0, "buckets": 5, "min_calls": 4, "error_rate": 0.5, "open_for": 5.0,
          "check_interval": 0.0, "failure_on": (OSError, TimeoutError), "ignore": (Ignored,)}
KINDS = ["ok"] * 6 + ["fail", "timeout", "ignored", "caller_error", "hedge_fails", "hedge_fails"]
CALL = st.tuples(st.sampled_from(KINDS), st.sampled_from([0.0, 0.002, 0.004, 0.05, 0.3, 1.5]),
                 st.sampled_from([0.001, 0.02, 2.0]))  # the first attempt's time, the hedge's
STEP = st.one_of(
    st.tuples(st.just("call"), CALL),
    st.tuples(st.just("together"), st.lists(CALL, min_size=2, max_size=3)),  # the bulkhead fills up
    st.tuples(st.just("advance"), st.sampled_from([0.001, 0.7, 6.0])),
    st.tuples(st.sampled_from(["force_open", "reset", "look"]), st.just(None)),
    st.tuples(st.just("configure"), st.sampled_from([0, 1, 2])),
    st.tuples(st.just("in_deadline"), st.sampled_from([0.0, 0.01, 5.0])),  # 0.0: passed already
)
ENTRY_POINTS = ("reference", "acall")


class Twin:
    """One hedged dependency on a virtual-time loop of its own; `entry` picks the entry point."""

    def __init__(self, entry: str, bulkhead: str, listeners: int) -> None:
        self.clock = ManualClock()
        self.loop = VirtualTimeLoop(self.clock)
        kinds: dict[str, SemaphoreBulkhead | AdaptiveBulkhead | None] = {
            "none": None,
            "semaphore": SemaphoreBulkhead(max_concurrent=2, max_wait=0.0),
            "adaptive": AdaptiveBulkhead(algorithm="aimd", initial=2, min_limit=1, max_limit=4, samples=2,
                                         slow=0.2, probe_every=0),
        }
        self.dep = Dependency(
            "twin", timeout=1.0, bulkhead=kinds[bulkhead], clock=self.clock, registry=Registry(),
            breaker=BreakerPolicy(**POLICY),  # type: ignore[arg-type]
            fallbacks=[Fallback.value("fallback", name="generic")],
            hedge=Hedge(floor=0.003, min_samples=3),
        )
        self.guarded: Callable[..., Coroutine[Any, Any, Any]] = {
            "reference": lambda *args: self.dep._race(self.primary, args, {}, None),
            "acall": lambda *args: self.dep.acall(self.primary, *args),
        }[entry]
        self.attempts: dict[int, int] = {}  # per call: the attempts made for it so far
        self.calls = 0
        self.events: list[tuple[Any, ...]] = []
        for i in range(listeners):
            self.dep.listen(lambda e, i=i: self.events.append((i, e.outcome, e.source, e.latency, e.state)))
        for _ in range(4):  # enough quick answers for a hedge delay (the 3 ms floor) from the start
            self.step("call", ("ok", 0.002, 0.001))
        self.step("advance", 0.2)  # the delay is read again from the window every 100 ms

    async def primary(self, call: int, kind: str, first: float, hedge: float) -> str:
        attempt = self.attempts[call] = self.attempts.get(call, 0) + 1
        await asyncio.sleep(first if attempt == 1 else hedge)
        fail_as("fail" if kind == "hedge_fails" and attempt > 1 else kind)
        return f"{kind}:{call}:{attempt}"

    async def one(self, kind: str, first: float, hedge: float) -> tuple[str, Any]:
        self.calls += 1
        try:
            return "value", await self.guarded(self.calls, kind, first, hedge)
        except (Ignored, ValueError, DependencyFailed) as exc:
            return "raised", repr(exc)

    async def run(self, step: str, arg: Any) -> Any:
        if step == "call":
            return await self.one(*arg)
        if step == "together":
            return await asyncio.gather(*(self.one(*call) for call in arg))
        if step == "in_deadline":  # a request deadline: the fast path leaves it to the reference
            with deadline(arg, clock=self.clock):
                return await self.one("ok", 0.002, 0.001)
        if step == "advance":
            self.clock.advance(arg)
            return None
        if step == "look":
            return self.report()
        if step == "configure":
            if arg == 0:
                self.dep.configure(timeout=0.5 if self.dep.timeout == 1.0 else 1.0)
            elif arg == 1:
                self.dep.configure(hedge=Hedge(percentile=0.5, floor=0.001, min_samples=2))
            else:
                self.dep.configure(hedge=Hedge(floor=0.003, min_samples=3))
            return None
        getattr(self.dep.breaker, step)()
        return None

    def step(self, step: str, arg: Any) -> tuple[Any, int]:
        answer = self.loop.run_until_complete(self.run(step, arg))
        return answer, self.clock.now_ns()  # the same answer, at the same time

    def report(self) -> dict[str, Any]:
        snapshot = self.dep.snapshot()
        return {key: snapshot[key] for key in ("state", "counts", "fallbacks", "latency_ms", "concurrent",
                                               "max_concurrent", "limit", "hedges", "deadline_skipped")}

    def close(self) -> None:
        self.loop.run_until_complete(asyncio.sleep(3.0))  # hedges still out finish or time out
        self.loop.close()


@settings(max_examples=120, deadline=None)
@given(steps=st.lists(STEP, min_size=1, max_size=30),
       bulkhead=st.sampled_from(["none", "semaphore", "adaptive"]), listeners=st.integers(0, 1))
def test_a_hedged_acall_agrees_with_the_reference_race_step_by_step(
    steps: list[tuple[str, Any]], bulkhead: str, listeners: int
) -> None:
    armed[0] = False  # an earlier test's injection would send every call the long way
    reference, fast = (Twin(entry, bulkhead, listeners) for entry in ENTRY_POINTS)
    try:
        for i, (step, arg) in enumerate(steps):
            expected = reference.step(step, arg)
            assert fast.step(step, arg) == expected, (i, step, arg)
        assert fast.report() == reference.report()
        assert fast.events == reference.events
        assert fast.attempts == reference.attempts  # the same hedges were started
    finally:
        reference.close()
        fast.close()
    assert fast.report() == reference.report()  # and ended the same way
    assert fast.dep.snapshot()["concurrent"] == 0  # every permit came back


def test_a_hedged_acall_takes_its_own_path_and_hedges_on_it() -> None:
    """The twin above only proves something if `acall` really runs its own path: plain calls,
    and a call whose hedge wins, never reach the reference; an open breaker does."""
    armed[0] = False
    twin = Twin("acall", "semaphore", listeners=1)
    taken: list[str] = []
    reference = twin.dep._race

    def spy(*args: Any) -> Coroutine[Any, Any, Any]:
        taken.append("reference")
        return reference(*args)

    twin.dep._race = spy  # type: ignore[method-assign]
    try:
        for _ in range(3):
            assert twin.step("call", ("ok", 0.002, 0.001))[0][0] == "value"
        answer, _ = twin.step("call", ("ok", 1.5, 0.001))  # a stalled first attempt: the hedge wins
        assert answer == ("value", "ok:8:2")
        assert twin.dep.snapshot()["hedges"] == {"started": 1, "won": 1, "cancelled": 1}
        assert taken == []
        twin.dep.breaker.force_open()
        assert twin.step("call", ("ok", 0.002, 0.001))[0] == ("value", "fallback")
        assert taken == ["reference"]
    finally:
        twin.close()
