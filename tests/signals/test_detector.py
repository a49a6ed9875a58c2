"""The anomaly detector on generated series whose anomalies are known, and at its edges."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stoic.signals import DailyPattern, Detection, Detector, Holt, HoltWinters
from stoic.signals.simulate import Anomaly, generate

T0 = 1_767_571_200.0  # Monday 2026-01-05 00:00 UTC
MINUTE = 60.0
DAY = 1440  # minutely points


def _run(values: list[float | None], interval: float = MINUTE, **kw: object) -> list[Detection]:
    det = Detector(interval, **kw)  # type: ignore[arg-type]
    return [det.step(v, T0 + interval * i) for i, v in enumerate(values)]


def _starts(detections: list[Detection]) -> list[int]:
    return [i for i, d in enumerate(detections) if d.started]


# ---- forecasts (still public) ----------------------------------------------------------------
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
    assert max(errors) < 3.0
    model = DailyPattern(season=10)
    assert model.predict() is None


# ---- what it finds and what it leaves alone ------------------------------------------------------
def test_finds_injected_drops_of_every_shape_and_little_else() -> None:
    anomalies = [
        Anomaly("sharp_drop", 3 * DAY + 15 * 60, 3 * DAY + 15 * 60 + 20, 0.4),
        Anomaly("night_outage", 4 * DAY + 3 * 60, 4 * DAY + 3 * 60 + 25, 0.95),
        Anomaly("slow_decline", 5 * DAY + 11 * 60, 5 * DAY + 13 * 60, 0.6),
    ]
    series = generate(7, peak=60.0, seed=3, anomalies=anomalies, start=T0)
    starts = _starts(_run(series.values, direction="down", count=True))
    for a in anomalies:
        hits = [s for s in starts if a.start <= s < a.end]
        assert hits, f"{a.shape} at {a.start} was not found; alerts at {starts}"
        if a.shape != "slow_decline":
            assert hits[0] - a.start <= 3, f"{a.shape} found {hits[0] - a.start} points late"
    outside = [s for s in starts if s >= DAY and not any(a.start <= s < a.end + 10 for a in anomalies)]
    assert len(outside) <= 1, f"false alerts at {outside}"


def test_quiet_hours_page_nobody() -> None:
    # a quiet region: a dozen starts a minute at night, so the noise is +-30 %
    series = generate(5, peak=5.0, seed=5, start=T0)
    assert _starts(_run(series.values, direction="down", count=True))[DAY:] == []


def test_a_noise_free_daily_sine_raises_nothing() -> None:
    values: list[float | None] = [100 + 80 * math.sin(2 * math.pi * i / DAY) for i in range(6 * DAY)]
    assert _starts(_run(values)) == []


def test_a_daily_spike_repeated_for_four_seasons_stops_alerting() -> None:
    rng = random.Random(4)
    values: list[float | None] = [
        rng.gauss(98, 1) if 120 <= i % DAY < 150 else rng.gauss(20, 2) for i in range(7 * DAY)
    ]
    starts = _starts(_run(values, direction="up"))
    assert starts and starts[0] // DAY == 0  # new on the first night
    assert [s for s in starts if s >= 4 * DAY] == []  # normal from the fifth night on


def test_a_nightly_job_that_does_not_run_is_seen() -> None:
    rng = random.Random(6)
    values: list[float | None] = [
        rng.gauss(98, 1) if 120 <= i % DAY < 150 and i // DAY != 6 else rng.gauss(20, 2)
        for i in range(7 * DAY)
    ]
    starts = _starts(_run(values, direction="down"))
    assert any(6 * DAY + 120 <= s < 6 * DAY + 150 for s in starts), starts


def test_a_flat_series_with_one_step_alerts_once() -> None:
    values: list[float | None] = [42.0] * 3000 + [50.0] * 3000
    detections = _run(values)
    assert _starts(detections) == [3000]
    assert detections[3000].move == "up" and detections[3000].score > 0.9
    assert sum(d.ended for d in detections) == 1


def test_a_single_point_spike_alerts() -> None:
    rng = random.Random(2)
    values: list[float | None] = [rng.gauss(10, 1) for _ in range(3000)]
    values[2000] = 30.0
    assert _starts(_run(values)) == [2000]


def test_an_outage_is_scored_once_while_its_evidence_lasts() -> None:
    # the score is news: the first point of an excursion (and any that makes it ten times
    # stronger), so a threshold is crossed once per outage; `evidence` and `anomalous` last
    rng = random.Random(4)
    values: list[float | None] = [rng.gauss(100, 3) for _ in range(2000)]
    values[1500:1530] = [40.0 + rng.gauss(0, 3) for _ in range(30)]
    detections = _run(values, direction="down")
    scored = [i for i, d in enumerate(detections) if d.score >= 0.5]
    assert scored[0] == 1500 and len(scored) <= 2 and scored[-1] <= 1502, scored
    assert all(d.anomalous and d.evidence >= 0.5 for d in detections[1500:1530])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_lasting_shift_too_small_for_any_point_is_seen(seed: int) -> None:
    # two standard deviations down for six hours: no single minute stands out, the mean of many
    # does (the wider levels judge means of 6 and 36 minutes)
    rng = random.Random(seed)
    values: list[float | None] = [rng.gauss(100, 10) for _ in range(5 * DAY)]
    shift = 4 * DAY + 300
    for i in range(shift, shift + 360):
        values[i] -= 20.0  # type: ignore[operator]
    starts = _starts(_run(values, direction="down"))
    assert [s for s in starts if s < shift] == []
    assert any(shift <= s < shift + 120 for s in starts), starts


def test_a_slow_creep_alerts_once_it_is_clear() -> None:
    # p95 latency creeping from 170 to 490 ms over 36 hours
    rng = random.Random(1)
    start = 3 * DAY
    values: list[float | None] = [
        rng.gauss(170 + 320 * min(max(i - start, 0), 2160) / 2160, 10) for i in range(6 * DAY)
    ]
    starts = _starts(_run(values, direction="up"))
    assert starts and start < starts[0] < start + 8 * 60, starts
    assert all(s > start for s in starts)


def test_both_directions_alert_in_both() -> None:
    rng = random.Random(8)
    values: list[float | None] = [rng.gauss(100, 3) for _ in range(2000)]
    values[1200:1230] = [60.0] * 30
    values[1600:1630] = [140.0] * 30
    both = _run(values, direction="both")
    assert [(i // 10, both[i].move) for i in _starts(both)] == [(120, "down"), (160, "up")]
    assert [i // 10 for i in _starts(_run(values, direction="down"))] == [120]
    assert [i // 10 for i in _starts(_run(values, direction="up"))] == [160]


def test_a_count_of_events_is_never_taken_for_less_noisy_than_independent_events() -> None:
    # Ten orders a point, every point: as data, no noise at all, so five is far out. As a count of
    # independent events it is not: five where ten are expected happens one time in twenty.
    values = [10.0] * 120 + [5.0]
    assert _run(values, direction="down", count=True)[-1].started
    assert not _run(values, direction="down", per_event=1.0)[-1].started
    # the same count as events per second: one event adds 1 / interval
    assert not _run([v / 60.0 for v in values], direction="down", per_event=1.0 / 60.0)[-1].started


def test_an_hour_of_silence_in_a_quiet_count_is_seen() -> None:
    # One or two events a minute, then none for an hour: no minute alone is surprising (a zero
    # comes every few minutes), the hour is.
    rng = np.random.default_rng(7)
    values = [float(rng.poisson(1.0 + 0.5 * math.sin(2 * math.pi * i / DAY))) for i in range(4 * DAY)]
    silent = range(3 * DAY + 600, 3 * DAY + 660)
    for i in silent:
        values[i] = 0.0
    detections = _run(values, direction="down", per_event=1.0)
    assert any(detections[i].started for i in silent)
    assert _starts(detections[DAY : 3 * DAY]) == []


def test_a_memory_of_one_cycle_works() -> None:
    # keep=1: a season remembers only its latest cycle; once that holds today's own point there is
    # nothing earlier to compare a neighbouring slot with (this raised IndexError on day two)
    rng = random.Random(3)
    det = Detector(300.0, keep=1)
    daily = [100.0 + 60.0 * math.sin(2 * math.pi * i / 288) for i in range(288)]
    calm = [det.step(daily[i % 288] + rng.gauss(0, 4), T0 + 300.0 * i) for i in range(6 * 288)]
    assert not any(d.started for d in calm)
    outage = [det.step(0.0, T0 + 300.0 * (6 * 288 + i)).started for i in range(3)]
    assert outage == [True, False, False]


def test_gaps_are_no_data_not_zero_and_slots_follow_time() -> None:
    rng = random.Random(3)
    values: list[float | None] = [
        100 + 50 * math.sin(2 * math.pi * i / DAY) + rng.gauss(0, 2) for i in range(5 * DAY)
    ]
    for i in range(3 * DAY + 600, 3 * DAY + 700):  # a 100-minute hole in the pipeline
        values[i] = None
    detections = _run(values, direction="down")
    assert _starts(detections) == []
    assert detections[3 * DAY + 650].value is None and detections[3 * DAY + 650].score == 0.0
    # irregular timestamps: the same series sampled every 1 to 3 minutes is still judged by time
    det = Detector(MINUTE, direction="down")
    t, alerts = T0, []
    while t < T0 + 5 * DAY * MINUTE:
        i = int((t - T0) // MINUTE)
        value = 100 + 50 * math.sin(2 * math.pi * i / DAY) + rng.gauss(0, 2)
        alerts += [t] if det.step(value, t).started else []
        t += MINUTE * rng.choice((1, 2, 3))
    assert alerts == []


def test_values_are_not_clamped_unless_they_are_counts() -> None:
    rng = random.Random(5)
    values: list[float | None] = [rng.gauss(-40.0, 1.0) for _ in range(1000)]  # a freezer, in Celsius
    detections = _run(values)
    assert detections[-1].expected is not None and detections[-1].expected < -35
    assert detections[-1].lower is not None and detections[-1].lower < -40
    with pytest.raises(ValueError, match=r"^value: a count cannot be negative, got -1.0$"):
        Detector(count=True).step(-1.0, T0)


def test_one_absurd_sample_neither_blinds_nor_stretches_the_model() -> None:
    rng = random.Random(9)
    det = Detector(MINUTE, direction="down")
    for i in range(2 * DAY):
        det.step(rng.gauss(10, 1), T0 + MINUTE * i)
    absurd = det.step(1e9, T0 + MINUTE * 2 * DAY)
    assert absurd.score == 0.0  # it does not alert downwards, and it is not learnt either
    after = [det.step(rng.gauss(10, 1), T0 + MINUTE * (2 * DAY + 1 + i)) for i in range(DAY)]
    assert not any(d.started for d in after)
    assert after[-1].lower is not None and 5 < after[-1].lower < 10  # the band did not stretch
    outage = [det.step(0.0, T0 + MINUTE * (3 * DAY + 1 + i)) for i in range(5)]
    assert any(d.started for d in outage)


# ---- the edges -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "message"),
    [
        (math.nan, r"^value: must be a finite number of magnitude at most 1e\+150, got nan$"),
        (math.inf, r"^value: must be a finite number of magnitude at most 1e\+150, got inf$"),
        (1e308, r"^value: must be a finite number of magnitude at most 1e\+150, got 1e\+308$"),
        (10**400, r"^value: must be a finite number of magnitude at most 1e\+150, got 1000"),
        ("12", r"^value: must be a number, got '12'$"),
        (True, r"^value: must be a number, got True$"),
    ],
)
def test_bad_values_are_refused_and_change_nothing(value: object, message: str) -> None:
    refused, untouched = Detector(MINUTE, warmup=5), Detector(MINUTE, warmup=5)
    for i in range(30):
        refused.step(10.0 + i % 2, T0 + MINUTE * i)
        untouched.step(10.0 + i % 2, T0 + MINUTE * i)
    with pytest.raises(ValueError, match=message):
        refused.step(value, T0 + MINUTE * 30)  # type: ignore[arg-type]
    for i, value_after in enumerate((10.0, 30.0)):
        at = T0 + MINUTE * (31 + i)
        assert refused.step(value_after, at) == untouched.step(value_after, at)


@pytest.mark.parametrize(
    ("at", "message"),
    [
        (T0 * 1000, r"^at: must be epoch seconds between 2000-01-01 and 2100-01-01, got .* \(milliseconds\?"),
        (T0 * 1e6, r"\(microseconds\? divide by 1000000\)$"),
        (-5.0, r"^at: must be epoch seconds between 2000-01-01 and 2100-01-01, got -5.0$"),
        (5e9, r"^at: must be epoch seconds between"),
        (math.nan, r"^at: must be epoch seconds between"),
        ("now", r"^at: must be epoch seconds \(a number\), got 'now'$"),
        (T0 - 60, r"^at: points must come in time order; 1767571140.0 is before 1767571200.0$"),
    ],
)
def test_bad_timestamps_are_refused(at: object, message: str) -> None:
    det = Detector()
    det.step(1.0, T0)
    with pytest.raises(ValueError, match=message):
        det.step(1.0, at)  # type: ignore[arg-type]
    assert det.step(1.0, T0 + 60).at == T0 + 60


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"^direction: must be one of down, up, both, got 'sideways'$"):
        Detector(direction="sideways")
    with pytest.raises(ValueError, match=r"^threshold: must be < 1 \(scores never reach 1\), got 1.0$"):
        Detector(threshold=1.0)
    with pytest.raises(ValueError, match=r"^seasons\[1\]: must be >= 120"):
        Detector(60.0, seasons=(86400.0, 30.0))
    with pytest.raises(ValueError, match=r"^interval: must be > 0"):
        Detector(0)
    with pytest.raises(ValueError, match=r"^count: must be True or False"):
        Detector(count=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^per_event: must be > 0, got 0"):
        Detector(per_event=0)
    with pytest.raises(ValueError, match=r"^value: a count cannot be negative"):
        Detector(per_event=1.0).step(-1.0, T0)  # counting events implies a count


_values = st.one_of(
    st.none(),
    st.floats(min_value=-1e150, max_value=1e150, allow_nan=False),
    st.sampled_from([0.0, 1.0, 1e150, -1e150, 5e-324]),
)


@settings(max_examples=60, deadline=None)
@given(
    points=st.lists(st.tuples(_values, st.floats(min_value=0.0, max_value=7200.0)), min_size=1, max_size=400),
    direction=st.sampled_from(["down", "up", "both"]),
    per_event=st.sampled_from([None, 1.0, 1e-3]),
)
def test_after_any_accepted_sequence_the_model_is_finite(
    points: list[tuple[float | None, float]], direction: str, per_event: float | None
) -> None:
    det = Detector(MINUTE, direction=direction, warmup=3, seasons=(3600.0, 6 * 3600.0), per_event=per_event)
    engine = det._engine  # the state it judges with
    at = T0
    for value, dt in points:
        at += dt
        d = det.step(value if per_event is None or value is None else abs(value), at)
        assert 0.0 <= d.score < 1.0
        for x in (d.expected, d.lower, d.upper, d.change):
            assert x is None or math.isfinite(x)
    numbers = [engine._quantum if engine._quantum < math.inf else 0.0, engine._decades, *engine._errors]
    numbers += [x for x in engine._levels if x is not None]
    numbers += [x for d in engine._drifts for x in (d.fast or 0.0, d.slow)]
    assert all(math.isfinite(x) for x in numbers)
    assert all(math.isfinite(x) for x in engine._tail.window._sorted)
    if engine._stretch is not None:
        stretch = engine._stretch
        numbers = [stretch.spread, stretch.carry, stretch.said, stretch.shift]
        assert all(math.isfinite(x) for x in numbers + [x for p in stretch.points for x in p])


def test_medians_kept_on_the_fly_equal_medians_taken_anew() -> None:
    # The detector keeps its medians sorted as points come and go, and places each point in its
    # seasons and reads what they expect there with code of its own: all must agree with doing
    # it the plain way, on repeated values, two points in one slot, gaps, and a change that lasts
    # past `hold`.
    from stoic.signals import _engine as module

    def middle(values: list[float]) -> float:
        return sorted(values)[(len(values) - 1) // 2]

    rng = random.Random(7)
    det = Detector(MINUTE, seasons=(3600.0, 6 * 3600.0), keep=3, warmup=10, hold=1800.0)
    engine = det._engine
    at = T0
    for i in range(6000):
        at += rng.choice((60.0, 60.0, 60.0, 30.0, 61.5, 600.0))
        level = 50.0 if 2500 <= i < 2700 else 10.0  # a shift that lasts past `hold`
        value = None if rng.random() < 0.02 else level + rng.choice((0.0, 1.0, 1.0, 2.0, rng.gauss(0, 3)))
        usual = [p.typical(p.slot(at), int(at // p.length)) for p in engine._profiles]  # before it learns
        det.step(value, at)
        if value is None:
            continue
        assert engine._typical[1:] == usual
        for k, p in enumerate(engine._profiles):
            slot = engine._slots[k]
            assert (slot, engine._cycles[k]) == (p.slot(at), int(at // p.length))
            values = p._values[slot]
            assert values is not None and p.medians[slot] == middle(values)
            if len(values) > 1:
                assert p.earlier[slot] == middle(values[:-1])
        for recent, ranked, level_now in zip(engine._recent, engine._ranked, engine._levels, strict=True):
            assert ranked == sorted(recent)
            assert level_now == (middle(list(recent)) if recent else None)
        assert all(d.ready == (d.tail.window.n >= module._DRIFT_MIN) for d in engine._drifts)
    assert engine._held == [] and engine._error_n[1] > 0  # the shift was taken in; a season judged
