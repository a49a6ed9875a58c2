"""`Schedule`: when chaos may run (business hours, weekdays, holidays, a time zone); `Cadence`: how
often a scheduled drill comes round inside it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._errors import ChaosConfigError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Schedule:
    """Chaos runs only inside this window, so engineers are at their desks when things break.

    Netflix's default: 09:00 to 15:00 on weekdays. ``Schedule.always()`` allows every moment.

    >>> Schedule(timezone="Europe/London").allows(datetime(2026, 11, 28, 10, tzinfo=ZoneInfo("UTC")))
    False
    """

    start: time = time(9, 0)
    end: time = time(15, 0)
    weekdays: frozenset[int] = frozenset(range(5))  # 0 = Monday
    timezone: str = "UTC"
    holidays: frozenset[date] = field(default_factory=frozenset)
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.start, time) or not isinstance(self.end, time):
            raise ChaosConfigError("schedule.start and schedule.end must be times of day (HH:MM)")
        if self.start == self.end:
            raise ChaosConfigError("schedule.start and schedule.end must differ (use Schedule.always())")
        days = frozenset(self.weekdays)
        if not days or not days <= set(range(7)):
            raise ChaosConfigError(
                f"schedule.weekdays must be a non-empty subset of {', '.join(WEEKDAYS)} (0..6); "
                f"got {sorted(days)!r}"
            )
        object.__setattr__(self, "weekdays", days)
        object.__setattr__(self, "holidays", frozenset(self.holidays))
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ChaosConfigError(
                f"schedule.timezone must be an IANA time zone such as 'Europe/London'; got {self.timezone!r}"
            ) from None
        object.__setattr__(self, "_zone", zone)

    @classmethod
    def always(cls) -> Schedule:
        """Every day, every hour."""
        return cls(start=time(0, 0), end=time(23, 59, 59, 999999), weekdays=frozenset(range(7)))

    @classmethod
    def parse(
        cls,
        start: str = "09:00",
        end: str = "15:00",
        weekdays: Iterable[str] = WEEKDAYS[:5],
        timezone: str = "UTC",
        holidays: Iterable[str] = (),
        field_prefix: str = "schedule",
    ) -> Schedule:
        """Build from plain strings (``"09:00"``, ``["mon", "tue"]``, ``["2026-12-25"]``)."""
        return cls(
            start=_time(start, f"{field_prefix}.start"),
            end=_time(end, f"{field_prefix}.end"),
            weekdays=frozenset(_weekday(d, f"{field_prefix}.weekdays") for d in weekdays),
            timezone=timezone,
            holidays=frozenset(_date(d, f"{field_prefix}.holidays") for d in holidays),
        )

    def local(self, when: datetime) -> datetime:
        """`when` in this schedule's time zone."""
        if when.tzinfo is None:
            raise ValueError("when must be timezone-aware")
        return when.astimezone(self._zone)

    def why_not(self, when: datetime) -> str | None:
        """None when chaos may run at `when`, else the reason it may not."""
        local = self.local(when)
        if local.date() in self.holidays:
            return f"{local.date().isoformat()} is a holiday"
        if local.weekday() not in self.weekdays:
            return f"{WEEKDAYS[local.weekday()]} is not a chaos day"
        t = local.time().replace(tzinfo=None)
        inside = self.start <= t < self.end if self.start < self.end else (t >= self.start or t < self.end)
        if not inside:
            return f"{t:%H:%M} {self.timezone} is outside {self.start:%H:%M}-{self.end:%H:%M}"
        return None

    def allows(self, when: datetime) -> bool:
        """True when chaos may run at `when` (timezone-aware)."""
        return self.why_not(when) is None

    def describe(self) -> str:
        days = ",".join(WEEKDAYS[d] for d in sorted(self.weekdays))
        return f"{self.start:%H:%M}-{self.end:%H:%M} {self.timezone} on {days}"


@dataclass(frozen=True)
class Cadence:
    """How often a drill comes round: every `every` seconds, at a moment `window` allows (None: any).

    A drill that is due outside the window waits for the window to open, so a weekly Chaos Kong drill
    with a weekday 09:00-15:00 window runs on the first allowed moment a week after the last one.

    >>> Cadence(7 * 86400).why_not(datetime(2026, 11, 30, 10, tzinfo=ZoneInfo("UTC")), last=None) is None
    True
    """

    every: float
    window: Schedule | None = None

    def __post_init__(self) -> None:
        every = self.every
        if isinstance(every, bool) or not isinstance(every, int | float) or not 60 <= every <= 366 * 86400:
            raise ChaosConfigError(
                f"cadence.every must be seconds in [60, {366 * 86400}] (a minute to a year); got {every!r}"
            )
        if self.window is not None and not isinstance(self.window, Schedule):
            raise ChaosConfigError(f"cadence.window must be a Schedule or None; got {self.window!r}")

    def why_not(self, now: datetime, last: float | None) -> str | None:
        """None when a drill last run at `last` (Unix time; None: never) is due at `now`, else why not."""
        if last is not None and now.timestamp() - last < self.every:
            wait = self.every - (now.timestamp() - last)
            return f"next drill due in {wait:.0f}s (every {self.every:g}s)"
        if self.window is not None:
            return self.window.why_not(now)
        return None


def _time(text: str, name: str) -> time:
    try:
        return time.fromisoformat(str(text))
    except ValueError:
        raise ChaosConfigError(f"{name} must be a time of day HH:MM; got {text!r}") from None


def _weekday(text: str, name: str) -> int:
    key = str(text).strip().lower()[:3]
    if key not in WEEKDAYS:
        raise ChaosConfigError(f"{name} entries must be one of {', '.join(WEEKDAYS)}; got {text!r}")
    return WEEKDAYS.index(key)


def _date(text: str, name: str) -> date:
    if isinstance(text, date):
        return text
    try:
        return date.fromisoformat(str(text))
    except ValueError:
        raise ChaosConfigError(f"{name} entries must be dates YYYY-MM-DD; got {text!r}") from None


__all__ = ["WEEKDAYS", "Cadence", "Schedule"]
