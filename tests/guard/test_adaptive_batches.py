"""The adaptive limit counts finished calls without a lock and decides once per batch: checked
against a plain model that counts each call under a lock as it finishes (the rules are the same,
so every limit, baseline and probe must be too), and under many threads at once (no call lost,
none counted twice)."""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stoic.guard import AdaptiveBulkhead, Dependency, Registry
from stoic.guard._adaptive import Limiter
from stoic.guard._permits import Permits


class CountingModel:
    """Each finished call counted at once, the batch ending on the call that completes it: the
    rules of `Limiter`, written out plainly (its decisions are its own, so the model calls them)."""

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter  # a second Limiter whose counts this model keeps itself

    def sample(self, latency_ns: int, inflight: int, dropped: bool, failed: bool) -> None:
        lim = self.limiter
        with lim._lock:
            lim._add_one(latency_ns, inflight, lim.limit, dropped, failed)


Step = tuple[int, int, bool, bool]
STEP = st.tuples(st.integers(1, 400) .map(lambda ms: ms * 1_000_000), st.integers(1, 40), st.booleans(),
                 st.sampled_from([False, False, False, True]))


def limiter(algorithm: str) -> Limiter:
    policy = AdaptiveBulkhead(algorithm=algorithm, initial=10, min_limit=1, max_limit=40, samples=3,  # type: ignore[arg-type]
                              probe_every=2)
    return Limiter(policy, Permits(10, 0.0), 200_000_000, lambda limit: None)


def decided(lim: Limiter) -> tuple[object, ...]:
    return lim.limit, lim.estimate, lim.baseline_ns, lim.usual_failures, lim.probes, lim._probing


def counts(lim: Limiter) -> tuple[object, ...]:
    """The open batch's counts; those of the calls within the limit only in a probe (the one batch
    whose rules read them)."""
    low = (lim._low_n, lim._low_ns, lim._low_failed) if lim._probing is not None else ()
    return (lim._batch, lim._answered, lim._failed, lim._sum_ns, lim._answered_inflight, lim._inflight,
            lim._timed_out, lim._slow, *low)


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(STEP, min_size=1, max_size=120), algorithm=st.sampled_from(["gradient", "aimd"]))
def test_the_logged_counts_decide_as_counting_each_call_does(steps: list[Step], algorithm: str) -> None:
    logged, counted = limiter(algorithm), limiter(algorithm)
    model = CountingModel(counted)
    for latency_ns, inflight, timed_out, failed in steps:
        # an answer takes the lock-free path; a timeout or a failure the locked one, as in the guard
        logged.sample(latency_ns, inflight, timed_out or failed, failed)
        model.sample(latency_ns, inflight, timed_out or failed, failed)
        assert decided(logged) == decided(counted)  # at every call, not only at the end
    assert logged.taken() == len(steps)  # the answers still logged are counted now
    assert counts(logged) == counts(counted)


def test_an_answer_that_completes_a_batch_moves_the_limit_at_once() -> None:
    lim = Limiter(AdaptiveBulkhead(algorithm="aimd", initial=4, samples=5, probe_every=0, slow=0.1),
                  Permits(4, 0.0), 100_000_000, lambda limit: None)
    for _ in range(4):
        lim.answered(1_000_000, 4)
    assert lim.limit == 4  # four of five: no verdict yet
    lim.answered(1_000_000, 4)
    assert lim.limit == 5  # the fifth ends the batch: the calls used the limit, so AIMD grows it


@pytest.fixture
def quick_switches() -> Iterator[None]:
    """Threads switch every microsecond, so answers from many threads really interleave."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


THREADS, CALLS = 8, 2_000


def hammer(call: Callable[[int], object]) -> None:
    """THREADS threads x CALLS calls each, started together."""
    start = threading.Barrier(THREADS)

    def worker(seed: int) -> None:
        start.wait(timeout=10)
        for i in range(CALLS):
            call(seed * CALLS + i)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)


def test_threads_answering_at_once_lose_no_call_and_count_none_twice(quick_switches: None) -> None:
    lim = Limiter(AdaptiveBulkhead(initial=20, samples=7, probe_every=3), Permits(20, 0.0), 0,
                  lambda limit: None)
    def call(n: int) -> None:
        if n % 97 == 0:  # now and then a failure: the locked path, interleaved with the others
            lim.sample(1_000, 5, True, True)
        else:
            lim.answered(1_000_000 + n % 1000, 1 + n % 13)

    hammer(call)
    assert lim.taken() == THREADS * CALLS
    assert lim.probes > 0  # batches ended and probes ran while the threads raced


def test_threads_calling_a_guarded_function_feed_the_limit_every_call(quick_switches: None) -> None:
    # never below the threads: every call is admitted, so every call is an answer for the limit
    dep = Dependency("threads", timeout=None, registry=Registry(),
                     bulkhead=AdaptiveBulkhead(initial=THREADS * 2, min_limit=THREADS, samples=5,
                                               probe_every=3))
    guarded = dep(lambda n: n + 1)
    hammer(lambda n: guarded(n) if n % 2 else dep.call(lambda: n))  # the decorator and call() alike
    assert dep.snapshot()["counts"]["success"] == THREADS * CALLS
    assert dep._limiter is not None
    assert dep._limiter.taken() == THREADS * CALLS
    assert dep._limiter.probes > 0


def test_a_probe_counts_the_calls_within_the_limit_they_saw() -> None:
    lim = Limiter(AdaptiveBulkhead(initial=16, samples=4, probe_every=1), Permits(16, 0.0), 0,
                  lambda limit: None)
    for _ in range(4):
        lim.answered(10_000_000, 1)  # the callers use little of the limit: it stays
    assert lim._probing == 16.0 and lim.limit == 4  # the next batch probes at sqrt(16)
    for _ in range(4):
        lim.answered(2_000_000, 2)  # within the low limit
    assert lim.baseline_ns == 2_000_000 and lim._probing is None
    assert lim.limit == 16
    assert math.isclose(lim.estimate, 16.0)


# mostly answered, now and then a timeout
ANSWER = st.tuples(st.integers(1, 400).map(lambda ms: ms * 1_000_000), st.integers(1, 40),
                   st.sampled_from([False] * 9 + [True]), st.just(False))


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(ANSWER, min_size=1, max_size=120), algorithm=st.sampled_from(["gradient", "aimd"]))
def test_whole_batches_of_answers_decide_as_counting_each_call_does(steps: list[Step],
                                                                     algorithm: str) -> None:
    """Mostly answers: most batches are counted whole, straight from the log to the rules (the
    usual case of `Limiter.drain`), probes and the slow rule included; the model still counts each."""
    logged, counted = limiter(algorithm), limiter(algorithm)
    model = CountingModel(counted)
    for latency_ns, inflight, timed_out, failed in steps:
        logged.sample(latency_ns, inflight, timed_out, failed)
        model.sample(latency_ns, inflight, timed_out, failed)
        assert decided(logged) == decided(counted)
    assert logged.taken() == len(steps)
    assert counts(logged) == counts(counted)
