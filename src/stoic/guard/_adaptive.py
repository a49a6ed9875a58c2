"""An adaptive concurrency limit: the bulkhead's size follows the latency and the failures its
calls measure.

Finished calls are gathered in windows (Netflix concurrency-limits' `WindowedLimit`): a window
ends once it holds `AdaptiveBulkhead.samples` answers and has lasted `AdaptiveBulkhead.window`
seconds, since a queue takes time to build and deciding more often only measures the same queue
again. At the end of each window
one of two rules (gradient or AIMD, see `AdaptiveBulkhead`) picks the next limit, and the
bulkhead's permits are resized in place (`Permits.resize`: a smaller limit takes permits back as
the calls in flight return them). Only finished calls feed it: an answer is appended to a log
without a lock, and the log is counted under the lock once a batch may have ended.

A call is either answered (its latency is the dependency's), timed out (its latency is at least
the timeout) or failed: it ended with an error the breaker counts (an exception of `failure_on`,
an answer `failure_when` judges failed: a 503, a 429, "too busy", connection refused). A failure
is usually fast, so its latency would make an overloaded dependency look quick; it is counted
instead, and a batch that fails more often than the dependency does when lightly loaded (as a
probe batch measures it) is overload: the limit comes down at once, to about the concurrency at
which the answers came. The caller's own mistakes (ignored exceptions, exceptions outside
`failure_on`, a 404) never reach this.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from ._permits import Permits
from ._policies import AdaptiveBulkhead

# Weight of each probe batch after the first in the failure share the dependency has anyway (its
# errors that are not overload): enough to follow a change within a few probes, little enough that
# one unlucky batch of ten does not move it far.
_USUAL_WEIGHT = 0.25
# A batch waits for `samples` answered calls, since fast failures finish many times more often than
# answers; a dependency that answers nothing still gets a verdict after this many failures per sample.
_FAILURES_PER_SAMPLE = 10
# ints per answer in the log: its latency (ns), the calls in flight when it ended, the limit then
_WIDTH = 3


class Limiter:
    """The live limit of one `AdaptiveBulkhead`; thread-safe, shared by sync and async calls.

    An answered call costs three ints added to a list in one `+=` (atomic under the GIL: no lock,
    nothing lost or counted twice when threads finish at once, and an answer's three ints stay
    together). Once enough answers are there for a batch to possibly end, the caller that sees it
    compares its end with the window's earliest end (`reached`): too early, the next check is a
    batch of answers later, without the lock; else it takes the lock, takes them out in order and
    runs the rules, exactly as if each call had been counted as it finished and the window checked
    at those same answers. The call paths of `Dependency` inline `answered` (a frame per call
    is most of its cost); `test_decorator_twin` and `test_adaptive_batches` hold them to it."""

    __slots__ = ("_answered", "_answered_inflight", "_apply", "_batch", "_countdown", "_failed",
                 "_failed_inflight", "_inflight", "_lock", "_low_failed", "_low_n", "_low_ns", "_now",
                 "_probing", "_slow", "_sum_ns", "_taken", "_timed_out", "baseline_ns", "due", "estimate",
                 "limit", "log", "not_before", "permits", "policy", "probes", "slow_ns", "usual_failures")

    def __init__(self, policy: AdaptiveBulkhead, permits: Permits, slow_ns: int,
                 apply: Callable[[int], None], now_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self._lock = threading.Lock()
        self._now = now_ns  # the dependency's clock: the same as the `end` its calls pass to `reached`
        self.permits = permits
        self._apply = apply  # tells the dependency's state the new limit (for snapshots and refusals)
        self.baseline_ns = 0  # the dependency's latency when not loaded; 0 until the first batch
        self.usual_failures = 0.0  # the share of calls failing when not loaded (not overload)
        self.estimate = float(policy.initial)
        self.limit = policy.initial
        self.policy = policy
        self.slow_ns = slow_ns
        self.probes = 0
        self._probing: float | None = None  # the estimate to return to after a probe batch
        # the first probe comes early: the first batches may have measured a loaded dependency
        self._countdown = min(3, policy.probe_every)
        # answers not yet counted, three ints each: latency ns, calls in flight, the limit then
        self.log: list[int] = []
        self._taken = 0  # finished calls counted so far
        # The clock reading before which the open window may not end on its answers alone; 0 while
        # the time rule is lifted: in a probe (short by design) and once the window holds a failure
        # or a timeout (news of trouble is acted on as soon as the counts allow).
        self.not_before = now_ns() + self._span_ns()
        self._reset_batch()
        self.due = _WIDTH * self._still_needed()  # the log's length at which a batch may end

    def _reset_batch(self) -> None:
        self._batch = 0
        self._answered = 0  # calls with a latency that says something: answered or timed out
        self._failed = 0
        self._answered_inflight = 0  # the calls in flight when each answer came, summed
        self._failed_inflight = 0  # and when each failure came
        self._sum_ns = 0
        self._low_n = 0  # samples that ended with no more calls in flight than the limit (probes)
        self._low_ns = 0
        self._low_failed = 0  # failed calls that ended so
        self._inflight = 0
        self._timed_out = False
        self._slow = False

    def follow(self, policy: AdaptiveBulkhead, slow_ns: int) -> int:
        """New settings (from `configure()`): the live limit stays, moved inside the new bounds."""
        with self._lock:
            self._drain(None)  # the calls that finished before the change count under the old settings
            self.policy = policy
            self.slow_ns = slow_ns
            if self._probing is not None:
                self.estimate, self._probing = self._probing, None
                self._reset_batch()
            self.estimate = min(max(self.estimate, policy.min_limit), policy.max_limit)
            self.limit = int(self.estimate)
            self.due = _WIDTH * self._still_needed()
            # the open window's earliest end follows the new `window` (no time rule on a drop or a probe)
            timed = self._probing is None and not self._failed and not self._timed_out
            self.not_before = self._now() + self._span_ns() if timed else 0
            return self.limit

    def answered(self, latency_ns: int, inflight: int) -> None:
        """One call answered (not dropped, not failed): its latency, and the calls in flight when it
        ended (itself included). Lock-free: one `+=` of three ints to a list, which is atomic."""
        log = self.log
        log += (latency_ns, inflight, self.limit)
        if len(log) >= self.due:  # a batch may end here: only now is the clock worth reading
            self.reached(self._now())

    def reached(self, now: int) -> None:
        """The log reached `due` at clock reading `now` (the call's end): the window ends if its
        time has come, else the next check is one batch of answers later, without the lock (a
        plain store: a racing caller's store is as good, and a late check only widens the window)."""
        if now < self.not_before:
            self.due = len(self.log) + _WIDTH * self.policy.samples
        else:
            self.drain()

    def drain(self) -> None:
        """Count the answers logged so far, ending the window if they complete it and its time has
        come: what `reached` does once the window may end."""
        lock = self._lock
        lock.acquire()  # (cheaper than `with`, and this runs once per window)
        try:
            log = self.log
            end = len(log)  # the answers there now; those that come meanwhile wait for the next drain
            samples = self.policy.samples
            now = self._now()
            if end < _WIDTH * samples or self._answered or self._failed or self._probing is not None:
                self._drain(now)  # anything but one whole ordinary window, counted answer by answer
                return
            if now < self.not_before:  # another caller ended the window meanwhile: a new one is open
                self.due = end + _WIDTH * samples
                return
            # The usual case: the log holds one whole window, from its first answer to its last.
            # Its figures go to the rules straight from the log; the counts stay at zero, as they
            # would be once the window ended.
            latencies, inflights = log[0:end:_WIDTH], log[1:end:_WIDTH]
            del log[:end]  # (only answers came meanwhile, at the end: what was read is what goes)
            answered = end // _WIDTH
            self._taken += answered
            sum_ns = sum(latencies)
            slow_ns = self.slow_ns
            # none is slow when even their sum is not (latencies are never negative)
            slow = 0 < slow_ns <= sum_ns and slow_ns <= max(latencies)
            # no failure, so no refusal: the answers' calls in flight summed are not read (0)
            self._rules(0.0, answered, sum_ns, 0, max(inflights), False, slow)
            if int(self.estimate) != self.limit:  # (the limit is always within the bounds)
                self._move_to(self.estimate)
            self._open_window(now)
        finally:
            lock.release()

    def _span_ns(self) -> int:
        """The shortest a window lasts (see `AdaptiveBulkhead.window`)."""
        return int(self.policy.window * 1e9)

    def _open_window(self, now: int) -> None:
        """A window ended at `now`: the next may end on its answers alone once its span has passed
        (a probe ends on its counts)."""
        if self._probing is None:
            self.not_before = now + self._span_ns()
            self.due = _WIDTH * self.policy.samples
        else:
            self.not_before = 0
            self.due = _WIDTH * self._still_needed()

    def sample(self, latency_ns: int, inflight: int, dropped: bool, failed: bool = False) -> None:
        """One finished call: its latency, the calls in flight when it ended (itself included),
        whether it was dropped (timed out, or failed), and whether it failed: ended with an error the
        breaker counts, so its latency is left out (a fast error says nothing of the queue).
        Takes the lock (a drop is rare): the answers logged before it are counted first."""
        if not dropped and not failed:
            self.answered(latency_ns, inflight)
            return
        with self._lock:
            self._drain(None)
            self._taken += 1
            self.not_before = 0  # news of trouble: the window ends as soon as its counts allow
            self._add_one(latency_ns, inflight, self.limit, dropped, failed)
            if not self._batch:
                self._open_window(self._now())
            else:
                self.due = _WIDTH * self._still_needed()

    def taken(self) -> int:
        """How many finished calls the limit has counted (those not yet drained are counted first)."""
        with self._lock:
            self._drain(None)
            return self._taken

    def _still_needed(self) -> int:
        """The fewest finished calls after which the batch may end (each call moves one count by one)."""
        samples = self.policy.samples
        if self._probing is None:
            if not self._failed:
                return samples - self._answered
            needed = min(samples - self._answered, samples * _FAILURES_PER_SAMPLE - self._failed)
        else:
            needed = min(samples * _FAILURES_PER_SAMPLE - self._failed, samples - self._low_n,
                         math.ceil(samples + self._probing + 1 - self._answered))
        return max(1, needed)

    def _drain(self, now: int | None) -> None:
        """Count the answers waiting in the log, in order, ending windows where they end. An
        ordinary window under the time rule takes every answer logged and ends only when `now`
        (the clock at a check of `reached`) is given and past its earliest end; with None (a drop
        or a reading of the counts) its answers are only counted. Called with the lock held."""
        log = self.log
        end = len(log)  # the answers there now; those that come meanwhile wait for the next drain
        if not end:
            return
        count = end // _WIDTH
        self._taken += count
        timed = False
        done = 0
        while done < count:  # bounded: every round counts at least one answer
            if self._probing is not None:  # a probe batch: one by one (it counts the calls within its limit)
                i = _WIDTH * done
                self._add_one(log[i], log[i + 1], log[i + 2], False, False)
                done += 1
                if not self._batch:
                    self._open_window(self._now() if now is None else now)
                continue
            # an ordinary batch: up to its end, summed by builtins (no bytecode per answer)
            timed = self.not_before > 0  # (the window holds no drop and is not a probe)
            take = self.policy.samples - self._answered  # (min and max cost more than the rest here)
            if timed or take > count - done:  # a timed window takes them all
                take = count - done
            elif take < 1:  # `follow` made the batch smaller than what it has: it ends now
                take = 1
            if take == count:  # the usual case: the answers ending one batch, all of them
                latencies, inflights = log[0:end:_WIDTH], log[1:end:_WIDTH]
            else:
                first = _WIDTH * done
                latencies = log[first:first + _WIDTH * take:_WIDTH]
                inflights = log[first + 1:first + _WIDTH * take:_WIDTH]
            done += take
            self._batch += take
            self._answered += take
            batch_ns = sum(latencies)
            self._sum_ns += batch_ns
            self._answered_inflight += sum(inflights)
            inflights.sort()  # (a sort of a few small ints costs less than max(), which parses keywords)
            if inflights[-1] > self._inflight:
                self._inflight = inflights[-1]
            # none is slow when even their sum is not (latencies are never negative)
            if 0 < self.slow_ns <= batch_ns and self.slow_ns <= max(latencies):
                self._slow = True
            samples = self.policy.samples
            if timed:
                if now is not None and self._answered >= samples and now >= self.not_before:
                    self._decide()
                    self._open_window(now)
            elif self._answered >= samples or self._failed >= samples * _FAILURES_PER_SAMPLE:
                self._decide()
                self._open_window(self._now() if now is None else now)
        timed = self.not_before > 0
        # Only answers came meanwhile, added at the end: what was read is what goes (one list
        # operation, atomic).
        del log[:end]
        if self._batch == 0:
            return  # `_open_window` set `due`
        if timed:
            if now is None:  # the next check stays where it was, the drained answers now counted
                self.due = max(_WIDTH, self.due - end)
            else:  # a check too early, or a window not full: one batch of answers later, at most
                samples = self.policy.samples
                self.due = _WIDTH * (samples - self._answered if self._answered < samples else samples)
        else:
            self.due = _WIDTH * self._still_needed()

    def _add_one(self, latency_ns: int, inflight: int, limit: int, dropped: bool, failed: bool) -> None:
        """Count one finished call, ending the batch if it completes it."""
        self._batch += 1
        if failed:
            self._failed += 1
            self._failed_inflight += inflight
            if inflight <= limit:
                self._low_failed += 1
        else:
            self._answered += 1
            self._answered_inflight += inflight
            self._sum_ns += latency_ns
            self._timed_out |= dropped
            self._slow |= 0 < self.slow_ns <= latency_ns
            if inflight <= limit:
                self._low_n += 1
                self._low_ns += latency_ns
        self._inflight = max(self._inflight, inflight)
        samples = self.policy.samples
        if self._failed < samples * _FAILURES_PER_SAMPLE:
            if self._probing is None:
                if self._answered < samples:
                    return
            # a probe batch waits for the calls admitted before it (at most the old limit) to
            # finish, then for `samples` calls made within the low limit
            elif self._low_n < samples and self._answered < samples + self._probing + 1:
                return
        self._decide()

    def _decide(self) -> None:
        """The end of a batch, from its counts: the rules pick the next limit, and a new batch begins."""
        app_limited = self._inflight * 2 < self.limit
        low = self._low_n + self._low_failed
        if self._probing is not None and low:
            # a probe's calls made within its low limit: their failures are the dependency's
            # usual ones, not overload (the first probe sets the share, later ones refine it)
            share = self._low_failed / low
            weight = _USUAL_WEIGHT if self.probes > 1 else 1.0
            self.usual_failures += (share - self.usual_failures) * weight
        # The share overload refused: failures beyond what the dependency does anyway, by more
        # than chance (two standard errors of that usual share over this many calls), while the
        # calls used the limit, or that came with more calls in flight than the answers did (a
        # dependency refusing at once keeps the calls in flight low itself, and a refusal is
        # what more calls bring; the usual failures come at any concurrency).
        refused = 0.0  # and with no failure at all, none
        if self._failed:
            usual = self.usual_failures
            chance = 2.0 * math.sqrt(usual * (1.0 - usual) / self._batch)
            # (mean in flight at the failures >= at the answers + 1, multiplied out)
            crowded = not app_limited or not self._answered or (
                self._failed_inflight * self._answered
                >= (self._answered_inflight + self._answered) * self._failed)
            if crowded:
                refused = max(0.0, self._failed / self._batch - usual - chance)
        self._rules(refused, self._answered, self._sum_ns, self._answered_inflight, self._inflight,
                    self._timed_out, self._slow)
        self._reset_batch()
        if int(self.estimate) != self.limit:  # (the limit is always within the bounds)
            self._move_to(self.estimate)

    def _rules(self, refused: float, answered: int, sum_ns: int, answered_inflight: int, inflight: int,
               timed_out: bool, slow: bool) -> None:
        """The rules at the end of a batch, given its figures (see `_decide`; `drain` gives those of
        a batch it counted whole): the share refused, the answers, their latencies and calls in
        flight summed, the most calls in flight, whether an answer timed out, whether one was slow."""
        policy = self.policy
        if policy.algorithm == "aimd":
            if timed_out or slow or refused > 0:
                self.estimate = max(policy.min_limit, self.estimate * policy.backoff)
            elif inflight * 2 >= self.limit:  # grow only while the calls use the room there is
                self.estimate = min(policy.max_limit, self.estimate + 1)
            return
        if self._probing is not None:
            self._probed()
            return
        if refused > 0:
            # The dependency turned calls away: it holds about as many as were in flight when its
            # answers came, with no room for a queue, so the queue room growth adds (the square
            # root) is taken off too and the limit lands under the capacity. Not smoothed: a
            # refusal is not noise, and every batch over capacity costs failures. At most halved.
            held = min(self.estimate, answered_inflight / answered) if answered else 0.0
            estimate = max(self.estimate * 0.5, held - math.sqrt(held))
            self.estimate = min(max(estimate, policy.min_limit), policy.max_limit)
        elif answered:
            mean_ns = sum_ns / answered
            learns = inflight * 2 < self.limit and not timed_out  # else the callers hold concurrency down
            if not self.baseline_ns or mean_ns < self.baseline_ns or learns:
                # lightly loaded, the latency is the dependency's own
                self.baseline_ns = int(mean_ns) or 1  # at least 1 (a mean is never negative)
            if not learns:
                gradient = min(1.0, max(0.5, policy.tolerance * self.baseline_ns / mean_ns))
                target = self.estimate * gradient + math.sqrt(self.estimate)
                estimate = self.estimate * (1 - policy.smoothing) + target * policy.smoothing
                if estimate > self.estimate:
                    # grow only as far as the concurrency measured supports (with room for a queue):
                    # the latency says nothing of a concurrency the callers never reached, and a
                    # limit left far above its use lets the next surge queue up to it
                    estimate = min(estimate, max(self.estimate, inflight + math.sqrt(inflight)))
                self.estimate = min(max(estimate, policy.min_limit), policy.max_limit)
        if policy.probe_every:
            self._countdown -= 1
            if self._countdown <= 0:  # the next batch runs at a low limit to re-measure the baseline
                self._countdown = policy.probe_every
                self._probing = self.estimate
                self.probes += 1
                self.estimate = max(float(policy.min_limit), math.sqrt(self.estimate))

    def _move_to(self, estimate: float) -> None:
        policy = self.policy
        limit = min(max(int(estimate), policy.min_limit), policy.max_limit)
        if limit != self.limit:
            self.limit = limit
            self.permits.resize(limit)
            self._apply(limit)

    def _probed(self) -> None:
        """End of a probe batch: its calls that ran within the low limit give the new baseline."""
        assert self._probing is not None
        if self._low_n:
            self.baseline_ns = max(1, self._low_ns // self._low_n)
        self.estimate, self._probing = self._probing, None
