"""Write acknowledgement: how many zones must confirm a write, and a latch to wait on."""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from typing import NamedTuple

from ._errors import InvalidConfig


class Policy(enum.Enum):
    """How many zones must acknowledge a write before `Latch.wait` returns True."""

    ONE = "one"
    QUORUM = "quorum"
    ALL_MINUS_ONE = "all_minus_one"
    ALL = "all"

    # Members are singletons: identity hashing is exact, and C-level (Enum's own hash is Python code
    # and showed up on the write path, which looks latch specs up by policy).
    __hash__ = object.__hash__

    def required(self, zones: int) -> int:
        """Acknowledgements needed out of `zones`."""
        if self is Policy.ONE:
            return 1
        if self is Policy.QUORUM:
            return zones // 2 + 1
        if self is Policy.ALL_MINUS_ONE:
            return max(zones - 1, 1)
        return zones

    @classmethod
    def parse(cls, value: object, field: str = "policy") -> Policy:
        """Accept a `Policy` or its name ("quorum", "ALL_MINUS_ONE", ...)."""
        if isinstance(value, Policy):
            return value
        if isinstance(value, str):
            for policy in cls:
                if value.lower() in (policy.value, policy.name.lower()):
                    return policy
        allowed = ", ".join(p.name for p in cls)
        raise InvalidConfig(f"{field} must be one of {allowed}, got {value!r}")


class LatchSpec:
    """What a write's latch waits for: `required` acknowledgements out of `zones` under `policy`.

    One per operation and policy, shared by the latches of every such write.
    """

    __slots__ = ("finals", "operation", "policy", "required", "zones")

    def __init__(self, operation: str, policy: Policy, zones: list[str]) -> None:
        self.operation = operation
        self.policy = policy
        self.zones = zones
        self.required = policy.required(len(zones))
        self.finals: dict[tuple[bool, str], Latch] = {}  # see Latch.final


# Guards only the conditions of latches that someone waits on (made on the first wait that blocks).
_WAITS = threading.Lock()


class Latch:
    """Collects one outcome per zone for one write.

    `wait(timeout)` returns True as soon as the policy is met, False once it can no longer be met
    or at the timeout. `results` maps each zone that answered to its outcome ("stored",
    "not_stored", "deleted", "not_found", "touched", "dropped", "error: ...").

    The local zone's outcome comes with the latch (the cache writes there first, on the caller's
    thread); each remote zone's writer reports once. A report is a single dict store, atomic under
    the GIL: no lock on the write path. Counts are read from that dict. A waiter makes its condition
    before it checks the results, so a report either lands before that check or finds the
    condition to notify.
    """

    __slots__ = ("_cond", "_results", "spec")

    def __init__(self, spec: LatchSpec, local: tuple[bool, str] | None = None) -> None:
        """`local`: the first zone's (acknowledged, outcome), when already known."""
        self.spec = spec  # shared by every write with the same operation and policy
        self._results: dict[str, tuple[bool, str]] = {} if local is None else {spec.zones[0]: local}
        self._cond: threading.Condition | None = None

    @classmethod
    def final(cls, spec: LatchSpec, local: tuple[bool, str]) -> Latch:
        """The latch of a write that its only zone has answered.

        Such a latch can no longer change, so acknowledged writes with the same outcome share one
        ("stored", "deleted", ...: a handful) instead of each allocating its own.
        """
        if len(spec.zones) != 1 or not local[0]:
            return cls(spec, local)
        latch = spec.finals.get(local)
        if latch is None:
            latch = spec.finals.setdefault(local, cls(spec, local))
        return latch

    @property
    def operation(self) -> str:
        """"set", "add", "delete" or "touch"."""
        return self.spec.operation

    @property
    def policy(self) -> Policy:
        return self.spec.policy

    @property
    def zones(self) -> list[str]:
        """Every zone the write goes to, the local zone first."""
        return self.spec.zones

    @property
    def required(self) -> int:
        """Acknowledgements the policy needs."""
        return self.spec.required

    def report(self, zone: str, ok: bool, outcome: str) -> None:
        """Record `zone`'s outcome (called by the cache and its zone writers); the first one counts."""
        self._results.setdefault(zone, (ok, outcome))
        cond = self._cond
        if cond is not None:
            with cond:
                cond.notify_all()

    def _answers(self) -> list[tuple[bool, str]]:
        return list(self._results.values())  # atomic copy: writers may report meanwhile

    def _decided(self) -> bool:
        answers = self._answers()
        ok = sum(1 for acked, _ in answers if acked)
        required = self.spec.required
        return ok >= required or len(self.spec.zones) - (len(answers) - ok) < required

    def _all_answered(self) -> bool:
        return len(self._results) == len(self.spec.zones)

    def _wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        if predicate():
            return True
        with _WAITS:
            if self._cond is None:
                self._cond = threading.Condition(_WAITS)
            return self._cond.wait_for(predicate, timeout)  # checks once more before it sleeps

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the policy is met (True), cannot be met or `timeout` passes (False)."""
        self._wait_for(self._decided, timeout)
        return self.ok

    def wait_all(self, timeout: float | None = None) -> bool:
        """Block until every zone has answered (True) or `timeout` passes (False)."""
        return self._wait_for(self._all_answered, timeout)

    @property
    def succeeded(self) -> int:
        """Zones that acknowledged the write so far."""
        return sum(1 for acked, _ in self._answers() if acked)

    @property
    def failed_zones(self) -> list[str]:
        """Zones where the write failed or was dropped, so far."""
        return [zone for zone, (acked, _) in list(self._results.items()) if not acked]

    @property
    def pending_zones(self) -> list[str]:
        """Zones that have not answered yet."""
        return [z for z in self.zones if z not in self._results]

    @property
    def results(self) -> dict[str, str]:
        """Outcome per zone that has answered."""
        return {zone: outcome for zone, (_, outcome) in list(self._results.items())}

    @property
    def ok(self) -> bool:
        """True once the policy is met (does not wait)."""
        return self.succeeded >= self.spec.required

    def __repr__(self) -> str:
        return (
            f"<Latch {self.operation} {self.policy.name} {self.succeeded}/{self.required} "
            f"failed={self.failed_zones} pending={self.pending_zones}>"
        )


class Count(NamedTuple):
    """What `incr` and `decr` return: the local zone's new value (None if it failed) and the latch."""

    value: int | None
    latch: Latch
