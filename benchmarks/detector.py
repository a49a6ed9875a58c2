"""Anomaly detectors scored in the style of the Numenta Anomaly Benchmark (NAB), side by side in one run.

Corpus: _corpus.py generates, from fixed seeds, 13 families of operational series (web traffic with
weekends and holidays, nightly batches and weekly backups, bursty counts, flat metrics with steps,
bounded CPU, temperature, creeps, level shifts, single spikes, quiet counts, gappy irregular
sampling, a perfect sine, random walks): 82 series of 2 to 4 weeks, 5-minute buckets and a few
1-minute ones, with labelled anomaly spans.

Scoring, as NAB does it:
- Windows: per series, a total window length of 10 % of the series' span is shared by its
  anomalies; each window opens a tenth of its length before the anomaly and closes at
  max(anomaly end, open + length). Overlapping windows merge.
- Probation: the first 15 % of each series' span is for learning; detections there count nothing.
- A detection is a point whose score (in [0, 1]) is >= the threshold. In a window only the first
  detection counts, A_TP * sigma(y), with sigma(y) = 2 / (1 + exp(5 y)) - 1 and y the relative
  position (-1 at the window's start, 0 at its end): early ~ +1, late ~ 0. A detection outside every
  window costs A_FP, times -sigma of its distance past the preceding window in window lengths
  (just after a window it costs little; before the first window, the full A_FP). A window without
  a detection costs A_FN.
- Profiles (A_TP, A_FP, A_FN): standard (1, 0.11, 1), reward_low_FP (1, 0.22, 1),
  reward_low_FN (1, 0.11, 2). Scores are summed over the corpus and normalised:
  100 * (S - S_null) / (S_perfect - S_null), null = never detecting (-A_FN per window),
  perfect = a detection at every window's start (A_TP * sigma(-1) per window).
- One threshold per detector and profile for the whole corpus, the best over a grid (score
  quantiles, every window's running maxima and a fine linear grid).
Reading the scores: as in NAB, uniform random scores land above 0 once their threshold is optimised
(a window hit by chance earns its reward and avoids A_FN, while a false positive costs 0.11), so
"random" is the floor to beat, not 0. Only the order of a detector's scores matters, but ties do:
points scored exactly 1.0 can never be told apart by any threshold.

After the per-family table, the families whose values count events (bursty and quiet counts) are
scored again with that declared (`Detector(per_event=1)`), at the same threshold: what a team that
says "this is a count of orders" gets. The targets hold for the one set of defaults alone.

At the standard threshold the table also reports false alarms per series-week (an alarm episode
is a run of detections merged while less than an hour apart; it is false when none of its
detections falls in a window), the same on the clean families (all but the bursty and random-walk
ones), recall (windows detected), the median delay (minutes from anomaly start to the first
detection in its window; negative when the window's lead-in caught it) and microseconds per point.
Stoic's microseconds are those of the engine the install runs (the last line names it): compiled
with mypyc when the install had a C compiler, else Python (STOIC_PURE_PYTHON=1 asks for it).

    .venv/bin/python benchmarks/detector.py [--quick] [--family web_traffic,quiet_counts]
                                             [--only stoic,gaussian]

--quick scores one series per family, --family some families, --only some contenders (stoic,
never, random, gaussian, hst). The scorer is importable (run from benchmarks/ or with it on the path):
`score_corpus(scores_by_series, corpus, "standard")` gives the normalised score at the best threshold
(or at `threshold=`), `components()` the score parts for a whole threshold grid, `alarms()` what an
operator would see; `_corpus.families()` gives the corpus.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _corpus import CLEAN_FAMILIES, EVENT_FAMILIES, FAMILY_NAMES, HOUR, WEEK, Series, families

PROBATION = 0.15  # share of each series' span ignored by the score
WINDOW_SHARE = 0.10  # share of each series' span covered by its windows, all anomalies together
LEAD = 0.10  # share of a window before its anomaly's start
EPISODE_GAP = HOUR  # detections closer than this belong to one alarm episode

TARGET_SCORE = 70.0
TARGET_RATIO = 1.5
TARGET_FALSE_ALARMS = 1.0  # per series-week, clean families
TARGET_US = 20.0


@dataclass(frozen=True)
class Profile:
    name: str
    a_tp: float
    a_fp: float
    a_fn: float


PROFILES = {
    "standard": Profile("standard", 1.0, 0.11, 1.0),
    "reward_low_FP": Profile("reward_low_FP", 1.0, 0.22, 1.0),
    "reward_low_FN": Profile("reward_low_FN", 1.0, 0.11, 2.0),
}


def scaled_sigmoid(y: np.ndarray | float) -> np.ndarray:
    """NAB's scaled sigmoid: ~+1 at y = -1 (a window's start), 0 at y = 0 (its end), -> -1 after."""
    y = np.asarray(y, dtype=float)
    return np.where(y > 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * np.minimum(y, 3.0))) - 1.0)


PERFECT_TP = float(scaled_sigmoid(-1.0))  # what a detection at a window's very start earns


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    anomaly_start: float  # of its first anomaly (windows that overlap are merged)


def windows(series: Series) -> list[Window]:
    """NAB windows of one series, merged where they overlap."""
    if not series.anomalies:
        return []
    length = WINDOW_SHARE * series.span / len(series.anomalies)
    out: list[Window] = []
    for a_start, a_end in sorted(series.anomalies):
        start = a_start - LEAD * length
        w = Window(start, max(a_end, start + length), a_start)
        if out and w.start <= out[-1].end:
            prev = out.pop()
            w = Window(prev.start, max(prev.end, w.end), prev.anomaly_start)
        out.append(w)
    return out


@dataclass(frozen=True)
class Layout:
    """Where each point of a series stands for the scorer."""

    t: np.ndarray
    scored: np.ndarray  # past probation
    window: np.ndarray  # index into `windows`, -1 outside every window
    windows: list[Window]
    tp_value: np.ndarray  # unweighted reward of a first detection here (inside windows)
    fp_cost: np.ndarray  # unweighted cost of a detection here (outside windows), in [0, 1]
    weeks: float  # scored span in weeks


_LAYOUTS: dict[str, Layout] = {}


def layout(series: Series) -> Layout:
    cached = _LAYOUTS.get(series.name)
    if cached is not None and len(cached.t) == len(series.t):
        return cached
    t = np.asarray(series.t, dtype=float)
    probation_end = t[0] + PROBATION * (t[-1] - t[0])
    ws = windows(series)
    window = np.full(len(t), -1)
    tp_value = np.zeros(len(t))
    for j, w in enumerate(ws):
        inside = (t >= w.start) & (t <= w.end)
        window[inside] = j
        tp_value[inside] = scaled_sigmoid((t[inside] - w.end) / (w.end - w.start))
    fp_cost = np.ones(len(t))
    if ws:
        ends = np.array([w.end for w in ws])
        lengths = np.array([w.end - w.start for w in ws])
        prev = np.searchsorted(ends, t, side="right") - 1  # the last window closed before t
        after = prev >= 0
        past = (t[after] - ends[prev[after]]) / lengths[prev[after]]
        fp_cost[after] = -scaled_sigmoid(past)
    fp_cost[window >= 0] = 0.0
    out = Layout(t, t >= probation_end, window, ws, tp_value, fp_cost, (t[-1] - probation_end) / WEEK)
    _LAYOUTS[series.name] = out
    return out


Scores = Mapping[str, Sequence[float] | np.ndarray]  # series name -> per-point scores


@dataclass(frozen=True)
class Components:
    """Unweighted score parts of a set of series, per candidate threshold (any profile is a
    weighted sum of them)."""

    thresholds: np.ndarray
    tp: np.ndarray  # sum of first-detection rewards
    fp: np.ndarray  # sum of false-positive costs
    missed: np.ndarray  # windows without a detection
    windows: int

    def raw(self, profile: Profile) -> np.ndarray:
        return profile.a_tp * self.tp - profile.a_fp * self.fp - profile.a_fn * self.missed

    def normalised(self, profile: Profile) -> np.ndarray:
        null = -profile.a_fn * self.windows
        perfect = profile.a_tp * PERFECT_TP * self.windows
        if perfect == null:  # no windows: nothing to normalise against
            return np.full(len(self.thresholds), math.nan)
        return 100.0 * (self.raw(profile) - null) / (perfect - null)


def components(scores: Scores, corpus: Sequence[Series], thresholds: np.ndarray) -> Components:
    """Score parts at every threshold, vectorised: per window the first detection is where the
    running maximum of its scores first reaches the threshold; false-positive costs are summed
    from the sorted scores outside windows."""
    thresholds = np.asarray(thresholds, dtype=float)
    g = len(thresholds)
    tp, missed = np.zeros(g), np.zeros(g)
    out_scores: list[np.ndarray] = []
    out_costs: list[np.ndarray] = []
    n_windows = 0
    for series in corpus:
        lay = layout(series)
        s = np.asarray(scores[series.name], dtype=float)
        outside = lay.scored & (lay.window < 0)
        out_scores.append(s[outside])
        out_costs.append(lay.fp_cost[outside])
        for j in range(len(lay.windows)):
            n_windows += 1
            idx = np.flatnonzero(lay.scored & (lay.window == j))
            if len(idx) == 0:
                missed += 1
                continue
            peak = np.maximum.accumulate(s[idx])
            first = np.searchsorted(peak, thresholds, side="left")
            hit = first < len(idx)
            tp += np.where(hit, lay.tp_value[idx][np.minimum(first, len(idx) - 1)], 0.0)
            missed += ~hit
    s_out = np.concatenate(out_scores) if out_scores else np.zeros(0)
    c_out = np.concatenate(out_costs) if out_costs else np.zeros(0)
    order = np.argsort(s_out, kind="stable")
    s_sorted = s_out[order]
    above = np.concatenate([np.cumsum(c_out[order][::-1])[::-1], [0.0]])  # cost of points >= s_sorted[i]
    fp = above[np.searchsorted(s_sorted, thresholds, side="left")]
    return Components(thresholds, tp, fp, missed, n_windows)


def candidate_thresholds(scores: Scores, corpus: Sequence[Series]) -> np.ndarray:
    """Score quantiles (dense in the upper tail), every window's running maxima, a fine linear
    grid, and "off" (infinity)."""
    parts: list[np.ndarray] = [np.linspace(0.0, 1.0, 1001), np.array([np.inf])]
    scored: list[np.ndarray] = []
    for series in corpus:
        lay = layout(series)
        s = np.asarray(scores[series.name], dtype=float)
        scored.append(s[lay.scored])
        for j in range(len(lay.windows)):
            parts.append(np.unique(s[lay.scored & (lay.window == j)]))
    everything = np.concatenate(scored)
    quantiles = np.concatenate([np.linspace(0.0, 1.0, 1001), 1.0 - np.logspace(-7, -1, 1200)])
    parts.append(np.quantile(everything, quantiles))
    return np.unique(np.concatenate(parts))


def best(comp: Components, profile: Profile) -> tuple[float, float]:
    """(threshold, normalised score) maximising the profile's score; among ties the highest
    threshold (the fewest detections)."""
    norm = comp.normalised(profile)
    i = len(norm) - 1 - int(np.nanargmax(norm[::-1]))
    return float(comp.thresholds[i]), float(norm[i])


def score_corpus(
    scores: Scores,
    corpus: Sequence[Series],
    profile: str | Profile = "standard",
    threshold: float | None = None,
) -> float:
    """Normalised NAB score of per-point scores over `corpus`: at `threshold`, or at the best one."""
    p = PROFILES[profile] if isinstance(profile, str) else profile
    if threshold is not None:
        return float(components(scores, corpus, np.array([threshold])).normalised(p)[0])
    return best(components(scores, corpus, candidate_thresholds(scores, corpus)), p)[1]


@dataclass
class Alarms:
    """What an operator would see at one threshold."""

    false_episodes: int = 0
    weeks: float = 0.0
    windows: int = 0
    detected: int = 0
    delays: list[float] = field(default_factory=list)  # minutes, per detected window

    def add(self, other: Alarms) -> None:
        self.false_episodes += other.false_episodes
        self.weeks += other.weeks
        self.windows += other.windows
        self.detected += other.detected
        self.delays += other.delays

    @property
    def per_week(self) -> float:
        return self.false_episodes / self.weeks if self.weeks else 0.0

    @property
    def recall(self) -> float:
        return self.detected / self.windows if self.windows else math.nan


def alarms(scores: Sequence[float] | np.ndarray, series: Series, threshold: float) -> Alarms:
    lay = layout(series)
    s = np.asarray(scores, dtype=float)
    hits = np.flatnonzero(lay.scored & (s >= threshold))
    false = 0
    if len(hits):
        breaks = np.flatnonzero(np.diff(lay.t[hits]) >= EPISODE_GAP) + 1
        for episode in np.split(hits, breaks):
            false += bool(np.all(lay.window[episode] < 0))
    delays: list[float] = []
    detected = 0
    for j, w in enumerate(lay.windows):
        inside = hits[lay.window[hits] == j]
        if len(inside):
            detected += 1
            delays.append((lay.t[inside[0]] - w.anomaly_start) / 60.0)
    return Alarms(false, lay.weeks, len(lay.windows), detected, delays)


def total_alarms(scores: Scores, corpus: Sequence[Series], threshold: float) -> Alarms:
    out = Alarms()
    for series in corpus:
        out.add(alarms(scores[series.name], series, threshold))
    return out


# Contenders: each maps a series to one score in [0, 1] per point, streaming in time order.

Contender = Callable[[Series], Sequence[float]]


def never(series: Series) -> list[float]:
    return [0.0] * len(series.values)


def uniform_random(series: Series) -> list[float]:
    rng = random.Random(zlib.crc32(series.name.encode()))
    return [rng.random() for _ in series.values]


class WindowedGaussian:
    """NAB's windowedGaussian baseline: the mean and standard deviation of the last `window` values
    (refreshed every `step` values once the window is full); the score is 1 - Q(|z|), Q the normal
    tail probability, so 0.5 at the mean and -> 1 far from it."""

    def __init__(self, window: int = 6400, step: int = 100) -> None:
        self.size, self.step_size = window, step
        self.window: list[float] = []
        self.buffer: list[float] = []
        self.mean, self.std, self._m2 = 0.0, 1.0, 0.0

    def step(self, x: float) -> float:
        score = 1.0 - 0.5 * math.erfc(abs(x - self.mean) / self.std / math.sqrt(2.0)) if self.window else 0.0
        if len(self.window) < self.size:  # filling: Welford's running mean and variance
            self.window.append(x)
            delta = x - self.mean
            self.mean += delta / len(self.window)
            self._m2 += delta * (x - self.mean)
            self.std = math.sqrt(max(self._m2, 0.0) / len(self.window)) or 1e-6
        else:
            self.buffer.append(x)
            if len(self.buffer) == self.step_size:
                self.window = self.window[self.step_size :] + self.buffer
                self.buffer = []
                values = np.asarray(self.window)
                self.mean, self.std = float(values.mean()), float(values.std()) or 1e-6
        return score


def windowed_gaussian(series: Series) -> list[float]:
    det = WindowedGaussian()
    return [det.step(v) for v in series.values]


def half_space_trees(series: Series) -> list[float]:
    """River's HalfSpaceTrees on min-max scaled (value, change from the previous point, time of day)."""
    from river import anomaly, compose, preprocessing

    model = compose.Pipeline(
        preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(n_trees=10, height=8, window_size=250, seed=42)
    )
    out: list[float] = []
    prev = series.values[0]
    for at, v in zip(series.t, series.values, strict=True):
        x = {"value": v, "change": v - prev, "time_of_day": (at % 86400.0) / 86400.0}
        out.append(min(1.0, max(0.0, float(model.score_one(x)))))
        model.learn_one(x)
        prev = v
    return out


def stoic_scores(series: Series, per_event: float | None = None) -> list[float]:
    """Stoic's score for every point of `series`, with its defaults (`per_event`: a count of
    events declared as such)."""
    from stoic.signals import Detector

    det = Detector(interval=series.interval, direction="both", per_event=per_event)
    return [det.step(v, at).score for at, v in zip(series.t, series.values, strict=True)]


def stoic_contender() -> Contender | None:
    try:
        from stoic.signals import Detector  # noqa: F401
    except ImportError as exc:
        print(f"note: stoic contender skipped (stoic.signals.Detector not importable: {exc})")
        return None
    return stoic_scores


def river_contender() -> Contender | None:
    try:
        import river  # noqa: F401
    except ImportError:
        print("note: river HalfSpaceTrees skipped (pip install 'river>=0.21')")
        return None
    return half_space_trees


CONTENDERS: dict[str, tuple[str, Callable[[], Contender | None]]] = {
    "stoic": ("stoic", stoic_contender),
    "never": ("never", lambda: never),
    "random": ("random", lambda: uniform_random),
    "gaussian": ("windowed gaussian", lambda: windowed_gaussian),
    "hst": ("river HalfSpaceTrees", river_contender),
}


def oracle(series: Series) -> np.ndarray:
    """Score 1 at the first scored point of each window, 0 elsewhere: the scorer's ~100."""
    lay = layout(series)
    out = np.zeros(len(lay.t))
    for j in range(len(lay.windows)):
        idx = np.flatnonzero(lay.scored & (lay.window == j))
        if len(idx):
            out[idx[0]] = 1.0
    return out


@dataclass
class Result:
    label: str
    scores: dict[str, np.ndarray]
    seconds: float
    points: int
    thresholds: dict[str, float]
    normalised: dict[str, float]
    alarms: Alarms
    clean: Alarms

    @property
    def us_per_point(self) -> float:
        return self.seconds / self.points * 1e6 if self.points else math.nan


def evaluate(label: str, scores: dict[str, np.ndarray], seconds: float, corpus: Sequence[Series]) -> Result:
    comp = components(scores, corpus, candidate_thresholds(scores, corpus))
    thresholds: dict[str, float] = {}
    normalised: dict[str, float] = {}
    for name, profile in PROFILES.items():
        thresholds[name], normalised[name] = best(comp, profile)
    thr = thresholds["standard"]
    clean = [s for s in corpus if s.family in CLEAN_FAMILIES]
    points = sum(len(s.t) for s in corpus)
    return Result(
        label,
        scores,
        seconds,
        points,
        thresholds,
        normalised,
        total_alarms(scores, corpus, thr),
        total_alarms(scores, clean, thr),
    )


def run_contenders(
    chosen: dict[str, tuple[str, Contender]], corpus: dict[str, list[Series]]
) -> dict[str, tuple[dict[str, np.ndarray], float]]:
    """Per contender: (series name -> scores, seconds spent scoring). Progress goes to stderr: one
    line per family, rewritten in place on a terminal."""
    out: dict[str, tuple[dict[str, np.ndarray], float]] = {key: ({}, 0.0) for key in chosen}
    tty = sys.stderr.isatty()
    began = time.perf_counter()
    for f, (family, members) in enumerate(corpus.items(), 1):
        for i, series in enumerate(members, 1):
            for key, (label, fn) in chosen.items():
                start = time.perf_counter()
                values = np.asarray(fn(series), dtype=float)
                elapsed = time.perf_counter() - start
                if len(values) != len(series.t) or not np.all((values >= 0.0) & (values <= 1.0)):
                    raise ValueError(f"{label}: scores for {series.name} must be one in [0, 1] per point")
                scores, seconds = out[key]
                scores[series.name] = values
                out[key] = (scores, seconds + elapsed)
            if tty or i == len(members):
                line = (
                    f"  [{f}/{len(corpus)}] {family:<15} {i}/{len(members)} series scored "
                    f"({time.perf_counter() - began:.0f} s)"
                )
                print(("\r" if tty else "") + line, end="" if tty else "\n", file=sys.stderr, flush=True)
    if tty:
        print(file=sys.stderr)
    return out


def _fmt(x: float, spec: str = "7.1f") -> str:
    return "-" if math.isnan(x) else format(x, spec)


def _threshold(x: float) -> str:
    if math.isinf(x):
        return "off"
    return f"1-{1 - x:.1e}" if 0.9999 < x < 1 else f"{x:.6g}"


def print_breakdown(result: Result, corpus: dict[str, list[Series]]) -> None:
    thr = result.thresholds["standard"]
    print(f"\nper family, {result.label} at the standard threshold ({_threshold(thr)}):")
    if math.isinf(thr):
        print("  (no threshold beats never alerting: every window is missed and no alarm is raised)")
    print_families(result.scores, corpus, thr)


def print_families(scores: Scores, corpus: Mapping[str, Sequence[Series]], thr: float) -> None:
    head = (
        f"  {'family':<15} {'series':>6} {'standard':>8} {'false alarms/wk':>15} {'windows found':>13}"
        "  missed"
    )
    print(head)
    print("  " + "-" * (len(head) - 2))
    for family, members in corpus.items():
        comp = components(scores, members, np.array([thr]))
        norm = float(comp.normalised(PROFILES["standard"])[0])
        a = total_alarms(scores, members, thr)
        missed_kinds: list[str] = []
        for series in members:
            lay = layout(series)
            s = scores[series.name]
            for j, w in enumerate(lay.windows):
                if not np.any(lay.scored & (lay.window == j) & (s >= thr)):
                    kind = series.kinds[[a0 for a0, _ in series.anomalies].index(w.anomaly_start)]
                    missed_kinds.append(kind)
        missed = ", ".join(f"{k} x{missed_kinds.count(k)}" for k in sorted(set(missed_kinds)))
        print(
            f"  {family:<15} {len(members):>6} {_fmt(norm, '8.1f')} {a.per_week:>15.2f} "
            f"{f'{a.detected}/{a.windows}':>13}  {missed}"
        )


def print_declared_counts(thr: float, corpus: Mapping[str, Sequence[Series]]) -> None:
    """The families whose values count events, scored again with that declared (`per_event=1`):
    what a team that says "this is a count of orders" gets. Not part of the targets, which hold
    one set of defaults for every metric."""
    counted = {f: members for f, members in corpus.items() if f in EVENT_FAMILIES}
    if not counted:
        return
    declared = [series for members in counted.values() for series in members]
    scores = {series.name: np.array(stoic_scores(series, per_event=1.0)) for series in declared}
    print(f"\ncounts of events declared as such (per_event=1), stoic at its threshold ({_threshold(thr)}):")
    print_families(scores, counted, thr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", help=f"comma-separated families (of {', '.join(FAMILY_NAMES)})")
    parser.add_argument("--quick", action="store_true", help="one series per family")
    parser.add_argument("--only", help=f"comma-separated contenders (of {', '.join(CONTENDERS)})")
    args = parser.parse_args()

    try:
        corpus = families(quick=args.quick, only=args.family.split(",") if args.family else None)
    except ValueError as exc:
        parser.error(str(exc))
    flat = [s for members in corpus.values() for s in members]
    keys = args.only.split(",") if args.only else list(CONTENDERS)
    unknown = [k for k in keys if k not in CONTENDERS]
    if unknown:
        parser.error(f"unknown contenders {unknown}; known: {', '.join(CONTENDERS)}")
    chosen: dict[str, tuple[str, Contender]] = {}
    for key in keys:
        label, make = CONTENDERS[key]
        fn = make()
        if fn is not None:
            chosen[key] = (label, fn)

    n_windows = sum(len(windows(s)) for s in flat)
    points = sum(len(s.t) for s in flat)
    weeks = sum(layout(s).weeks for s in flat)
    print(
        f"{len(flat)} series in {len(corpus)} families, {points} points, {n_windows} anomaly windows, "
        f"{weeks:.1f} scored series-weeks (probation {PROBATION:.0%} of each series)"
    )
    check = {s.name: oracle(s) for s in flat}
    zeros = {s.name: np.zeros(len(s.t)) for s in flat}
    print(
        "scorer check (standard): oracle at every window start "
        f"{score_corpus(check, flat, threshold=1.0):.1f}, never detecting {score_corpus(zeros, flat):.1f}"
    )

    raw = run_contenders(chosen, corpus)
    results = {key: evaluate(chosen[key][0], scores, secs, flat) for key, (scores, secs) in raw.items()}

    head = (
        f"{'contender':<22} {'standard':>8} {'low-FP':>7} {'low-FN':>7} {'threshold':>10} "
        f"{'FA/wk all':>9} {'FA/wk clean':>11} {'recall':>6} {'delay p50':>9} {'us/point':>8}"
    )
    print()
    print(head)
    print("-" * len(head))
    for r in results.values():
        thr = r.thresholds["standard"]
        delays = r.alarms.delays
        delay = f"{statistics.median(delays):.0f} min" if delays else "-"
        print(
            f"{r.label:<22} {r.normalised['standard']:>8.1f} {r.normalised['reward_low_FP']:>7.1f} "
            f"{r.normalised['reward_low_FN']:>7.1f} {_threshold(thr):>10} "
            f"{r.alarms.per_week:>9.2f} {r.clean.per_week:>11.2f} {_fmt(r.alarms.recall, '6.2f')} "
            f"{delay:>9} {r.us_per_point:>8.1f}"
        )

    ours, gauss = results.get("stoic"), results.get("gaussian")
    ratio = math.nan
    if ours and gauss:
        g = gauss.normalised["standard"]
        ratio = ours.normalised["standard"] / g if g > 0 else math.nan
        print(
            f"\nstoic / windowed gaussian (standard): {_fmt(ratio, '.2f')}x"
            + ("" if g > 0 else " (gaussian <= 0)")
        )
    if ours:
        print_breakdown(ours, corpus)
        print_declared_counts(ours.thresholds["standard"], corpus)
    elif gauss:
        print_breakdown(gauss, corpus)

    print()

    def verdict(run: bool, ok: bool) -> str:
        return ("met" if ok else "missed") if run else "not run"

    std = ours.normalised["standard"] if ours else math.nan
    fa = ours.clean.per_week if ours else math.nan
    us = ours.us_per_point if ours else math.nan
    run = ours is not None
    print(
        f"target: standard >= {TARGET_SCORE:g} (stoic {_fmt(std, '.1f')}) ... "
        f"{verdict(run, std >= TARGET_SCORE)}"
    )
    print(
        f"target: >= {TARGET_RATIO:g}x windowed gaussian ({_fmt(ratio, '.2f')}x) ... "
        f"{verdict(run and gauss is not None, ratio >= TARGET_RATIO)}"
    )
    print(
        f"target: <= {TARGET_FALSE_ALARMS:g} false alarm per series-week on clean families "
        f"({_fmt(fa, '.2f')}) ... {verdict(run, fa <= TARGET_FALSE_ALARMS)}"
    )
    engine = ""
    if run:  # the engine the install runs: compiled, or Python
        from stoic.signals.detector import ENGINE

        engine = f", {ENGINE} engine"
    us_line = f"target: < {TARGET_US:g} us per point ({_fmt(us, '.1f')}{engine})"
    print(f"{us_line} ... {verdict(run, us < TARGET_US)}")


if __name__ == "__main__":
    main()
