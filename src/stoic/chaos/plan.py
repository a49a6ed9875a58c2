"""`plan`: one FIT experiment per guarded dependency, most worth running first.

Reads dependency snapshots (a `stoic.guard` registry's, or the ``/guard`` endpoints of running
services) and ranks them: dependencies with a fallback first (an experiment there verifies the
fallback holds, at little risk), then by traffic (what most requests depend on matters most). A
dependency without a fallback is still listed, last, with the failure its callers should expect.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .audit import AuditEntry

_SAFE = re.compile(r"[^A-Za-z0-9_.:-]+")


@dataclass(frozen=True)
class PlannedExperiment:
    """One suggested experiment: fail `dependency` for a small share of requests."""

    rank: int
    dependency: str
    owner: str
    requests: int  # in the snapshots' rolling windows, summed over every source
    has_fallback: bool
    fallbacks: tuple[str, ...]
    verified: AuditEntry | None  # the newest passed experiment on it, if any

    @property
    def name(self) -> str:
        """The experiment's name (a valid FIT scenario name)."""
        return ("fail-" + _SAFE.sub("-", self.dependency))[:64].rstrip("-")

    @property
    def status(self) -> str:
        if self.verified is not None:
            return f"fallback verified by {self.verified.target} ({self.verified.when:%Y-%m-%d %H:%M})"
        if self.has_fallback:
            return "fallback not verified yet"
        return "no fallback: its callers fail with it (expect this experiment to abort)"

    @property
    def hypotheses(self) -> tuple[str, ...]:
        return ("error_rate:0.01", "p99_latency:0.5")

    def command(self, url: str = "URL") -> str:
        """The ``stoic chaos experiment run`` line that runs it."""
        hyp = " ".join(f"--hypothesis {h}" for h in self.hypotheses)
        return (
            f"stoic chaos experiment run --name {self.name} --dependency {self.dependency} "
            f"--kind error --share 0.01 --duration 300 {hyp} --url {url}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "name": self.name,
            "dependency": self.dependency,
            "owner": self.owner,
            "requests": self.requests,
            "has_fallback": self.has_fallback,
            "fallbacks": list(self.fallbacks),
            "status": self.status,
            "hypotheses": list(self.hypotheses),
            "command": self.command(),
        }


def _requests(snapshot: Mapping[str, Any]) -> int:
    value = snapshot.get("requests", 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0
    return max(int(value), 0)


def plan(
    snapshots: Iterable[Mapping[str, Any]], verified: Mapping[str, AuditEntry] | None = None
) -> list[PlannedExperiment]:
    """One experiment per dependency named in `snapshots` (several services may report the same one:
    their traffic adds up), ranked: with a fallback first, then by traffic, then by name.

    `verified`: dependency -> passed experiment (`stoic.chaos.experiment.verified_fallbacks`).
    """
    merged: dict[str, dict[str, Any]] = {}
    for snap in snapshots:
        name = snap.get("name")
        if not isinstance(name, str) or not name:
            continue
        m = merged.setdefault(name, {"requests": 0, "has_fallback": False, "owner": "", "fallbacks": {}})
        m["requests"] += _requests(snap)
        m["has_fallback"] = m["has_fallback"] or bool(snap.get("has_fallback"))
        m["owner"] = m["owner"] or str(snap.get("owner") or "")
        levels = snap.get("fallbacks")
        if isinstance(levels, Mapping):
            m["fallbacks"].update(dict.fromkeys(str(k) for k in levels))
    order = sorted(merged, key=lambda n: (not merged[n]["has_fallback"], -merged[n]["requests"], n))
    known = verified or {}
    return [
        PlannedExperiment(
            i + 1,
            name,
            merged[name]["owner"] or "unowned",
            merged[name]["requests"],
            merged[name]["has_fallback"],
            tuple(merged[name]["fallbacks"]),
            known.get(name) if merged[name]["has_fallback"] else None,
        )
        for i, name in enumerate(order)
    ]


__all__ = ["PlannedExperiment", "plan"]
