"""Synthetic but realistic indicator series with labelled anomalies (for tests, benchmarks, demos)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

DAY = 86400.0
SHAPES = ("sharp_drop", "slow_decline", "night_outage")


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A labelled anomaly: buckets [start, end) in series index units."""

    shape: str
    start: int
    end: int
    depth: float


@dataclass(slots=True)
class LabelledSeries:
    """Stream starts per second in fixed buckets, with the anomalies injected into them."""

    interval: float
    start: float
    values: list[float]
    expected: list[float]
    anomalies: list[Anomaly] = field(default_factory=list)

    def time(self, index: int) -> float:
        return self.start + index * self.interval


def daily_sps(hour: float, peak: float) -> float:
    """Stream starts per second over a day: a quiet trough near 04:00, a peak in the evening."""
    phase = (hour - 4.0) / 24.0 * 2 * math.pi
    shape = 0.5 - 0.5 * math.cos(phase)  # 0 at 04:00, 1 at 16:00
    gap = min(abs(hour - 20.5), 24.0 - abs(hour - 20.5))  # circular: 23:59 is next to 00:00
    evening = math.exp(-(gap**2) / 6.0)  # prime time bump
    return peak * (0.04 + 0.7 * math.pow(shape, 1.6) + 0.3 * evening)


def generate(
    days: int = 7,
    *,
    interval: float = 60.0,
    peak: float = 60.0,
    seed: int = 7,
    anomalies: list[Anomaly] | None = None,
    start: float = 1_764_028_800.0,
    utc_offset_h: float = 0.0,
    jitter: float = 0.02,
) -> LabelledSeries:
    """A series of `days` days; starts counts are Poisson around the daily pattern, plus a few
    percent of day-to-day jitter. `start` defaults to a Tuesday 00:00 UTC."""
    rng = random.Random(seed)
    n = int(days * DAY / interval)
    expected: list[float] = []
    values: list[float] = []
    day_factor = 1.0
    for i in range(n):
        t = start + i * interval
        if i % int(DAY / interval) == 0:
            day_factor = 1.0 + rng.gauss(0.0, jitter)
        hour = ((t / 3600.0) + utc_offset_h) % 24
        base = daily_sps(hour, peak) * day_factor * (1.0 + rng.gauss(0.0, jitter / 2))
        expected.append(base)
        values.append(base)
    labels = list(anomalies or [])
    for a in labels:
        for i in range(a.start, min(a.end, n)):
            if a.shape == "slow_decline":
                ramp = (i - a.start + 1) / max(1, a.end - a.start)
                values[i] *= 1.0 - a.depth * ramp
            else:
                values[i] *= 1.0 - a.depth
    counted = [_poisson(rng, v * interval) / interval for v in values]
    return LabelledSeries(interval, start, counted, expected, labels)


def random_anomalies(
    days: int, *, interval: float = 60.0, seed: int = 11, per_day: int = 2, skip_days: int = 1
) -> list[Anomaly]:
    """A few anomalies per day after `skip_days` learning days, shapes taken in turn."""
    rng = random.Random(seed)
    per = int(DAY / interval)
    out: list[Anomaly] = []
    k = 0
    for day in range(skip_days, days):
        for j in range(per_day):
            shape = SHAPES[k % len(SHAPES)]
            k += 1
            if shape == "night_outage":
                hour = rng.uniform(1.0, 5.0)
                minutes, depth = rng.uniform(15, 40), rng.uniform(0.85, 1.0)
            elif shape == "slow_decline":
                hour = rng.uniform(9.0, 20.0)
                minutes, depth = rng.uniform(60, 150), rng.uniform(0.45, 0.7)
            else:
                hour = rng.uniform(8.0, 23.0) if j % 2 else rng.uniform(12.0, 22.0)
                minutes, depth = rng.uniform(10, 40), rng.uniform(0.25, 0.6)
            first = day * per + int(hour * 3600 / interval)
            out.append(Anomaly(shape, first, first + max(2, int(minutes * 60 / interval)), depth))
    return out


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 50:  # normal approximation, exact enough for counts this large
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:  # Knuth; bounded in practice by lam <= 50
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def simulate_week(
    db: str,
    *,
    days: int = 7,
    interval: float = 60.0,
    seed: int = 7,
    end: float | None = None,
    progress: bool = False,
) -> dict[str, int]:
    """Fill the history at `db` with `days` of two regions' indicators, anomalies caused by chaos
    experiments and a breaker, fallback use and churn risk, by running them through `Signals`."""
    from stoic.signals.hub import Signals  # here: simulate is also used below the hub
    from stoic.signals.ownership import Ownership

    rng = random.Random(seed)
    per_day = int(DAY / interval)
    end = end if end is not None else (math.floor(__import__("time").time() / DAY) * DAY)
    start = end - days * DAY
    regions = {"us-east": (90.0, -5.0), "eu-west": (45.0, 1.0)}
    plans = {
        r: random_anomalies(days, interval=interval, seed=seed + i, per_day=1) for i, r in enumerate(regions)
    }
    series = {
        r: generate(
            days,
            interval=interval,
            peak=peak,
            seed=seed + 10 + i,
            anomalies=plans[r],
            start=start,
            utc_offset_h=off,
        )
        for i, (r, (peak, off)) in enumerate(regions.items())
    }
    now = [start]
    owners = Ownership.from_dict(
        {
            "teams": {
                "playback": {"receivers": []},
                "edge-us": {"receivers": []},
                "edge-eu": {"receivers": []},
                "sre": {"receivers": []},
            },
            "dependencies": {"playback-api": "playback"},
            "regions": {"us-east": "edge-us", "eu-west": "edge-eu"},
            "default": "sre",
        }
    )
    signals = Signals(
        interval=interval, db=db, ownership=owners, clock=lambda: now[0], retention=days * per_day + 10
    )
    causes: dict[tuple[str, int], tuple[str, str, str]] = {}
    for region, plan in plans.items():
        for j, a in enumerate(plan):
            zone = f"{region}-1{'abc'[j % 3]}"
            causes[(region, a.start - 2)] = [
                ("zone_outage", zone, f"Chaos Gorilla took down zone {zone}"),
                ("breaker", "playback-api", "The circuit breaker for playback-api opened"),
                ("chaos", f"{region}/edge", f"Latency Monkey added 800 ms to {region} edge"),
            ][j % 3]
    for region in regions:  # experiments the platform absorbed without a visible dip
        for day in range(1, days):
            at = start + day * DAY + rng.uniform(10, 16) * 3600
            i = int((at - start) / interval)
            causes.setdefault(
                (region, i),
                (
                    "chaos",
                    f"{region}/recommendations",
                    f"Chaos Monkey terminated an instance of {region} recommendations",
                ),
            )
    accounts = [f"acct-{i:04d}" for i in range(400)]
    unlucky = accounts[:12]
    for i in range(days * per_day):
        t = start + i * interval
        now[0] = t
        for region, s in series.items():
            if (region, i) in causes:
                kind, target, text = causes[(region, i)]
                signals.add_event(
                    kind, target=target, description=text, region=None if kind == "breaker" else region, at=t
                )
            bad = any(a.start <= i < a.end for a in plans[region])
            starts = max(0, round(s.values[i] * interval))
            failed = (rng.random() < starts / 3000) + (starts // 8 if bad else 0)
            if starts:
                signals.observe_start(region, ok=True, at=t + 1, count=starts)
            if failed:
                signals.observe_start(region, ok=False, at=t + 1, count=failed)
                for _ in range(min(failed, 5)):
                    who = rng.choice(unlucky) if bad or rng.random() < 0.3 else rng.choice(accounts)
                    signals.churn.observe_start(who, False, at=t + 1)
            watched = starts * 600.0
            ratio = 0.004 + rng.uniform(0, 0.002) + (0.03 if bad else 0.0)
            if watched:
                signals.observe_playback(region, watched_s=watched, rebuffer_s=watched * ratio, at=t + 1)
            if bad:
                signals.count_fallback("personalisation", "snapshot", rng.randint(50, 200))
                signals.count_fallback("playback-api", "cached-manifest", rng.randint(10, 60))
            elif rng.random() < 0.05:
                signals.count_fallback("personalisation", "popular", rng.randint(1, 20))
        if i % 30 == 29:
            now[0] = t + interval
            signals.evaluate()
        if progress and i % per_day == per_day - 1:
            print(f"\r  simulated day {(i + 1) // per_day}/{days}", end="", flush=True)
    if progress:
        print()
    now[0] = end
    signals.close()
    return {"days": days, "regions": len(regions), "anomalies": sum(len(p) for p in plans.values())}
