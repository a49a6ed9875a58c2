"""Forecasts of the next value: double exponential smoothing (Holt) and additive Holt-Winters.

Each model answers `predict()` (the expected next value, or None while it cannot tell yet) and
learns from `update(value)`; a value of None means "no data" and the model advances on its own
forecast.
"""

from __future__ import annotations

from typing import Protocol

from stoic.signals import _validate


class Forecast(Protocol):
    """What a drop detector needs from a model."""

    def predict(self) -> float | None: ...

    def update(self, value: float | None) -> None: ...


class Holt:
    """Double exponential smoothing: a level and a trend (no season)."""

    def __init__(self, alpha: float = 0.3, beta: float = 0.05) -> None:
        self.alpha = _validate.number("alpha", alpha, low=0.0, high=1.0, low_open=True)
        self.beta = _validate.number("beta", beta, low=0.0, high=1.0)
        self.level: float | None = None
        self.trend = 0.0

    def predict(self) -> float | None:
        return None if self.level is None else self.level + self.trend

    def update(self, value: float | None) -> None:
        if self.level is None:
            self.level = value
            return
        if value is None:
            value = self.level + self.trend
        previous = self.level
        self.level = self.alpha * value + (1 - self.alpha) * (self.level + self.trend)
        self.trend = self.beta * (self.level - previous) + (1 - self.beta) * self.trend


class HoltWinters:
    """Additive Holt-Winters with a season of `season` steps (a day of buckets).

    The first season initialises level and seasonal offsets. A seasonal offset is learnt from a
    single bucket once per season, so each update is shared with the `spread` neighbouring slots
    on either side: a day-shaped pattern is smooth, and this keeps one noisy minute from
    becoming tomorrow's expectation.
    """

    def __init__(
        self, season: int, alpha: float = 0.02, beta: float = 0.005, gamma: float = 0.1, spread: int = 2
    ) -> None:
        self.season = _validate.integer("season", season, low=2)
        self.alpha = _validate.number("alpha", alpha, low=0.0, high=1.0, low_open=True)
        self.beta = _validate.number("beta", beta, low=0.0, high=1.0)
        self.gamma = _validate.number("gamma", gamma, low=0.0, high=1.0)
        self.spread = _validate.integer("spread", spread, low=0, high=max(0, season // 2 - 1))
        self._first: list[float | None] = []
        self.level = 0.0
        self.trend = 0.0
        self.seasonal: list[float] = []
        self.step = 0

    @property
    def ready(self) -> bool:
        return bool(self.seasonal)

    def predict(self) -> float | None:
        if not self.ready:
            return None
        return self.level + self.trend + self.seasonal[self.step % self.season]

    def update(self, value: float | None) -> None:
        if not self.ready:
            self._first.append(value)
            self.step += 1
            if len(self._first) == self.season:
                self._initialise()
            return
        slot = self.step % self.season
        offset = self.seasonal[slot]
        if value is None:
            value = self.level + self.trend + offset
        previous = self.level
        self.level = self.alpha * (value - offset) + (1 - self.alpha) * (self.level + self.trend)
        self.trend = self.beta * (self.level - previous) + (1 - self.beta) * self.trend
        error = (value - self.level) - offset
        for d in range(-self.spread, self.spread + 1):
            # triangular weights: the slot itself learns most, its neighbours less
            weight = (self.spread + 1 - abs(d)) / (self.spread + 1)
            self.seasonal[(slot + d) % self.season] += self.gamma * weight * error
        self.step += 1

    def _initialise(self) -> None:
        known = [v for v in self._first if v is not None]
        level = sum(known) / len(known) if known else 0.0
        raw = [(v - level) if v is not None else 0.0 for v in self._first]
        # smooth the first day's offsets with a centred moving average over 2*spread+1 slots
        k = max(self.spread, 1)
        n = self.season
        self.seasonal = [sum(raw[(i + d) % n] for d in range(-k, k + 1)) / (2 * k + 1) for i in range(n)]
        self.level = level
        self.trend = 0.0


class DailyPattern:
    """The expected daily pattern: Holt while the first day is being learnt, Holt-Winters after."""

    def __init__(self, season: int, *, holt: Holt | None = None, seasonal: HoltWinters | None = None) -> None:
        self.holt = holt or Holt()
        self.seasonal = seasonal or HoltWinters(season)

    def predict(self) -> float | None:
        return self.seasonal.predict() if self.seasonal.ready else self.holt.predict()

    def update(self, value: float | None) -> None:
        self.holt.update(value)
        self.seasonal.update(value)
