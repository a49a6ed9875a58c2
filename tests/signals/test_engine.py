"""The detector's compiled engine against its reference: one source (stoic/signals/_engine.py), two
builds, the same verdicts to the last bit."""

from __future__ import annotations

import math
import os
import random
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stoic.signals import _engine as reference
from stoic.signals import detector
from stoic.signals.detector import Detector

T0 = 1_767_571_200.0  # Monday 2026-01-05 00:00 UTC
PURE = os.environ.get("STOIC_PURE_PYTHON") == "1"
Points = list[tuple[float | None, float]]  # (value or None for no data, epoch seconds)


def test_the_detector_runs_the_engine_compiled_from_its_source() -> None:
    if PURE:
        pytest.skip("STOIC_PURE_PYTHON=1: the Python engine was asked for")
    assert detector.ENGINE == "compiled", (
        "the compiled engine is missing or was built from another source: reinstall "
        "(`pip install -e .`, which ./run does when _engine.py changed) with a C compiler"
    )


@pytest.mark.skipif(PURE, reason="STOIC_PURE_PYTHON=1: no compiled engine")
def test_a_build_from_another_source_is_not_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    edited = tmp_path / "_engine.py"
    edited.write_bytes(Path(reference.__file__).read_bytes() + b"# edited after the install\n")
    monkeypatch.setattr(reference, "__file__", str(edited))
    assert detector._compiled() is None  # until the next install builds it again
    monkeypatch.setattr(reference, "__file__", str(tmp_path / "gone.py"))
    assert detector._compiled() is _compiled()  # installed without sources: the build is the engine


def _compiled() -> ModuleType:
    from stoic.signals import _engine_native  # type: ignore[attr-defined]

    assert _engine_native.__file__ is not None and not _engine_native.__file__.endswith(".py")
    return _engine_native


def _engines(**kw: object) -> tuple[Any, Any]:
    """Both engines, with the settings a Detector validated."""
    chosen = Detector(**kw)._settings()  # type: ignore[arg-type]
    return reference.Engine(**chosen), _compiled().Engine(**chosen)


def _same(points: Points, **kw: object) -> int:
    """Step both engines through `points`: each verdict (or refusal) must be identical. Returns how
    many points had evidence, so a caller can check that its series was judged."""
    engines = _engines(**kw)
    spoke = 0
    for i, (value, at) in enumerate(points):
        outcomes: list[tuple[object, ...]] = []
        for engine in engines:
            try:
                outcomes.append(tuple(engine.step(value, at)))
            except ValueError as exc:
                outcomes.append(("refused", str(exc)))
        assert outcomes[0] == outcomes[1], f"point {i} ({value!r} at {at!r}): {outcomes}"
        evidence = outcomes[0][-1]
        spoke += isinstance(evidence, float) and evidence > 0.0
    return spoke


def _day_of_counts(days: int, interval: float, seed: int) -> Points:
    """A daily rhythm of events with bursts, gaps, a nightly job and an hour-long outage."""
    rng = random.Random(seed)
    out: Points = []
    n = int(days * 86400 / interval)
    for i in range(n):
        at = T0 + i * interval
        hour = (at % 86400) / 3600
        rate = 20.0 + 15.0 * math.sin(2 * math.pi * (hour - 6) / 24) + (60.0 if 2 <= hour < 2.25 else 0.0)
        if n * 0.8 <= i < n * 0.8 + 3600 / interval:
            rate = 0.5
        value: float | None = float(sum(1 for _ in range(int(rate * 2)) if rng.random() < 0.5))
        if rng.random() < 0.01:
            value *= 8.0  # a burst
        if rng.random() < 0.005:
            value = None  # no data
        out.append((value, at))
    return out


@pytest.mark.skipif(PURE, reason="STOIC_PURE_PYTHON=1: no compiled engine")
@pytest.mark.parametrize(
    ("direction", "per_event", "interval"),
    [("both", None, 300.0), ("down", 1.0, 300.0), ("up", None, 60.0), ("down", None, 60.0)],
)
def test_weeks_of_a_metric_get_the_same_verdicts_from_both_engines(
    direction: str, per_event: float | None, interval: float
) -> None:
    days = 16 if interval == 300.0 else 5
    points = _day_of_counts(days, interval, seed=int(interval) + len(direction))
    spoke = _same(points, interval=interval, direction=direction, per_event=per_event)
    assert spoke > 0  # the outage was judged, through the seasons, stretches and wider levels


_values = st.one_of(
    st.none(),
    st.floats(min_value=-1e150, max_value=1e150, allow_nan=False),
    st.sampled_from([0.0, 1.0, 3.0, 1e150, -1.0, 5e-324]),
)


@pytest.mark.skipif(PURE, reason="STOIC_PURE_PYTHON=1: no compiled engine")
@settings(max_examples=80, deadline=None)
@given(
    points=st.lists(st.tuples(_values, st.floats(min_value=-60.0, max_value=7200.0)), max_size=500),
    direction=st.sampled_from(["down", "up", "both"]),
    per_event=st.sampled_from([None, 1.0, 1e-3]),
    count=st.booleans(),
    keep=st.integers(min_value=1, max_value=6),
    hold=st.sampled_from([0.0, 600.0, 3600.0]),
)
def test_any_sequence_gets_the_same_verdicts_and_refusals_from_both_engines(
    points: Points, direction: str, per_event: float | None, count: bool, keep: int,
    hold: float,
) -> None:
    at, timed = T0, []
    for value, dt in points:  # a negative step: a point out of time order, refused by both
        at += dt
        timed.append((value, at))
    _same(
        timed, interval=60.0, direction=direction, per_event=per_event, count=count, keep=keep, hold=hold,
        warmup=3, seasons=(3600.0, 6 * 3600.0),
    )
