"""Churn decline as evidence gathered over weeks: a steady fade grows more certain each week, while
an account that skips a week now and then, or a fall its whole segment shares, is not a decline."""

from __future__ import annotations

import itertools
import math
import random
import re

from stoic.signals import Account, ChurnRisk

from .test_churn import DAY, LATER, MONDAY, feed_daily, orders_churn, steady_peers


def _decline(churn: ChurnRisk, account: str, day: int) -> tuple[float, str]:
    """The account's decline reason and its share of the score on `day` (0 and "" when none)."""
    risk = churn.assess(account, at=MONDAY + day * DAY + 3600.0)
    assert risk is not None
    return next(((v, r) for r, v in risk.reasons.items() if " down " in r), (0.0, ""))


def test_a_steady_fade_gathers_evidence_week_after_week() -> None:
    churn = orders_churn()
    days = range(18 * 7)
    steady_peers(churn, days)
    # ten weeks at its usual level, then a fade of a tenth of it each week (no week is silent):
    # weeks at 90 and 80 % are ordinary, but from 70 % on every week adds to the evidence
    fading = [20.0 if d < 70 else 20.0 * (1.0 - 0.1 * ((d - 70) // 7 + 1)) for d in days]
    feed_daily(churn, "fading", days, fading, seed=5)
    weekly = [_decline(churn, "fading", 70 + 7 * week) for week in range(5, 9)]
    scores = [score for score, _ in weekly]
    assert all(a < b for a, b in itertools.pairwise(scores)), weekly
    assert scores[-1] >= churn.alert_at, weekly
    assert weekly[-1][1].startswith("orders down ") and " over the last " in weekly[-1][1], weekly
    assert weekly[-1][1].endswith(" days against its own 8 weeks before"), weekly


def test_a_weekly_buyer_that_skips_weeks_now_and_then_is_not_declining() -> None:
    # Weekly buyers of about 30 items that miss a week one time in seven, at random: a few of them
    # will have missed two of the last four weeks, and that is their ordinary rhythm.
    churn = orders_churn()
    rng = random.Random(11)
    for i in range(120):
        for week in range(20):
            if rng.random() >= 1 / 7:
                at = MONDAY + (7 * week + i % 5) * DAY + 10 * 3600.0
                churn.observe(f"weekly-{i}", "orders", max(1, round(rng.gauss(30.0, 5.5))), at=at)
    now = MONDAY + 140 * DAY
    flagged = [(r.account, r.score, r.reasons) for r in churn.top(120, at=now) if r.score >= churn.alert_at]
    assert flagged == []
    falling = [
        (r.account, v, k)
        for r in churn.assess_all(at=now)
        for k, v in r.reasons.items()
        if " down " in k and v >= 0.2
    ]
    assert len(falling) <= 3, falling  # about what one in a hundred, the top 1 %, would give


def test_a_fall_its_whole_segment_shares_is_not_a_decline() -> None:
    churn = ChurnRisk(activity=("orders",), problems=(), clock=lambda: LATER)
    churn.add_accounts([Account(f"shop-{i}", segment="ski shops") for i in range(30)])
    churn.add_accounts([Account(f"cafe-{i}", segment="cafés") for i in range(30)])
    days = range(16 * 7)
    # the season ends: every ski shop orders a third as much for the last four weeks
    season = [12.0 if d < 84 else 4.0 for d in days]
    for i in range(30):
        feed_daily(churn, f"shop-{i}", days, season, seed=300 + i)
        feed_daily(churn, f"cafe-{i}", days, 12.0, seed=400 + i)
    lone = [12.0 if d < 84 else 4.0 for d in days]
    churn.add_account(Account("lone-cafe", segment="cafés"))
    feed_daily(churn, "lone-cafe", days, lone, seed=7)  # a café falling as much, alone
    now = MONDAY + 112 * DAY
    (first,) = churn.top(1, at=now)
    assert first.account == "lone-cafe" and first.kind == "declining", first
    shops = [r for r in churn.assess_all(at=now) if r.account.startswith("shop-")]
    assert len(shops) == 30 and max(r.score for r in shops) < 0.2, max(shops, key=lambda r: r.score)


def test_ordinary_accounts_look_at_risk_as_rarely_as_their_p_values_say() -> None:
    # 300 steady accounts, orders on weekdays at random (Poisson, 2 to 8 a day): how many look
    # surprising at the one-in-a-hundred level is about one in a hundred, not a list full of them
    churn = orders_churn()
    rng = random.Random(3)
    for i in range(300):
        rate = rng.uniform(2.0, 8.0)
        for d in range(16 * 7):
            if d % 7 < 5:
                count = _poisson(rng, rate)
                if count:
                    churn.observe(f"steady-{i}", "orders", count, at=MONDAY + d * DAY + 10 * 3600.0)
    risks = churn.assess_all(at=MONDAY + 16 * 7 * DAY + 3600.0)
    assert len(risks) == 300
    one_in_a_hundred = 1.0 / 3.0  # a confidence of 1/3: two decades of evidence, p = 0.01
    surprising = [(r.account, r.score, r.reasons) for r in risks if r.score >= one_in_a_hundred]
    assert len(surprising) <= 6, surprising
    assert all(r.score < 0.5 for r in risks), max(risks, key=lambda r: r.score)


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method, bounded: fine for the small daily means used here
    limit, k, p = math.exp(-mean), 0, 1.0
    for k in range(int(10 * mean) + 20):
        p *= rng.random()
        if p <= limit:
            return k
    return k


def test_one_order_after_three_silent_weeks_does_not_clear_a_daily_buyer() -> None:
    # A daily buyer that orders on most weekdays, from 1 to 9 at a time (its amounts swing
    # widely, so a silent day says little about them); its orders stop for three weeks, then it
    # places a single order. That order refutes a stop, not a fall: it stays on the list.
    churn = orders_churn()
    steady_peers(churn, range(25 * 7))
    rng = random.Random(2)

    def buys(day: int) -> None:
        if day % 7 < 5 and rng.random() < 0.9:
            at = MONDAY + day * DAY + 10 * 3600.0
            churn.observe("daily", "orders", rng.choice((1, 1, 2, 2, 3, 4, 6, 9)), at=at)

    for day in range(16 * 7):
        buys(day)
    lone = 19 * 7  # a Monday, after three weeks without orders
    churn.observe("daily", "orders", 1, at=MONDAY + lone * DAY + 10 * 3600.0)
    for day in range(lone + 1, lone + 8):  # the week after that one order, with no other
        risk = churn.assess("daily", at=MONDAY + day * DAY + 12 * 3600.0)
        assert risk is not None and risk.score >= churn.alert_at, (day, risk)
        assert risk.kind == "silent", (day, risk)
        why = next(iter(risk.reasons))
        said = r"no orders for 2\d days until .+, then on 1 day only; it is usually active every day"
        assert re.fullmatch(said, why), why
    # it orders as it used to again: a week of that takes the evidence back
    for day in range(lone + 8, lone + 15):
        buys(day)
    back = churn.assess("daily", at=MONDAY + (lone + 15) * DAY + 12 * 3600.0)
    assert back is not None and back.score < churn.alert_at, back
    assert not any(" until " in reason for reason in back.reasons), back


def test_a_pause_followed_by_more_orders_than_usual_is_taken_back() -> None:
    # A hotel orders about 3 a day, every day; it shuts for twelve days, then orders 7 a day for
    # three days. Three active days alone would not outweigh the pause, but what it orders since
    # is plainly its usual level or more: the pause no longer counts.
    churn = orders_churn()
    steady_peers(churn, range(12 * 7))
    every_day = (0, 1, 2, 3, 4, 5, 6)
    feed_daily(churn, "hotel", range(9 * 7), 3.0, seed=4, weekdays=every_day)
    feed_daily(churn, "hotel", range(9 * 7 + 12, 9 * 7 + 15), 7.0, seed=5, weekdays=every_day)
    risk = churn.assess("hotel", at=MONDAY + (9 * 7 + 15) * DAY + 12 * 3600.0)
    assert risk is not None and risk.score < churn.alert_at, risk
    assert not any(" until " in reason for reason in risk.reasons), risk
