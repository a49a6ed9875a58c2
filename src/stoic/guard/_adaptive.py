"""An adaptive concurrency limit: the bulkhead's size follows the latency its calls measure.

Finished calls are gathered in batches of `AdaptiveBulkhead.samples`; at the end of each batch
one of two rules (gradient or AIMD, see `AdaptiveBulkhead`) picks the next limit, and the
bulkhead's permits are resized in place (`Permits.resize`: a smaller limit takes permits back as
the calls in flight return them). Only finished calls feed it, so a call costs one lock here.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

from ._permits import Permits
from ._policies import AdaptiveBulkhead


class Limiter:
    """The live limit of one `AdaptiveBulkhead`; thread-safe, shared by sync and async calls."""

    __slots__ = ("_apply", "_batch", "_countdown", "_dropped", "_inflight", "_lock", "_low_n", "_low_ns",
                 "_probing", "_slow", "_sum_ns", "baseline_ns", "estimate", "limit", "permits", "policy",
                 "probes", "slow_ns")

    def __init__(self, policy: AdaptiveBulkhead, permits: Permits, slow_ns: int,
                 apply: Callable[[int], None]) -> None:
        self._lock = threading.Lock()
        self.permits = permits
        self._apply = apply  # tells the dependency's state the new limit (for snapshots and refusals)
        self.baseline_ns = 0  # the dependency's latency when not loaded; 0 until the first batch
        self.estimate = float(policy.initial)
        self.limit = policy.initial
        self.policy = policy
        self.slow_ns = slow_ns
        self.probes = 0
        self._probing: float | None = None  # the estimate to return to after a probe batch
        # the first probe comes early: the first batches may have measured a loaded dependency
        self._countdown = min(3, policy.probe_every)
        self._reset_batch()

    def _reset_batch(self) -> None:
        self._batch = 0
        self._sum_ns = 0
        self._low_n = 0  # samples that ended with no more calls in flight than the limit (probes)
        self._low_ns = 0
        self._inflight = 0
        self._dropped = False
        self._slow = False

    def follow(self, policy: AdaptiveBulkhead, slow_ns: int) -> int:
        """New settings (from `configure()`): the live limit stays, moved inside the new bounds."""
        with self._lock:
            self.policy = policy
            self.slow_ns = slow_ns
            if self._probing is not None:
                self.estimate, self._probing = self._probing, None
                self._reset_batch()
            self.estimate = min(max(self.estimate, policy.min_limit), policy.max_limit)
            self.limit = int(self.estimate)
            return self.limit

    def sample(self, latency_ns: int, inflight: int, dropped: bool) -> None:
        """One finished call: its latency, the calls in flight when it ended (itself included), and
        whether it was dropped (timed out)."""
        with self._lock:
            self._batch += 1
            self._sum_ns += latency_ns
            if inflight <= self.limit:
                self._low_n += 1
                self._low_ns += latency_ns
            self._inflight = max(self._inflight, inflight)
            self._dropped |= dropped
            self._slow |= 0 < self.slow_ns <= latency_ns
            if self._probing is None:
                if self._batch < self.policy.samples:
                    return
            # a probe batch waits for the calls admitted before it (at most the old limit) to finish,
            # then for `samples` calls made within the low limit
            elif self._low_n < self.policy.samples and self._batch < self.policy.samples + self._probing + 1:
                return
            if self.policy.algorithm == "aimd":
                self._aimd()
            elif self._probing is not None:
                self._probed()
            else:
                self._gradient(self._sum_ns / self._batch)
            self._reset_batch()
            self._move_to(self.estimate)

    def _move_to(self, estimate: float) -> None:
        policy = self.policy
        limit = min(max(int(estimate), policy.min_limit), policy.max_limit)
        if limit != self.limit:
            self.limit = limit
            self.permits.resize(limit)
            self._apply(limit)

    def _aimd(self) -> None:
        policy = self.policy
        if self._dropped or self._slow:
            self.estimate = max(policy.min_limit, self.estimate * policy.backoff)
        elif self._inflight * 2 >= self.limit:  # grow only while the calls use the room there is
            self.estimate = min(policy.max_limit, self.estimate + 1)

    def _gradient(self, mean_ns: float) -> None:
        policy = self.policy
        app_limited = self._inflight * 2 < self.limit
        if not self.baseline_ns or mean_ns < self.baseline_ns or (app_limited and not self._dropped):
            # lightly loaded, the latency is the dependency's own
            self.baseline_ns = max(1, int(mean_ns))
        if not (app_limited and not self._dropped):  # else the callers hold concurrency down: nothing learnt
            gradient = min(1.0, max(0.5, policy.tolerance * self.baseline_ns / mean_ns))
            target = self.estimate * gradient + math.sqrt(self.estimate)
            estimate = self.estimate * (1 - policy.smoothing) + target * policy.smoothing
            self.estimate = min(max(estimate, policy.min_limit), policy.max_limit)
        if policy.probe_every:
            self._countdown -= 1
            if self._countdown <= 0:  # the next batch runs at a low limit to re-measure the baseline
                self._countdown = policy.probe_every
                self._probing = self.estimate
                self.probes += 1
                self.estimate = max(float(policy.min_limit), math.sqrt(self.estimate))

    def _probed(self) -> None:
        """End of a probe batch: its calls that ran within the low limit give the new baseline."""
        assert self._probing is not None
        if self._low_n:
            self.baseline_ns = max(1, self._low_ns // self._low_n)
        self.estimate, self._probing = self._probing, None
