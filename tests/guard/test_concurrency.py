"""Many callers at once: exact accounting, nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from stoic.guard import (
    BreakerPolicy,
    Dependency,
    Fallback,
    ManualClock,
    Outcome,
    Registry,
    SemaphoreBulkhead,
)

from .helpers import Unavailable

Runner = Callable[[Coroutine[Any, Any, Any]], Any]
THREADS, CALLS = 8, 50_000


class BadRequest(ValueError):
    pass


def test_threads_lose_no_counts(clock: ManualClock, reg: Registry) -> None:
    # The clock stands still so every call lands in one bucket (50,000 calls per thread also
    # exercise the fold of long logs); the breaker judges every failure but never opens.
    dep = Dependency("svc", timeout=None, registry=reg, clock=clock,
                     breaker=BreakerPolicy(min_calls=10**9, check_interval=0.0, ignore=(BadRequest,)),
                     bulkhead=SemaphoreBulkhead(max_concurrent=6),
                     fallbacks=[Fallback.value("fallback", name="generic")])

    def work(i: int) -> str:
        if i % 500 == 0:
            time.sleep(0)  # let other threads in while this one holds a permit
        if i % 10 < 3:
            raise Unavailable("503")
        if i % 97 == 0:
            raise BadRequest("bad")
        return "ok"

    tallies: list[Counter[Outcome]] = []
    ignored: list[int] = []
    start = threading.Barrier(THREADS, timeout=30)

    def caller(seed: int) -> None:
        tally: Counter[Outcome] = Counter()
        bad = 0
        start.wait()
        for i in range(seed, seed + CALLS):
            try:
                result = dep.execute(work, i)
            except BadRequest:
                bad += 1
                continue
            tally[result.outcome] += 1
            assert result.value == ("ok" if result.outcome is Outcome.SUCCESS else "fallback")
        tallies.append(tally)
        ignored.append(bad)

    done = threading.Event()
    readings: list[int] = []

    def reader() -> None:
        # snapshots fold the logs while the callers append to them
        for _ in range(100_000):
            if done.wait(0.005):
                return
            counts = dep.snapshot()["counts"]
            readings.append(counts["success"] + counts["failure"] + counts["rejected"])

    threads = [threading.Thread(target=caller, args=(n * CALLS,)) for n in range(THREADS)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    done.set()
    watcher.join(10)
    assert len(tallies) == THREADS, "a caller thread died"
    assert len(readings) > 2 and readings == sorted(readings)  # the clock stands still: counts only grow
    seen: Counter[Outcome] = sum(tallies, Counter())
    snap = dep.snapshot()
    counts = snap["counts"]
    assert sum(seen.values()) + sum(ignored) == THREADS * CALLS
    assert counts["success"] == seen[Outcome.SUCCESS]
    assert counts["failure"] == seen[Outcome.FAILURE]
    assert counts["rejected"] == seen[Outcome.REJECTED]
    assert counts["fallback_success"] == seen[Outcome.FAILURE] + seen[Outcome.REJECTED]
    assert snap["requests"] == THREADS * CALLS - sum(ignored)
    assert snap["fallbacks"] == {"generic": counts["fallback_success"]}
    assert counts["timeout"] == counts["short_circuited"] == counts["fallback_failure"] == 0
    assert snap["concurrent"] == 0
    assert dep.breaker.state == "closed"
    # the plan's failures were all seen: every call that ran and hit i % 10 < 3 failed
    assert seen[Outcome.FAILURE] > 0.25 * THREADS * CALLS * 0.9


def plan(n: int, seed: int, hang: float = 0.2) -> list[tuple[float, str]]:
    """(duration, what happens) per task: answers, fails, or runs past the deadline."""
    rng = random.Random(seed)
    kinds = rng.choices(["ok", "fail", "hang"], weights=[7, 2, 1], k=n)
    return [(hang if k == "hang" else rng.uniform(0.001, 0.05), k) for k in kinds]


EXPECTED = {"ok": Outcome.SUCCESS, "fail": Outcome.FAILURE, "hang": Outcome.TIMEOUT}


async def play(dep: Dependency, tasks: list[tuple[float, str]], spread: float) -> list[tuple[str, Any]]:
    async def one(i: int, duration: float, kind: str) -> tuple[str, Any]:
        await asyncio.sleep(spread * i / len(tasks))

        async def primary() -> str:
            await asyncio.sleep(duration)
            if kind == "fail":
                raise Unavailable("503")
            return "ok"

        return kind, await dep.aexecute(primary)

    return list(await asyncio.gather(*(one(i, d, k) for i, (d, k) in enumerate(tasks))))


def check(dep: Dependency, results: list[tuple[str, Any]], late: bool = False) -> Counter[Outcome]:
    """Callers' outcomes match the counters exactly. `late`: a real, loaded loop may make any call late."""
    seen: Counter[Outcome] = Counter()
    for kind, result in results:
        # refused by the bulkhead, or exactly what the task was planned to do
        allowed = {Outcome.REJECTED, EXPECTED[kind]} | ({Outcome.TIMEOUT} if late else set())
        assert result.outcome in allowed
        assert result.source == ("primary" if result.outcome is Outcome.SUCCESS else "generic")
        seen[result.outcome] += 1
    counts = dep.snapshot()["counts"]
    assert sum(seen.values()) == len(results)
    for outcome in (Outcome.SUCCESS, Outcome.FAILURE, Outcome.TIMEOUT, Outcome.REJECTED):
        assert counts[outcome.label] == seen[outcome], outcome
    assert counts["fallback_success"] == len(results) - seen[Outcome.SUCCESS]
    assert dep.snapshot()["concurrent"] == 0
    return seen


def test_a_thousand_tasks_exact_accounting(clock: ManualClock, reg: Registry, run_virtual: Runner) -> None:
    dep = Dependency("svc", timeout=0.1, registry=reg, clock=clock,
                     breaker=BreakerPolicy(min_calls=10**9),
                     bulkhead=SemaphoreBulkhead(max_concurrent=50, max_wait=0.02),
                     fallbacks=[Fallback.value("fallback", name="generic")])
    tasks = plan(1000, seed=5)
    seen = check(dep, run_virtual(play(dep, tasks, spread=0.5)))
    assert seen[Outcome.REJECTED] > 0 and seen[Outcome.TIMEOUT] > 0 and seen[Outcome.FAILURE] > 0
    assert clock.now_ns() / 1e9 < 0.7  # the last starts at 0.5 s: waits <= 20 ms, then <= 100 ms


def test_a_thousand_tasks_on_a_real_loop(reg: Registry) -> None:
    dep = Dependency("svc", timeout=0.3, registry=reg, breaker=BreakerPolicy(min_calls=10**9),
                     bulkhead=SemaphoreBulkhead(max_concurrent=200, max_wait=0.01),
                     fallbacks=[Fallback.value("fallback", name="generic")])
    tasks = plan(1000, seed=6, hang=1.0)
    seen = check(dep, asyncio.run(play(dep, tasks, spread=0.0)), late=True)
    assert seen[Outcome.SUCCESS] > 0 and seen[Outcome.TIMEOUT] > 0
