"""The breaker against a small reference model, step by step (hypothesis state machine)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from stoic.guard import (
    BreakerPolicy,
    Dependency,
    Fallback,
    ManualClock,
    Outcome,
    Registry,
)

from .helpers import boom, ok

WINDOW = 10.0


@dataclass
class Model:
    """What the breaker should do, written as plainly as possible."""

    buckets: int
    min_calls: int
    error_rate: float
    open_ns: int
    trial_calls: int
    state: str = "closed"
    forced: str | None = None
    opened_at: int = 0
    trials_left: int = 0
    trial_results: int = 0
    trial_errors: int = 0
    records: list[tuple[int, str]] = field(default_factory=list)  # (bucket epoch, what)
    changes: list[str] = field(default_factory=list)

    @property
    def bucket_ns(self) -> int:
        return int(WINDOW * 1e9) // self.buckets

    def live(self, now: int) -> list[str]:
        current = now // self.bucket_ns
        return [what for epoch, what in self.records if epoch > current - self.buckets]

    def record(self, now: int, what: str) -> None:
        self.records.append((now // self.bucket_ns, what))

    def move(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.changes.append(state)

    def call(self, now: int, fails: bool) -> Outcome:
        trial = False
        if self.forced == "open":
            return self.short(now)
        if self.forced is None:
            if self.state == "open":
                if now - self.opened_at < self.open_ns:
                    return self.short(now)
                self.move("half_open")
                self.trials_left, self.trial_results, self.trial_errors = self.trial_calls, 0, 0
            if self.state == "half_open":
                if self.trials_left <= 0:
                    return self.short(now)
                self.trials_left -= 1
                trial = True
        self.record(now, "failure" if fails else "success")
        if self.forced is None:
            if trial:
                self.trial_results += 1
                self.trial_errors += fails
                if self.trial_errors >= self.error_rate * self.trial_calls:
                    self.open(now)
                elif self.trial_results >= self.trial_calls:
                    self.records.clear()
                    self.move("closed")
            elif self.state == "closed":  # every outcome is judged, a success too
                live = self.live(now)
                calls = live.count("success") + live.count("failure")
                if calls >= self.min_calls and live.count("failure") >= self.error_rate * calls:
                    self.open(now)
        if fails:
            self.record(now, "fallback_success")
            return Outcome.FAILURE
        return Outcome.SUCCESS

    def short(self, now: int) -> Outcome:
        self.record(now, "short_circuited")
        self.record(now, "fallback_success")
        return Outcome.SHORT_CIRCUITED

    def open(self, now: int) -> None:
        self.opened_at = now
        self.trials_left = 0
        self.move("open")

    def force(self, state: str | None) -> None:
        self.forced = state
        if state is None:
            self.records.clear()
            self.trials_left = 0
            self.move("closed")
        else:
            self.move(state)


class BreakerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.changes: list[str] = []

    @initialize(
        buckets=st.sampled_from([1, 2, 5, 10]),
        min_calls=st.integers(1, 6),
        error_rate=st.sampled_from([0.25, 0.5, 0.75, 1.0]),
        open_for=st.sampled_from([0.5, 1.0, 5.0]),
        trial_calls=st.integers(1, 3),
    )
    def build(self, buckets: int, min_calls: int, error_rate: float, open_for: float,
              trial_calls: int) -> None:
        policy = BreakerPolicy(window=WINDOW, buckets=buckets, min_calls=min_calls, error_rate=error_rate,
                               open_for=open_for, trial_calls=trial_calls, check_interval=0.0)
        self.dep = Dependency("modelled", timeout=None, bulkhead=None, breaker=policy, registry=Registry(),
                              clock=self.clock, fallbacks=[Fallback.value("fallback", name="generic")])
        self.dep.listen(lambda e: self.changes.append(e.state or "") if e.outcome is Outcome.STATE_CHANGE
                        else None)
        self.model = Model(buckets, min_calls, error_rate, int(open_for * 1e9), trial_calls)

    @rule()
    def succeed(self) -> None:
        expected = self.model.call(self.clock.now_ns(), fails=False)
        assert self.dep.execute(ok).outcome is expected

    @rule()
    def fail(self) -> None:
        expected = self.model.call(self.clock.now_ns(), fails=True)
        assert self.dep.execute(boom).outcome is expected

    @rule(seconds=st.sampled_from([0.001, 0.25, 0.5, 0.999, 1.0, 2.5, 5.0, 9.999, 10.0, 30.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: hasattr(self, "dep"))
    @rule(which=st.sampled_from(["force_open", "force_closed", "reset"]))
    def control(self, which: str) -> None:
        getattr(self.dep.breaker, which)()
        self.model.force({"force_open": "open", "force_closed": "closed", "reset": None}[which])

    @invariant()
    def agrees(self) -> None:
        if not hasattr(self, "dep"):
            return
        model = self.model
        assert self.dep.breaker.state == (model.forced or model.state)
        assert self.dep.breaker.forced == (model.forced is not None)
        live = model.live(self.clock.now_ns())
        counts = self.dep.snapshot()["counts"]
        for what in ("success", "failure", "short_circuited", "fallback_success"):
            assert counts[what] == live.count(what), what
        assert self.changes == model.changes


BreakerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestBreakerModel = BreakerMachine.TestCase
