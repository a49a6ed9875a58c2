"""The burn-rate rules of one indicator, label set and SLO as one alert, as Alertmanager groups.

Three rules watch one error budget (1 h / 5 min, 6 h / 30 min, 3 d / 6 h). When a service
breaks they fire minutes apart, and three pages for one problem teach people to ignore pages.
`BurnGroup` turns them into one alert with Alertmanager's timing:

- **group_wait** (default 30 s): the first notification waits this long after the first rule
  fires, so rules firing together are announced together;
- **group_interval** (default 5 min): a later change (another rule fires, one clears) is sent
  as an update of the same alert (same id and start) at most this often;
- **hold** (hysteresis): a rule that stops burning stays part of the alert until it has been
  clear for its own short window (`hold` overrides it). A rule that fires, clears and fires
  again within that time is one incident, not a page per flap; the flaps are counted in the
  alert's description.

The alert resolves once every rule has been clear for its hold, and the resolve is sent at
once. A ticket-level alert that escalates (a page rule joins) starts a new episode: the ticket
resolves and the page fires, so a pager sees the escalation and Alertmanager's label sets stay
consistent. Severity never drops inside an episode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from stoic.signals import _validate
from stoic.signals.alerts import Alert
from stoic.signals.burnrate import BurnRateRule, BurnWindow

GROUP_WAIT = 30.0
GROUP_INTERVAL = 300.0
_FLAPS = " Fired and cleared "


@dataclass(frozen=True, slots=True)
class Grouping:
    """Timing of burn-rate groups (seconds): see the module docstring. `hold=None`: each rule
    holds for its own short window."""

    group_wait: float = GROUP_WAIT
    group_interval: float = GROUP_INTERVAL
    hold: float | None = None

    def __post_init__(self) -> None:
        _validate.number("group_wait", self.group_wait, low=0.0, high=3600.0)
        _validate.number("group_interval", self.group_interval, low=0.0, high=86400.0)
        if self.hold is not None:
            _validate.number("hold", self.hold, low=0.0, high=7 * 86400.0)

    def scaled(self, time_scale: float) -> Grouping:
        """The same timing compressed `time_scale` times (for demos and tests)."""
        return Grouping(
            self.group_wait / time_scale,
            self.group_interval / time_scale,
            None if self.hold is None else self.hold / time_scale,
        )


# Builds the group's alert from the rules active now, the severity and the episode's start.
MakeAlert = Callable[[list[BurnWindow], str, float], Alert]
_RANK = {"warning": 0, "critical": 1}


@dataclass(slots=True)
class BurnGroup:
    """The state of one group; `step` is called at each evaluation with every rule's window."""

    grouping: Grouping = field(default_factory=Grouping)
    active: dict[BurnRateRule, BurnWindow] = field(default_factory=dict)
    clear_since: dict[BurnRateRule, float] = field(default_factory=dict)
    pending_since: float | None = None
    alert: Alert | None = None  # the announced alert of the open episode
    sent_at: float = 0.0  # when the last notification of the episode was sent
    dirty: bool = False  # the membership changed since the last notification
    flaps: int = 0

    def step(
        self,
        now: float,
        windows: list[BurnWindow],
        make: MakeAlert,
        severity: Callable[[BurnRateRule], str],
    ) -> list[Alert]:
        """The group's notifications due at `now`: a firing, an update, a resolve, or none."""
        for w in windows:
            rule = w.rule
            if w.firing:
                if rule in self.clear_since:  # fired again within its hold: the same incident
                    self.flaps += 1
                    del self.clear_since[rule]
                if rule not in self.active:
                    self.dirty = True
                self.active[rule] = w
            elif rule in self.active:
                since = self.clear_since.setdefault(rule, now)
                hold = self.grouping.hold if self.grouping.hold is not None else w.short
                if now - since >= hold:
                    del self.active[rule]
                    del self.clear_since[rule]
                    self.dirty = True
                else:
                    self.active[rule] = w  # still held: its burn is shown as it is now
        if not self.active:
            return self._close(now)
        level = max((severity(r) for r in self.active), key=lambda s: _RANK.get(s, 0))
        if self.alert is None:
            if self.pending_since is None:
                self.pending_since = now
            if now - self.pending_since < self.grouping.group_wait:
                return []
            return [self._announce(make(self._windows(), level, now), now)]
        if _RANK.get(level, 0) > _RANK.get(self.alert.severity, 0):  # escalation: a new episode
            old = self.alert.resolved(now)
            return [old, self._announce(make(self._windows(), level, now), now)]
        if self.dirty and now - self.sent_at >= self.grouping.group_interval:
            update = make(self._windows(), self.alert.severity, self.alert.starts_at)
            return [self._announce(replace(update, revision=self.alert.revision + 1), now)]
        return []

    def _windows(self) -> list[BurnWindow]:
        return sorted(self.active.values(), key=lambda w: w.rule.long)

    def _counted(self, alert: Alert) -> Alert:
        """`alert` with its flaps counted in the description (one sentence, kept current)."""
        base = alert.description.split(_FLAPS)[0].rstrip()
        if not self.flaps:
            return replace(alert, description=base)
        text = f"{base}{_FLAPS}{self.flaps} more times within its hold; kept as one incident."
        return replace(alert, description=text.lstrip())

    def _announce(self, alert: Alert, now: float) -> Alert:
        alert = self._counted(alert)
        self.alert, self.sent_at, self.dirty, self.pending_since = alert, now, False, None
        return alert

    def _close(self, now: float) -> list[Alert]:
        self.pending_since = None
        self.dirty = False
        if self.alert is None:
            self.flaps = 0
            return []
        alert, self.alert = self._counted(self.alert).resolved(now), None
        self.flaps = 0
        return [alert]
