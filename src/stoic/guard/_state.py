"""One dependency's shared state: the breaker and the rolling window, beside the bulkhead's permits.

Sync and asyncio calls share this object, so there is one truth per dependency. The fields every
call reads sit on it; waiting for a permit is `Permits`' business (its own lock, see _permits).

The hot path is lock-free on admission: while the breaker is closed, `gate_open` is a plain
attribute read and a bulkhead permit is a `list.pop()` (atomic), so a call takes one lock, when
it records its outcome. Every breaker state change happens under the lock.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from ._clock import Clock
from ._events import Event, Outcome
from ._permits import Permits
from ._policies import BreakerPolicy
from ._window import FOLD_AFTER, MAX_LATENCY_NS, NEVER, RollingWindow, code

CLOSED, OPEN, HALF_OPEN = 0, 1, 2
STATE_NAMES = ("closed", "open", "half_open")

ADMITTED = 0
TRIAL = -1  # admitted as one of the half-open trial calls
INJECTED = -2  # admitted with a fault injected for its request: its outcome is counted apart
_SUCCESS, _FAILURE, _TIMEOUT = int(Outcome.SUCCESS), int(Outcome.FAILURE), int(Outcome.TIMEOUT)
_SLOW, _REJECTED, _SHORT = int(Outcome.SLOW), int(Outcome.REJECTED), int(Outcome.SHORT_CIRCUITED)
_RETRY, _INJECTED = int(Outcome.RETRY), int(Outcome.INJECTED)
UNBOUNDED = 2**62

# One line per breaker transition, with the figures that decided it.
log = logging.getLogger("stoic.guard")


class DependencyState:
    # Slots are laid out in this order: what every call reads comes first, in one cache line (the
    # code between two syscalls runs on cold caches, where each line counts).
    __slots__ = (  # noqa: RUF023
        "gate_open", "permits", "slots", "window", "plain_below", "lock",
        "breaker", "changes", "check_ns", "checked_at", "clock", "counting",
        "emit", "forced", "max_active", "name", "open_ns", "opened_at", "reopens", "ring", "ring_failed",
        "ring_slow", "slow_ns", "state", "streak", "trial_errors", "trial_results", "trial_slow",
        "trials_left",
    )

    def __init__(self, name: str, policy: BreakerPolicy | None, max_active: int, max_wait: float,
                 slow_after: float | None, levels: int, clock: Clock,
                 emit: Callable[[Event], None]) -> None:
        self.name = name
        self.breaker = policy
        self.clock = clock
        self.emit = emit
        # state changes are told to listeners after the lock is released, so a listener may call back
        self.changes: deque[tuple[Event, str]] = deque()  # (event, the log line saying why)
        self.lock = threading.Lock()
        self.max_active = max_active
        # None when unbounded; `permits` is its token list (one per free slot, pop/append atomic)
        self.slots = Permits(max_active, max_wait) if max_active < UNBOUNDED else None
        self.permits: list[int] | None = self.slots.tokens if self.slots is not None else None
        self.state = CLOSED
        self.gate_open = True  # closed and not forced: admission needs no lock
        self.forced: int | None = None
        self.opened_at = 0
        self.reopens = 0  # times the trials failed in a row: the open time grows with them
        self.ring: deque[int] | None = None  # the last `window_calls` outcomes (bit 0 failed, bit 1 slow)
        self.ring_failed = self.ring_slow = self.streak = 0
        window, buckets = _span(policy)
        self.window = RollingWindow(window, buckets, levels)
        self._follow(policy, slow_after)
        self.checked_at = -self.check_ns  # the first failure may be judged at once
        self.trials_left = 0
        self.trial_results = 0
        self.trial_errors = 0
        self.trial_slow = 0

    def _follow(self, policy: BreakerPolicy | None, slow_after: float | None) -> None:
        """Take the figures the call path reads from `policy` (and the deadline, for slow calls)."""
        self.breaker = policy
        self.open_ns = int(policy.open_for * 1e9) if policy else 0
        slow = policy.slow_call if policy and policy.slow_call is not None else slow_after
        self.slow_ns = int(slow * 1e9) if slow is not None else 0
        # below this a success is plain: not slow, and inside the latency histogram's range
        self.plain_below = min(self.slow_ns or MAX_LATENCY_NS, MAX_LATENCY_NS)
        self.check_ns = int(policy.check_interval * 1e9) if policy else 0
        size = policy.window_calls if policy else None
        if size is None:
            self.ring = None
        elif self.ring is None or self.ring.maxlen != size:
            self.ring = deque(maxlen=size)
            self.ring_failed = self.ring_slow = 0
        # every call's outcome must reach `leave` (see Dependency._refresh_detour)
        self.counting = policy is not None and (size is not None or policy.consecutive_failures is not None)

    def reconfigure(self, policy: BreakerPolicy | None, max_active: int, max_wait: float,
                    slow_after: float | None, levels: int) -> None:
        """Apply new settings, keeping what still applies: the window while its span and buckets
        stay the same, the breaker's state while there is a breaker, the calls in flight."""
        with self.lock:
            window_s, buckets = _span(policy)
            window = self.window
            if not window.spans(window_s, buckets):
                self.window = RollingWindow(window_s, buckets, levels)  # other buckets: a fresh window
            elif window.levels != max(1, levels):
                window.relevel(levels)
            self._follow(policy, slow_after)
            if policy is None and self.state != CLOSED:
                self._transition(CLOSED, "configure() removed the breaker")  # nothing would judge it again
            self.max_active = max_active
            if self.slots is not None:
                self.slots.max_wait_s = max_wait
                self.slots.resize(max_active)
            self._attend(self.window.attention_at)
        if self.changes:
            self._tell()

    def _attend(self, at_ns: int) -> None:
        """`window.attend`, but while permits are owed every success comes by `leave` to repay them."""
        self.window.attend(0 if self.slots is not None and self.slots.debt else at_ns)

    @property
    def active(self) -> int:
        return 0 if self.slots is None else self.slots.in_use

    @property
    def max_wait_s(self) -> float:
        return 0.0 if self.slots is None else self.slots.max_wait_s

    # -- admission -------------------------------------------------------------------------
    def enter(self, now: int) -> int:
        """ADMITTED, TRIAL, or the Outcome code (REJECTED / SHORT_CIRCUITED) that refused the call."""
        admitted = self._pass_breaker(now)
        if admitted > 0:
            return admitted
        slots = self.slots
        if slots is not None:
            try:
                slots.tokens.pop()
            except IndexError:
                if slots.max_wait_s <= 0 or not slots.wait():
                    self._refuse(admitted)
                    return _REJECTED
        return admitted

    async def enter_async(self, now: int, within: float | None) -> int:
        """`enter`, waiting for a permit without blocking the event loop: up to `max_wait`, and
        never past the call's own deadline (`within` seconds from now), which counts the wait."""
        admitted = self._pass_breaker(now)
        if admitted > 0:
            return admitted
        if self.slots is None or await self.slots.await_one(within):
            return admitted
        self._refuse(admitted)
        return _REJECTED

    def enter_injected(self, now: int) -> int:
        """Admission for a call carrying its request's own fault: never a half-open trial (it must
        not judge the shared breaker), never a wait; a refusal counts as injected too."""
        closed = self.forced == CLOSED if self.forced is not None else self.state == CLOSED
        refused = 0 if closed else _SHORT
        if not refused and self.permits is not None:
            try:
                self.permits.pop()
            except IndexError:
                refused = _REJECTED
        if refused:
            self.count(_INJECTED)
            return refused
        return INJECTED

    def _pass_breaker(self, now: int) -> int:
        """ADMITTED or TRIAL when the breaker lets the call through, else SHORT_CIRCUITED (counted)."""
        if self.gate_open:
            return ADMITTED
        with self.lock:
            admitted = self._breaker_admits(now)
            if admitted > 0:
                self._count(now, _SHORT)
        if self.changes:
            self._tell()
        return admitted

    def _return_trial(self) -> None:
        """A trial call ended without a verdict (ignored error, outside cancellation): free its slot."""
        with self.lock:
            if self.state == HALF_OPEN:
                self.trials_left += 1

    def _refuse(self, admitted: int) -> None:
        with self.lock:
            if admitted == TRIAL:
                self.trials_left += 1  # give the trial slot back
            self._count(self.clock.now_ns(), _REJECTED)

    def _breaker_admits(self, now: int) -> int:
        if self.forced is not None:
            return ADMITTED if self.forced == CLOSED else _SHORT
        if self.state == OPEN:
            if now - self.opened_at < self.open_ns:
                return _SHORT
            self.trials_left = self.breaker.trial_calls if self.breaker else 1
            self._transition(HALF_OPEN, f"open for {self.open_ns / 1e9:g}s; letting {self.trials_left} "
                                        f"trial call(s) through")
            self.trial_results = self.trial_errors = self.trial_slow = 0
        if self.state == HALF_OPEN:
            if self.trials_left <= 0:
                return _SHORT
            self.trials_left -= 1
            return TRIAL
        return ADMITTED

    def allows(self, now: int) -> bool:
        """Would a call be let through the breaker now? (no side effects; used before retrying)"""
        if self.forced is not None:
            return self.forced == CLOSED
        if self.state == OPEN:
            return now - self.opened_at >= self.open_ns
        return self.state == CLOSED or self.trials_left > 0

    # -- recording -------------------------------------------------------------------------
    def leave(self, now: int, outcome: int, latency_ns: int, admitted: int, release: bool = True) -> None:
        """Record one admitted call's outcome (-1: none) and free its bulkhead permit unless told not to.

        A plain success takes no lock: it appends its code to the bucket's log (see _window).
        """
        slots = self.slots
        if slots is not None:
            if release:
                slots.tokens.append(1)
                if slots.waiting:
                    slots.wake_one()
            if slots.debt:
                slots.collect()
                with self.lock:
                    self._attend(self.window.attention_at)
        if admitted == INJECTED:  # the request's fault answered, not the dependency: no verdict
            if outcome >= 0:
                self.count(_INJECTED)
            return
        if outcome < 0:
            if admitted == TRIAL:
                self._return_trial()
            return
        slow = 0 < self.slow_ns <= latency_ns
        if self.counting and admitted != TRIAL:
            with self.lock:
                self._note(now, outcome != _SUCCESS, slow)
            if self.changes:
                self._tell()
        window = self.window
        epoch = now // window.bucket_ns
        i = epoch % window.n
        if window.epochs[i] != epoch:
            with self.lock:
                window.roll(epoch)
        log = window.logs[i]
        log.append(code(outcome, slow, latency_ns))
        if admitted != TRIAL:
            if outcome == _SUCCESS and not slow:
                if len(log) > FOLD_AFTER:
                    with self.lock:
                        window.fold(i)
                if now < window.attention_at:
                    return  # a plain success, and no verdict is due
            elif self.state != CLOSED:
                return
            elif now - self.checked_at < self.check_ns:
                # Not yet: the counts wait in the log, and whichever call ends first once the
                # interval has passed (a success too) judges them, as Hystrix's health snapshot does.
                due = self.checked_at + self.check_ns
                if due < window.attention_at:
                    with self.lock:
                        self._attend(min(due, window.attention_at))
                return
        with self.lock:
            if self.breaker is None or self.forced is not None:
                self._attend(NEVER)
            elif admitted == TRIAL:
                self._judge_trial(outcome != _SUCCESS, slow)
            elif self.state != CLOSED:
                self._attend(NEVER)
            elif now - self.checked_at >= self.check_ns:
                self.checked_at = now
                self._check_health(now)
            else:
                self._attend(self.checked_at + self.check_ns)
        if self.changes:
            self._tell()

    def succeeded(self, now: int, latency_ns: int) -> None:
        """`leave` for a plain success (not a trial): the hottest path, so the shortest one.

        Slow calls, a new bucket and latencies outside the histogram take the general path.
        `Dependency._bind` (the decorator) inlines the same steps.
        """
        slots = self.slots
        if slots is not None:
            slots.tokens.append(1)
            if slots.waiting:
                slots.wake_one()
        window = self.window
        if now >= window.current_end or not 8 <= latency_ns < self.plain_below:
            self.leave(now, 0, latency_ns, ADMITTED, release=False)
            return
        bits = latency_ns.bit_length()
        log = window.current_log
        # _window.code(SUCCESS, False, latency_ns), inlined: this runs on every call
        log.append((bits - 3) * 8 + (latency_ns >> (bits - 4)) - 8)
        if len(log) > FOLD_AFTER:
            with self.lock:
                window.fold(window.current)

    def retry_allowed(self, now: int, ratio: float, floor_per_second: float) -> bool:
        """Is there retry budget left in the window? Spends one retry if so."""
        with self.lock:
            self.window.slot(now)
            self.window.fold_all()
            t = self.window.totals
            calls = t[_SUCCESS] + t[_FAILURE] + t[_TIMEOUT] + t[_REJECTED] + t[_SHORT]
            span = self.window.bucket_ns * self.window.n / 1e9
            if t[_RETRY] + 1 > ratio * calls + floor_per_second * span:
                return False
            self._count(now, _RETRY)
            return True

    def _judge_trial(self, failed: bool, slow: bool) -> None:
        """Judge the half-open trials by the rules that open a closed breaker: errors and slow calls."""
        if self.state != HALF_OPEN:
            return
        policy = self.breaker
        assert policy is not None
        self.trial_results += 1
        self.trial_errors += failed
        self.trial_slow += slow
        figures = (f"{self.trial_results} of {policy.trial_calls} trial call(s): {self.trial_errors} failed "
                   f"(opens at {policy.error_rate:.0%}), {self.trial_slow} slow"
                   f"{_slow_rule(policy, self.slow_ns)}")
        if self.trial_errors >= policy.error_rate * policy.trial_calls or (
            self.slow_ns and self.trial_slow >= policy.slow_rate * policy.trial_calls
        ):
            self._open(self.clock.now_ns(), figures)
        elif self.trial_results >= policy.trial_calls:
            self.window.reset()
            self._transition(CLOSED, f"{figures}; a fresh window")

    def _note(self, now: int, failed: bool, slow: bool) -> None:
        """The per-call rules: failures in a row, and the count-based window (under the lock)."""
        policy = self.breaker
        if policy is None or self.state != CLOSED or self.forced is not None:
            return
        limit = policy.consecutive_failures
        if limit is not None:
            self.streak = self.streak + 1 if failed else 0
            if self.streak >= limit:
                self._open(now, f"{self.streak} failures in a row (opens at {limit})")
                return
        ring = self.ring
        if ring is None:
            return
        if len(ring) == ring.maxlen:
            oldest = ring[0]
            self.ring_failed -= oldest & 1
            self.ring_slow -= oldest >> 1
        ring.append(failed | slow << 1)
        self.ring_failed += failed
        self.ring_slow += slow
        calls = len(ring)
        slow_calls = self.ring_slow if self.slow_ns else 0
        if calls >= policy.min_calls and (self.ring_failed >= policy.error_rate * calls
                                          or slow_calls >= policy.slow_rate * calls):
            self._open(now, f"{self.ring_failed} of the last {calls} calls failed (opens at "
                            f"{policy.error_rate:.0%}), {slow_calls} slow{_slow_rule(policy, self.slow_ns)}")

    def _check_health(self, now: int) -> None:
        policy = self.breaker
        assert policy is not None
        if policy.window_calls is not None:  # the last calls decide, in `_note`; the time window only counts
            self._attend(NEVER)
            return
        window = self.window
        window.fold_all()
        t = window.totals
        calls = t[_SUCCESS] + t[_FAILURE] + t[_TIMEOUT]
        errors = t[_FAILURE] + t[_TIMEOUT]
        slow = t[_SLOW] if self.slow_ns else 0
        if calls >= policy.min_calls and (
            errors >= policy.error_rate * calls or slow >= policy.slow_rate * calls
        ):
            self._open(now, f"{calls} calls in the last {policy.window:g}s (min_calls {policy.min_calls}), "
                            f"error rate {errors / calls:.1%} (opens at {policy.error_rate:.0%}), "
                            f"slow rate {slow / calls:.1%}{_slow_rule(policy, self.slow_ns)}")
            return
        # Under min_calls, a success can still tip the verdict (it adds a call, not an error), so
        # plain successes are judged too until there are enough calls; at or above it, only a
        # failure or a slow call can raise the rates, and those are always judged.
        self._attend(now + self.check_ns if calls < policy.min_calls and (errors or slow) else NEVER)

    def _open(self, now: int, why: str) -> None:
        policy = self.breaker
        if policy is not None:
            if self.state == HALF_OPEN and policy.open_for_max is not None:
                self.reopens += 1  # the trials failed: stay away longer this time
            open_s = policy.open_for * policy.open_backoff ** self.reopens
            self.open_ns = int(min(open_s, policy.open_for_max or open_s) * 1e9)
        self.opened_at = now
        self.trials_left = 0
        self._attend(NEVER)
        self._transition(OPEN, f"{why}; short-circuits for {self.open_ns / 1e9:g}s")

    def _transition(self, state: int, why: str) -> None:
        self.gate_open = state == CLOSED and self.forced is None
        if state == CLOSED:  # a fresh start for the per-call rules and the open time
            self.streak = self.ring_failed = self.ring_slow = self.reopens = 0
            if self.ring is not None:
                self.ring.clear()
        if state != self.state:
            line = f"{self.name}: circuit {STATE_NAMES[self.state]} -> {STATE_NAMES[state]}: {why}"
            self.state = state
            self.changes.append((Event(self.name, Outcome.STATE_CHANGE, state=STATE_NAMES[state]), line))

    def _tell(self) -> None:
        """Deliver queued state changes; called without the lock held."""
        changes = self.changes
        while changes:
            try:
                event, line = changes.popleft()
            except IndexError:  # another thread told it first
                return
            log.log(logging.WARNING if event.state == "open" else logging.INFO, line)
            self.emit(event)

    def count(self, outcome: int, level: int = -1) -> None:
        """Count an event that holds no bulkhead permit (refusals, fallbacks, retries)."""
        with self.lock:
            self._count(self.clock.now_ns(), outcome, level)

    def _count(self, now: int, outcome: int, level: int = -1) -> None:
        i = self.window.slot(now)
        self.window.counts[i][outcome] += 1
        self.window.totals[outcome] += 1
        if level >= 0:
            self.window.fallbacks[i][level] += 1

    # -- control ---------------------------------------------------------------------------
    def force(self, state: int | None) -> None:
        with self.lock:
            self.forced = state
            self._attend(NEVER)
            if state is None:
                self.window.reset()
                self.trials_left = 0
                self._transition(CLOSED, "breaker.reset(): overrides removed, a fresh window")
            else:
                self._transition(state, f"forced {STATE_NAMES[state]} (until breaker.reset())")
        if self.changes:
            self._tell()

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.forced if self.forced is not None else self.state]


def _slow_rule(policy: BreakerPolicy, slow_ns: int) -> str:
    """How slow calls are judged, for the log line."""
    if not slow_ns:
        return " (no slow-call rule)"
    return f" (opens at {policy.slow_rate:.0%}; slow from {slow_ns / 1e9:g}s)"


def _span(policy: BreakerPolicy | None) -> tuple[float, int]:
    """(window seconds, buckets) of the rolling window."""
    return (policy.window, policy.buckets) if policy else (10.0, 10)
