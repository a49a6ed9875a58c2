"""Churn decline as evidence gathered over weeks: a steady fade grows more certain each week, while
an account that skips a week now and then, or a fall its whole segment shares, is not a decline."""

from __future__ import annotations

import itertools
import math
import random

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
