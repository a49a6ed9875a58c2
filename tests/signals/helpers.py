"""Traffic generators shared by the signals tests (compressed days: 1 s buckets, 60 s days)."""

from __future__ import annotations

import math
import random

from stoic.signals import Signals

from .conftest import Clock

DAY_S = 60.0


def level(t: float, peak: float = 200.0) -> float:
    """Stream starts per second over a compressed 60 s day."""
    return peak * (0.55 + 0.45 * math.sin(2 * math.pi * (t % DAY_S) / DAY_S))


def feed(
    signals: Signals,
    clock: Clock,
    seconds: int,
    region: str = "eu-west",
    *,
    factor: float = 1.0,
    error_ratio: float = 0.001,
    seed: int = 1,
    peak: float = 200.0,
    evaluate_every: int = 20,
) -> None:
    """`seconds` one-second buckets of starts (with Poisson-like noise) and playback; evaluates
    every `evaluate_every` seconds like a dashboard polling the view."""
    rng = random.Random(seed + int(clock.now))
    for _ in range(seconds):
        expected = level(clock.now, peak) * factor
        starts = max(0, round(rng.gauss(expected, math.sqrt(max(expected, 1.0)))))
        failed = round(starts * error_ratio)
        if starts - failed:
            signals.observe_start(region, ok=True, count=starts - failed)
        if failed:
            signals.observe_start(region, ok=False, count=failed)
        signals.observe_playback(region, watched_s=starts * 30.0, rebuffer_s=starts * 30.0 * 0.004)
        clock.now += 1.0
        if int(clock.now) % evaluate_every == 0:
            signals.evaluate()
