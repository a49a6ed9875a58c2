"""Churn risk ranked side by side on a generated B2B population with planted churners, in one run.

Population (fixed seeds): a few thousand accounts in four segments, 200 days of daily orders.
Rhythms: daily buyers (weekdays, some also weekends), weekly buyers (a fixed weekday, sometimes a
day late, sometimes a skipped week), monthly buyers (a day of the month, give or take two) and
noisy low-volume accounts (an order every week or three, at random). Every segment has its own
yearly swing, and one segment shuts for a holiday fortnight near the end. Everyone sees a few
failed logins now and then.

Planted churners, all inside the last ten weeks, every one stopped at least two weeks before
the last day (the day the top 50 is scored):
- sudden stop: orders end from one day to the next;
- slow decline: orders fade linearly to nothing over four to seven weeks;
- incident: a login incident hits many accounts for two or three days (failed logins); some of
  them leave over the next one to three weeks, the others stay;
- self-inflicted (not churners): an integration retries a bad password hundreds of times a day
  for the last month while the account orders as usual. They must NOT rank.

Contenders, each ranks every account once a day over the last ten weeks:
- stoic: `stoic.signals.ChurnRisk` with its defaults (orders as activity, failed logins as
  problems, bad passwords declared as the account's own errors);
- half of last month: the naive rule, orders in the last 30 days below half of the 30 before,
  ranked by that ratio;
- errors only: recency-weighted error counts, every error class alike (a churn signal that only
  sees bad experiences, as before activity could be fed);
- BG/NBD: the `lifetimes` package's BetaGeoFitter, fitted weekly on every account's repeat
  purchase days (frequency, recency and age in days, as its docs build them) with the smallest
  of a few penalizers that converges, ranked each day by P(alive), lowest first (ties by the
  purchases it expects over the next four weeks against the account's own rate);
- oracle (ceiling): not a contender but what the orders allow at all. It knows the generator and
  each account's own parameters, and ranks by the likelihood ratio of the best-fitting churn the
  generator could have planted against none: the warning it cannot give, no model of the orders
  can.

Measured: precision and recall among the top 50 on the last day (recall per kind of churner),
self-inflicted accounts in the top 50, and warning: for each churner in the final top 50, days
from the day it entered the daily top 50 and stayed in it to the end, to its last order (positive
= flagged before it stopped; a day on the list that it then left warned nobody).

    .venv/bin/python benchmarks/churn.py [--accounts 3000] [--seed 11] [--only stoic,naive,oracle]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from stoic.signals import Account, ChurnRisk

DAY = 86400.0
START = 1767571200.0  # Monday 2026-01-05 00:00 UTC
DAYS = 200
EVAL_DAYS = 70  # the last ten weeks are ranked every day
TOP = 50
SEGMENTS = ("retail", "horeca", "wholesale", "education")
KINDS = ("sudden", "decline", "incident", "self-inflicted")

REFIT_DAYS = 7  # BG/NBD is refitted weekly and scores every day with its last fit
BGNBD_PENALIZERS = (0.001, 0.01, 0.1)  # tried in turn until a fit converges
BGNBD_LOG: list[str] = []  # each fit's penalizer and parameters, or why it failed

TARGET_RECALL = 0.8  # for decline and incident churners
TARGET_PRECISION = 0.8
TARGET_WARNING = 7.0  # days, median over slow decliners


@dataclass
class Population:
    orders: np.ndarray  # accounts x days
    failed: np.ndarray  # failed logins (the business's problem)
    bad_password: np.ndarray  # the account's own integration
    segment: list[str]
    rhythm: list[str]
    kind: list[str]  # "" for ordinary accounts
    last_order: np.ndarray  # day index of each account's last order (-1: none)
    # the generator's own parameters, for the oracle only: each account-day's chance of an order
    # at full intensity (noisy accounts: their daily rate), the usual size of an order day, and the
    # segment's swing (before any churn)
    chance: np.ndarray
    size: np.ndarray
    swing: np.ndarray


def generate(accounts: int, seed: int) -> Population:
    rng = np.random.default_rng(seed)
    days = np.arange(DAYS)
    weekday = days % 7  # START is a Monday
    segment = [SEGMENTS[i % len(SEGMENTS)] for i in range(accounts)]
    seasonal = {
        s: 1.0 + 0.25 * np.sin(2 * np.pi * (days / 365.0) + rng.uniform(0, 2 * np.pi)) for s in SEGMENTS
    }
    holiday = np.ones(DAYS)
    holiday[172:186] = 0.1  # the education segment shuts for a fortnight
    seasonal["education"] = seasonal["education"] * holiday
    mix = {"daily": 0.35, "weekly": 0.3, "monthly": 0.15, "noisy": 0.2}
    rhythm = list(rng.choice(list(mix), size=accounts, p=list(mix.values())))
    orders = np.zeros((accounts, DAYS))
    intensity = np.ones((accounts, DAYS))  # the churn plan multiplies this
    kind = [""] * accounts
    last_order = np.full(accounts, -1)
    chance = np.zeros((accounts, DAYS))
    size_of = np.zeros(accounts)

    # churners: picked among accounts whose rhythm makes a loss visible at all
    eligible = [i for i in range(accounts) if rhythm[i] != "noisy"]
    picks = rng.permutation(eligible)
    n_sudden, n_decline, n_hit, n_incident, n_self = 14, 22, 60, 14, 15
    sudden = picks[:n_sudden]
    decline = [i for i in picks[n_sudden:] if rhythm[i] in ("daily", "weekly")][:n_decline]
    used = set(sudden) | set(decline)
    rest = [i for i in picks if i not in used and rhythm[i] in ("daily", "weekly")]
    hit = rest[:n_hit]
    self_inflicted = rest[n_hit : n_hit + n_self]
    # every churner has stopped two weeks or more before the last day, the day that is scored
    incident_day = DAYS - 42
    for i in sudden:
        kind[i] = "sudden"
        intensity[i, rng.integers(DAYS - 56, DAYS - 20) :] = 0.0
    for i in decline:
        kind[i] = "decline"
        length = int(rng.integers(28, 50))
        begin = int(rng.integers(DAYS - 70, DAYS - 13 - length))
        ramp = np.clip(1.0 - (days - begin) / length, 0.0, 1.0)
        intensity[i] = np.where(days < begin, 1.0, ramp)
    for j, i in enumerate(hit):
        if j < n_incident:
            kind[i] = "incident"
            begin = incident_day + int(rng.integers(2, 8))
            length = int(rng.integers(5, 18))
            ramp = np.clip(1.0 - (days - begin) / length, 0.0, 1.0)
            intensity[i] = np.where(days < begin, 1.0, ramp)
    for i in self_inflicted:
        kind[i] = "self-inflicted"

    for i in range(accounts):
        season = seasonal[segment[i]] * intensity[i]
        r = rhythm[i]
        if r == "daily":
            size = rng.lognormal(1.2, 0.8)
            open_days = (weekday < 5) | (rng.random() < 0.3)
            p = np.where(open_days, rng.uniform(0.7, 0.95), 0.0)
            active = rng.random(DAYS) < p * np.sqrt(season)
            orders[i] = np.where(active, rng.poisson(size * np.sqrt(season)) + 1, 0)
            chance[i], size_of[i] = p, size
        elif r == "weekly":
            size = rng.lognormal(2.0, 0.7)
            day_of_week = int(rng.integers(0, 5))
            late = rng.random(DAYS) < 0.1
            skip = rng.random(DAYS) < 0.05
            on = (weekday == day_of_week) & ~skip
            shifted = np.roll(on & late, 1)
            on = (on & ~late) | shifted
            active = on & (rng.random(DAYS) < np.sqrt(season))
            orders[i] = np.where(active, rng.poisson(size * np.sqrt(season)) + 1, 0)
            chance[i], size_of[i] = on, size
        elif r == "monthly":
            size = rng.lognormal(3.0, 0.6)
            dom = int(rng.integers(1, 27))
            for m in range(DAYS // 30 + 1):
                d = m * 30 + dom + int(rng.integers(-2, 3))
                if 0 <= d < DAYS:
                    chance[i, d] = 1.0
                if 0 <= d < DAYS and rng.random() < math.sqrt(season[d]):
                    orders[i, d] = rng.poisson(size * math.sqrt(season[d])) + 1
            size_of[i] = size
        else:
            rate = rng.uniform(0.04, 0.15)
            orders[i] = rng.poisson(rate * season)
            chance[i] = rate
        nz = np.nonzero(orders[i])[0]
        last_order[i] = nz[-1] if len(nz) else -1

    failed = rng.poisson(0.02, size=(accounts, DAYS)).astype(float)
    for i in hit:
        for d in range(incident_day, incident_day + int(rng.integers(2, 4))):
            failed[i, d] += rng.integers(3, 20)
    bad_password = np.zeros((accounts, DAYS))
    for i in self_inflicted:
        begin = DAYS - int(rng.integers(20, 40))
        bad_password[i, begin:] = rng.integers(50, 500, size=DAYS - begin)
    swing = np.array([seasonal[segment[i]] for i in range(accounts)])
    return Population(orders, failed, bad_password, segment, rhythm, kind, last_order, chance, size_of, swing)


# ---- contenders: each gets the population and the day to rank at (only days before it are known)
Ranker = Callable[[int], list[int]]


def stoic_ranker(pop: Population) -> Ranker:
    fed = [0]  # days fed so far; the clock follows them
    churn = ChurnRisk(
        activity=("orders",),
        problems=("failed login",),
        own_errors=("bad password",),
        accounts=[Account(f"a{i}", segment=s) for i, s in enumerate(pop.segment)],
        clock=lambda: START + fed[0] * DAY,
    )

    def rank(day: int) -> list[int]:
        while fed[0] < day:  # feed every day before `day`
            d = fed[0]
            at = START + d * DAY + 12 * 3600.0
            tables = {"orders": pop.orders, "failed login": pop.failed, "bad password": pop.bad_password}
            for signal, table in tables.items():
                for i in np.nonzero(table[:, d])[0]:
                    churn.observe(f"a{i}", signal, float(table[i, d]), at=at)
            fed[0] += 1
        top = churn.top(TOP, at=START + day * DAY + 3600.0)
        return [int(r.account[1:]) for r in top]

    return rank


def naive_ranker(pop: Population) -> Ranker:
    def rank(day: int) -> list[int]:
        last = pop.orders[:, day - 30 : day].sum(axis=1)
        before = pop.orders[:, day - 60 : day - 30].sum(axis=1)
        ratio = np.where(before > 0, last / np.maximum(before, 1e-9), 1.0)
        flagged = np.nonzero(ratio < 0.5)[0]
        order = sorted(flagged, key=lambda i: (ratio[i], -before[i]))
        return [int(i) for i in order[:TOP]]

    return rank


def errors_ranker(pop: Population) -> Ranker:
    errors = pop.failed + pop.bad_password
    half_life = 3.0

    def rank(day: int) -> list[int]:
        age = day - 1 - np.arange(day)
        score = (errors[:, :day] * 0.5 ** (age / half_life)).sum(axis=1)
        order = np.argsort(-score, kind="stable")
        return [int(i) for i in order[:TOP] if score[i] > 0]

    return rank


def bgnbd_ranker(pop: Population) -> Ranker | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from lifetimes import BetaGeoFitter  # type: ignore[import-untyped]
    except Exception as exc:  # not installed, or broken on this Python / numpy / pandas
        print(f"BG/NBD (lifetimes) skipped: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None

    model: list[object] = []  # the last fit that converged
    fitted_on = [-REFIT_DAYS]

    def rank(day: int) -> list[int]:
        # The summary lifetimes' docs build with summary_data_from_transaction_data(freq="D"): a
        # purchase is a day with orders; frequency = repeat purchase days, recency = days from
        # the first to the last, T = days from the first to the day ranked. Every account with a
        # purchase is in the fit (it needs many); it is refitted weekly, as one would in use.
        active = pop.orders[:, :day] > 0
        seen = active.any(axis=1)
        first = np.where(seen, active.argmax(axis=1), 0)
        last = np.where(seen, day - 1 - active[:, ::-1].argmax(axis=1), 0)
        frequency = np.maximum(active.sum(axis=1) - 1, 0).astype(float)
        recency = (last - first).astype(float)
        age = (day - first).astype(float)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            if day - fitted_on[0] >= REFIT_DAYS:
                for penalizer in BGNBD_PENALIZERS:  # lifetimes' advice when a fit does not converge
                    candidate = BetaGeoFitter(penalizer_coef=penalizer)
                    try:
                        with contextlib.redirect_stdout(io.StringIO()):  # it prints the optimiser's report
                            candidate.fit(frequency[seen], recency[seen], age[seen])
                    except Exception as exc:  # ConvergenceError
                        BGNBD_LOG.append(f"day {day}: penalizer {penalizer:g}: {type(exc).__name__}")
                        continue
                    model[:] = [candidate]
                    fitted_on[0] = day
                    params = candidate.params_
                    BGNBD_LOG.append(
                        f"day {day}: penalizer {penalizer:g}: r={params['r']:.3g} alpha={params['alpha']:.3g}"
                        f" a={params['a']:.3g} b={params['b']:.3g}"
                    )
                    break
            if not model:
                return []
            fit = model[0]
            alive = np.asarray(fit.conditional_probability_alive(frequency, recency, age), dtype=float)  # type: ignore[attr-defined]
            # ties in P(alive) (most accounts are surely alive) are broken by the purchases it
            # expects over the next four weeks against the account's own rate so far
            expected = np.asarray(
                fit.conditional_expected_number_of_purchases_up_to_time(28.0, frequency, recency, age),  # type: ignore[attr-defined]
                dtype=float,
            )
        own_rate = (frequency + 1.0) / np.maximum(age, 1.0) * 28.0
        ratio = expected / np.maximum(own_rate, 1e-9)
        order = np.lexsort((ratio, np.round(alive, 6)))  # P(alive) ascending, then the ratio
        return [int(i) for i in order if seen[i]][:TOP]

    return rank


ORACLE_LEVELS = 40  # intensities 0, 1/40, ..., 1 the oracle weighs each day at
ORACLE_LENGTHS = (1, 5, 9, 13, 17, 21, 28, 35, 42, 49)  # fade lengths in days (1: a stop)


def oracle_ranker(pop: Population) -> Ranker:
    """Not a contender but the ceiling: it knows the generator and every account's own parameters
    (each day's chance of an order, the size of an order day, the segment's swing) and ranks by the
    likelihood ratio of the best-fitting churn the generator could have planted (a linear fade
    to nothing of 1 to 49 days, begun on any day) against none. What it cannot see a week ahead,
    no model of the orders can."""
    orders, swing = pop.orders, pop.swing
    counts = orders.astype(int)
    log_factorial = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, counts.max() + 2)))))  # log n!
    noisy = np.array([r == "noisy" for r in pop.rhythm])[:, None]
    levels = np.linspace(0.0, 1.0, ORACLE_LEVELS + 1)
    levels[0] = 0.01  # "nothing at all" would make a single stray order infinitely surprising

    def loglik(r: float) -> np.ndarray:
        m = swing * r
        root = np.sqrt(m)
        chance = np.clip(pop.chance * root, 0.0, 1.0 - 1e-9)
        lam = pop.size[:, None] * root
        x = orders
        with np.errstate(divide="ignore", invalid="ignore"):
            # an order day: the chance of one, then 1 + Poisson(lam) orders
            ordered = np.log(chance) + (x - 1) * np.log(lam) - lam - log_factorial[np.maximum(counts - 1, 0)]
            day = np.where(x > 0, ordered, np.log1p(-chance))
            rate = pop.chance * m
            poisson = x * np.log(rate) - rate - log_factorial[counts]
        out = np.where(noisy, poisson, day)
        return np.where(np.isfinite(out), out, 0.0)  # days no order could come on say nothing

    usual = loglik(1.0)
    gain = np.stack([loglik(r) - usual for r in levels], axis=2)  # accounts x days x levels
    first_day = DAYS - EVAL_DAYS + 1
    best = np.zeros((len(pop.kind), DAYS + 1))
    rows = np.arange(len(pop.kind))[:, None]
    for length in ORACLE_LENGTHS:
        for begin in range(first_day - 56, DAYS):
            k = np.arange(DAYS - begin)
            level = np.rint(np.clip(1.0 - k / length, 0.0, 1.0) * ORACLE_LEVELS).astype(int)
            evidence = np.cumsum(gain[rows, begin + k[None, :], level[None, :]], axis=1)
            # the ranking on `day` knows the days before it: evidence up to day - 1
            since = max(first_day, begin + 1)
            np.maximum(best[:, since:], evidence[:, since - 1 - begin :], out=best[:, since:])

    def rank(day: int) -> list[int]:
        order = np.argsort(-best[:, day], kind="stable")
        return [int(i) for i in order[:TOP] if best[i, day] > 0.0]

    return rank


CONTENDERS: dict[str, tuple[str, Callable[[Population], Ranker | None]]] = {
    "stoic": ("stoic", stoic_ranker),
    "naive": ("half of last month", naive_ranker),
    "errors": ("errors only", errors_ranker),
    "bgnbd": ("BG/NBD (lifetimes)", bgnbd_ranker),
    "oracle": ("oracle (ceiling)", oracle_ranker),
}


@dataclass
class Result:
    label: str
    precision: float
    recall: dict[str, float]
    self_inflicted: int
    warning: dict[str, list[float]]  # per kind, days of warning of the churners flagged
    seconds: float
    warned: dict[int, float]  # days of warning of each churner in the final top 50


def evaluate(label: str, rank: Ranker, pop: Population, progress: Callable[[str], None]) -> Result:
    # flagged_since[i]: the first day of the run of days that account i has been in the daily top
    # 50 without a break, up to the day ranked; an account that leaves the list starts over
    flagged_since: dict[int, int] = {}
    began = time.perf_counter()
    final: list[int] = []
    for day in range(DAYS - EVAL_DAYS + 1, DAYS + 1):
        final = rank(day)
        flagged_since = {i: flagged_since.get(i, day) for i in final}
        progress(f"{label}: day {day - (DAYS - EVAL_DAYS)}/{EVAL_DAYS} ({time.perf_counter() - began:.0f} s)")
    seconds = time.perf_counter() - began
    churners = {k: [i for i, kind in enumerate(pop.kind) if kind == k] for k in KINDS}
    true = {i for k in ("sudden", "decline", "incident") for i in churners[k]}
    top = set(final)
    precision = len(top & true) / TOP
    kinds = ("sudden", "decline", "incident")
    recall = {k: len(top & set(churners[k])) / max(len(churners[k]), 1) for k in kinds}
    warning: dict[str, list[float]] = {}
    for k in ("sudden", "decline", "incident"):
        # Warning is counted from the day a churner entered the list and stayed in it to the last
        # day scored (a day on the list that it then left warned nobody). The day a ranking is
        # made only knows the days before it: day - 1 is the newest data.
        warning[k] = [float(pop.last_order[i] - (flagged_since[i] - 1)) for i in churners[k] if i in top]
    warned = {i: float(pop.last_order[i] - (flagged_since[i] - 1)) for i in top}
    own_side = len(top & set(churners["self-inflicted"]))
    return Result(label, precision, recall, own_side, warning, seconds, warned)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=3000, help="population size (500..20000)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--only", help=f"comma-separated contenders (of {', '.join(CONTENDERS)})")
    args = parser.parse_args()
    if not 500 <= args.accounts <= 20000:
        parser.error(f"--accounts: must be between 500 and 20000, got {args.accounts}")
    keys = args.only.split(",") if args.only else list(CONTENDERS)
    unknown = [k for k in keys if k not in CONTENDERS]
    if unknown:
        parser.error(f"--only: unknown contenders {unknown}; known: {', '.join(CONTENDERS)}")

    tty = sys.stderr.isatty()

    def progress(line: str) -> None:
        print(("\r" if tty else "") + f"  {line}   ", end="" if tty else "\n", file=sys.stderr, flush=True)

    pop = generate(args.accounts, args.seed)
    counts = {k: pop.kind.count(k) for k in KINDS}
    rhythms = {r: pop.rhythm.count(r) for r in ("daily", "weekly", "monthly", "noisy")}
    print(
        f"{args.accounts} accounts over {DAYS} days (seed {args.seed}): "
        + ", ".join(f"{n} {r}" for r, n in rhythms.items())
        + " buyers; planted: "
        + ", ".join(f"{n} {k}" for k, n in counts.items())
        + f"; ranked daily over the last {EVAL_DAYS} days, scored on the last"
    )
    results: list[Result] = []
    for key in keys:
        label, make = CONTENDERS[key]
        rank = make(pop)
        if rank is None:
            continue
        results.append(evaluate(label, rank, pop, progress if tty else lambda _: None))
        if not tty:
            print(f"  {label}: done ({results[-1].seconds:.0f} s)", file=sys.stderr, flush=True)
    if tty:
        print(file=sys.stderr)

    head = (
        f"{'contender':<20} {'precision@50':>12} {'recall sudden':>13} {'recall decline':>14} "
        f"{'recall incident':>15} {'self-inflicted':>14} {'warn decline':>12} {'>=7 d':>5} "
        f"{'warn incident':>13} {'after stop':>10} {'s/day':>6}"
    )
    print()
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r.label:<20} {r.precision:>12.2f} {r.recall['sudden']:>13.2f} {r.recall['decline']:>14.2f} "
            f"{r.recall['incident']:>15.2f} {r.self_inflicted:>14d} {_median(r.warning['decline']):>12} "
            f"{_share(r.warning['decline'], pop.kind.count('decline')):>5} "
            f"{_median(r.warning['incident']):>13} {_median([-w for w in r.warning['sudden']]):>10} "
            f"{r.seconds / EVAL_DAYS:>6.2f}"
        )
    if BGNBD_LOG:
        fits = [line for line in BGNBD_LOG if "alpha=" in line]
        failed = [line for line in BGNBD_LOG if "alpha=" not in line]
        print(f"BG/NBD fits: {len(fits)} converged, {len(failed)} did not; last: {(fits or failed)[-1]}")
    print(
        "warn: median days from the day a churner entered the daily top 50 and stayed in it to its last order"
        " (churners in the final top 50);"
        " >=7 d: share of slow decliners flagged a week or more before their last order;"
        " after stop: median days a sudden stop waits to be flagged"
    )
    print(_before_the_last_order(pop))
    ours = next((r for r in results if r.label == "stoic"), None)
    for result in results:
        if result is ours or result.label.startswith("oracle"):
            print(_by_rhythm(pop, result))
    print()
    if ours is None:
        print("targets: not run (stoic not among the contenders)")
        return
    warn = statistics.median(ours.warning["decline"]) if ours.warning["decline"] else -math.inf
    checks = [
        (f"recall@50 for slow decliners >= {TARGET_RECALL:g} ({ours.recall['decline']:.2f})",
         ours.recall["decline"] >= TARGET_RECALL),
        (f"recall@50 for incident churners >= {TARGET_RECALL:g} ({ours.recall['incident']:.2f})",
         ours.recall["incident"] >= TARGET_RECALL),
        (f"precision@50 >= {TARGET_PRECISION:g} ({ours.precision:.2f})", ours.precision >= TARGET_PRECISION),
        (f"slow decliners flagged >= {TARGET_WARNING:g} days before their last order (median {warn:g})",
         warn >= TARGET_WARNING),
        (f"no self-inflicted account in the top 50 ({ours.self_inflicted})", ours.self_inflicted == 0),
    ]
    for text, ok in checks:
        print(f"target: {text} ... {'met' if ok else 'missed'}")


def _before_the_last_order(pop: Population) -> str:
    """What any contender could see a week ahead: the slow decliners' orders in the 3 weeks up to
    7 days before their last order, against their usual week (the 8 weeks before those)."""
    decliners = [i for i, kind in enumerate(pop.kind) if kind == "decline" and pop.last_order[i] >= 84]
    shares = [_share_before(pop, i) for i in decliners]
    if not shares:
        return "slow decliners: none"
    low = sum(1 for x in shares if x < 0.7)
    return (
        f"slow decliners a week before their last order: their last 3 weeks held a median"
        f" {statistics.median(shares):.0%} of their usual weekly orders; {low} of {len(shares)} had fallen"
        " below 70 % (a week's warning for the others can only come by chance)"
    )


def _by_rhythm(pop: Population, result: Result) -> str:
    """The slow decliners' warning per rhythm: what fell visibly a week before the last order
    (as `_before_the_last_order` measures it) and what the contender made of it."""
    parts = []
    for rhythm in ("daily", "weekly"):
        ids = [i for i, k in enumerate(pop.kind) if k == "decline" and pop.rhythm[i] == rhythm]
        if not ids:
            continue
        fell = sum(1 for i in ids if _share_before(pop, i) < 0.7)
        warned = [result.warned[i] for i in ids if i in result.warned]
        early = sum(1 for w in warned if w >= TARGET_WARNING)
        parts.append(
            f"{rhythm} {len(ids)}: {fell} had fallen below 70 % a week before; {len(warned)} in the final"
            f" top 50, median warning {_median(warned)}, {early} flagged >= {TARGET_WARNING:g} d before"
        )
    return f"{result.label}, slow decliners by rhythm: " + "; ".join(parts)


def _share_before(pop: Population, i: int) -> float:
    """Account i's orders in the 3 weeks up to 7 days before its last order against its usual
    week (the 8 weeks before those); 1 when that history is not there."""
    last = int(pop.last_order[i])
    if last < 84:
        return 1.0
    recent = pop.orders[i, last - 27 : last - 6].sum() / 3
    usual = pop.orders[i, last - 83 : last - 27].sum() / 8
    return float(recent / usual) if usual > 0 else 1.0


def _share(values: list[float], total: int) -> str:
    return f"{sum(1 for v in values if v >= TARGET_WARNING) / total:.2f}" if total else "-"


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} d" if values else "-"


if __name__ == "__main__":
    main()
