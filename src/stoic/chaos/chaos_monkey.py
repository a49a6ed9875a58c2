"""Chaos Monkey: at most one random instance per group per run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ._errors import ChaosConfigError
from ._monkey import Action, RunContext, chance, check_duration
from .fleet import GROUPINGS, Member, group_key
from .safety import BlastRadius
from .schedule import Schedule


@dataclass(frozen=True)
class AppSettings:
    """How one app shapes the Chaos Monkey. There is deliberately no way to opt out."""

    grouping: str = "app"
    mean_time_between_kills: float | None = 2 * 86400.0
    min_time_between_kills: float = 3600.0
    schedule: Schedule | None = None

    def __post_init__(self) -> None:
        if self.grouping not in GROUPINGS:
            raise ChaosConfigError(f"grouping must be one of {', '.join(GROUPINGS)}; got {self.grouping!r}")
        check_duration(self.mean_time_between_kills, "mean_time_between_kills")
        check_duration(self.min_time_between_kills, "min_time_between_kills", allow_none=False)


class ChaosMonkey:
    """Kills one random alive instance per group, on average every `mean_time_between_kills`
    (chaos-clock seconds; None = every run), never twice in a group within `min_time_between_kills`.

    Groups are `grouping` = ``app``, ``app+region`` or ``app+zone``; `apps` maps an app name to its
    own `AppSettings` (frequency, grouping, schedule), like Netflix chaosmonkey's per-app settings.
    """

    name = "chaos-monkey"

    def __init__(
        self,
        *,
        grouping: str = "app",
        mean_time_between_kills: float | None = 2 * 86400.0,
        min_time_between_kills: float = 3600.0,
        apps: Mapping[str, AppSettings] | None = None,
        schedule: Schedule | None = None,
        limits: BlastRadius | None = None,
    ) -> None:
        self.defaults = AppSettings(grouping, mean_time_between_kills, min_time_between_kills)
        self.apps = dict(apps or {})
        self.schedule = schedule
        self.limits = limits

    def settings(self, app: str) -> AppSettings:
        return self.apps.get(app, self.defaults)

    def plan(self, ctx: RunContext) -> Sequence[Action]:
        groups: dict[str, list[Member]] = {}
        for member in ctx.fleet.alive():
            groups.setdefault(group_key(member, self.settings(member.app).grouping), []).append(member)
        actions = []
        for key in sorted(groups):
            members = sorted(groups[key], key=lambda m: m.id)
            s = self.settings(members[0].app)
            if s.schedule is not None and not s.schedule.allows(ctx.now):
                continue  # the app's own schedule says not now: not a decision, just not its time
            if ctx.rng.random() >= chance(ctx.elapsed, s.mean_time_between_kills):
                continue
            victim = ctx.rng.choice(members)
            veto = None
            last = ctx.audit.last(self.name, key, ("terminated", "leashed"))
            if last is not None and ctx.timestamp - last.at < s.min_time_between_kills:
                veto = (
                    f"min_time_between_kills: last kill in {key} was {ctx.timestamp - last.at:.0f}s ago "
                    f"(< {s.min_time_between_kills:g}s)"
                )
            actions.append(
                Action(
                    self.name,
                    "terminate",
                    f"random pick of 1 in {len(members)} alive in group {key}",
                    group=key,
                    targets=(victim,),
                    schedule=s.schedule,
                    veto=veto,
                )
            )
        return actions

    def __repr__(self) -> str:
        d = self.defaults
        return (
            f"ChaosMonkey(grouping={d.grouping!r}, mean_time_between_kills={d.mean_time_between_kills}, "
            f"min_time_between_kills={d.min_time_between_kills})"
        )


__all__ = ["AppSettings", "ChaosMonkey"]
