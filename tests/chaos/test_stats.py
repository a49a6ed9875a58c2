"""The significance tests, checked against values published for scipy and statsmodels (and by hand)."""

from __future__ import annotations

import math

import pytest

from stoic.chaos.stats import mann_whitney_u, percentile, two_proportions


def test_mann_whitney_matches_scipys_published_example() -> None:
    # scipy.stats.mannwhitneyu docs: male and female ages, method="asymptotic"
    males, females = [19, 22, 16, 29, 24], [20, 11, 17, 12]
    two = mann_whitney_u(males, females)
    assert two.statistic == 17.0
    assert two.p_value == pytest.approx(0.11134688653314041, rel=1e-9)
    assert mann_whitney_u(males, females, "greater").p_value == pytest.approx(0.05567344326657021, rel=1e-9)


def test_mann_whitney_corrects_for_ties() -> None:
    # by hand: U = 8.5; ties 2 x3, 3 x4, 4 x3, 5 x2 give sum(t^3 - t) = 24 + 60 + 24 + 6 = 114 over
    # N = 15, sigma^2 = 56/12 * (16 - 114/210) = 72.133, z = (8.5 - 28 + 0.5) / sqrt(72.133) = -2.2371
    x, y = [1, 2, 2, 3, 3, 3, 4], [2, 3, 4, 4, 5, 5, 6, 7]
    r = mann_whitney_u(x, y)
    assert r.statistic == 8.5
    z = (8.5 - 28 + 0.5) / math.sqrt(56 / 12 * (16 - 114 / 210))
    assert r.p_value == pytest.approx(math.erfc(-z / math.sqrt(2)), rel=1e-12)
    assert r.p_value == pytest.approx(0.025279736885893914, rel=1e-9)  # scipy, method="asymptotic"
    # the one-sided test points the right way
    assert mann_whitney_u(x, y, "less").p_value < 0.02 < mann_whitney_u(x, y, "greater").p_value


def test_mann_whitney_sees_no_evidence_when_every_value_is_equal() -> None:
    assert mann_whitney_u([5.0] * 10, [5.0] * 10, "greater").p_value == 1.0


def test_mann_whitney_refuses_empty_samples_and_unknown_alternatives() -> None:
    with pytest.raises(ValueError, match="both samples need at least one value; got 0 and 2"):
        mann_whitney_u([], [1, 2])
    with pytest.raises(ValueError, match="alternative must be one of two-sided, greater, less; got 'bigger'"):
        mann_whitney_u([1], [2], "bigger")  # type: ignore[arg-type]


def test_two_proportions_matches_statsmodels_published_example() -> None:
    # statsmodels proportions_ztest(count=[5, 12], nobs=[83, 99]) -> (-1.4078304151258787, 0.1591812918115699)
    r = two_proportions(5, 83, 12, 99)
    assert r.statistic == pytest.approx(-1.4078304151258787, rel=1e-12)
    assert r.p_value == pytest.approx(0.1591812918115699, rel=1e-9)
    assert two_proportions(5, 83, 12, 99, "less").p_value == pytest.approx(0.1591812918115699 / 2, rel=1e-9)


def test_two_proportions_by_hand() -> None:
    # 5 of 5 failed against 0 of 6: pooled 5/11, z = 1 / sqrt(5/11 * 6/11 * (1/5 + 1/6)) = 3.3166
    r = two_proportions(5, 5, 0, 6, "greater")
    assert r.statistic == pytest.approx(1 / math.sqrt(5 / 11 * 6 / 11 * (1 / 5 + 1 / 6)), rel=1e-12)
    assert r.p_value == pytest.approx(0.5 * math.erfc(r.statistic / math.sqrt(2)), rel=1e-12)
    assert two_proportions(7, 7, 9, 9).p_value == 1.0  # identical cohorts


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1, 0, 1, 1), "n1 must be an integer >= 1; got 0"),
        ((3, 2, 1, 1), r"successes1 must be an integer in \[0, n1\]; got 3"),
        ((1, 1, 1, True), "n2 must be an integer >= 1; got True"),
    ],
)
def test_two_proportions_refuses_impossible_counts(args: tuple[int, int, int, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        two_proportions(*args)


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([7.0], 99) == 7.0
    assert percentile(list(range(101)), 99) == 99.0
    with pytest.raises(ValueError, match=r"q must be in \[0, 100\]; got 101"):
        percentile([1.0], 101)
