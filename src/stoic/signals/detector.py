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
levels run the same judgement on means of six points, so a lasting change too small for any one
point is seen in the mean of many.

The score is the news in the evidence: the first point of an excursion, and each point that makes
it ten times stronger. A threshold on it is crossed once per excursion, as an alert is raised once.

Recurring patterns become normal because the seasonal memory keeps every value, anomalous or not,
and takes the median: a nightly job is expected once it ran on most of the last nights. Points
that score are kept out of the level, the scale and the baselines for at most `hold` seconds,
after which a lasting change is the new normal.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterable
from typing import NamedTuple

from stoic.signals import _validate

DAY = 86400.0
WEEK = 7 * DAY
DIRECTIONS = ("down", "up", "both")

_LEVEL_POINTS = 5  # points in the recent-level median
_GROUPS = 24  # residual scale per hour of the day: quiet hours have a smaller absolute noise
_GROUP_POINTS = 512
_GROUP_MIN = 32  # points an hour needs before its own scale is trusted
_TAIL_POINTS = 4096  # recent standardised residuals the tail is fitted to
_DRIFT_MIN = 128  # kept distances (one point in four) a drift baseline needs before it is judged
_ERROR_MIN = 60  # points an explanation needs before it can judge
_COMPETENT = 1.25  # a season within this factor of the recent level's error replaces it
_ERROR_CLIP = 10.0  # one wild point moves an explanation's error by at most this many units
_MAX_SLOTS = 10080  # slots per season (a week of minutes); longer seasons get wider slots
_Q_FLOOR = 2.0  # the 99th percentile is never taken below 2 typical residuals ...
_GAP_FLOOR = 0.69  # ... nor a decade of the tail narrower than 0.69 of one
_HALF = 3.0  # decades past the 99th percentile that make a score of 0.5
_LONE = 1.0  # the extra decades a lone point needs
_COARSE = 6  # points averaged into one point of the next wider level
_WIDEST = 8  # the widest level still has this many points in the shortest season (3 h of a day)
_WIDER_EXTRA = 2.0  # the extra decades a wider level needs: it has seen a sixth of the points
_NEWS = 1.0  # the decades a point must add to an excursion already scored to be scored again
_DRIFT_EXTRA = 2.0  # the extra decades a drift needs: it is sticky and its history short
_HELD_TAIL = 3  # points of an anomaly that still teach the tail (censored): heavy tails are learnt
_TAIL_MIN = 256  # ... once the tail has seen this many ordinary points
_Z_MAX = 1e12  # standardised residuals are capped here: beyond it nothing is more certain
_REL_FLOOR = 1e-6  # scale floor relative to the level while the data has shown no resolution


class Detection(NamedTuple):
    """The verdict for one point.

    `evidence` is in [0, 1) (0 ordinary, 0.5 three decades past the 99th percentile of what this
    metric usually does) and lasts as long as an anomaly does; `score` is that evidence on the
    first point of an excursion and on each point that makes it ten times stronger, else 0, so a
    threshold on it is crossed once per excursion. `anomalous` is True while an episode is open,
    `started`/`ended` mark its first point and the point that closed it. `expected` is the main
    explanation of the point and `lower`/`upper` the band a run of points must leave to reach the
    threshold. `change` is the relative move of a point with evidence (0.38 = 38 % off expected),
    `move` "down" or "up" ("" for an ordinary point).
    """

    at: float
    value: float | None
    expected: float | None = None
    lower: float | None = None
    upper: float | None = None
    score: float = 0.0
    anomalous: bool = False
    started: bool = False
    ended: bool = False
    change: float = 0.0
    move: str = ""
    evidence: float = 0.0

    @property
    def bound(self) -> float | None:
        """The band edge on the side the point moved to (the lower edge for an ordinary point)."""
        return self.upper if self.move == "up" else self.lower


class _Window:
    """The last `size` values in arrival order and sorted, for exact sliding quantiles."""

    __slots__ = ("_next", "_ring", "_sorted", "_stale", "median", "n", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.n = 0
        self.median = 0.0
        self._stale = 0
        self._ring: list[float] = []  # arrival order, overwritten in a circle once full
        self._next = 0
        self._sorted: list[float] = []

    def add(self, x: float) -> None:
        ordered = self._sorted
        if self.n == self.size:
            i = self._next
            del ordered[bisect_left(ordered, self._ring[i])]
            self._ring[i] = x
            self._next = i + 1 if i + 1 < self.size else 0
        else:
            self.n += 1
            self._ring.append(x)
        insort(ordered, x)
        self._stale += 1
        if self._stale >= 8 or self.n < 64:  # a median of many points moves slowly
            self._stale = 0
            self.median = ordered[self.n // 2]

    def quantile(self, p: float) -> float:
        return self._sorted[min(self.n - 1, int(p * self.n))] if self.n else 0.0


class _Season:
    """What was seen at each slot of a season (a day, a week) over the last `keep` cycles."""

    __slots__ = ("_values", "cycle_of", "earlier", "keep", "length", "medians", "slots", "width")

    def __init__(self, length: float, interval: float, keep: int) -> None:
        self.length = length
        self.width = max(interval, length / _MAX_SLOTS)
        self.slots = max(1, math.ceil(length / self.width))
        self.keep = keep
        self._values: list[list[float] | None] = [None] * self.slots
        self.cycle_of = [-1] * self.slots
        # medians kept on write, once per slot and cycle, and read on every point; with and
        # without the newest cycle, since a cycle's own value is not a precedent for it
        self.medians: list[float | None] = [None] * self.slots
        self.earlier: list[float | None] = [None] * self.slots

    def slot(self, at: float) -> int:
        return int((at % self.length) // self.width) % self.slots

    def typical(self, slot: int, cycle: int) -> float | None:
        """The median of earlier cycles at `slot` (None before one cycle has passed there)."""
        slot %= self.slots
        return self.earlier[slot] if self.cycle_of[slot] == cycle else self.medians[slot]

    def add(self, slot: int, cycle: int, value: float) -> None:
        values = self._values[slot]
        if values is None:
            self._values[slot] = [value]
            self.cycle_of[slot] = cycle
            self.medians[slot] = value
            return
        if self.cycle_of[slot] == cycle:
            values[-1] = value  # a second point in one slot of one cycle: keep the latest
        else:
            values.append(value)
            if len(values) > self.keep:
                del values[0]
                self.earlier[slot] = _median(values[:-1])
            else:  # nothing left the memory: the earlier cycles' median is the last one taken
                self.earlier[slot] = self.medians[slot]
        self.cycle_of[slot] = cycle
        self.medians[slot] = sorted(values)[(len(values) - 1) // 2]  # _median, inlined: every point


class _Tail:
    """Where a non-negative statistic falls in the tail of its own recent history."""

    __slots__ = ("_fit", "_q90", "_q99", "_q999", "_stale", "band", "band_edge", "cautious", "window")

    def __init__(self, *, cautious: bool = False, band: float = 0.0) -> None:
        # An autocorrelated statistic has few independent values in its history: a cautious
        # tail takes the slower of the two decays whatever the gaps say.
        self.cautious = cautious
        self.band = band  # decades whose edge is kept up to date in `band_edge`
        self.window = _Window(_TAIL_POINTS)
        self._stale = 0
        self._q90 = self._q99 = self._q999 = 0.0
        self._fit: tuple[float, float, float | None] = (_Q_FLOOR, _GAP_FLOOR, None)
        self.band_edge = self.edge(band)

    def add(self, x: float) -> None:
        w = self.window
        w.add(x if x < 1e300 else 1e300)
        self._stale += 1
        if self._stale >= 16 or w.n < 64:  # quantiles move slowly: refresh every 16 points
            self._stale = 0
            self._q90, self._q99, self._q999 = w.quantile(0.9), w.quantile(0.99), w.quantile(0.999)
            self._fit = self._refit()
            self.band_edge = self.edge(self.band)

    def _refit(self) -> tuple[float, float, float | None]:
        """(99th percentile, length of a decade of an exponential tail, decay ratio of a power law
        or None when the tail is not heavy)."""
        q = self._q99 if self._q99 > _Q_FLOOR else _Q_FLOOR
        near, far = self._q99 - self._q90, self._q999 - self._q99
        gap = max(near, far, _GAP_FLOOR)
        heavy = self._q999 > 1.01 * q and (self.cautious or far > 2.0 * near)
        return q, gap, (self._q999 / q if heavy else None)

    def decades(self, z: float) -> float:
        """Decades of probability past the 99th percentile at which `z` lies (0 below it)."""
        q, gap, ratio = self._fit
        if z <= q:
            return 0.0
        exponential = (z - q) / gap
        return exponential if ratio is None else min(exponential, math.log(z / q) / math.log(ratio))

    def edge(self, decades: float) -> float:
        """The statistic that lies `decades` past the 99th percentile."""
        q, gap, ratio = self._fit
        exponential = q + decades * gap
        edge = exponential if ratio is None else max(exponential, q * min(ratio, 1e6) ** min(decades, 50.0))
        return min(edge, 1e12)  # a band wider than that says nothing more


class _Drift:
    """A fast and a slow moving average of one explanation's level: the distance between them,
    against how far they usually stray apart, is how creeps and slow drifts are seen."""

    __slots__ = ("_alphas", "_count", "_scale", "at", "fast", "slow", "tail")

    def __init__(self) -> None:
        self.fast: float | None = None
        self.slow = 0.0
        self.at = 0.0
        self.tail = _Tail(cautious=True)
        self._scale = _Window(_TAIL_POINTS // 4)
        self._count = 0
        self._alphas = (-1.0, 0.0, 0.0)  # (dt, fast, slow) of the last step: most steps are alike

    @property
    def ready(self) -> bool:
        return self.tail.window.n >= _DRIFT_MIN

    def decades(self, sign: float, floor: float) -> float:
        """Decades of tail evidence that the level drifted (towards `sign`; 0: either way)."""
        if self.fast is None:
            return 0.0
        distance = self.fast - self.slow
        if sign * distance < 0.0:
            return 0.0
        unit = self._scale.median if self._scale.median > floor else floor
        return self.tail.decades(min(abs(distance) / unit, _Z_MAX))

    def learn(self, level: float, at: float, half_life: float, drifting: bool) -> None:
        """Follow `level`; while `drifting` the slow average waits, so a creep cannot teach it."""
        if self.fast is None:
            self.fast = self.slow = level
            self.at = at
            return
        # time-weighted, so gaps and irregular sampling age the averages by time, not by count
        dt = at - self.at
        dt = 0.0 if dt < 0.0 else half_life if dt > half_life else dt
        self.at = at
        last, fast, slow = self._alphas
        if dt != last:
            fast, slow = 1.0 - 0.5 ** (12.0 * dt / half_life), 1.0 - 0.5 ** (dt / half_life)
            self._alphas = (dt, fast, slow)
        self.fast += fast * (level - self.fast)
        if drifting:
            return
        self._count += 1
        if self._count % 4 == 0:  # a slow statistic: one point in four describes it as well
            distance = abs(self.fast - self.slow)
            scale = self._scale
            if scale.n >= _GROUP_MIN and scale.median > 0.0:
                self.tail.add(distance / scale.median)
            scale.add(distance)
        self.slow += slow * (self.fast - self.slow)

    def settle(self, level: float | None = None) -> None:
        """The change lasted: `level` (or the fast average) is the new baseline."""
        if level is not None:
            self.fast = level
        if self.fast is not None:
            self.slow = self.fast


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

    >>> det = Detector(interval=60.0, direction="down", warmup=10)
    >>> t0 = 1767571200.0  # epoch seconds
    >>> any(det.step(100.0 + i % 3, t0 + 60 * i).anomalous for i in range(60))
    False
    >>> d = det.step(20.0, t0 + 60 * 60)
    >>> d.started, d.move, round(d.score, 2)
    (True, 'down', 0.97)
    """

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
    ) -> None:
        self.interval = _validate.number("interval", interval, low=0.0, low_open=True, high=WEEK)
        self.direction = _validate.choice("direction", direction, DIRECTIONS)
        if not isinstance(count, bool):
            raise ValueError(f"count: must be True or False, got {count!r}")
        self.count = count
        if not isinstance(seasons, tuple) or len(seasons) > 4:
            raise ValueError(f"seasons: must be a tuple of at most 4 lengths in seconds, got {seasons!r}")
        self.seasons = tuple(
            _validate.number(f"seasons[{i}]", s, low=2 * self.interval, high=400 * DAY)
            for i, s in enumerate(seasons)
        )
        self.keep = _validate.integer("keep", keep, low=1, high=52)
        self.threshold = _validate.number("threshold", threshold, low=0.0, high=1.0, low_open=True)
        if self.threshold >= 1.0:
            raise ValueError(f"threshold: must be < 1 (scores never reach 1), got {threshold!r}")
        self.confirm = _validate.integer("confirm", confirm, low=1, high=1000)
        self.clear = _validate.integer("clear", clear, low=1, high=1000)
        self.hold = _validate.number("hold", hold, low=0.0, high=400 * DAY)
        self.drift_half_life = _validate.number(
            "drift_half_life", drift_half_life, low=0.0, low_open=True, high=400 * DAY
        )
        self.min_change = _validate.number("min_change", min_change, low=0.0)
        self.warmup = _validate.integer("warmup", warmup, low=1)
        self._release = 0.5 * self.threshold
        self._sign = {"down": -1.0, "up": 1.0, "both": 0.0}[self.direction]  # the alerting side
        self._profiles = [_Season(s, self.interval, self.keep) for s in self.seasons]
        day = self.seasons[0] if self.seasons else DAY
        self._hour = day / _GROUPS
        # how fast an explanation's error is forgotten: over about a day of points
        self._error_alpha = min(1.0, 4.0 * max(self.interval / day, 1.0 / 2000.0))
        # explanation 0 is the recent level, explanation i the recent level against season i-1
        n = 1 + len(self._profiles)
        self._recent = [deque[float](maxlen=_LEVEL_POINTS) for _ in range(n)]
        self._levels: list[float | None] = [None] * n  # the medians of the above
        self._errors = [0.0] * n  # smoothed |residual|, in units of the typical residual
        self._error_n = [0] * n
        self._drifts = [_Drift() for _ in range(n)]
        self._groups = [_Window(_GROUP_POINTS) for _ in range(_GROUPS)]
        self._scale = _Window(_GROUP_POINTS)  # all hours together, until an hour has its own
        self._unready = _GROUPS  # hours without a scale of their own
        # the band is where a run of points reaches the threshold: half its decades each
        self._tail = _Tail(band=0.5 * _HALF * self.threshold / (1.0 - self.threshold))
        self._quantum = math.inf  # the smallest change between two normal points: the resolution
        self._previous: float | None = None
        self._last_at: float | None = None
        self._seen = 0
        self._decades = 0.0  # the previous point's
        self._held: list[tuple[float, float]] = []  # points kept out of the level, oldest first
        self._held_since: float | None = None
        self._drifting_since: float | None = None
        self.active = False
        self._suspect_run = 0
        self._calm_run = 0
        # the same judgement on means of `_COARSE` points, and of theirs, while a day still has
        # `_WIDEST` of them: a change too small for one point (an hour of zeros in low counts, a
        # holiday) is plain in the mean of many
        width = self.interval * _COARSE
        self._coarse: Detector | None = None
        if width * _WIDEST <= min(self.seasons, default=DAY):
            self._coarse = Detector(
                width,
                direction=self.direction,
                count=self.count,
                seasons=tuple(s for s in self.seasons if s >= 2 * width),
                keep=self.keep,
                threshold=self.threshold,
                clear=self.clear,
                hold=self.hold,
                drift_half_life=self.drift_half_life,
                min_change=self.min_change,
                warmup=max(10, self.warmup // 2),
            )
        self._bucket = -1  # the coarse bucket being summed
        self._bucket_sum = 0.0
        self._bucket_n = 0
        self._bucket_spoke = False  # a point of the bucket had evidence of its own
        self._coarse_seen: Detection | None = None  # the coarse verdict of the last closed bucket
        self._coarse_echo = False  # ... which had evidence at this level too
        self._quiet = 0  # points without evidence since the last one with some
        self._scored = -1.0  # the strongest decades scored in the current excursion (-1: none)

    # ---- the one entry point ---------------------------------------------------------------
    def step(self, value: float | None, at: float) -> Detection:
        """Judge `value` at epoch seconds `at` (None: no data, which is judged as nothing), then
        learn from it. Points come in time order; a refused point raises ValueError naming the
        field and changes nothing."""
        last = self._last_at
        if not (type(at) is float and _validate.EPOCH_MIN <= at <= _validate.EPOCH_MAX):
            at = _validate.epoch("at", at)
        if last is not None and at < last:
            raise ValueError(f"at: points must come in time order; {at!r} is before {last!r}")
        if value is None:
            self._last_at = at
            return Detection(at, None, None, None, None, 0.0, self.active)
        if not (type(value) is float and -_validate.MAX_VALUE <= value <= _validate.MAX_VALUE):
            value = _validate.measurement("value", value)
        if self.count and value < 0.0:
            raise ValueError(f"value: a count cannot be negative, got {value!r}")
        self._last_at = at
        if self._coarse is not None:
            self._widen(value, at, self._coarse)

        cycles: list[int] = []
        slots: list[int] = []
        centres: list[float | None] = []
        for p in self._profiles:
            cycle, slot = int(at // p.length), p.slot(at)
            cycles.append(cycle)
            slots.append(slot)
            centres.append(p.earlier[slot] if p.cycle_of[slot] == cycle else p.medians[slot])  # typical()
        group = self._groups[int((at % (self._hour * _GROUPS)) // self._hour) % _GROUPS]
        play = self._in_play(centres)
        expected, best, bad = self._explain(value, slots, cycles, centres, play)
        floor = self._floor(expected)
        source = group if group.n >= _GROUP_MIN else self._scale
        unit = source.median if source.median > floor else floor
        judged = expected is not None and self._seen >= self.warmup
        point = drift = 0.0
        if judged:
            decades = self._tail.decades(min(bad / unit, _Z_MAX)) if bad > 0.0 else 0.0
            # two points in the tail add their decades; a lone point must stand further out
            previous, self._decades = self._decades, decades
            point = _score(decades + previous if decades > 0.0 and previous > 0.0 else decades - _LONE)
            drift = self._drift(floor, play)
        evidence = point if point > drift else drift
        if evidence > 0.0 and expected is not None and abs(value - expected) < self.min_change:
            evidence = 0.0
        if evidence >= self.threshold:
            self._bucket_spoke = True
        wider, echo = self._coarse_seen, False
        if wider is not None:
            e = wider.evidence
            e = _score(_HALF * e / (1.0 - e) - _WIDER_EXTRA) if e > 0.0 else 0.0
            if e <= evidence or at - wider.at > 2.0 * _COARSE * self.interval:
                wider = None  # this point says more, or the wider verdict is stale
            elif self._coarse_echo:  # the same excursion goes on
                wider, echo = None, True
            else:
                evidence = e
        score = self._news(evidence, echo)
        started, ended = self._episode(evidence, judged)
        self._learn(value, at, slots, cycles, centres, expected is not None, group, best, unit, point, drift)
        if expected is None:
            active = self.active
            return Detection(at, value, None, None, None, score, active, started, ended, evidence=evidence)
        lower, upper = self._band(expected, unit)
        move, change = "", 0.0
        if wider is not None:
            move, change = wider.move, wider.change
        elif evidence > 0.0:
            move = "up" if value > expected else "down"
            # relative to the level, or to the noise for a level near zero
            change = abs(value - expected) / max(abs(expected), unit)
        return Detection(
            at, value, expected, lower, upper, score, self.active, started, ended, change, move, evidence
        )

    # ---- judging ---------------------------------------------------------------------------
    def _widen(self, value: float, at: float, wider: Detector) -> None:
        """Add `value` to the mean of its wider bucket; a bucket that is complete is judged there."""
        bucket = int(at // wider.interval)
        if bucket != self._bucket:
            if self._bucket_n:
                mean = self._bucket_sum / self._bucket_n
                seen = self._coarse_seen = wider.step(mean, self._bucket * wider.interval)
                # an excursion of the wider level that began while this level was past its
                # threshold is what this level found: an echo, until the wider level is calm again
                if seen.evidence <= 0.0:
                    self._coarse_echo = False
                elif self._bucket_spoke:
                    self._coarse_echo = True
            self._bucket, self._bucket_sum, self._bucket_n, self._bucket_spoke = bucket, 0.0, 0, False
        self._bucket_sum += value
        self._bucket_n += 1

    def _in_play(self, centres: list[float | None]) -> list[int]:
        """The explanations that judge this point, best first: the seasons that predict about as
        well as the recent level, or else the recent level alone."""
        errors, counts, levels = self._errors, self._error_n, self._levels
        limit = _COMPETENT * errors[0]
        seasons = [
            i
            for i in range(1, len(errors))
            if counts[i] >= _ERROR_MIN
            and errors[i] <= limit
            and levels[i] is not None
            and centres[i - 1] is not None
        ]
        if len(seasons) > 1:
            seasons.sort(key=errors.__getitem__)
        return seasons or [0]

    def _explain(
        self,
        value: float,
        slots: list[int],
        cycles: list[int],
        centres: list[float | None],
        play: list[int],
    ) -> tuple[float | None, float, float]:
        """(main expected value, smallest |residual| left by an explanation in play, smallest
        residual in an alerting direction)."""
        levels = self._levels
        if levels[0] is None:
            return None, 0.0, 0.0
        if play[0] == 0:
            candidates = [levels[0]]
        else:
            candidates = []
            for i in play:
                shift, profile = levels[i], self._profiles[i - 1]
                assert shift is not None
                for d in (0, -1, 1):  # the neighbouring slots: a job that starts a minute late
                    typical = centres[i - 1] if d == 0 else profile.typical(slots[i - 1] + d, cycles[i - 1])
                    if typical is not None:
                        candidates.append(shift + typical)

        main = candidates[0]
        if self.count and main < 0.0:
            main = 0.0
        best = bad = math.inf
        sign = self._sign
        for c in candidates:
            r = value - c
            a = r if r >= 0.0 else -r
            if a < best:
                best = a
            if sign != 0.0:
                a = sign * r if sign * r > 0.0 else 0.0
            if a < bad:
                bad = a
        return main, best, bad

    def _floor(self, expected: float | None) -> float:
        """The data's resolution: the smallest change seen between normal points, or a millionth
        of the level while the metric has never changed."""
        if self._quantum < math.inf:
            return max(self._quantum, 1e-12)
        return max(_REL_FLOOR * abs(expected or 0.0), 1e-12)

    def _drift(self, floor: float, play: list[int]) -> float:
        """How far the level has strayed from its slow baseline, as the explanations in play see
        it: a nightly job is a drift of the raw level but none of the daily one."""
        least = math.inf
        for i in play:
            drift = self._drifts[i]
            if drift.ready:
                decades = drift.decades(self._sign, floor)
                if decades < least:
                    least = decades
        return 0.0 if least == math.inf else _score(least - _DRIFT_EXTRA)

    def _band(self, expected: float, unit: float) -> tuple[float | None, float | None]:
        """The edges a run of points must pass to reach the threshold."""
        width = unit * self._tail.band_edge
        lower = expected - width
        if self.count and lower < 0.0:
            lower = 0.0
        return (lower if self._sign <= 0.0 else None), (expected + width if self._sign >= 0.0 else None)

    def _news(self, evidence: float, echo: bool = False) -> float:
        """The score: the evidence of the first point of an excursion, and of each later point that
        makes it ten times stronger; 0 for points that only repeat what was already scored, so a
        threshold crossed once per excursion raises one alert, not one per point."""
        if evidence <= 0.0:
            self._quiet = 0 if echo else self._quiet + 1
            return 0.0
        if self._quiet > self.clear:  # a new excursion: nothing of it has been scored yet
            self._scored = -1.0
        self._quiet = 0
        decades = _HALF * evidence / (1.0 - evidence)
        if decades < self._scored + _NEWS:
            return 0.0
        self._scored = decades
        return evidence

    def _episode(self, score: float, judged: bool) -> tuple[bool, bool]:
        started = ended = False
        if not judged:
            return started, ended
        if score >= self.threshold:
            self._suspect_run += 1
            self._calm_run = 0
            if not self.active and self._suspect_run >= self.confirm:
                self.active = started = True
        else:
            self._suspect_run = 0
            if score < self._release:
                self._calm_run += 1
                if self.active and self._calm_run >= self.clear:
                    self.active = False
                    ended = True
        return started, ended

    # ---- learning --------------------------------------------------------------------------
    def _learn(
        self,
        value: float,
        at: float,
        slots: list[int],
        cycles: list[int],
        centres: list[float | None],
        explained: bool,
        group: _Window,
        residual: float,
        unit: float,
        point: float,
        drift: float,
    ) -> None:
        self._seen += 1
        z = min(residual / unit, _Z_MAX)
        # Seasons remember every value: a recurring pattern must become normal, and the median
        # of past cycles keeps a one-off from moving the expectation.
        for profile, slot, cycle in zip(self._profiles, slots, cycles, strict=True):
            profile.add(slot, cycle, value)
        # A drift is kept out of the slow baselines for as long as one may take to be seen and
        # acted on; after that its level is the new baseline.
        drifting = drift >= self._release
        if not drifting:
            self._drifting_since = None
        elif self._drifting_since is None:
            self._drifting_since = at
        elif at - self._drifting_since >= self.drift_half_life:
            for d in self._drifts:
                d.settle()
            self._drifting_since, drifting = None, False
        # a point far out is kept out of what is learnt whichever way it moved: a sample of 1e9
        # on a metric that alerts only downwards must not teach it that 1e9 is normal
        far = self._sign != 0.0 and self._seen > self.warmup and _score(self._tail.decades(z) - _LONE)
        if point >= self._release or far >= self._release:
            self._hold_out(value, at, z)
            return
        self._held, self._held_since = [], None
        if explained:
            if residual > 0.0:
                # an exact fit (a flat stretch, a metric pinned at its bound) says nothing about
                # the noise: counting it would shrink the scale until the next wiggle looks huge
                group.add(residual)
                if self._unready:  # all hours together serve only until each hour has its own
                    self._scale.add(residual)
                    if group.n == _GROUP_MIN:
                        self._unready -= 1
            if self._seen > _GROUP_MIN:  # a standardised residual needs a settled scale
                self._tail.add(z)
        previous = self._previous
        if previous is not None and value != previous:
            step = abs(value - previous)
            if step < self._quantum:
                self._quantum = step
        self._previous = value
        self._accept(value, at, centres, drifting, unit if explained else 0.0)

    def _hold_out(self, value: float, at: float, z: float) -> None:
        """Keep a scoring point out of the level, the scale and the baselines, until it lasts."""
        if self._held_since is None:
            self._held_since = at
        self._held.append((at, value))
        if len(self._held) <= _HELD_TAIL and self._tail.window.n >= _TAIL_MIN:
            # censored: a heavy tail is learnt a step at a time, an outage cannot stretch it
            self._tail.add(min(z, 2.0 * max(self._tail._q999, _Q_FLOOR)))
        if at - self._held_since < self.hold:
            return
        # it lasted: the held points are the new normal
        for h_at, h_value in self._held[-_LEVEL_POINTS:]:
            self._accept(
                h_value, h_at, [p.typical(p.slot(h_at), int(h_at // p.length)) for p in self._profiles], True
            )
        for d, level in zip(self._drifts, self._levels, strict=True):
            d.settle(level)
        self._held, self._held_since, self._previous = [], None, value

    def _accept(
        self, value: float, at: float, centres: list[float | None], drifting: bool, unit: float = 0.0
    ) -> None:
        """Take a normal point into the recent levels; the drift averages follow the level
        medians, so one wild point cannot drag them. With a `unit`, first track each
        explanation's smoothed |residual| (in units) before the point joins its level."""
        alpha, errors, counts, levels = self._error_alpha, self._errors, self._error_n, self._levels
        half_life = self.drift_half_life
        for i, recent in enumerate(self._recent):
            typical = 0.0 if i == 0 else centres[i - 1]
            if typical is None:
                continue
            level = levels[i]
            if unit and level is not None:
                error = abs(value - level - typical) / unit
                n = counts[i] = counts[i] + 1
                rate = 1.0 / n if n * alpha < 1.0 else alpha
                errors[i] += rate * ((error if error < _ERROR_CLIP else _ERROR_CLIP) - errors[i])
            recent.append(value - typical)
            level = levels[i] = sorted(recent)[(len(recent) - 1) // 2]
            self._drifts[i].learn(level, at, half_life, drifting)


def _score(decades: float) -> float:
    """Decades of tail evidence as a score in [0, 1): 0.5 at `_HALF` decades, never saturating,
    so that the strongest anomalies still rank above the merely strong."""
    return min(decades / (decades + _HALF), 0.999999) if decades > 0.0 else 0.0


def _median(values: Iterable[float]) -> float:
    """The middle value; of an even count the lower middle one, never an average with a
    stray value in it."""
    s = sorted(values)
    return s[(len(s) - 1) // 2]
