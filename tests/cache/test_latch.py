"""A latch counts one answer per zone, decides as soon as its policy can say, and wakes every waiter."""

from __future__ import annotations

import threading
import time

import pytest

from stoic.cache import Latch, LatchSpec, Policy

ZONES = ["zone-a", "zone-b", "zone-c"]


@pytest.mark.parametrize(
    ("policy", "answers", "ok", "decided"),
    [
        (Policy.ONE, [True], True, True),
        (Policy.QUORUM, [True], False, False),
        (Policy.QUORUM, [True, False], False, False),
        (Policy.QUORUM, [True, False, True], True, True),
        (Policy.QUORUM, [False, False], False, True),  # 2 of 3 can no longer be reached
        (Policy.ALL_MINUS_ONE, [True, True], True, True),
        (Policy.ALL, [True, True, False], False, True),
    ],
)
def test_the_policy_decides_as_soon_as_it_can(
    policy: Policy, answers: list[bool], ok: bool, decided: bool
) -> None:
    latch = Latch(LatchSpec("set", policy, ZONES))
    for zone, acked in zip(ZONES, answers, strict=False):
        latch.report(zone, acked, "stored" if acked else "error: down")
    assert latch.ok is ok
    assert latch.wait(0.0) is ok
    assert latch._decided() is decided
    assert latch.succeeded == sum(answers)
    assert latch.failed_zones == [z for z, acked in zip(ZONES, answers, strict=False) if not acked]
    assert latch.pending_zones == ZONES[len(answers):]


def test_only_the_first_answer_of_a_zone_counts() -> None:
    latch = Latch(LatchSpec("set", Policy.ALL, ZONES))
    latch.report("zone-a", False, "dropped")
    latch.report("zone-a", True, "stored")
    assert latch.results == {"zone-a": "dropped"}
    assert latch.failed_zones == ["zone-a"] and latch.succeeded == 0


def test_waiters_in_many_threads_never_miss_an_answer() -> None:
    """Answers arrive from other threads while waiters start waiting: each waiter is woken by the
    last answer rather than sleeping until its (long) timeout."""
    waits: list[tuple[bool, float]] = []

    def wait(latch: Latch) -> None:
        start = time.monotonic()
        ok = latch.wait(3.0)
        waits.append((ok, time.monotonic() - start))

    for i in range(300):
        latch = Latch(LatchSpec("set", Policy.ALL, ZONES))
        waiters = [threading.Thread(target=wait, args=(latch,)) for _ in range(3)]
        reporters = [threading.Thread(target=latch.report, args=(zone, True, "stored")) for zone in ZONES]
        threads = [*waiters, *reporters] if i % 2 else [*reporters, *waiters]  # either may come first
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30.0)
    assert len(waits) == 900 and all(ok for ok, _ in waits)
    assert max(waited for _, waited in waits) < 2.0  # none slept until its timeout
