"""Things that happened around an anomaly (chaos, breakers, zone outages, deploys), used to explain it."""

from __future__ import annotations

from dataclasses import dataclass

from stoic.signals import _validate

EVENT_KINDS = ("chaos", "experiment", "zone_outage", "breaker", "deploy", "note", "fit")
# How strongly each kind explains a drop when several are in the window (lower = better).
# "experiment" is a chaos experiment's verdict; its start is reported as "chaos".
# "fit": a FIT scenario added or removed (failure injected on a dependency for some requests).
_RANK = {"zone_outage": 0, "chaos": 1, "experiment": 1, "fit": 1, "breaker": 2, "deploy": 3, "note": 4}


@dataclass(frozen=True, slots=True)
class ContextEvent:
    """One event the caller reports: `target` is what it hit (a zone, a dependency, a service)."""

    at: float
    kind: str
    target: str
    description: str = ""
    region: str | None = None

    def __post_init__(self) -> None:
        _validate.number("at", self.at)
        _validate.choice("kind", self.kind, EVENT_KINDS)
        _validate.text("target", self.target, max_len=200)
        _validate.text("description", self.description, max_len=500, required=False)
        if self.region is not None:
            _validate.region("region", self.region)

    def touches(self, region: str) -> bool:
        """True when the event is about `region` (or a zone in it, like eu-west-1a) or is global."""
        if self.region is not None:
            return self.region == region
        return (
            self.target == region
            or self.target.startswith(region + "-")
            or self.kind in ("breaker", "deploy")
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "at": self.at,
            "kind": self.kind,
            "target": self.target,
            "region": self.region,
            "description": self.description,
        }


def likely_cause(
    events: list[ContextEvent], region: str, start: float, *, lookback: float, lead: float = 0.0
) -> ContextEvent | None:
    """The event that best explains an anomaly starting at `start` in `region`: one touching the
    region, in [start - lookback, start + lead], the strongest kind first, then the closest."""
    window = [e for e in events if start - lookback <= e.at <= start + lead and e.touches(region)]
    if not window:
        return None
    return min(window, key=lambda e: (_RANK[e.kind], abs(start - e.at)))
