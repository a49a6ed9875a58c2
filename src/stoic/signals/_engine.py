"""The detector's engine: how each point is judged and learnt from (see stoic.signals.detector).

This module is the reference implementation. An install with a C compiler also builds a copy of
it with mypyc (setup.py), which stoic.signals.detector runs instead when it was built from this
very source: the same verdicts, about 2.5 times faster. Keep it plain typed Python that mypyc
compiles: no dynamic attributes, no interpreted subclasses.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Sequence
from typing import Final, NamedTuple

DAY: Final = 86400.0
WEEK: Final = 7 * DAY

_LEVEL_POINTS: Final = 5  # points in the recent-level median
_GROUPS: Final = 24  # residual scale per hour of the day: quiet hours have a smaller absolute noise
_GROUP_POINTS: Final = 512
_GROUP_MIN: Final = 32  # points an hour needs before its own scale is trusted
_TAIL_POINTS: Final = 4096  # recent standardised residuals the tail is fitted to
_DRIFT_MIN: Final = 128  # kept distances (one point in four) a drift baseline needs before it is judged
_ERROR_MIN: Final = 60  # points an explanation needs before it can judge
_COMPETENT: Final = 1.25  # a season within this factor of the recent level's error replaces it
_ERROR_CLIP: Final = 10.0  # one wild point moves an explanation's error by at most this many units
_MAX_SLOTS: Final = 10080  # slots per season (a week of minutes); longer seasons get wider slots
_Q_FLOOR: Final = 2.0  # the 99th percentile is never taken below 2 typical residuals ...
_GAP_FLOOR: Final = 0.69  # ... nor a decade of the tail narrower than 0.69 of one
_HALF: Final = 3.0  # decades past the 99th percentile that make a score of 0.5
_LONE: Final = 1.0  # the extra decades a lone point needs
_COARSE: Final = 6  # points averaged into one point of the next wider level
_WIDEST: Final = 8  # the widest level still has this many points in the shortest season (3 h of a day)
_WIDER_EXTRA: Final = 2.0  # the extra decades a wider level needs: it has seen a sixth of the points
_NEWS: Final = 1.0  # the decades a point must add to an excursion already scored to be scored again
_DRIFT_EXTRA: Final = 2.0  # the extra decades a drift needs: it is sticky and its history short
_HELD_TAIL: Final = 3  # points of an anomaly that still teach the tail (censored): heavy tails are learnt
_TAIL_MIN: Final = 256  # ... once the tail has seen this many ordinary points
_Z_MAX: Final = 1e12  # standardised residuals are capped here: beyond it nothing is more certain
_REL_FLOOR: Final = 1e-6  # scale floor relative to the level while the data has shown no resolution
_LN2: Final = math.log(2.0)
_LN10: Final = math.log(10.0)
_STRETCH_POINTS: Final = 16  # the longest stretch of a count judged as one (an hour of five-minute buckets)
_STRETCH_QUIET: Final = 1.0  # decades below which a stretch says nothing: its expectation may move on
_STRETCH_EXTRA: Final = 2.0  # the extra decades a stretch needs: it is the strongest of many


_LEVEL_ONLY: tuple[int, ...] = (0,)  # the explanations in play when no season predicts well enough


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
        ordered, n = self._sorted, self.n
        if n == self.size:
            ring, i = self._ring, self._next
            del ordered[bisect_left(ordered, ring[i])]
            ring[i] = x
            self._next = i + 1 if i + 1 < n else 0
        else:
            n = self.n = n + 1
            self._ring.append(x)
        insort(ordered, x)
        stale = self._stale + 1
        if stale >= 8 or n < 64:  # a median of many points moves slowly
            self._stale = 0
            self.median = ordered[n // 2]
        else:
            self._stale = stale

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
        self._values: list[list[float] | None] = [None] * self.slots  # oldest cycle first
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
        # a median here is the lower middle value of an even count, never an average with a stray
        # value in it
        if self.cycle_of[slot] == cycle:
            values[-1] = value  # a second point in one slot of one cycle: keep the latest
            ordered = sorted(values)
        else:
            values.append(value)
            self.cycle_of[slot] = cycle
            if len(values) <= self.keep:  # nothing left the memory: the earlier cycles' median
                self.earlier[slot] = self.medians[slot]  # is the last one taken
                ordered = sorted(values)
            else:
                del values[0]
                ordered = sorted(values)
                self.medians[slot] = ordered[(len(ordered) - 1) // 2]
                ordered.remove(value)  # one sort serves both: without the newest cycle
                self.earlier[slot] = ordered[(len(ordered) - 1) // 2] if ordered else None  # (keep=1)
                return
        self.medians[slot] = ordered[(len(ordered) - 1) // 2]


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
        stale = self._stale + 1
        if stale < 16 and w.n >= 64:  # quantiles move slowly: refresh every 16 points
            self._stale = stale
        else:
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
    against how far they usually stray apart, is how creeps and slow drifts are seen. They follow
    the level in Engine._accept, on every normal point."""

    __slots__ = ("alphas", "at", "count", "fast", "ready", "scale", "slow", "tail")

    def __init__(self) -> None:
        self.fast: float | None = None
        self.slow = 0.0
        self.at = 0.0
        self.tail = _Tail(cautious=True)
        self.scale = _Window(_TAIL_POINTS // 4)
        self.count = 0
        self.alphas = (math.nan, 0.0, 0.0)  # (dt, fast, slow) of the last step: most steps are alike
        self.ready = False  # the tail has seen enough distances to judge one

    def decades(self, sign: float, floor: float) -> float:
        """Decades of tail evidence that the level drifted (towards `sign`; 0: either way)."""
        if self.fast is None:
            return 0.0
        distance = self.fast - self.slow
        if sign * distance < 0.0:
            return 0.0
        unit = self.scale.median if self.scale.median > floor else floor
        z = abs(distance) / unit
        return self.tail.decades(z if z < _Z_MAX else _Z_MAX)

    def settle(self, level: float | None = None) -> None:
        """The change lasted: `level` (or the fast average) is the new baseline."""
        if level is not None:
            self.fast = level
        if self.fast is not None:
            self.slow = self.fast


class _Stretch:
    """Evidence that a count of events has fallen (or risen) over a few points that each look
    ordinary: an hour of zeros where one or two an interval are usual, a region's starts gone for
    two buckets.

    Each point is read as a number of events (`per_event`: the value one event adds), widened by
    the dispersion the residuals show, so a bursty count needs a longer or deeper stretch. The
    evidence is the Poisson likelihood ratio of the strongest stretch of the last
    `_STRETCH_POINTS` points, at its own rate against what a season expected of it, shrunk by how
    much the expectation's own error weighs over that many points. While points stray, the
    expectation stays what it was before they began to."""

    __slots__ = ("carry", "counted", "frozen", "per_event", "points", "previous", "products", "said",
                 "shift", "spread", "spread_n", "squares", "strayed", "which")

    def __init__(self, per_event: float) -> None:
        self.per_event = per_event
        self.points: deque[tuple[float, float]] = deque(maxlen=_STRETCH_POINTS)  # (events, expected)
        self.said = 0.0  # decades of evidence at the last point
        self.strayed = False  # whether the last point was closer to half (double) its expectation
        self.frozen = 0  # points judged against the expectation kept below:
        self.shift = 0.0  # the level of a season when it was kept ...
        self.which = 1  # ... and which explanation the season is
        self.spread = 0.0  # squared residuals per event expected: the dispersion, in value units
        self.spread_n = 0
        self.counted = self.squares = self.products = 0.0
        self.carry = 0.0  # ... the share of it that carries from one point to the next
        self.previous: float | None = None  # the last ordinary point's residual

    def learn(self, value: float, expected: float, ordinary: bool) -> None:
        """Measure the dispersion on ordinary points: squared residuals, products of consecutive
        ones and expected values, each averaged over the last few hundred points (so large counts
        weigh as they should). The products are the share of the residuals that carries from one
        point to the next (an expectation that lags, a slow swing): it adds up over a stretch."""
        if not ordinary or expected < self.per_event:
            self.previous = None
            return
        residual = value - expected
        reach = 3.0 * math.sqrt(self.spread * expected) if self.spread_n > 8 else math.inf
        if residual > reach:
            residual = reach  # one burst cannot make every later stretch look ordinary
        elif residual < -reach:
            residual = -reach
        n = self.spread_n = self.spread_n + 1
        rate = 1.0 / n if n < 256 else 1.0 / 256
        self.squares += rate * (residual * residual - self.squares)
        if self.previous is not None:
            self.products += rate * (residual * self.previous - self.products)
        self.previous = residual
        self.counted += rate * (expected - self.counted)
        self.spread = self.squares / self.counted
        self.carry = self.products / self.counted if self.products > 0.0 else 0.0

    def decades(self, value: float, reference: float, sign: float) -> float:
        """Add a point (`reference`: what is expected of it) and return decades of evidence for
        the strongest stretch it ends (towards `sign`; 0: either way)."""
        # A dispersion within twice that of independent events is what the expectation's own
        # noise adds to theirs; beyond it the events come in bursts, and count for less.
        per = self.per_event if self.spread < 2.0 * self.per_event else self.spread
        # Over a stretch of j points the expectation's error is shared: a median of a few points
        # of that noise weighs j / _LEVEL_POINTS times as much as the stretch's own, and what
        # carries from one point to the next (an expectation that lags, a slow swing) j times its
        # share of the dispersion.
        carried = self.carry / per
        if carried < 1.0 / _LEVEL_POINTS:
            carried = 1.0 / _LEVEL_POINTS
        k = value / per
        m = reference / per
        if m < 0.5:
            m = 0.5  # nothing expected is not certainty that nothing comes
        # a stretch adds up points that each look ordinary: one burst is the point judge's to weigh
        reach = 3.0 * math.sqrt(m)
        if k > m + reach:
            k = m + reach
        self.points.append((k, m))
        self.frozen += 1
        # only a point that strays itself, to a side that alerts, ends a stretch: one closer to
        # half (double) the expected count than to the count itself; one that recovered does not
        side = -1.0 if k * _LN2 < 0.5 * m else 1.0 if k * _LN2 > m else 0.0
        self.strayed = side != 0.0
        if side == 0.0 or side * sign < 0.0:
            self.said = 0.0
            return 0.0
        best = kk = mm = j = 0.0
        for k, m in reversed(self.points):
            kk += k
            mm += m
            j += 1.0
            if side * (kk - mm) <= 0.0:
                continue
            g = (kk * math.log(kk / mm) if kk > 0.0 else 0.0) + mm - kk
            g /= 1.0 + j * carried
            if g > best:
                best = g
        self.said = best / _LN10
        return self.said

    def keep(self, which: int, shift: float) -> None:
        """Judge the next points against this expectation (explanation `which` and its level),
        unless the last point strayed or a stretch is saying something: then what was expected
        before it is what it is measured against, for at most a stretch's length."""
        if not (self.strayed or self.said >= _STRETCH_QUIET) or self.frozen >= _STRETCH_POINTS:
            self.which, self.shift, self.frozen = which, shift, 0


class Engine:
    """One level of a Detector: settings already validated, points already checked to be finite
    floats (stoic.signals.detector does both)."""

    # fixed attributes: read many times a point, cheapest as slots
    __slots__ = (
        "_bucket", "_bucket_n", "_bucket_spoke", "_bucket_sum", "_calm_run", "_coarse",
        "_coarse_echo", "_coarse_evidence", "_coarse_seen", "_coarse_stale", "_creeps", "_cycles",
        "_decades", "_drifting_since", "_drifts", "_error_alpha", "_error_n", "_errors", "_group_cycle",
        "_groups", "_held", "_held_since", "_hour", "_last_at", "_levels", "_previous", "_profiles",
        "_quantum", "_quiet", "_ranked", "_recent", "_release", "_resolution", "_rows", "_scale", "_scored",
        "_seasonal", "_seen", "_sign", "_slots", "_stretch", "_suspect_run", "_tail", "_typical", "_unready",
        "active", "clear", "confirm", "count", "direction", "drift_half_life", "hold", "interval", "keep",
        "min_change", "per_event", "seasons", "threshold", "warmup",
    )

    def __init__(
        self,
        interval: float,
        direction: str,
        count: bool,
        seasons: tuple[float, ...],
        keep: int,
        threshold: float,
        confirm: int,
        clear: int,
        hold: float,
        drift_half_life: float,
        min_change: float,
        warmup: int,
        per_event: float | None,
    ) -> None:
        self.interval, self.direction, self.count, self.seasons = interval, direction, count, seasons
        self.keep, self.threshold, self.confirm, self.clear = keep, threshold, confirm, clear
        self.hold, self.drift_half_life, self.min_change = hold, drift_half_life, min_change
        self.warmup, self.per_event = warmup, per_event
        self._stretch = None if per_event is None else _Stretch(per_event)
        self._release = 0.5 * self.threshold
        self._sign = {"down": -1.0, "up": 1.0, "both": 0.0}[self.direction]  # the alerting side
        self._profiles = [_Season(s, self.interval, self.keep) for s in self.seasons]
        day = self.seasons[0] if self.seasons else DAY
        self._hour = day / _GROUPS
        self._group_cycle = self._hour * _GROUPS
        # how fast an explanation's error is forgotten: over about a day of points
        self._error_alpha = min(1.0, 4.0 * max(self.interval / day, 1.0 / 2000.0))
        # explanation 0 is the recent level, explanation i the recent level against season i-1
        n = 1 + len(self._profiles)
        self._recent = [deque[float](maxlen=_LEVEL_POINTS) for _ in range(n)]
        self._ranked: list[list[float]] = [[] for _ in range(n)]  # the same points, sorted
        self._levels: list[float | None] = [None] * n  # the medians of the above
        self._errors = [0.0] * n  # smoothed |residual|, in units of the typical residual
        self._error_n = [0] * n
        self._drifts = [_Drift() for _ in range(n)]
        self._seasonal = tuple(range(1, n))  # the explanations that are seasons
        # each explanation's own state, for the loop that runs over them on every point
        self._rows = tuple(zip(range(n), self._recent, self._ranked, self._drifts, strict=True))
        # where the current point falls in each season (cycle, slot), and what each explanation
        # expects of it before its level: 0 for the recent level, a season's usual value there
        self._cycles = [0] * len(self._profiles)
        self._slots = [0] * len(self._profiles)
        self._typical: list[float | None] = [0.0] + [None] * len(self._profiles)
        self._groups = [_Window(_GROUP_POINTS) for _ in range(_GROUPS)]
        self._scale = _Window(_GROUP_POINTS)  # all hours together, until an hour has its own
        self._unready = _GROUPS  # hours without a scale of their own
        # the band is where a run of points reaches the threshold: half its decades each
        self._tail = _Tail(band=0.5 * _HALF * self.threshold / (1.0 - self.threshold))
        self._quantum = math.inf  # the smallest change between two normal points: the resolution
        self._resolution = 1e-12  # ... as a scale floor, once there is one
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
        self._creeps = True  # whether this level watches for creeps (only the finest one does)
        self._coarse: Engine | None = None
        if width * _WIDEST <= min(self.seasons, default=DAY):
            self._coarse = Engine(
                width,
                direction=self.direction,
                count=self.count,
                seasons=tuple(s for s in self.seasons if s >= 2 * width),
                keep=self.keep,
                threshold=self.threshold,
                confirm=1,
                clear=self.clear,
                hold=self.hold,
                drift_half_life=self.drift_half_life,
                min_change=self.min_change,
                warmup=max(10, self.warmup // 2),
                per_event=None if self.per_event is None else self.per_event / _COARSE,
            )
            # A creep is the finest level's to see: its drift averages follow the level on every
            # point and its slow baseline spans the same time, so a wider level's would judge the
            # same creep on a sixth of the points.
            wider: Engine | None = self._coarse
            while wider is not None:
                wider._creeps = False
                wider = wider._coarse
        self._bucket = -1  # the coarse bucket being summed
        self._bucket_sum = 0.0
        self._bucket_n = 0
        self._bucket_spoke = False  # a point of the bucket had evidence of its own
        self._coarse_seen: Detection | None = None  # the coarse verdict of the last closed bucket
        self._coarse_evidence = 0.0  # ... its evidence, weighed at this level
        self._coarse_stale = 2.0 * _COARSE * self.interval  # ... which says nothing after this long
        self._coarse_echo = False  # ... which had evidence at this level too
        self._quiet = 0  # points without evidence since the last one with some
        self._scored = -1.0  # the strongest decades scored in the current excursion (-1: none)

    # ---- the one entry point ---------------------------------------------------------------
    def step(self, value: float | None, at: float) -> Detection:
        """Judge `value` at epoch seconds `at` (None: no data, which is judged as nothing), then
        learn from it. Points come in time order; a refused point raises ValueError naming the
        field and changes nothing."""
        last = self._last_at
        if last is not None and at < last:
            raise ValueError(f"at: points must come in time order; {at!r} is before {last!r}")
        if value is None:
            self._last_at = at
            return Detection(at, None, None, None, None, 0.0, self.active)
        if self.count and value < 0.0:
            raise ValueError(f"value: a count cannot be negative, got {value!r}")
        self._last_at = at
        coarse = self._coarse
        if coarse is not None:
            if math.floor(at // coarse.interval) == self._bucket:  # most points: add to the mean
                self._bucket_sum += value
                self._bucket_n += 1
            else:
                self._widen(value, at, coarse)

        # where the point falls in each season and what the season expects there; then the season
        # remembers the point, whatever it is judged: a recurring pattern must become normal, and
        # the median of past cycles keeps a one-off from moving the expectation. (Judging reads
        # only the neighbouring slots after this.) The lists are refilled in place, every point,
        # and math.floor() turns the whole-valued floats into ints at half the cost of int().
        cycles, slots, typical = self._cycles, self._slots, self._typical
        for k, p in enumerate(self._profiles):
            length = p.length
            cycles[k] = cycle = math.floor(at // length)
            slots[k] = slot = math.floor((at % length) // p.width) % p.slots  # p.slot(at), inlined
            typical[k + 1] = p.earlier[slot] if p.cycle_of[slot] == cycle else p.medians[slot]  # p.typical()
            p.add(slot, cycle, value)
        group = self._groups[math.floor((at % self._group_cycle) // self._hour) % _GROUPS]
        play, expected, best, bad = self._explain(value)
        # the data's resolution: the smallest change seen between normal points, or a millionth
        # of the level while the metric has never changed
        if self._quantum < math.inf:
            floor = self._resolution
        else:
            floor = max(_REL_FLOOR * abs(expected or 0.0), 1e-12)
        source = group if group.n >= _GROUP_MIN else self._scale
        unit = source.median if source.median > floor else floor
        if self.per_event is not None and expected is not None and expected > 0.0:
            # independent events are never less noisy than Poisson: the median |residual| of a
            # count expected to be n is about 0.67 sqrt(n)
            poisson = 0.6745 * math.sqrt(self.per_event * expected)
            if poisson > unit:
                unit = poisson
        judged = expected is not None and self._seen >= self.warmup
        point = drift = 0.0
        if judged:
            z = bad / unit
            decades = self._tail.decades(z if z < _Z_MAX else _Z_MAX) if bad > 0.0 else 0.0
            # two points in the tail add their decades; a lone point must stand further out
            previous, self._decades = self._decades, decades
            point = _score(decades + previous if decades > 0.0 and previous > 0.0 else decades - _LONE)
            if self._creeps:
                # how far the level strayed from its slow baseline, as the explanations in play see
                # it (the least of them): a nightly job is a drift of the raw level, not the daily one
                least, drifts, sign = math.inf, self._drifts, self._sign
                for i in play:
                    d = drifts[i]
                    if d.ready:
                        strayed = d.decades(sign, floor)  # (not `decades`: the point's own, above)
                        if strayed < least:
                            least = strayed
                if least < math.inf:
                    drift = _score(least - _DRIFT_EXTRA)
        evidence = point if point > drift else drift
        stretch, counted, against = self._stretch, 0.0, expected
        if stretch is not None and judged:
            counted, reference = self._stretched(stretch, value, play, typical)
            if counted > evidence:  # the stretch says more: the move is against what it expected
                evidence, against = counted, reference
        if evidence > 0.0 and against is not None and abs(value - against) < self.min_change:
            evidence = 0.0
        if evidence >= self.threshold:
            self._bucket_spoke = True
        wider, echo = self._coarse_seen, False
        if wider is not None:
            e = self._coarse_evidence
            if e <= evidence or at - wider.at > self._coarse_stale:
                wider = None  # this point says more, or the wider verdict is stale
            elif self._coarse_echo:  # the same excursion goes on
                wider, echo = None, True
            else:
                evidence = e
        # The score is the news in the evidence: the evidence of the first point of an excursion,
        # and of each later point that makes it ten times stronger; 0 for points that only repeat
        # what was already scored, so a threshold crossed once per excursion raises one alert.
        score = 0.0
        if evidence <= 0.0:
            self._quiet = 0 if echo else self._quiet + 1
        else:
            if self._quiet > self.clear:  # a new excursion: nothing of it has been scored yet
                self._scored = -1.0
            self._quiet = 0
            strength = _HALF * evidence / (1.0 - evidence)  # in decades
            if strength >= self._scored + _NEWS:
                self._scored = strength
                score = evidence
        # Episodes: `confirm` points in a row past the threshold open one, `clear` points in a row
        # below half of it close it.
        started = ended = False
        if judged:
            if evidence >= self.threshold:
                self._suspect_run += 1
                self._calm_run = 0
                if not self.active and self._suspect_run >= self.confirm:
                    self.active = started = True
            else:
                self._suspect_run = 0
                if evidence < self._release:
                    self._calm_run += 1
                    if self.active and self._calm_run >= self.clear:
                        self.active = False
                        ended = True
        learnt = self._learn(value, at, typical, expected is not None, group, best, unit, point, drift)
        if stretch is not None and expected is not None:
            stretch.learn(value, expected, learnt and counted < self._release)
        if expected is None:
            active = self.active
            return Detection(at, value, None, None, None, score, active, started, ended, evidence=evidence)
        # the band: the edges a run of points must pass to reach the threshold
        width = unit * self._tail.band_edge
        low = expected - width
        if self.count and low < 0.0:
            low = 0.0
        sign = self._sign
        lower = low if sign <= 0.0 else None
        upper = expected + width if sign >= 0.0 else None
        move, change = "", 0.0
        if wider is not None:
            move, change = wider.move, wider.change
        elif evidence > 0.0 and against is not None:
            move = "up" if value > against else "down"
            # relative to the level, or to the noise for a level near zero
            change = abs(value - against) / max(abs(against), unit)
        # every field given: built as the tuple it is, without the keyword handling of Detection()
        active = self.active
        fields = (at, value, expected, lower, upper, score, active, started, ended, change, move, evidence)
        return _new_detection(Detection, fields)

    # ---- judging ---------------------------------------------------------------------------
    def _stretched(
        self, stretch: _Stretch, value: float, play: Sequence[int], typical: list[float | None]
    ) -> tuple[float, float | None]:
        """(the evidence of the stretch of a count of events this point ends, what it expected).

        A stretch is judged against a season, which foretells the hours ahead (the recent level
        foretells only the next point, and lags any evening's fall): the one in play, or else the
        one that has predicted best, once it has judged enough points."""
        season = play[0]
        if not season:
            errors, counts, levels = self._errors, self._error_n, self._levels
            for i in self._seasonal:
                ready = counts[i] >= _ERROR_MIN and levels[i] is not None and typical[i] is not None
                if ready and (not season or errors[i] < errors[season]):
                    season = i
            if not season:
                return 0.0, None
        shift = self._levels[season]
        assert shift is not None  # a season that judges has a level
        # on one alerting side, the level or its slow baseline, whichever alerts less: a count
        # back to normal after an excursion (the other region's starts after an evacuation) is
        # not a fall
        baseline = self._drifts[season]
        if self._sign and baseline.fast is not None and (baseline.slow - shift) * self._sign > 0.0:
            shift = baseline.slow
        stretch.keep(season, shift)
        centre = typical[stretch.which]
        reference = (centre if centre is not None else 0.0) + stretch.shift
        if reference < 0.0:
            reference = 0.0
        return _score(stretch.decades(value, reference, self._sign) - _STRETCH_EXTRA), reference

    def _widen(self, value: float, at: float, wider: Engine) -> None:
        """Start the wider bucket of `value` (step() adds to a bucket already started); the bucket
        before it is complete and judged at the wider level."""
        if self._bucket_n:
            mean = self._bucket_sum / self._bucket_n
            seen = self._coarse_seen = wider.step(mean, self._bucket * wider.interval)
            e = seen.evidence  # as this level weighs it: the wider one saw a sixth of the points
            self._coarse_evidence = _score(_HALF * e / (1.0 - e) - _WIDER_EXTRA) if e > 0.0 else 0.0
            # an excursion of the wider level that began while this level was past its
            # threshold is what this level found: an echo, until the wider level is calm again
            if seen.evidence <= 0.0:
                self._coarse_echo = False
            elif self._bucket_spoke:
                self._coarse_echo = True
        self._bucket = math.floor(at // wider.interval)  # as int(), faster
        self._bucket_sum, self._bucket_n, self._bucket_spoke = value, 1, False

    def _explain(self, value: float) -> tuple[Sequence[int], float | None, float, float]:
        """(the explanations in play, their main expected value, the smallest |residual| they leave,
        the smallest residual in an alerting direction).

        In play, best first: the seasons that predict about as well as the recent level, or else
        the recent level alone."""
        errors, counts, levels = self._errors, self._error_n, self._levels
        slots, cycles, typical = self._slots, self._cycles, self._typical
        limit = _COMPETENT * errors[0]
        play: tuple[int, ...] = _LEVEL_ONLY
        for i in self._seasonal:
            if (
                counts[i] >= _ERROR_MIN
                and errors[i] <= limit
                and levels[i] is not None
                and typical[i] is not None
            ):
                if play is _LEVEL_ONLY:
                    play = (i,)  # most often the only one: nothing to sort
                elif len(play) == 1:  # a day and a week: the better first, the earlier on a tie
                    play = (play[0], i) if errors[play[0]] <= errors[i] else (i, play[0])
                else:
                    play = tuple(sorted((*play, i), key=errors.__getitem__))

        level = levels[0]
        if level is None:
            return play, None, 0.0, 0.0
        if play[0] == 0:
            candidates = [level]
        else:
            candidates = []
            profiles = self._profiles
            for i in play:
                shift, centre = levels[i], typical[i]
                assert shift is not None and centre is not None  # only such seasons are in play
                candidates.append(shift + centre)
                # the neighbouring slots, as typical() reads them: a job that starts a minute late
                p, slot, cycle = profiles[i - 1], slots[i - 1], cycles[i - 1]
                cycle_of, earlier, medians = p.cycle_of, p.earlier, p.medians
                near = (slot - 1) % p.slots
                before = earlier[near] if cycle_of[near] == cycle else medians[near]
                if before is not None:
                    candidates.append(shift + before)
                near = (slot + 1) % p.slots
                after = earlier[near] if cycle_of[near] == cycle else medians[near]
                if after is not None:
                    candidates.append(shift + after)

        main = candidates[0]
        if self.count and main < 0.0:
            main = 0.0
        best = math.inf
        for c in candidates:
            r = value - c
            if -best < r < best:  # |r| < best
                best = r if r >= 0.0 else -r
        sign = self._sign
        if sign == 0.0:
            return play, main, best, best
        # value - c only falls as c grows: the smallest residual upwards is left by the highest
        # candidate, downwards by the lowest
        bad = value - max(candidates) if sign > 0.0 else min(candidates) - value
        return play, main, best, bad if bad > 0.0 else 0.0

    # ---- learning --------------------------------------------------------------------------
    def _learn(
        self,
        value: float,
        at: float,
        typical: list[float | None],
        explained: bool,
        group: _Window,
        residual: float,
        unit: float,
        point: float,
        drift: float,
    ) -> bool:
        """Learn from a point; False when it is held out as anomalous."""
        self._seen += 1
        z = residual / unit
        if z > _Z_MAX:
            z = _Z_MAX
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
            return False
        if self._held:  # an anomaly ended before it lasted
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
            # a standardised residual needs a settled scale; once the tail is full, one point in two
            # keeps it as sure (neighbouring residuals are alike) and lets it look back twice as far
            if self._seen > _GROUP_MIN and (self._seen & 1 or self._tail.window.n < _TAIL_POINTS):
                self._tail.add(z)
        previous = self._previous
        if previous is not None and value != previous:
            step = abs(value - previous)
            if step < self._quantum:
                self._quantum = step
                self._resolution = max(step, 1e-12)
        self._previous = value
        self._accept(value, at, typical, drifting, unit if explained else 0.0)
        return True

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
            usual = [p.typical(p.slot(h_at), int(h_at // p.length)) for p in self._profiles]
            self._accept(h_value, h_at, [0.0, *usual], True)
        for d, level in zip(self._drifts, self._levels, strict=True):
            d.settle(level)
        self._held, self._held_since, self._previous = [], None, value

    def _accept(
        self, value: float, at: float, typicals: list[float | None], drifting: bool, unit: float = 0.0
    ) -> None:
        """Take a normal point into the recent levels; the drift averages follow the level
        medians, so one wild point cannot drag them. With a `unit`, first track each
        explanation's smoothed |residual| (in units) before the point joins its level."""
        alpha, errors, counts, levels = self._error_alpha, self._errors, self._error_n, self._levels
        half_life, creeps = self.drift_half_life, self._creeps
        for i, recent, ordered, drift in self._rows:
            typical = typicals[i]
            if typical is None:
                continue
            level = levels[i]
            if unit and level is not None:
                error = abs(value - level - typical) / unit
                n = counts[i] = counts[i] + 1
                rate = 1.0 / n if n * alpha < 1.0 else alpha
                errors[i] += rate * ((error if error < _ERROR_CLIP else _ERROR_CLIP) - errors[i])
            # the level is the median of `recent`, kept sorted in `ordered` by one removal and one
            # insertion rather than sorted anew
            x = value - typical
            kept = len(ordered)
            if kept == _LEVEL_POINTS:
                ordered.remove(recent[0])  # the point the deque is about to drop
            else:
                kept += 1
            recent.append(x)
            insort(ordered, x)
            level = levels[i] = ordered[(kept - 1) // 2]

            if not creeps:
                continue
            # The drift averages follow the level; while `drifting` the slow one waits, so a creep
            # cannot teach it. (Written here, not as a _Drift method: it runs for every explanation
            # on every point, and the call would cost as much as the update.)
            fast = drift.fast
            if fast is None:
                drift.fast = drift.slow = level
                drift.at = at
                continue
            # time-weighted, so gaps and irregular sampling age the averages by time, not by count
            dt = at - drift.at
            drift.at = at
            alphas = drift.alphas
            if dt != alphas[0]:
                aged = 0.0 if dt < 0.0 else half_life if dt > half_life else dt
                fast_rate, slow_rate = 1.0 - 0.5 ** (12.0 * aged / half_life), 1.0 - 0.5 ** (aged / half_life)
                alphas = drift.alphas = (dt, fast_rate, slow_rate)
            fast = drift.fast = fast + alphas[1] * (level - fast)
            if drifting:
                continue
            count = drift.count = drift.count + 1
            if count % 4 == 0:  # a slow statistic: one point in four describes it as well
                distance = abs(fast - drift.slow)
                scale = drift.scale
                if scale.n >= _GROUP_MIN and scale.median > 0.0:
                    tail = drift.tail
                    tail.add(distance / scale.median)
                    drift.ready = tail.window.n >= _DRIFT_MIN
                scale.add(distance)
            drift.slow += alphas[2] * (fast - drift.slow)


_new_detection = tuple.__new__


def _score(decades: float) -> float:
    """Decades of tail evidence as a score in [0, 1): 0.5 at `_HALF` decades, never saturating,
    so that the strongest anomalies still rank above the merely strong."""
    if decades <= 0.0:
        return 0.0
    score = decades / (decades + _HALF)
    return score if score < 0.999999 else 0.999999

