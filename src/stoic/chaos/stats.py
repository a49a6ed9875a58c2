"""The significance tests an experiment judges its cohorts with, on the standard library alone.

- `mann_whitney_u`: do two samples of latencies come from the same distribution? (rank test: no
  assumption of normality, robust to the long tails latencies have)
- `two_proportions`: do two cohorts fail (or start) at the same rate? (pooled two-proportion z-test)

Both use the normal approximation, as scipy's ``method="asymptotic"`` does: an experiment judges
tens to thousands of requests per cohort, where the approximation is close, and checks it many times
while it runs, where an exact test would cost too much.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Alternative = Literal["two-sided", "greater", "less"]
ALTERNATIVES = ("two-sided", "greater", "less")


@dataclass(frozen=True, slots=True)
class TestResult:
    """A test's statistic (U or z) and its p-value."""

    statistic: float
    p_value: float


def _normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _p_value(z: float, alternative: Alternative) -> float:
    if alternative == "two-sided":
        return min(1.0, 2.0 * _normal_sf(abs(z)))
    if alternative == "greater":
        return _normal_sf(z)
    return _normal_sf(-z)


def _check_alternative(alternative: str) -> Alternative:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {', '.join(ALTERNATIVES)}; got {alternative!r}")
    return alternative  # type: ignore[return-value]


def mann_whitney_u(
    x: Sequence[float], y: Sequence[float], alternative: Alternative = "two-sided"
) -> TestResult:
    """Mann-Whitney U test of `x` against `y`, with tie and continuity corrections.

    `statistic` is U of `x` (how many pairs have the `x` value above the `y` value, ties counting a
    half); ``alternative="greater"`` asks whether `x` tends to be larger than `y`.

    >>> r = mann_whitney_u([19, 22, 16, 29, 24], [20, 11, 17, 12])
    >>> r.statistic, round(r.p_value, 4)
    (17.0, 0.1113)
    """
    alternative = _check_alternative(alternative)
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        raise ValueError(f"both samples need at least one value; got {n1} and {n2}")
    ranks, tie_term = _ranks([*x, *y])
    u1 = sum(ranks[:n1]) - n1 * (n1 + 1) / 2.0
    n = n1 + n2
    mean = n1 * n2 / 2.0
    variance = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if variance <= 0.0:  # every value equal: no evidence either way
        return TestResult(u1, 1.0)
    # continuity correction: U moves in steps of 1/2, towards the mean
    if alternative == "two-sided":
        shift = -0.5 if u1 > mean else 0.5 if u1 < mean else 0.0
    else:
        shift = -0.5 if alternative == "greater" else 0.5
    z = (u1 - mean + shift) / math.sqrt(variance)
    return TestResult(u1, _p_value(z, alternative))


def _ranks(values: Sequence[float]) -> tuple[list[float], float]:
    """Mid-ranks of `values` (1-based) and the tie term sum(t^3 - t) over groups of equal values."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    tie_term = 0.0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        rank = (i + j) / 2.0 + 1.0
        for k in range(i, j + 1):
            ranks[order[k]] = rank
        t = j - i + 1
        tie_term += t**3 - t
        i = j + 1
    return ranks, tie_term


def two_proportions(
    successes1: int, n1: int, successes2: int, n2: int, alternative: Alternative = "two-sided"
) -> TestResult:
    """Pooled two-proportion z-test of ``successes1 / n1`` against ``successes2 / n2``.

    ``alternative="greater"`` asks whether the first proportion is the larger.

    >>> r = two_proportions(5, 83, 12, 99)
    >>> round(r.statistic, 4), round(r.p_value, 4)
    (-1.4078, 0.1592)
    """
    alternative = _check_alternative(alternative)
    for name, k, n in (("1", successes1, n1), ("2", successes2, n2)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n{name} must be an integer >= 1; got {n!r}")
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= n:
            raise ValueError(f"successes{name} must be an integer in [0, n{name}]; got {k!r}")
    p1, p2 = successes1 / n1, successes2 / n2
    pooled = (successes1 + successes2) / (n1 + n2)
    variance = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)
    if variance <= 0.0:  # both cohorts all successes or all failures: identical
        return TestResult(0.0, 1.0)
    z = (p1 - p2) / math.sqrt(variance)
    return TestResult(z, _p_value(z, alternative))


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) of `values`, interpolated between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be in [0, 100]; got {q!r}")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


__all__ = ["ALTERNATIVES", "Alternative", "TestResult", "mann_whitney_u", "percentile", "two_proportions"]
