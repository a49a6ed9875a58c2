"""Churn risk: accounts whose recent plays failed or rebuffered again and again.

Each bad experience adds to a per-account score that halves every `half_life` seconds, so a
bad evening last month weighs little and three failed starts tonight weigh a lot.
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from stoic.signals import _validate

# How much one bad experience hurts; a failed start is worse than a stall mid-stream.
WEIGHTS = {"failed start": 1.0, "rebuffering": 0.5}


@dataclass(slots=True)
class _Account:
    at: float  # time the reasons were last decayed to
    last_seen: float
    reasons: dict[str, float] = field(default_factory=dict)

    def decay(self, now: float, half_life: float) -> None:
        if now > self.at:
            factor = math.pow(0.5, (now - self.at) / half_life)
            for k in self.reasons:
                self.reasons[k] *= factor
            self.at = now

    @property
    def score(self) -> float:
        return sum(self.reasons.values())


@dataclass(frozen=True, slots=True)
class AccountRisk:
    """One account's churn-risk score now, with what contributed to it."""

    account: str
    score: float
    reasons: dict[str, float]
    last_seen: float

    def to_dict(self) -> dict[str, object]:
        return {
            "account": self.account,
            "score": round(self.score, 3),
            "reasons": {k: round(v, 3) for k, v in self.reasons.items()},
            "last_seen": self.last_seen,
        }


class ChurnRisk:
    """Decayed per-account scores, bounded to `max_accounts` (the least at risk are forgotten)."""

    def __init__(
        self,
        *,
        half_life: float = 3 * 86400.0,
        max_accounts: int = 100_000,
        rebuffer_threshold: float = 0.05,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.half_life = _validate.number("half_life", half_life, low=0.0, low_open=True)
        self.max_accounts = _validate.integer("max_accounts", max_accounts, low=1)
        self.rebuffer_threshold = _validate.number(
            "rebuffer_threshold", rebuffer_threshold, low=0.0, high=1.0
        )
        self.clock = clock
        self._lock = threading.Lock()
        self._accounts: dict[str, _Account] = {}

    def observe(
        self, account: str, reason: str, *, at: float | None = None, weight: float | None = None
    ) -> None:
        """Count one bad experience (`reason` is "failed start" or "rebuffering") for `account`."""
        now = self.clock() if at is None else at
        add = WEIGHTS.get(reason, 1.0) if weight is None else weight
        with self._lock:
            acc = self._accounts.get(account)
            if acc is None:
                if len(self._accounts) >= self.max_accounts:
                    self._evict(now)
                acc = self._accounts[account] = _Account(now, now)
            acc.decay(now, self.half_life)
            acc.reasons[reason] = acc.reasons.get(reason, 0.0) + add
            acc.last_seen = max(acc.last_seen, now)

    def observe_start(self, account: str, ok: bool, *, at: float | None = None) -> None:
        if not ok:
            self.observe(account, "failed start", at=at)

    def observe_playback(
        self, account: str, watched_s: float, rebuffer_s: float, *, at: float | None = None
    ) -> None:
        total = watched_s + rebuffer_s
        if total > 0 and rebuffer_s / total >= self.rebuffer_threshold:
            self.observe(account, "rebuffering", at=at)

    def top(self, n: int = 10, *, at: float | None = None, min_score: float = 0.0) -> list[AccountRisk]:
        """The `n` accounts most at risk now, highest score first."""
        now = self.clock() if at is None else at
        with self._lock:
            for acc in self._accounts.values():
                acc.decay(now, self.half_life)
            best = heapq.nlargest(n, self._accounts.items(), key=lambda kv: kv[1].score)
            return [
                AccountRisk(
                    name, acc.score, dict(sorted(acc.reasons.items(), key=lambda kv: -kv[1])), acc.last_seen
                )
                for name, acc in best
                if acc.score > min_score
            ]

    def __len__(self) -> int:
        return len(self._accounts)

    def _evict(self, now: float) -> None:
        # drop the lowest tenth in one go so eviction is amortised
        for acc in self._accounts.values():
            acc.decay(now, self.half_life)
        keep = max(1, self.max_accounts - max(1, self.max_accounts // 10))
        ranked = sorted(self._accounts.items(), key=lambda kv: kv[1].score, reverse=True)[:keep]
        self._accounts = dict(ranked)
