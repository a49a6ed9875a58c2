"""Chaos Monkey: at most one random instance per group per run, and per work day as Netflix's does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from ._errors import ChaosConfigError
from ._monkey import Action, RunContext, check_duration
from .audit import KILLS
from .fleet import GROUPINGS, Member, group_key
from .safety import BlastRadius
from .schedule import Schedule

#: the unit of `mean_time_between_kills` in Netflix chaosmonkey (`meanTimeBetweenKillsInWorkDays`)
WORK_DAY = 86400.0


def daily_odds(mean_time_between_kills: float | None) -> float:
    """The chance that a group gets a kill on a given work day: one over the mean in days, at most 1
    (Netflix chaosmonkey's rule). None or 0: every run, no daily draw.

    >>> daily_odds(86400.0), daily_odds(4 * 86400.0), daily_odds(3600.0)
    (1.0, 0.25, 1.0)
    """
    if not mean_time_between_kills:
        return 1.0
    return min(1.0, WORK_DAY / mean_time_between_kills)


def window_end(schedule: Schedule, now: datetime) -> float:
    """When the schedule's window that contains `now` closes (epoch seconds)."""
    local = schedule.local(now)
    end = datetime.combine(local.date(), schedule.end, tzinfo=local.tzinfo)
    if end <= local:  # a window past midnight closes tomorrow
        end += timedelta(days=1)
    return end.timestamp()


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

    The odds follow Netflix chaosmonkey: once per work day (a day the schedule is open, in its time
    zone) each group draws a kill with probability ``1 / days`` where ``days`` is the mean in days
    (`daily_odds`); a drawn kill happens at a random moment of that day's window. So a mean of one day
    kills in every group every work day, and a group never gets a second draw the same day (also after
    a restart, when the audit log shows that day's kill).

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
        self._days: dict[str, tuple[date, float | None]] = {}  # group -> (work day, kill time or None)

    @classmethod
    def from_settings(
        cls,
        defaults: AppSettings,
        *,
        apps: Mapping[str, AppSettings] | None = None,
        limits: BlastRadius | None = None,
    ) -> ChaosMonkey:
        """A monkey from already validated settings; `defaults.schedule` narrows it for every app."""
        monkey = cls(apps=apps, schedule=defaults.schedule, limits=limits)
        monkey.defaults = defaults
        return monkey

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
            if s.mean_time_between_kills and not self._due(key, s, ctx):
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

    def _due(self, group: str, s: AppSettings, ctx: RunContext) -> bool:
        """True once per drawn work day, on the first run at or after the drawn moment."""
        schedule = s.schedule or self.schedule or ctx.schedule or Schedule.always()
        day = schedule.local(ctx.now).date()
        planned = self._days.get(group)
        if planned is None or planned[0] != day:
            kill_at = None
            if ctx.rng.random() < daily_odds(s.mean_time_between_kills):
                kill_at = ctx.rng.uniform(ctx.timestamp, window_end(schedule, ctx.now))
                # a restart must not draw a second kill for a day that already had one
                last = ctx.audit.last(self.name, group, (*KILLS, "leashed"))
                if last is not None and schedule.local(last.when).date() == day:
                    kill_at = None
            planned = (day, kill_at)
            self._days[group] = planned
        if planned[1] is None or ctx.timestamp < planned[1]:
            return False
        self._days[group] = (day, None)
        return True

    def __repr__(self) -> str:
        d = self.defaults
        return (
            f"ChaosMonkey(grouping={d.grouping!r}, mean_time_between_kills={d.mean_time_between_kills}, "
            f"min_time_between_kills={d.min_time_between_kills})"
        )


__all__ = ["WORK_DAY", "AppSettings", "ChaosMonkey", "daily_odds", "window_end"]
