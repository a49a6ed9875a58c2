"""Drop detection: alert when a signal leaves the band around its forecast, ignoring quiet-hour noise."""

from __future__ import annotations

from dataclasses import dataclass

from stoic.signals import _validate
from stoic.signals.forecast import DailyPattern, Forecast

_MAD_TO_SIGMA = 1.2533  # mean absolute deviation -> standard deviation for normal noise
_MIN_SLOT_SAMPLES = 20  # buckets a time-of-day slot needs before its own spread is trusted


@dataclass(frozen=True, slots=True)
class Detection:
    """The verdict for one bucket.

    `bound` is the edge of the normal band (below `expected` for direction "down");
    `change` is the relative move against the forecast (0.38 = 38 % below expected for "down").
    `started`/`ended` mark the first and last bucket of an anomaly episode.
    """

    at: float
    value: float | None
    expected: float | None
    bound: float | None
    anomalous: bool = False
    started: bool = False
    ended: bool = False
    change: float = 0.0


class DropDetector:
    """Compares each bucket with its forecast.

    A bucket is suspect when it is more than `k` residual standard deviations past the forecast
    AND the move is at least `min_change` in absolute units AND at least `min_ratio` of the
    forecast: the last two are the noise floor that keeps quiet hours (few starts, large relative
    noise) from paging anyone. `confirm` suspect buckets in a row open an episode, `confirm`
    normal ones close it. While suspect, the model learns from its own forecast rather than the
    anomaly, for at most `hold` buckets, after which a lasting change becomes the new normal.
    """

    def __init__(
        self,
        forecast: Forecast | None = None,
        *,
        season: int = 1440,
        direction: str = "down",
        k: float = 3.0,
        min_change: float = 0.0,
        min_ratio: float = 0.15,
        confirm: int = 2,
        warmup: int = 30,
        hold: int | None = None,
        spread_alpha: float = 0.01,
        spread_slots: int | None = None,
        nonnegative: bool = True,
    ) -> None:
        self.forecast: Forecast = forecast if forecast is not None else DailyPattern(season)
        self.direction = _validate.choice("direction", direction, ("down", "up"))
        self.k = _validate.number("k", k, low=0.0, low_open=True)
        self.min_change = _validate.number("min_change", min_change, low=0.0)
        self.min_ratio = _validate.number("min_ratio", min_ratio, low=0.0, high=1.0)
        self.confirm = _validate.integer("confirm", confirm, low=1, high=1000)
        self.warmup = _validate.integer("warmup", warmup, low=1)
        self.hold = _validate.integer("hold", hold if hold is not None else max(confirm, season // 6), low=1)
        self.spread_alpha = _validate.number("spread_alpha", spread_alpha, low=0.0, high=1.0, low_open=True)
        self.season = _validate.integer("season", season, low=1)
        self.nonnegative = nonnegative
        slots = spread_slots if spread_slots is not None else min(24, self.season)  # hourly by default
        self.spread_slots = _validate.integer("spread_slots", slots, low=1, high=max(1, self.season))
        # The residual spread is learnt per time-of-day slot: quiet hours have a much smaller
        # absolute noise than prime time, and one spread for both would blind the night.
        self._sigmas: list[float | None] = [None] * self.spread_slots
        self._slot_seen = [0] * self.spread_slots
        self._global: float | None = None
        self.active = False
        self._seen = 0
        self._warm: list[float] = []
        self._slot = 0
        self._suspect_run = 0
        self._normal_run = 0
        self._held = 0

    def step(self, value: float | None, at: float = 0.0) -> Detection:
        """Judge one bucket value (None = no data) at time `at`, then learn from it."""
        expected = self.forecast.predict()
        if expected is not None and self.nonnegative:
            expected = max(0.0, expected)  # counts and ratios cannot go below zero
        self._slot = (self._seen % self.season) * self.spread_slots // self.season
        self._seen += 1
        if expected is None or value is None or self.sigma is None or self._seen <= self.warmup:
            if expected is not None and value is not None:
                self._learn_spread(abs(value - expected))
            self.forecast.update(value)
            return Detection(at, value, expected, self._bound(expected), anomalous=self.active)
        sign = -1.0 if self.direction == "down" else 1.0
        bound = expected + sign * self.k * self.sigma
        move = (value - expected) * sign  # > 0 means "in the bad direction"
        suspect = (
            move > self.k * self.sigma and move >= self.min_change and move >= self.min_ratio * abs(expected)
        )
        started = ended = False
        if suspect:
            self._suspect_run += 1
            self._normal_run = 0
            if not self.active and self._suspect_run >= self.confirm:
                self.active = started = True
        else:
            self._normal_run += 1
            self._suspect_run = 0
            if self.active and self._normal_run >= self.confirm:
                self.active = False
                ended = True
        if suspect and self._held < self.hold:
            self._held += 1
            self.forecast.update(expected)  # don't learn the anomaly
        else:
            if not suspect:
                self._held = 0
            self._learn_spread(abs(value - expected))
            self.forecast.update(value)
        change = move / abs(expected) if expected else 0.0
        return Detection(
            at,
            value,
            expected,
            bound,
            anomalous=self.active or started,
            started=started,
            ended=ended,
            change=change,
        )

    @property
    def sigma(self) -> float | None:
        """The residual standard deviation for the current time-of-day slot (the overall one
        until the slot has seen enough buckets to judge its own)."""
        slot = self._sigmas[self._slot]
        if slot is None or self._slot_seen[self._slot] < _MIN_SLOT_SAMPLES:
            return self._global
        return slot

    def _bound(self, expected: float | None) -> float | None:
        if expected is None or self.sigma is None:
            return None
        return expected + (-1.0 if self.direction == "down" else 1.0) * self.k * self.sigma

    def _learn_spread(self, residual: float) -> None:
        if self._global is None:
            self._warm.append(residual)
            if len(self._warm) >= min(self.warmup, 10):
                self._global = max(_MAD_TO_SIGMA * sum(self._warm) / len(self._warm), 1e-12)
            return
        # Huber-style clipping: a run of large residuals widens the band slowly, so a slow
        # decline cannot teach the detector to accept it.
        self._global = _ewma(self._global, min(residual, 2.0 * self._global), self.spread_alpha)
        slot_sigma = self._sigmas[self._slot]
        base = slot_sigma if slot_sigma is not None else self._global
        self._slot_seen[self._slot] += 1
        alpha = max(self.spread_alpha, 1.0 / self._slot_seen[self._slot])
        self._sigmas[self._slot] = _ewma(base, min(residual, 2.0 * base), alpha)


def _ewma(sigma: float, residual: float, alpha: float) -> float:
    mad = sigma / _MAD_TO_SIGMA
    return max(_MAD_TO_SIGMA * ((1 - alpha) * mad + alpha * residual), 1e-12)
