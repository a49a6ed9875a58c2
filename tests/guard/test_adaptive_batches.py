"""The adaptive limit counts finished calls without a lock and decides once per window: checked
against a plain model that counts each call under a lock as it finishes and ends windows by the
documented rule (the rules are the same, so every limit, baseline and probe must be too), and
under many threads at once (no call lost, none counted twice)."""

from __future__ import annotations

import itertools
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


class Clock:
    """A clock the test moves by hand (what `Limiter` reads at the end of a window)."""

    def __init__(self) -> None:
        self.ns = 0

    def __call__(self) -> int:
        return self.ns


class WindowModel:
    """Each finished call counted at once under the lock, windows ending by the documented rule,
    written out plainly: a window that holds a failure or a timeout, and a probe, end on the call
    that completes their counts (`Limiter._add_one`); an ordinary window is checked when its
    answers reach `samples` and every `samples` answers after, and ends at the first check at
    which `window` has passed since the last window ended. The
    decisions are the limiter's own, so the model calls them."""

    def __init__(self, limiter: Limiter, clock: Clock) -> None:
        self.limiter = limiter  # a second Limiter whose counts this model keeps itself
        self.clock = clock
        self.opened()

    def opened(self) -> None:
        lim = self.limiter
        self.next_check = lim.policy.samples
        self.not_before = self.clock() + int(lim.policy.window * 1e9)

    def sample(self, latency_ns: int, inflight: int, dropped: bool, failed: bool) -> None:
        lim = self.limiter
        with lim._lock:
            if dropped or failed or lim._probing is not None or lim._failed or lim._timed_out:
                lim._add_one(latency_ns, inflight, lim.limit, dropped, failed)
                if not lim._batch:  # it ended the window
                    self.opened()
                return
            lim._batch += 1
            lim._answered += 1
            lim._answered_inflight += inflight
            lim._sum_ns += latency_ns
            lim._slow |= 0 < lim.slow_ns <= latency_ns
            lim._inflight = max(lim._inflight, inflight)
            if lim._answered == self.next_check:
                if self.clock() >= self.not_before:
                    lim._decide()
                    self.opened()
                else:
                    self.next_check += lim.policy.samples


Step = tuple[int, int, bool, bool, int]
# the clock moves by nothing, a little, about a window, or a lot between calls
ADVANCE = st.sampled_from([0, 0, 1_000_000, 5_000_000, 300_000_000])
STEP = st.tuples(st.integers(1, 400) .map(lambda ms: ms * 1_000_000), st.integers(1, 40), st.booleans(),
                 st.sampled_from([False, False, False, True]), ADVANCE)


def limiter(algorithm: str, clock: Clock) -> Limiter:
    policy = AdaptiveBulkhead(algorithm=algorithm, initial=10, min_limit=1, max_limit=40, samples=3,  # type: ignore[arg-type]
                              probe_every=2, window=0.004)
    return Limiter(policy, Permits(10, 0.0), 200_000_000, lambda limit: None, clock)


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
    clock = Clock()
    logged, counted = limiter(algorithm, clock), limiter(algorithm, clock)
    model = WindowModel(counted, clock)
    for latency_ns, inflight, timed_out, failed, advance in steps:
        clock.ns += advance
        # an answer takes the lock-free path; a timeout or a failure the locked one, as in the guard
        logged.sample(latency_ns, inflight, timed_out or failed, failed)
        model.sample(latency_ns, inflight, timed_out or failed, failed)
        assert decided(logged) == decided(counted)  # at every call, not only at the end
    assert logged.taken() == len(steps)  # the answers still logged are counted now
    assert counts(logged) == counts(counted)


def test_an_answer_that_completes_a_batch_moves_the_limit_at_once() -> None:
    lim = Limiter(AdaptiveBulkhead(algorithm="aimd", initial=4, samples=5, probe_every=0, slow=0.1,
                                   window=0.0), Permits(4, 0.0), 100_000_000, lambda limit: None)
    for _ in range(4):
        lim.answered(1_000_000, 4)
    assert lim.limit == 4  # four of five: no verdict yet
    lim.answered(1_000_000, 4)
    assert lim.limit == 5  # the fifth ends the batch: the calls used the limit, so AIMD grows it


def test_a_window_short_in_time_goes_on_collecting_and_counts_every_answer() -> None:
    clock = Clock()
    lim = Limiter(AdaptiveBulkhead(initial=10, samples=5, probe_every=0, window=0.01), Permits(10, 0.0),
                  0, lambda limit: None, clock)
    for _ in range(12):  # 12 answers at once: long in answers, short in time
        lim.answered(1_000_000, 10)
    assert lim.baseline_ns == 0 and lim.limit == 10  # no verdict before 10 ms
    assert len(lim.log) == 3 * 12  # nothing counted yet: no lock was taken
    clock.ns = 10_000_000
    for _ in range(2):
        lim.answered(1_000_000, 10)
    assert lim.baseline_ns == 0  # 14 answers: the next check is at 15
    lim.answered(4_000_000, 10)
    # one verdict over all 15 answers: mean latency (14 x 1 ms + 4 ms) / 15 = 1.2 ms
    assert lim.baseline_ns == 1_200_000 and lim.taken() == 15 and not lim.log
    assert lim.not_before == 20_000_000  # the next window lasts `window` from this verdict


def test_a_failure_ends_a_window_before_its_time() -> None:
    clock = Clock()
    lim = Limiter(AdaptiveBulkhead(initial=10, samples=5, probe_every=0, window=1.0), Permits(10, 0.0),
                  0, lambda limit: None, clock)
    for _ in range(5):
        lim.answered(1_000_000, 10)
    assert lim.baseline_ns == 0  # a second to go
    lim.sample(100_000, 10, True, True)  # a refusal: the window has its answers, it ends now
    # refused for overload at a concurrency of 10: the limit drops to 10 - sqrt(10)
    assert lim.limit == 6 and lim._batch == 0 and lim.taken() == 6


def test_a_drain_that_comes_before_the_window_s_time_decides_nothing() -> None:
    # as a caller that saw `due` reached just before another caller ended the window
    clock = Clock()
    lim = Limiter(AdaptiveBulkhead(initial=10, samples=5, probe_every=0, window=0.01), Permits(10, 0.0),
                  0, lambda limit: None, clock)
    lim.log += [1_000_000, 10, 10] * 5  # a whole batch logged, at time 0
    lim.drain()
    assert lim.baseline_ns == 0 and len(lim.log) == 15  # the usual case: left in the log
    assert lim.taken() == 5 and lim._answered == 5  # counted, no verdict
    lim.log += [1_000_000, 10, 10] * 5
    lim.drain()
    assert lim.baseline_ns == 0 and lim._answered == 10  # counted one by one: still no verdict
    clock.ns = 10_000_000
    lim.log += [12_000_000, 10, 10]  # the next answer, once the time has come
    lim.drain()
    # one verdict over all 11 answers: (10 x 1 ms + 12 ms) / 11 = 2 ms
    assert lim.baseline_ns == 2_000_000 and lim._batch == 0


@pytest.fixture
def quick_switches() -> Iterator[None]:
    """Threads switch every microsecond, so answers from many threads really interleave."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


THREADS, CALLS = 8, 2_000


class TickingClock:
    """A clock that moves 10 us at every reading, so windows pass however fast the threads run."""

    def __init__(self) -> None:
        self._ticks = itertools.count()

    def now_ns(self) -> int:
        return next(self._ticks) * 10_000

    def sleep(self, seconds: float) -> None:
        raise AssertionError("nothing here waits")

    async def asleep(self, seconds: float) -> None:
        raise AssertionError("nothing here waits")


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
    # a clock that moves 1 ms at every reading: windows pass, and most checks come too early
    ticks = itertools.count()
    lim = Limiter(AdaptiveBulkhead(initial=20, samples=7, probe_every=3, window=0.01), Permits(20, 0.0), 0,
                  lambda limit: None, lambda: next(ticks) * 1_000_000)
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
    dep = Dependency("threads", timeout=None, registry=Registry(), clock=TickingClock(),
                     bulkhead=AdaptiveBulkhead(initial=THREADS * 2, min_limit=THREADS, samples=5,
                                               probe_every=3))
    guarded = dep(lambda n: n + 1)
    hammer(lambda n: guarded(n) if n % 2 else dep.call(lambda: n))  # the decorator and call() alike
    assert dep.snapshot()["counts"]["success"] == THREADS * CALLS
    assert dep._limiter is not None
    assert dep._limiter.taken() == THREADS * CALLS
    assert dep._limiter.probes > 0


def test_a_probe_counts_the_calls_within_the_limit_they_saw() -> None:
    lim = Limiter(AdaptiveBulkhead(initial=16, samples=4, probe_every=1, window=0.0), Permits(16, 0.0), 0,
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
                   st.sampled_from([False] * 9 + [True]), st.just(False), ADVANCE)


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(ANSWER, min_size=1, max_size=120), algorithm=st.sampled_from(["gradient", "aimd"]))
def test_whole_batches_of_answers_decide_as_counting_each_call_does(steps: list[Step],
                                                                     algorithm: str) -> None:
    """Mostly answers: most windows are counted whole, straight from the log to the rules (the
    usual case of `Limiter.drain`), probes and the slow rule included; the model still counts each."""
    clock = Clock()
    logged, counted = limiter(algorithm, clock), limiter(algorithm, clock)
    model = WindowModel(counted, clock)
    for latency_ns, inflight, timed_out, failed, advance in steps:
        clock.ns += advance
        logged.sample(latency_ns, inflight, timed_out, failed)
        model.sample(latency_ns, inflight, timed_out, failed)
        assert decided(logged) == decided(counted)
    assert logged.taken() == len(steps)
    assert counts(logged) == counts(counted)
