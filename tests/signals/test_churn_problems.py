"""Bad experiences and churn: alone they are a watch item, below a customer whose orders are
surely fading; they make a fall in the same account's orders that follows weigh more, for as
long as such a fall takes to show."""

from __future__ import annotations

import pytest

from stoic.signals import ChurnRisk
from stoic.signals.churn import MEMORY_DAYS, PROBLEM_WEIGHT

from .test_churn import DAY, MONDAY, feed_daily, orders_churn, steady_peers

FALL = 84  # the day the fading accounts' orders halve (a Monday, after 12 ordinary weeks)
INCIDENT = (74, 75)  # a login incident on our side, on the Friday and Saturday ten days before it


def _shop(days: range) -> ChurnRisk:
    """Peers, and three accounts ordering alike until FALL: two are hit by the incident, one of
    those and one that was not halve their orders from FALL, the third hit one buys as usual."""
    churn = orders_churn()
    steady_peers(churn, days)
    halved = [20.0 if d < FALL else 10.0 for d in days]
    feed_daily(churn, "hit-fading", days, halved, seed=9)
    feed_daily(churn, "fading", days, halved, seed=9)
    feed_daily(churn, "hit-steady", days, 20.0, seed=9)
    for name in ("hit-fading", "hit-steady"):
        for d in INCIDENT:
            churn.observe(name, "failed login", 12, at=MONDAY + d * DAY + 9 * 3600.0)
    return churn


def test_a_bad_experience_alone_ranks_below_a_customer_whose_orders_fade() -> None:
    churn = _shop(range(FALL + 10))
    feed_daily(churn, "locked-out", range(FALL + 10), 20.0, seed=9)
    for d in (FALL + 8, FALL + 9):  # a new incident hits another account that buys as usual
        churn.observe("locked-out", "failed login", 15, at=MONDAY + d * DAY + 9 * 3600.0)
    now = MONDAY + (FALL + 10) * DAY + 3600.0
    ranked = churn.top(3, at=now)
    assert [r.account for r in ranked] == ["hit-fading", "fading", "locked-out"], ranked
    locked = ranked[-1]
    assert locked.kind == "troubled" and 0.1 < locked.score <= PROBLEM_WEIGHT < ranked[1].score, locked
    assert locked.reasons == {"30 failed logins since Tuesday": pytest.approx(locked.score)}
    assert locked.score < churn.alert_at


def test_a_bad_experience_makes_the_fall_that_follows_weigh_more() -> None:
    churn = _shop(range(FALL + 10))
    now = MONDAY + (FALL + 10) * DAY + 3600.0
    hit, plain, steady = (churn.assess(a, at=now) for a in ("hit-fading", "fading", "hit-steady"))
    assert hit is not None and plain is not None and steady is not None
    # the same orders, the same reason; the failed logins of 19 days ago make it weigh more
    fall = next(iter(plain.reasons))
    assert fall.startswith("orders down ") and fall in hit.reasons
    assert hit.reasons[fall] == pytest.approx(plain.reasons[fall])
    assert hit.score >= plain.score + 0.1, (hit, plain)
    assert hit.score >= churn.alert_at > plain.score
    assert hit.kind == "declining"
    assert hit.reasons["24 failed logins in the last 4 weeks"] > 0.1, hit.reasons
    # the hit account that buys as usual has nothing against it any more
    assert steady.score == 0.0 and steady.kind == "steady", steady


def test_a_bad_experience_weighs_a_fall_no_longer_than_memory_days() -> None:
    last = INCIDENT[0] + MEMORY_DAYS + 1  # the incident is now out of memory
    churn = _shop(range(last))
    now = MONDAY + last * DAY + 3600.0
    hit, plain = churn.assess("hit-fading", at=now), churn.assess("fading", at=now)
    assert hit is not None and plain is not None
    assert plain.score > 0.2, plain  # still falling
    assert hit.score == pytest.approx(plain.score)
    assert hit.reasons == plain.reasons
