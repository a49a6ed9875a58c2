"""A generated, labelled corpus of operational time series for scoring anomaly detectors.

Thirteen families, six series each (four families also carry one minutely series), each family with
its own shape, its normal oddities (weekends, nightly batches, weekly backups, bursts, saturation,
sampling gaps) and its labelled anomalies (0 to 3 per series; some series are clean). Everything is
drawn from fixed seeds, so every run sees the same corpus. Timestamps are epoch seconds; series
start on a Monday 00:00 UTC in 2026 (series i starts i weeks after 2026-01-05).

    from _corpus import families, CLEAN_FAMILIES
    for family, series in families().items(): ...

Each anomaly is a (start, end) span in epoch seconds: what a person reading the chart would mark.
Recurring patterns (weekly dips, the nightly batch, the Sunday backup, bursts in a bursty series,
sampling gaps) are normal and never labelled.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

START = 1767571200.0  # Monday 2026-01-05 00:00 UTC
MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
WEEK = 7 * DAY

FAMILY_NAMES = (
    "web_traffic",
    "cron_spikes",
    "bursty_counts",
    "flat_steps",
    "cpu_bounded",
    "temperature",
    "drift_creep",
    "level_shift",
    "single_spike",
    "quiet_counts",
    "irregular_gaps",
    "perfect_sine",
    "random_walk",
)
# Families whose normal behaviour is itself wild (bursts, a random walk): false alarms there are
# forgivable, so the false-alarm target is judged on every other family.
NOISY_FAMILIES = ("bursty_counts", "random_walk")
CLEAN_FAMILIES = tuple(f for f in FAMILY_NAMES if f not in NOISY_FAMILIES)
# Families whose values are counts of events in a bucket (a team would declare them per_event=1).
EVENT_FAMILIES = ("bursty_counts", "quiet_counts")

# (days, bucket seconds, anomalies) per series index; the minutely series is added to some families.
_PLAN = ((14, 300.0, 1), (21, 300.0, 2), (14, 300.0, 0), (14, 300.0, 3), (28, 300.0, 1), (14, 300.0, 2))
_MINUTELY = (14, 60.0, 2)
_WITH_MINUTELY = ("cron_spikes", "temperature", "single_spike", "quiet_counts")


@dataclass(frozen=True)
class Series:
    name: str
    family: str
    t: list[float]
    values: list[float]
    anomalies: list[tuple[float, float]]
    interval: float  # nominal bucket seconds
    kinds: tuple[str, ...] = ()  # what each anomaly is, in the order of `anomalies`

    @property
    def span(self) -> float:
        return self.t[-1] - self.t[0]


class _Ctx:
    """Timestamps of one series plus anomaly placement that keeps NAB windows apart."""

    def __init__(self, rng: np.random.Generator, t: np.ndarray, interval: float, k: int) -> None:
        self.rng, self.t, self.interval, self.k = rng, t, interval, k
        self.t0, self.span = float(t[0]), float(t[-1] - t[0])
        self.gap = 0.1 * self.span / max(k, 1)  # a NAB window length: keep anomalies this far apart
        self.spans: list[tuple[float, float]] = []
        self.kinds: list[str] = []

    def place(
        self,
        kind: str,
        dur: float,
        snap: Callable[[float], float] | None = None,
        ok: Callable[[float, float], bool] | None = None,
    ) -> tuple[float, float]:
        lo, hi = self.t0 + 0.2 * self.span, self.t0 + 0.97 * self.span
        for _ in range(5000):
            s = float(self.rng.uniform(lo, hi - dur))
            if snap is not None:
                s = snap(s)
            s = self.t0 + round((s - self.t0) / self.interval) * self.interval
            e = s + dur
            if s < lo or e > hi or (ok is not None and not ok(s, e)):
                continue
            if any(s < e2 + self.gap and s2 < e + self.gap for s2, e2 in self.spans):
                continue
            self.spans.append((s, e))
            self.kinds.append(kind)
            return s, e
        raise RuntimeError(f"cannot place a {kind} anomaly of {dur:.0f} s")

    def mask(self, s: float, e: float) -> np.ndarray:
        return (self.t >= s) & (self.t < e)

    def labels(self) -> tuple[list[tuple[float, float]], tuple[str, ...]]:
        order = sorted(range(len(self.spans)), key=lambda i: self.spans[i][0])
        return [self.spans[i] for i in order], tuple(self.kinds[i] for i in order)


def _hours(t: np.ndarray) -> np.ndarray:
    return ((t - START) % DAY) / HOUR


def _dow(t: np.ndarray) -> np.ndarray:
    return (((t - START) // DAY) % 7).astype(int)  # 0 = Monday


def _day_start(x: float) -> float:
    return START + ((x - START) // DAY) * DAY


def _daily(t: np.ndarray, peak_hour: float, sharp: float = 1.0) -> np.ndarray:
    """0..1 over the day, 1 at `peak_hour`."""
    return np.power(0.5 + 0.5 * np.cos(2 * np.pi * (_hours(t) - peak_hour) / 24.0), sharp)


def _ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    """AR(1) noise with stationary standard deviation `sd`."""
    eps = rng.normal(0.0, sd * np.sqrt(1 - phi * phi), n)
    out = np.empty(n)
    acc = float(rng.normal(0.0, sd))
    for i, e in enumerate(eps.tolist()):
        acc = phi * acc + e
        out[i] = acc
    return out


def _kinds(rng: np.random.Generator, options: tuple[str, ...], k: int) -> list[str]:
    return [options[int(i)] for i in rng.integers(0, len(options), k)]


Generated = tuple[np.ndarray, np.ndarray]  # (t, values)


def _web_traffic(c: _Ctx) -> Generated:
    rng, t = c.rng, c.t
    base, peak, weekend = rng.uniform(200, 2000), rng.uniform(13, 20), rng.uniform(0.45, 0.7)
    level = base * (0.15 + 0.85 * _daily(t, peak, 1.5)) * np.where(_dow(t) >= 5, weekend, 1.0)
    level *= 1 + rng.uniform(-0.05, 0.1) * (t - c.t0) / c.span
    v = level * (1 + _ar1(rng, len(t), 0.7, 0.04)) + rng.normal(0, 1, len(t)) * np.sqrt(level) * 0.5
    for kind in _kinds(rng, ("outage", "holiday", "campaign", "spike"), c.k):
        if kind == "outage":
            s, e = c.place(kind, rng.uniform(20, 90) * MINUTE, ok=lambda s, e: 7 <= _hours(np.array(s)) <= 22)
            v[c.mask(s, e)] *= rng.uniform(0.02, 0.2)
        elif kind == "holiday":  # a weekday that looks like a weekend
            s, e = c.place(kind, DAY, snap=_day_start, ok=lambda s, e: _dow(np.array(s)) < 5)
            v[c.mask(s, e)] *= weekend * rng.uniform(0.8, 1.0)
        elif kind == "campaign":  # a one-off surge: quick rise, slow decay
            s, e = c.place(kind, rng.uniform(2, 6) * HOUR, ok=lambda s, e: 8 <= _hours(np.array(s)) <= 18)
            m = c.mask(s, e)
            x = (t[m] - s) / (e - s)
            v[m] *= 1 + rng.uniform(0.8, 2.0) * np.minimum(1.0, x * 8) * (1 - 0.7 * x)
        else:
            s, e = c.place(kind, rng.uniform(10, 20) * MINUTE, ok=lambda s, e: 6 <= _hours(np.array(s)) <= 23)
            v[c.mask(s, e)] *= rng.uniform(2.5, 4.0)
    return t, np.maximum(v, 0.0)


def _cron_spikes(c: _Ctx) -> Generated:
    rng, t = c.rng, c.t
    base, amp, peak = rng.uniform(8, 30), rng.uniform(3, 15), rng.uniform(11, 17)
    calm = base + amp * _daily(t, peak) + _ar1(rng, len(t), 0.6, rng.uniform(1.5, 4))
    v = calm.copy()
    batch_at = float(rng.integers(1, 5)) * HOUR + float(rng.choice([0, 15, 30])) * MINUTE
    batch_dur = rng.uniform(20, 40) * MINUTE
    backup_at, backup_dur, backup_level = (
        rng.uniform(3, 5) * HOUR,
        rng.uniform(60, 120) * MINUTE,
        rng.uniform(55, 75),
    )
    day = _day_start(c.t0)
    while day < t[-1]:
        m = c.mask(day + batch_at, day + batch_at + batch_dur + rng.uniform(-3, 3) * MINUTE)
        v[m] = np.minimum(100.0, rng.uniform(96, 100.5, int(m.sum())))
        if _dow(np.array(day)) == 6:  # Sunday backup
            m = c.mask(day + backup_at, day + backup_at + backup_dur)
            v[m] = backup_level + rng.normal(0, 3, int(m.sum()))
        day += DAY

    def busy(s: float, e: float) -> bool:  # overlaps the nightly batch or the backup window (+-1 h)
        hs = (s - _day_start(s)) / HOUR

        def near(h: float, within: float) -> bool:
            return abs((hs - h + 12) % 24 - 12) < within

        return near(batch_at / HOUR, 2.0) or near(backup_at / HOUR, 3.5)

    for kind in _kinds(rng, ("unscheduled", "runaway", "missed", "baseline"), c.k):
        if kind == "unscheduled":  # a batch-like 100 % CPU at a time nothing is scheduled
            s, e = c.place(kind, rng.uniform(30, 60) * MINUTE, ok=lambda s, e: not busy(s, e))
            m = c.mask(s, e)
            v[m] = np.minimum(100.0, rng.uniform(96, 100.5, int(m.sum())))
        elif kind == "runaway":  # the nightly batch does not finish
            extra = rng.uniform(2, 4) * HOUR
            s, e = c.place(kind, extra, snap=lambda x: _day_start(x) + batch_at + batch_dur)
            m = c.mask(s, e)
            v[m] = np.minimum(100.0, rng.uniform(96, 100.5, int(m.sum())))
        elif kind == "missed":  # the nightly batch does not run
            s, e = c.place(kind, batch_dur, snap=lambda x: _day_start(x) + batch_at)
            m = c.mask(s, e + 5 * MINUTE)
            v[m] = calm[m]
        else:
            s, e = c.place(kind, rng.uniform(4, 10) * HOUR, ok=lambda s, e: not busy(s, e) and not busy(e, e))
            v[c.mask(s, e)] += rng.uniform(20, 35)
    return t, np.clip(v, 0.0, 100.0)


def _bursty_counts(c: _Ctx) -> Generated:
    rng, t = c.rng, c.t
    n = len(t)
    mu, r = rng.uniform(5, 50), rng.uniform(1.5, 5)
    rate = mu * (0.7 + 0.3 * _daily(t, rng.uniform(10, 20)))
    bursts = np.zeros(n)
    for i in rng.integers(0, n, rng.poisson(3 * c.span / DAY)).tolist():  # heavy-tailed bursts: normal
        size = mu * (rng.pareto(1.3) + 1) * rng.uniform(1, 3)
        length = int(rng.integers(1, 7))
        bursts[i : i + length] += size * np.exp(-np.arange(min(length, n - i)) / 2)
    for kind in _kinds(rng, ("rate_up", "rate_down"), c.k):  # a sustained rate change
        s, e = c.place(kind, rng.uniform(4, 12) * HOUR)
        rate[c.mask(s, e)] *= rng.uniform(2.2, 3.5) if kind == "rate_up" else rng.uniform(0.15, 0.35)
    lam = rate + bursts
    return t, rng.negative_binomial(r, r / (r + lam)).astype(float)


def _flat_steps(c: _Ctx, sub: str) -> Generated:
    rng, t = c.rng, c.t
    n = len(t)
    if sub == "queue":  # a small working queue; anomaly: stuck at a high constant
        v = rng.poisson(rng.uniform(0.5, 4), n).astype(float)
        for _ in range(c.k):
            s, e = c.place("stuck", rng.uniform(1, 6) * HOUR)
            v[c.mask(s, e)] = float(rng.integers(50, 300))
        return t, v
    level = float(rng.choice([2, 3, 4, 6, 8])) if sub == "replicas" else float(rng.choice([0.25, 30, 1000]))
    v = np.full(n, level)
    for _ in range(c.k):
        if rng.random() < 0.5:  # temporary: a scale-out / config change and its revert
            s, e = c.place("step_temporary", rng.uniform(2, 8) * HOUR)
            new = (
                level + float(rng.integers(1, 4))
                if sub == "replicas"
                else level * float(rng.choice([0.5, 2]))
            )
            v[c.mask(s, e)] = new
        else:  # permanent: labelled for its first hour
            s, e = c.place("step_permanent", HOUR)
            new = max(1.0, level + float(rng.choice([-1, 2]))) if sub == "replicas" else level * 2
            v[t >= s] = new
            level = new
    return t, v


def _cpu_bounded(c: _Ctx) -> Generated:
    rng, t = c.rng, c.t
    base, peak = rng.uniform(15, 45), rng.uniform(11, 17)
    amp = rng.uniform(80, 115) - base  # some series saturate at their daily peak: normal
    raw = base + amp * _daily(t, peak, 1.5) + _ar1(rng, len(t), 0.8, rng.uniform(3, 8))

    def off_peak(s: float, e: float) -> bool:
        return bool(abs(((_hours(np.array(s)) - peak + 12) % 24) - 12) > 6)

    for kind in _kinds(rng, ("pegged", "dead", "step"), c.k):
        if kind == "pegged":
            s, e = c.place(kind, rng.uniform(1, 3) * HOUR, ok=off_peak)
            raw[c.mask(s, e)] = 100 + rng.uniform(0, 5)
        elif kind == "dead":
            s, e = c.place(kind, rng.uniform(20, 90) * MINUTE)
            m = c.mask(s, e)
            raw[m] = rng.uniform(0, 2, int(m.sum()))
        else:
            s, e = c.place(kind, rng.uniform(3, 8) * HOUR, ok=off_peak)
            raw[c.mask(s, e)] += rng.uniform(25, 40)
    return t, np.clip(raw, 0.0, 100.0)


def _temperature(c: _Ctx) -> Generated:
    rng, t = c.rng, c.t
    centre, swing = rng.uniform(65, 75), rng.uniform(0.5, 1.5)
    v = (
        centre
        + swing * (2 * _daily(t, rng.uniform(14, 17)) - 1)
        + _ar1(rng, len(t), 0.9, rng.uniform(0.05, 0.2))
    )
    for kind in _kinds(rng, ("hot", "cold"), c.k):  # ~5 %: small in value, many sigma
        s, e = c.place(kind, rng.uniform(1, 4) * HOUR)
        ramp = rng.uniform(10, 30) * MINUTE
        m = c.mask(s, e)
        x = np.minimum(1.0, np.minimum(t[m] - s, e - t[m]) / ramp)
        v[m] += (1 if kind == "hot" else -1) * rng.uniform(0.04, 0.06) * centre * x
    return t, np.round(v, 1)  # sensor resolution


def _drift_creep(c: _Ctx, sub: str) -> Generated:
    rng, t = c.rng, c.t
    n = len(t)
    if sub == "latency":  # p95 latency in ms, creeping up until a fix is deployed
        base = rng.uniform(120, 250)
        mult = np.ones(n)
        for _ in range(c.k):
            s, e = c.place("latency_creep", rng.uniform(24, 48) * HOUR)
            m = c.mask(s, e)
            mult[m] = 1 + (rng.uniform(2.2, 3.2) - 1) * np.power((t[m] - s) / (e - s), rng.uniform(1, 1.6))
        v = base * (1 + 0.15 * _daily(t, rng.uniform(12, 20))) * mult * np.exp(rng.normal(0, 0.08, n))
        return t, v
    base = rng.uniform(30, 50)  # memory %, leaking until the process restarts
    v = base + _ar1(rng, n, 0.95, 0.6)
    for _ in range(c.k):
        s, e = c.place("memory_leak", rng.uniform(24, 48) * HOUR)
        m = c.mask(s, e)
        v[m] += rng.uniform(30, 45) * (t[m] - s) / (e - s)
    return t, np.clip(v, 0.0, 100.0)


def _level_shift(c: _Ctx) -> Generated:
    rng, t = c.rng, c.t
    n = len(t)
    base = rng.uniform(50, 500)
    shift = np.zeros(n)
    for kind in _kinds(rng, ("up", "down"), c.k):
        size = (1 if kind == "up" else -1) * rng.uniform(0.15, 0.4) * base
        if rng.random() < 0.5:
            s, e = c.place(f"{kind}_temporary", rng.uniform(3, 12) * HOUR)
            shift[c.mask(s, e)] += size
        else:  # permanent: labelled for its first hour
            s, e = c.place(f"{kind}_permanent", HOUR)
            shift[t >= s] += size
    level = base * (1 + rng.uniform(0, 0.1) * (2 * _daily(t, rng.uniform(10, 20)) - 1))
    return t, np.maximum(level + shift + rng.normal(0, rng.uniform(0.02, 0.06) * base, n), 0.0)


def _single_spike(c: _Ctx) -> Generated:
    rng, t = c.rng, c.t
    n = len(t)
    base, sd = rng.uniform(10, 1000), rng.uniform(0.03, 0.05)
    v = base * (1 + rng.uniform(0, 0.3) * _daily(t, rng.uniform(10, 20))) * (1 + rng.normal(0, sd, n))
    for _ in range(c.k):
        up = rng.random() < 0.8
        s, _ = c.place("spike_up" if up else "spike_down", c.interval)
        i = int(np.searchsorted(t, s))
        v[i] += (1 if up else -0.8) * rng.uniform(8, 25) * sd * base
    return t, np.maximum(v, 0.0)


def _quiet_counts(c: _Ctx) -> Generated:
    rng, t = c.rng, c.t
    lam = 0.5 + 2.5 * _daily(t, rng.uniform(11, 19), 1.2)  # 0.5 .. 3 per bucket
    v = rng.poisson(lam).astype(float)
    for _ in range(c.k):  # an hour of silence, when silence is unlikely
        s, e = c.place("outage", HOUR, ok=lambda s, e: float(lam[c.mask(s, e)].mean()) >= 1.2)
        v[c.mask(s, e)] = 0.0
    return t, v


def _irregular_gaps(c: _Ctx) -> Generated:
    rng = c.rng
    steps = c.interval * np.exp(rng.normal(0, 0.4, 2 * len(c.t)))  # jittered sampling
    t = c.t0 + np.concatenate([[0.0], np.cumsum(steps)])
    t = t[t <= c.t[-1]]
    c.t = t
    base, sd = rng.uniform(20, 200), rng.uniform(0.02, 0.04)
    v = (
        base
        * (1 + rng.uniform(0.2, 0.4) * (2 * _daily(t, rng.uniform(10, 20)) - 1))
        * (1 + rng.normal(0, sd, len(t)))
    )
    for kind in _kinds(rng, ("spike", "drop", "shift"), c.k):
        if kind == "spike":
            s, e = c.place(kind, 15 * MINUTE)
            v[c.mask(s, e)] *= rng.uniform(2, 3)
        elif kind == "drop":
            s, e = c.place(kind, rng.uniform(1, 2) * HOUR)
            v[c.mask(s, e)] *= rng.uniform(0.2, 0.4)
        else:
            s, e = c.place(kind, rng.uniform(3, 8) * HOUR)
            v[c.mask(s, e)] *= 1 + rng.uniform(0.3, 0.5)
    keep = np.ones(len(t), dtype=bool)
    for _ in range(int(rng.integers(4, 11))):  # missing hours: values absent, not zero; not anomalies
        for _try in range(1000):
            gs = float(rng.uniform(c.t0 + 0.05 * c.span, c.t0 + 0.97 * c.span))
            ge = gs + rng.uniform(1, 6) * HOUR
            if all(ge + 2 * HOUR < s or gs > e + c.gap for s, e in c.spans):
                keep &= ~((t >= gs) & (t < ge))
                break
    return t[keep], v[keep]


def _perfect_sine(c: _Ctx) -> Generated:
    rng, t = c.rng, c.t
    amp = rng.uniform(10, 100)
    return t, amp * rng.uniform(1.2, 3) + amp * np.sin(
        2 * np.pi * (t - START) / DAY + rng.uniform(0, 2 * np.pi)
    )


def _random_walk(c: _Ctx, sub: str) -> Generated:
    rng, t = c.rng, c.t
    n = len(t)
    if sub == "price":
        sigma = rng.uniform(0.001, 0.003) * np.sqrt(c.interval / 300)
        v = rng.uniform(20, 200) * np.exp(np.cumsum(rng.normal(0, sigma, n)))
        for _ in range(c.k):  # a flash spike over a few buckets
            s, e = c.place("flash_spike", c.interval * int(rng.integers(1, 4)))
            v[c.mask(s, e)] *= rng.uniform(1.15, 1.4)
        return t, v
    step = rng.uniform(2, 8)  # queue depth: a reflected random walk
    v = np.empty(n)
    x = rng.uniform(50, 200)
    for i, d in enumerate(rng.normal(0, step, n).tolist()):
        x = abs(x + d - 0.002 * (x - 100))
        v[i] = x
    for _ in range(c.k):
        s, e = c.place("depth_spike", rng.uniform(10, 30) * MINUTE)
        v[c.mask(s, e)] += rng.uniform(15, 40) * step
    return t, v


def _generator(family: str, index: int) -> Callable[[_Ctx], Generated]:
    alternate = {
        "flat_steps": ("replicas", "config", "queue"),
        "drift_creep": ("latency", "memory"),
        "random_walk": ("price", "queue"),
    }
    if family in alternate:
        subs = alternate[family]
        fn = {"flat_steps": _flat_steps, "drift_creep": _drift_creep, "random_walk": _random_walk}[family]
        sub = subs[index % len(subs)]
        return lambda c: fn(c, sub)
    return {
        "web_traffic": _web_traffic,
        "cron_spikes": _cron_spikes,
        "bursty_counts": _bursty_counts,
        "cpu_bounded": _cpu_bounded,
        "temperature": _temperature,
        "level_shift": _level_shift,
        "single_spike": _single_spike,
        "quiet_counts": _quiet_counts,
        "irregular_gaps": _irregular_gaps,
        "perfect_sine": _perfect_sine,
    }[family]


def plan(family: str) -> list[tuple[int, float, int]]:
    """(days, bucket seconds, number of anomalies) for each series of `family`."""
    rows = list(_PLAN) + ([_MINUTELY] if family in _WITH_MINUTELY else [])
    if family == "perfect_sine":
        rows = [(d, i, 0) for d, i, _ in rows]
    return rows


def make_series(family: str, index: int) -> Series:
    days, interval, k = plan(family)[index]
    rng = np.random.default_rng([2026, FAMILY_NAMES.index(family), index])
    t0 = START + index * WEEK
    ctx = _Ctx(rng, t0 + np.arange(int(days * DAY / interval)) * interval, interval, k)
    t, v = _generator(family, index)(ctx)
    anomalies, kinds = ctx.labels()
    return Series(f"{family}-{index}", family, t.tolist(), v.tolist(), anomalies, interval, kinds)


@functools.cache
def _family(family: str) -> tuple[Series, ...]:
    return tuple(make_series(family, i) for i in range(len(plan(family))))


def families(quick: bool = False, only: Iterable[str] | None = None) -> dict[str, list[Series]]:
    """Family name -> its series. `quick`: one series per family (the first, which has an anomaly
    wherever the family has any); `only`: these families."""
    names = list(only) if only is not None else list(FAMILY_NAMES)
    unknown = [f for f in names if f not in FAMILY_NAMES]
    if unknown:
        raise ValueError(f"unknown families {unknown}; known: {', '.join(FAMILY_NAMES)}")
    return {f: list(_family(f)[:1] if quick else _family(f)) for f in names}
