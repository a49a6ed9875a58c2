"""Chaos Gorilla (a whole zone goes away) and Chaos Kong (a whole region goes away)."""

from __future__ import annotations

from collections.abc import Sequence

from ._monkey import Action, RunContext, chance, check_duration
from .fleet import Fleet
from .safety import BlastRadius
from .schedule import Schedule


class _Outage:
    scope = "zone"
    name = "outage"

    def __init__(
        self,
        where: str | None,
        *,
        mean_time_between: float | None,
        min_time_between: float,
        schedule: Schedule | None,
        limits: BlastRadius | None,
    ) -> None:
        check_duration(mean_time_between, f"{self.name}.mean_time_between")
        check_duration(min_time_between, f"{self.name}.min_time_between", allow_none=False)
        self.where = where
        self.mean_time_between = mean_time_between
        self.min_time_between = min_time_between
        self.schedule = schedule
        self.limits = limits

    def _places(self, alive: Fleet) -> list[str]:
        return alive.zones if self.scope == "zone" else alive.regions

    def _select(self, alive: Fleet, place: str) -> Fleet:
        return alive.select(zone=place) if self.scope == "zone" else alive.select(region=place)

    def plan(self, ctx: RunContext) -> Sequence[Action]:
        alive = ctx.fleet.alive()
        places = self._places(alive)
        if not places or ctx.rng.random() >= chance(ctx.elapsed, self.mean_time_between):
            return []
        if self.where is not None:
            if self.where not in places:
                return []
            place = self.where
        else:
            place = ctx.rng.choice(places)
        victims = tuple(sorted(self._select(alive, place), key=lambda m: m.id))
        group = f"{self.scope}:{place}"
        veto = None
        last = ctx.audit.last(self.name, group, ("terminated", "leashed"))
        if last is not None and ctx.timestamp - last.at < self.min_time_between:
            ago = ctx.timestamp - last.at
            veto = f"min_time_between: last {self.scope} outage of {place} was {ago:.0f}s ago"
        return [
            Action(
                self.name,
                "terminate",
                f"{self.scope} outage drill: all {len(victims)} alive instances in {place}",
                group=group,
                targets=victims,
                veto=veto,
                subject=place,
            )
        ]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.scope}={self.where!r}, mean_time_between={self.mean_time_between})"
        )


class ChaosGorilla(_Outage):
    """Takes down every alive instance in one zone (`zone`, or a random zone with instances)."""

    scope = "zone"
    name = "chaos-gorilla"

    def __init__(
        self,
        zone: str | None = None,
        *,
        mean_time_between: float | None = 7 * 86400.0,
        min_time_between: float = 86400.0,
        schedule: Schedule | None = None,
        limits: BlastRadius | None = None,
    ) -> None:
        if limits is None:  # a zone at a time, at most half of any app
            limits = BlastRadius(
                window=86400.0, max_instances=None, max_zones=1, max_regions=1, max_share=0.5
            )
        super().__init__(
            zone,
            mean_time_between=mean_time_between,
            min_time_between=min_time_between,
            schedule=schedule,
            limits=limits,
        )


class ChaosKong(_Outage):
    """Takes down every alive instance in one region (`region`, or a random region with instances)."""

    scope = "region"
    name = "chaos-kong"

    def __init__(
        self,
        region: str | None = None,
        *,
        mean_time_between: float | None = 30 * 86400.0,
        min_time_between: float = 7 * 86400.0,
        schedule: Schedule | None = None,
        limits: BlastRadius | None = None,
    ) -> None:
        if limits is None:  # one region at a time, never more than half of any app
            limits = BlastRadius(
                window=86400.0, max_instances=None, max_zones=None, max_regions=1, max_share=0.5
            )
        super().__init__(
            region,
            mean_time_between=mean_time_between,
            min_time_between=min_time_between,
            schedule=schedule,
            limits=limits,
        )


__all__ = ["ChaosGorilla", "ChaosKong"]
