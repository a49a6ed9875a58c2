"""Anomaly detection for any metric: a score in [0, 1) for every point, and alert episodes.

A point is judged by the explanations that have predicted this metric well lately:

- the recent level (the median of the last few normal points), while no season fits;
- the same time of day on earlier days, and of the week on earlier weeks: the median of up to
  `keep` past cycles at that slot, shifted by how far today runs from them, at the slot and its
  two neighbours (a job that starts a minute late is still itself). A season that predicts about
  as well as the recent level replaces it: it follows a level change as fast and also knows what
  this time of day usually does, so a nightly job that did not run is seen.

The smallest residual they leave is divided by the typical residual of that hour of the day (a
median over recent points, never below the data's own resolution) and placed in the tail of its
own history: decades of probability past the 99th percentile, along an exponential tail fitted to
the 90th, 99th and 99.9th percentiles, or a power law when the gaps between them grow (bursts).
Two points in the tail add their decades; a lone point must stand one decade further out. Slow
creeps are seen by a fast average of the level pulling away from a slow one, judged the same way
against its own history. The evidence is decades / (decades + 3): 0.5 at three decades. Wider
levels run the same judgement of points on means of six points, so a lasting change too small for
any one point is seen in the mean of many (creeps are the finest level's to see).

A metric declared as a count of events (`per_event`) is never taken to be less noisy than
independent events are, and once a season has judged enough points stretches of its points are
judged together: their Poisson likelihood ratio against what the season in play (or else the best
one) expected before they began to stray, so two empty buckets where fifteen starts each are
usual alert although neither would alone.

The score is the news in the evidence: the first point of an excursion, and each point that makes
it ten times stronger. A threshold on it is crossed once per excursion, as an alert is raised once.

Recurring patterns become normal because the seasonal memory keeps every value, anomalous or not,
and takes the median: a nightly job is expected once it ran on most of the last nights. Points
that score are kept out of the level, the scale and the baselines for at most `hold` seconds,
after which a lasting change is the new normal.

The judging runs in an engine (stoic.signals._engine). An install with a C compiler also builds it
with mypyc, and that build runs when it was compiled from the installed source: the same verdicts,
about 2.5 times faster. `ENGINE` says which one runs ("compiled" or "python");
STOIC_PURE_PYTHON=1 skips the build and runs the Python one.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, overload

from stoic.signals import _engine as _reference
from stoic.signals import _validate
from stoic.signals._engine import DAY, WEEK

DIRECTIONS = ("down", "up", "both")
_EPOCH_MIN, _EPOCH_MAX, _MAX_VALUE = _validate.EPOCH_MIN, _validate.EPOCH_MAX, _validate.MAX_VALUE


def _compiled() -> ModuleType | None:
    """The mypyc build of the engine, if there is one and it was built from the source installed
    beside it (an edited source is run as Python until the next install builds it again)."""
    if os.environ.get("STOIC_PURE_PYTHON") == "1":
        return None
    try:
        native = importlib.import_module("stoic.signals._engine_native")
    except ImportError:
        return None
    try:
        source = Path(_reference.__file__).read_bytes()
    except OSError:  # installed without sources: the build is the installed engine
        return native
    return native if getattr(native, "SOURCE_DIGEST", None) == hashlib.sha256(source).hexdigest() else None


_native = _compiled()
ENGINE = "python" if _native is None else "compiled"
_implementation: ModuleType = _reference if _native is None else _native
_Engine: type[_reference.Engine] = _implementation.Engine
if TYPE_CHECKING:
    from stoic.signals._engine import Detection
else:
    Detection = _implementation.Detection  # the verdicts' class is the running engine's


T = TypeVar("T")


class _Setting(Generic[T]):
    """A Detector setting, read from its engine (which judges with it)."""

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, detector: None, owner: type[Any]) -> _Setting[T]: ...
    @overload
    def __get__(self, detector: Detector, owner: type[Any]) -> T: ...
    def __get__(self, detector: Detector | None, owner: type[Any]) -> _Setting[T] | T:
        if detector is None:
            return self
        return cast(T, getattr(detector._engine, self.name))


class Detector:
    """Scores each point of one metric and opens and closes alert episodes.

    - `interval`: the usual seconds between points (the width of a seasonal slot).
    - `direction`: "down", "up" or "both": which moves can alert.
    - `count`: values are counts or rates, never negative (negative values are refused and the
      expected value is never below 0).
    - `seasons`: the cycles whose shape is learnt, in seconds (a day and a week by default);
      `keep`: how many past cycles of each are remembered (their median is used).
    - `threshold`: the score at which a point is anomalous; `confirm` such points in a row open an
      episode (the score already weighs a run of points above a lone one); `clear` points in a
      row below half the threshold close it (hysteresis, so an episode does not flap).
    - `hold`: the seconds an anomaly is kept out of what is learnt before a lasting change becomes
      the new normal; `drift_half_life`: the memory of the slow baseline creeps are measured
      against.
    - `min_change`: the smallest move, in the metric's units, that can alert (0: any).
    - `warmup`: points seen before any is judged.
    - `per_event`: for a metric that counts events (orders, logins, stream starts), the value one
      event adds: 1 for events per point, 1 / interval for events per second. Its noise is then
      never taken below that of independent events, and a stretch of points that each look
      ordinary but together are unlikely at the rate a season expects (a region's starts gone for
      two buckets, an hour of zeros where one or two a minute are usual) alerts. Implies `count`.

    >>> det = Detector(interval=60.0, direction="down", warmup=10)
    >>> t0 = 1767571200.0  # epoch seconds
    >>> any(det.step(100.0 + i % 3, t0 + 60 * i).anomalous for i in range(60))
    False
    >>> d = det.step(20.0, t0 + 60 * 60)
    >>> d.started, d.move, round(d.score, 2)
    (True, 'down', 0.97)
    """

    __slots__ = ("__weakref__", "_engine")

    # the settings, validated once and kept by the engine alone: read-only here, so a copy can
    # never disagree with what judges
    interval: _Setting[float] = _Setting()
    direction: _Setting[str] = _Setting()
    count: _Setting[bool] = _Setting()
    seasons: _Setting[tuple[float, ...]] = _Setting()
    keep: _Setting[int] = _Setting()
    threshold: _Setting[float] = _Setting()
    confirm: _Setting[int] = _Setting()
    clear: _Setting[int] = _Setting()
    hold: _Setting[float] = _Setting()
    drift_half_life: _Setting[float] = _Setting()
    min_change: _Setting[float] = _Setting()
    warmup: _Setting[int] = _Setting()
    per_event: _Setting[float | None] = _Setting()

    def __init__(
        self,
        interval: float = 60.0,
        *,
        direction: str = "both",
        count: bool = False,
        seasons: tuple[float, ...] = (DAY, WEEK),
        keep: int = 5,
        threshold: float = 0.5,
        confirm: int = 1,
        clear: int = 3,
        hold: float = 3600.0,
        drift_half_life: float = 2 * 3600.0,
        min_change: float = 0.0,
        warmup: int = 60,
        per_event: float | None = None,
    ) -> None:
        interval = _validate.number("interval", interval, low=0.0, low_open=True, high=WEEK)
        direction = _validate.choice("direction", direction, DIRECTIONS)
        if not isinstance(count, bool):
            raise ValueError(f"count: must be True or False, got {count!r}")
        if per_event is not None:
            per_event = _validate.number("per_event", per_event, low=0.0, low_open=True, high=_MAX_VALUE)
        if not isinstance(seasons, tuple) or len(seasons) > 4:
            raise ValueError(f"seasons: must be a tuple of at most 4 lengths in seconds, got {seasons!r}")
        seasons = tuple(
            _validate.number(f"seasons[{i}]", length, low=2 * interval, high=400 * DAY)
            for i, length in enumerate(seasons)
        )
        keep = _validate.integer("keep", keep, low=1, high=52)
        checked = _validate.number("threshold", threshold, low=0.0, high=1.0, low_open=True)
        if checked >= 1.0:
            raise ValueError(f"threshold: must be < 1 (scores never reach 1), got {threshold!r}")
        self._engine = _Engine(
            interval=interval,
            direction=direction,
            count=count or per_event is not None,
            seasons=seasons,
            keep=keep,
            threshold=checked,
            confirm=_validate.integer("confirm", confirm, low=1, high=1000),
            clear=_validate.integer("clear", clear, low=1, high=1000),
            hold=_validate.number("hold", hold, low=0.0, high=400 * DAY),
            drift_half_life=_validate.number(
                "drift_half_life", drift_half_life, low=0.0, low_open=True, high=400 * DAY
            ),
            min_change=_validate.number("min_change", min_change, low=0.0),
            warmup=_validate.integer("warmup", warmup, low=1),
            per_event=per_event,
        )

    def _settings(self) -> dict[str, Any]:
        """The validated settings, as an engine takes them (to build another engine alike)."""
        settings = (name for name, kept in vars(Detector).items() if isinstance(kept, _Setting))
        return {name: getattr(self, name) for name in settings}

    @property
    def active(self) -> bool:
        """Whether an alert episode is open."""
        return self._engine.active

    def step(self, value: float | None, at: float) -> Detection:
        """Judge `value` at epoch seconds `at` (None: no data, which is judged as nothing), then
        learn from it. Points come in time order; a refused point raises ValueError naming the
        field and changes nothing."""
        if not (type(at) is float and _EPOCH_MIN <= at <= _EPOCH_MAX):
            at = _validate.epoch("at", at)
        if not (value is None or (type(value) is float and -_MAX_VALUE <= value <= _MAX_VALUE)):
            value = _validate.measurement("value", value)
        return self._engine.step(value, at)
