"""SLO burn-rate alerts, multi-window and multi-burn-rate (Google SRE workbook, chapter 5).

Burn rate = observed error ratio / error budget (1 - SLO). A rule fires when BOTH its long and
its short window burn faster than its factor: the long window proves the budget is really
going, the short one that it is still going now (so the alert resets quickly after a fix).
`time_scale` compresses every window (60 = an hour lasts a minute) for tests and demos.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from stoic.signals import _validate


@dataclass(frozen=True, slots=True)
class BurnRateRule:
    """Fire when the long and short windows (seconds) both burn faster than `factor`."""

    long: float
    short: float
    factor: float
    severity: str = "page"

    def __post_init__(self) -> None:
        _validate.number("long", self.long, low=0.0, low_open=True)
        _validate.number("short", self.short, low=0.0, low_open=True, high=self.long)
        _validate.number("factor", self.factor, low=0.0, low_open=True)
        _validate.choice("severity", self.severity, ("page", "ticket"))


# The workbook's recommendation for a 30-day budget: 2 % of it in 1 h, 5 % in 6 h page;
# 10 % in 3 days opens a ticket.
DEFAULT_RULES = (
    BurnRateRule(3600.0, 300.0, 14.4, "page"),
    BurnRateRule(21600.0, 1800.0, 6.0, "page"),
    BurnRateRule(259200.0, 21600.0, 1.0, "ticket"),
)


@dataclass(frozen=True, slots=True)
class BurnWindow:
    """The state of one rule at one moment (windows already scaled)."""

    rule: BurnRateRule
    long: float
    short: float
    long_burn: float
    short_burn: float
    covered: bool = True  # the long window has enough history (9/10 of it) to judge

    @property
    def firing(self) -> bool:
        """Both windows burn at least `factor`, and the long one is covered by history: a rule
        stays quiet until it has seen most of its long window (a 3-day rule on its first day
        would judge the budget from a few hours)."""
        return self.covered and self.long_burn >= self.rule.factor and self.short_burn >= self.rule.factor

    def to_dict(self) -> dict[str, object]:
        return {
            "long": self.long,
            "short": self.short,
            "factor": self.rule.factor,
            "long_burn": round(self.long_burn, 3),
            "short_burn": round(self.short_burn, 3),
            "firing": self.firing,
            "covered": self.covered,
            "severity": self.rule.severity,
        }


class BurnRate:
    """Counts good and bad events in small time buckets and evaluates the burn-rate rules."""

    def __init__(
        self,
        slo: float = 0.999,
        rules: tuple[BurnRateRule, ...] = DEFAULT_RULES,
        *,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.slo = _validate.number("slo", slo, low=0.0, high=1.0, low_open=True)
        if self.slo >= 1.0:
            raise ValueError(f"slo: must be below 1 (an SLO of 100 % has no error budget), got {slo!r}")
        if not rules:
            raise ValueError("rules: at least one burn-rate rule is needed")
        self.rules = tuple(rules)
        self.time_scale = _validate.number("time_scale", time_scale, low=0.0, low_open=True)
        self.clock = clock
        shortest = min(r.short for r in self.rules) / self.time_scale
        self.resolution = shortest / 10.0  # a window is counted to within a tenth of the short one
        self.horizon = max(r.long for r in self.rules) / self.time_scale
        self._lock = threading.Lock()
        self._counts: dict[int, list[int]] = {}  # bucket index -> [good, bad]
        self._newest = 0
        self.first: float | None = None  # the earliest event counted: how much history there is

    @property
    def budget(self) -> float:
        return 1.0 - self.slo

    def observe(self, ok: bool, *, at: float | None = None, count: int = 1) -> None:
        """Count `count` events (e.g. stream start attempts), good when `ok`."""
        at = self.clock() if at is None else at
        idx = int(at // self.resolution)
        with self._lock:
            if idx < self._newest - self.horizon / self.resolution:
                return
            if self.first is None or at < self.first:
                self.first = at
            cell = self._counts.setdefault(idx, [0, 0])
            cell[0 if ok else 1] += count
            if idx > self._newest:
                self._newest = idx
                floor = idx - int(self.horizon / self.resolution) - 1
                if len(self._counts) > 2 * (self.horizon / self.resolution) + 16:
                    for old in [i for i in self._counts if i < floor]:
                        del self._counts[old]

    def burn(self, window: float, *, at: float | None = None) -> float:
        """Burn rate over the last `window` seconds (already scaled) ending at `at`."""
        end = int((self.clock() if at is None else at) // self.resolution)
        start = end - max(1, round(window / self.resolution)) + 1
        good = bad = 0
        with self._lock:
            for idx, (g, b) in self._counts.items():
                if start <= idx <= end:
                    good += g
                    bad += b
        total = good + bad
        return (bad / total) / self.budget if total else 0.0

    def status(self, *, at: float | None = None) -> list[BurnWindow]:
        """Every rule's long and short burn at `at` (default now)."""
        now = self.clock() if at is None else at
        out = []
        for rule in self.rules:
            long_w, short_w = rule.long / self.time_scale, rule.short / self.time_scale
            covered = self.first is not None and now - self.first >= 0.9 * long_w
            out.append(
                BurnWindow(
                    rule, long_w, short_w, self.burn(long_w, at=now), self.burn(short_w, at=now), covered
                )
            )
        return out
