"""Forecasts and the drop detector on generated series with known injected anomalies."""

from __future__ import annotations

import math

import pytest

from stoic.signals import DailyPattern, DropDetector, Holt, HoltWinters
from stoic.signals.simulate import Anomaly, generate

DAY = 1440  # minutely buckets


def test_holt_follows_a_linear_trend() -> None:
    holt = Holt(alpha=0.5, beta=0.3)
    for i in range(200):
        holt.update(10.0 + 2.0 * i)
    assert holt.predict() == pytest.approx(10.0 + 2.0 * 200, rel=1e-3)


def test_holt_winters_learns_a_daily_shape() -> None:
    hw = HoltWinters(season=48, alpha=0.05, gamma=0.3)
    shape = [100 + 50 * math.sin(2 * math.pi * i / 48) for i in range(48)]
    errors = []
    for day in range(6):
        for i in range(48):
            predicted = hw.predict()
            if day >= 3 and predicted is not None:
                errors.append(abs(predicted - shape[i]))
            hw.update(shape[i])
    assert hw.ready
    assert max(errors) < 3.0  # within 3 % of the peak-to-trough swing of 100


def test_daily_pattern_uses_holt_until_a_season_is_seen() -> None:
    model = DailyPattern(season=10)
    assert model.predict() is None
    for _ in range(5):
        model.update(7.0)
    assert model.predict() == pytest.approx(7.0)
    assert not model.seasonal.ready
    for _ in range(5):
        model.update(7.0)
    assert model.seasonal.ready


def _episodes(values: list[float], **kw: float) -> list[int]:
    det = DropDetector(season=DAY, min_change=0.1, **kw)  # type: ignore[arg-type]
    return [i for i, v in enumerate(values) if det.step(v, float(i)).started]


def test_finds_injected_drops_of_every_shape() -> None:
    anomalies = [
        Anomaly("sharp_drop", 2 * DAY + 15 * 60, 2 * DAY + 15 * 60 + 20, 0.4),
        Anomaly("night_outage", 3 * DAY + 3 * 60, 3 * DAY + 3 * 60 + 25, 0.95),
        Anomaly("slow_decline", 4 * DAY + 11 * 60, 4 * DAY + 13 * 60, 0.6),
    ]
    series = generate(5, peak=60.0, seed=3, anomalies=anomalies)
    starts = _episodes(series.values)
    for a in anomalies:
        hits = [s for s in starts if a.start <= s < a.end]
        assert hits, f"{a.shape} at bucket {a.start} was not found; alerts at {starts}"
        if a.shape != "slow_decline":
            assert hits[0] - a.start <= 3, f"{a.shape} found late: {hits[0] - a.start} buckets"
    outside = [s for s in starts if s >= DAY and not any(a.start <= s < a.end + 10 for a in anomalies)]
    assert len(outside) <= 1, f"false alerts at {outside}"


def test_no_alert_in_quiet_hour_noise() -> None:
    # a quiet region: ~0.2 starts/s at night, so a minute holds a dozen starts and noise is +-30 %
    series = generate(4, peak=5.0, seed=5)
    det = DropDetector(season=DAY, min_change=0.5)
    alerts = [i for i, v in enumerate(series.values) if det.step(v, float(i)).started and i >= DAY]
    assert alerts == []


def test_noise_floor_suppresses_a_small_absolute_drop_at_night() -> None:
    # the same 60 % night dip is reported without a floor and suppressed with a floor above it
    dip = [Anomaly("sharp_drop", 2 * DAY + 4 * 60, 2 * DAY + 4 * 60 + 20, 0.6)]
    series = generate(3, peak=20.0, seed=9, anomalies=dip, jitter=0.0)
    night_level = series.expected[dip[0].start]
    no_floor = _episodes(series.values)
    assert any(dip[0].start <= s < dip[0].end for s in no_floor)
    det = DropDetector(season=DAY, min_change=night_level)  # drop is 0.6 x night level < floor
    floored = [i for i, v in enumerate(series.values) if det.step(v, float(i)).started]
    assert not any(dip[0].start <= s < dip[0].end for s in floored)


def test_rising_error_rate_is_detected_in_direction_up() -> None:
    det = DropDetector(season=60, direction="up", min_change=0.01, min_ratio=0.5, warmup=20)
    values = [0.002 + 0.0005 * ((i * 7) % 5) for i in range(300)]
    values[200:210] = [0.08] * 10
    starts = [i for i, v in enumerate(values) if det.step(v, float(i)).started]
    assert starts == [201]
    ends = []
    det2 = DropDetector(season=60, direction="up", min_change=0.01, min_ratio=0.5, warmup=20)
    for i, v in enumerate(values):
        if det2.step(v, float(i)).ended:
            ends.append(i)
    assert ends == [211]


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"^k: must be > 0"):
        DropDetector(k=0)
    with pytest.raises(ValueError, match=r"^direction: must be one of down, up"):
        DropDetector(direction="sideways")
    with pytest.raises(ValueError, match=r"^season: must be >= 2"):
        HoltWinters(season=1)
    with pytest.raises(ValueError, match=r"^alpha: must be <= 1"):
        Holt(alpha=1.5)


def test_a_short_season_still_learns_its_spread_per_slot() -> None:
    # 12 buckets a day (2-hour buckets): fewer than the 24 hourly slots the spread uses by default
    detector = DropDetector(season=12, warmup=5)
    assert detector.spread_slots == 12
    level = [100.0 + 40 * math.sin(2 * math.pi * t / 12) for t in range(12 * 6)]
    assert not any(detector.step(v).anomalous for v in level)
    assert any(detector.step(v * 0.3).anomalous for v in level[:6])
