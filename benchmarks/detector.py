"""Score drop detectors on labelled stream-start series, side by side in one run.

Series: several days of minutely stream starts per second (Poisson counts around a daily
pattern) for a busy and a quiet region, with known anomalies injected: sharp drops, slow
declines and night-time outages. Day one is for learning; alerts are scored from day two.

An alert (an episode start) is a true positive when it starts inside a labelled anomaly (or
within GRACE buckets after its end). Precision = true alerts / alerts, recall = anomalies found /
anomalies, delay = minutes from anomaly start to its first alert.

    .venv/bin/python benchmarks/detector.py
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from stoic.signals.detector import DropDetector
from stoic.signals.simulate import SHAPES, Anomaly, LabelledSeries, generate, random_anomalies

DAYS = 8
INTERVAL = 60.0
PER_DAY = int(86400 / INTERVAL)
GRACE = 10
CONFIRM = 2
REGIONS = {"busy": 60.0, "quiet": 6.0}  # peak stream starts per second
SEEDS = (1, 2, 3)

Flagger = Callable[[LabelledSeries], list[bool]]  # per bucket: "suspect"


def stoic_detector(series: LabelledSeries) -> list[bool]:
    det = DropDetector(season=PER_DAY, min_change=0.1, confirm=1)
    return [det.step(v).anomalous for v in series.values]


def static_threshold(series: LabelledSeries) -> list[bool]:
    # What a hand-set alarm looks like: "page when SPS falls below 80 % of a normal night".
    learn = sorted(series.values[:PER_DAY])
    threshold = 0.8 * learn[len(learn) // 20]
    return [v < threshold for v in series.values]


def z_score(series: LabelledSeries, window: int = 60, z: float = 3.0) -> list[bool]:
    recent: deque[float] = deque(maxlen=window)
    out: list[bool] = []
    for v in series.values:
        flag = False
        if len(recent) == window:
            mean = statistics.fmean(recent)
            sd = statistics.pstdev(recent) or 1e-9
            flag = (v - mean) / sd < -z
        out.append(flag)
        if not flag:
            recent.append(v)
    return out


def episodes(flags: list[bool], confirm: int) -> list[int]:
    """Start indices of alert episodes: `confirm` suspect buckets in a row open one, as many
    normal ones close it (the same rule for every detector)."""
    starts: list[int] = []
    active, run_bad, run_ok = False, 0, 0
    for i, f in enumerate(flags):
        run_bad, run_ok = (run_bad + 1, 0) if f else (0, run_ok + 1)
        if not active and run_bad >= confirm:
            active = True
            starts.append(i)
        elif active and run_ok >= confirm:
            active = False
    return starts


@dataclass
class Score:
    alerts: int = 0
    true_alerts: int = 0
    anomalies: int = 0
    found: int = 0
    delays: list[float] = field(default_factory=list)
    by_shape: dict[str, list[int]] = field(default_factory=lambda: {s: [0, 0] for s in SHAPES})
    seconds: float = 0.0

    def add(self, starts: Iterable[int], anomalies: list[Anomaly]) -> None:
        starts = [s for s in starts if s >= PER_DAY]
        self.alerts += len(starts)
        self.true_alerts += sum(any(a.start <= s < a.end + GRACE for a in anomalies) for s in starts)
        for a in anomalies:
            hits = [s for s in starts if a.start <= s < a.end + GRACE]
            self.anomalies += 1
            self.by_shape[a.shape][1] += 1
            if hits:
                self.found += 1
                self.by_shape[a.shape][0] += 1
                self.delays.append((hits[0] - a.start) * INTERVAL / 60.0)

    @property
    def precision(self) -> float:
        return self.true_alerts / self.alerts if self.alerts else 0.0

    @property
    def recall(self) -> float:
        return self.found / self.anomalies if self.anomalies else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def main() -> None:
    contenders: dict[str, Flagger] = {
        "stoic Holt-Winters": stoic_detector,
        "static threshold": static_threshold,
        "z-score (60 min)": z_score,
    }
    scores = {name: Score() for name in contenders}
    cases = [(region, peak, seed) for region, peak in REGIONS.items() for seed in SEEDS]
    print(
        f"{len(cases)} series x {DAYS} days of minutely stream starts, "
        f"regions {', '.join(f'{r} (peak {p:g}/s)' for r, p in REGIONS.items())}"
    )
    for n, (_region, peak, seed) in enumerate(cases, 1):
        anomalies = random_anomalies(DAYS, interval=INTERVAL, seed=seed * 31, per_day=3)
        series = generate(DAYS, interval=INTERVAL, peak=peak, seed=seed, anomalies=anomalies)
        for name, flagger in contenders.items():
            t0 = time.perf_counter()
            flags = flagger(series)
            scores[name].seconds += time.perf_counter() - t0
            scores[name].add(episodes(flags, CONFIRM), anomalies)
        print(f"\r  scored {n}/{len(cases)} series", end="", flush=True)
    print()
    head = (
        f"{'detector':<20} {'alerts':>6} {'precision':>9} {'recall':>7} {'F1':>5} "
        f"{'delay p50':>9} {'delay max':>9}  " + " ".join(f"{s:>13}" for s in SHAPES) + "  µs/point"
    )
    print(head)
    print("-" * len(head))
    points = len(cases) * DAYS * PER_DAY
    for name, s in scores.items():
        p50 = f"{statistics.median(s.delays):.0f} min" if s.delays else "-"
        worst = f"{max(s.delays):.0f} min" if s.delays else "-"
        shapes = " ".join(f"{f'{hit}/{tot}':>13}" for hit, tot in s.by_shape.values())
        print(
            f"{name:<20} {s.alerts:>6} {s.precision:>9.2f} {s.recall:>7.2f} {s.f1:>5.2f} "
            f"{p50:>9} {worst:>9}  {shapes}  {s.seconds / points * 1e6:8.1f}"
        )
    ours = scores["stoic Holt-Winters"]
    for name, s in scores.items():
        if s is not ours:
            ratio = ours.f1 / s.f1 if s.f1 else float("inf")
            print(f"F1 ratio stoic / {name}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
