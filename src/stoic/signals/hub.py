"""`Signals`: indicators, detectors, burn rates, alerts, history and churn risk behind one object."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stoic.signals import _validate
from stoic.signals.alerts import Alert, burn_group_alert, drop_alert, no_data_alert
from stoic.signals.burnrate import DEFAULT_RULES, BurnRate, BurnRateRule
from stoic.signals.cause import chain, watch_audit
from stoic.signals.churn import ChurnRisk
from stoic.signals.context import ContextEvent, likely_cause
from stoic.signals.detector import Detector
from stoic.signals.grouping import BurnGroup, Grouping
from stoic.signals.guardwatch import fallback_share
from stoic.signals.history import History
from stoic.signals.indicators import BUILT_IN, DIRECTION, LABELS, SPS, Indicators
from stoic.signals.ingest import MAX_AHEAD, IngestError, Metric, Playback, Start, parse
from stoic.signals.outbox import DeliveryRetry
from stoic.signals.ownership import Ownership
from stoic.signals.silences import Silence, SilenceControls, Silences
from stoic.signals.webhook import REPEAT_INTERVAL, AlertRouter, Delivery, WebhookReceiver

if TYPE_CHECKING:
    from stoic.guard import Event, Registry

# Noise floor per indicator: no alert unless the move is at least this big in absolute terms
# (starts per second, or a ratio), whatever the score says.
FLOORS = {SPS: 0.2, "error_rate": 0.02, "rebuffer_ratio": 0.01}
# Derived ratios are undefined, not missing, while nothing happens: they never say "no data".
_SILENT_OK = ("error_rate", "rebuffer_ratio")
# History writes that failed (a locked database) wait for the next evaluation; bounded.
_MAX_HISTORY_BACKLOG = 100

log = logging.getLogger("stoic.signals")


@dataclass(slots=True)
class _Track:
    detector: Detector
    points: deque[tuple[float, float | None, float | None, float | None, float | None, float]]
    last_data: float | None = None  # the last bucket with a value


class Signals(SilenceControls):
    """Leading indicators with anomaly detection and alerting, for one process.

    `interval` is the bucket width (s); `day` the season length (s) of the expected pattern, which
    can be shortened to compress time in demos and tests, as can `time_scale` for burn-rate
    windows. `db` (a path) keeps history in SQLite across restarts.

    Alerts leave through a durable outbox (`outbox`, a SQLite path; by default `<db>.outbox`
    next to the history, or memory only, lost on restart, when there is no `db`): `evaluate()`
    writes notifications to it and a background worker delivers them to `receivers`, retrying
    per `retry` and re-sending firing alerts every `repeat_interval` seconds. `close()` stops the
    worker and keeps what is undelivered for the next process.

    History keeps `keep_days` days: rows older than that are pruned once an hour by
    `evaluate()`. The burn-rate rules of a region are one alert (`grouping`, see
    `stoic.signals.grouping`; its times are compressed by `time_scale` too). `silences` (and
    `silence()`, `silence_experiment()`) hold matching alerts back: recorded, not delivered.
    """

    def __init__(
        self,
        *,
        interval: float = 60.0,
        day: float = 86400.0,
        db: str | Path | None = None,
        ownership: Ownership | None = None,
        receivers: list[WebhookReceiver] | None = None,
        outbox: str | Path | None = None,
        repeat_interval: float = REPEAT_INTERVAL,
        retry: DeliveryRetry | None = None,
        slo: float = 0.999,
        burn_rules: tuple[BurnRateRule, ...] = DEFAULT_RULES,
        time_scale: float = 1.0,
        floors: dict[str, float] | None = None,
        threshold: float = 0.5,
        confirm: int = 1,
        lookback: float | None = None,
        lateness: float | None = None,
        retention: int | None = None,
        churn_half_life: float = 3 * 86400.0,
        churn: ChurnRisk | None = None,
        churn_every: float = 86400.0,
        clock: Callable[[], float] = time.time,
        keep_days: float = 90.0,
        silences: list[Silence] | None = None,
        grouping: Grouping | None = None,
    ) -> None:
        self.interval = _validate.number("interval", interval, low=0.0, low_open=True)
        self.day = _validate.number("day", day, low=2 * self.interval)
        self.season = round(self.day / self.interval)
        self.threshold = _validate.number("threshold", threshold, low=0.0, low_open=True, high=0.999)
        self.confirm = _validate.integer("confirm", confirm, low=1, high=100)
        self.lookback = _validate.number(
            "lookback", lookback if lookback is not None else 15 * self.interval, low=0.0
        )
        # A bucket is judged once the source has moved past it (plus a short grace for stragglers)
        # or, if nothing newer arrives, once `lateness` has passed; silence for longer than that
        # is "no data", never a drop.
        self.lateness = _validate.number(
            "lateness", lateness if lateness is not None else 2 * self.interval, low=0.0, high=7 * 86400.0
        )
        self.floors = {**FLOORS, **(floors or {})}
        self.clock = clock
        self.retention = retention if retention is not None else 2 * self.season
        self.indicators = Indicators(self.interval, retention=self.retention, clock=clock)
        self.ownership = ownership or Ownership()
        if outbox is None and db is not None and str(db) != ":memory:":
            # its own file: a lock on the history never holds a page back
            outbox = f"{db}.outbox"
        self.keep_days = _validate.number("keep_days", keep_days, low=0.0, low_open=True, high=3650.0)
        # a locked history answers fast: the write is retried at the next evaluation, and the
        # caller's thread does not wait on another connection's lock
        self.history = History(db, keep_days=self.keep_days, busy_timeout=0.25) if db is not None else None
        self.silences = Silences(silences or [], store=self.history, clock=clock)
        self.router = AlertRouter(
            receivers,
            repeat_interval=repeat_interval,
            retry=retry,
            outbox=outbox,
            clock=clock,
            silences=self.silences,
        )
        self._history_backlog: deque[list[Any]] = deque()  # [rows, alerts, fallbacks] not yet written
        self.slo = slo
        self._burn_args: dict[str, Any] = {
            "slo": slo,
            "rules": burn_rules,
            "time_scale": time_scale,
            "clock": clock,
        }
        BurnRate(**self._burn_args)  # validate now, at the edge, not at the first start
        if grouping is not None and not isinstance(grouping, Grouping):
            raise ValueError(f"grouping: must be a Grouping, got {type(grouping).__name__}")
        self.grouping = (grouping or Grouping()).scaled(time_scale)
        self._groups: dict[str, BurnGroup] = {}  # region -> its burn-rate rules as one alert
        if churn is not None and not isinstance(churn, ChurnRisk):
            raise ValueError(f"churn: must be a ChurnRisk, got {type(churn).__name__}")
        self.churn = churn if churn is not None else ChurnRisk(half_life=churn_half_life, clock=clock)
        # churn digests go to their owners at most this often (seconds); every evaluation checks
        self.churn_every = _validate.number("churn_every", churn_every, low=60.0, high=31 * 86400.0)
        self._churn_routed: float | None = None
        self._lock = threading.RLock()
        self._tracks: dict[tuple[str, str], _Track] = {}
        self._burn: dict[str, BurnRate] = {}
        self._evaluated: dict[str, int] = {}  # region -> last evaluated bucket index
        self._firing: dict[str, Alert] = {}  # alert id -> alert
        self._recent: deque[Alert] = deque(maxlen=200)
        self._events: deque[ContextEvent] = deque(maxlen=1000)
        self._fallbacks: dict[tuple[str, str], int] = {}
        self._fallback_hour = 0.0

    # ---- recording -------------------------------------------------------------------------
    def observe_start(
        self,
        region: str = "global",
        *,
        ok: bool = True,
        account: str | None = None,
        at: float | None = None,
        count: int = 1,
    ) -> None:
        """`count` stream start attempts in `region` (ok=False: they failed)."""
        _validate.region("region", region)
        _validate.integer("count", count, low=1)
        at = self._time(at)
        self.indicators.observe_start(region, ok=ok, at=at, count=count)
        with self._lock:
            burn = self._burn.get(region)
            if burn is None:
                burn = self._burn[region] = BurnRate(**self._burn_args)
        burn.observe(ok, at=at, count=count)
        if account is not None:
            self.churn.observe_start(account, ok, at=at, count=count)

    def observe_playback(
        self,
        region: str = "global",
        *,
        watched_s: float,
        rebuffer_s: float = 0.0,
        account: str | None = None,
        at: float | None = None,
    ) -> None:
        """`watched_s` seconds of playback during which the viewer waited `rebuffer_s` seconds."""
        _validate.region("region", region)
        watched_s = _validate.number("watched_s", watched_s, low=0.0, high=_validate.MAX_VALUE)
        rebuffer_s = _validate.number("rebuffer_s", rebuffer_s, low=0.0, high=_validate.MAX_VALUE)
        at = self._time(at)
        self.indicators.observe_playback(region, watched_s=watched_s, rebuffer_s=rebuffer_s, at=at)
        if account is not None:
            self.churn.observe_playback(account, watched_s, rebuffer_s, at=at)

    def record(self, name: str, value: float, region: str = "global", *, at: float | None = None) -> None:
        """A measured value for indicator `name` (e.g. "sps" counted by the app itself)."""
        _validate.name("name", name)
        _validate.region("region", region)
        value = _validate.measurement("value", value)
        self.indicators.record(name, value, region, at=self._time(at))

    def learn_history(self, name: str, region: str, points: Iterable[tuple[float, float | None]]) -> int:
        """Teach the detector of indicator `name` in `region` what came before this process: past
        `(at, value)` points, epoch seconds oldest first, None for no data, one per bucket (as a
        service learns its Prometheus backfill). Nothing is alerted or kept for the view; the live
        buckets come after them. A refused point raises ValueError naming it and keeps the points
        before it. Returns how many points were learnt."""
        _validate.name("name", name)
        _validate.region("region", region)
        now = self.clock()
        learnt = 0
        with self._lock:
            detector = self._track(name, region).detector
            for i, point in enumerate(points):
                if not (isinstance(point, tuple) and len(point) == 2):
                    raise ValueError(f"points[{i}]: must be an (at, value) pair, got {point!r}")
                at, value = point
                if isinstance(at, int | float) and not isinstance(at, bool) and at > now:
                    raise ValueError(f"points[{i}].at: {at!r} is after now ({now:.0f}): history is past")
                try:
                    detector.step(value, at)
                except ValueError as exc:
                    raise ValueError(f"points[{i}].{exc}") from None
                learnt += 1
        return learnt

    def _time(self, at: float | None) -> float:
        """`at` (default: now) as epoch seconds that are plausible now."""
        now = self.clock()
        if at is None:
            return now
        at = _validate.epoch("at", at)
        if at > now + MAX_AHEAD:
            raise ValueError(
                f"at: {at!r} is more than {MAX_AHEAD:g} s ahead of now ({now:.0f}); check the clock"
            )
        if at < now - self.retention * self.interval:
            raise ValueError(f"at: {at!r} is older than the {self.retention} buckets kept")
        return at

    def add_event(
        self,
        kind: str,
        *,
        target: str,
        description: str = "",
        region: str | None = None,
        at: float | None = None,
    ) -> ContextEvent:
        """Report something that may explain an anomaly: chaos, zone_outage, breaker, deploy, note."""
        event = ContextEvent(self.clock() if at is None else at, kind, target, description, region)
        with self._lock:
            self._events.append(event)
        if self.history is not None:
            self.history.record_event(event)
        return event

    def ingest(self, body: object) -> dict[str, int]:
        """Validate a JSON body (see docs/signals.md) and record it; raises IngestError."""
        observations = parse(body, now=self.clock())
        for ob in observations:
            if isinstance(ob, Start):
                self.observe_start(ob.region, ok=ob.ok, account=ob.account, at=ob.at)
            elif isinstance(ob, Playback):
                self.observe_playback(
                    ob.region, watched_s=ob.watched_s, rebuffer_s=ob.rebuffer_s, account=ob.account, at=ob.at
                )
            elif isinstance(ob, Metric):
                try:
                    self.indicators.record(ob.name, ob.value, ob.region, at=ob.at)
                except ValueError as exc:
                    raise IngestError("region", str(exc)) from None
            else:
                self.add_event(
                    ob.kind, target=ob.target, description=ob.description, region=ob.region, at=ob.at
                )
        self.evaluate()
        return {"accepted": len(observations)}

    # ---- stoic.guard -----------------------------------------------------------------------
    def watch(self, registry: Registry) -> Callable[[], None]:
        """Listen to a `stoic.guard` registry: breaker state changes become context events (the
        dependency's `owner` becomes its owning team) and fallback answers are counted.
        Returns a function that stops listening."""
        for dep in _all(registry):
            owner = getattr(dep, "owner", None)
            if owner:
                self.ownership.learn_dependency(dep.name, owner)
        return registry.listen(lambda event: self._on_guard_event(event, registry))

    def _on_guard_event(self, event: Event, registry: Registry) -> None:
        outcome = getattr(getattr(event, "outcome", None), "name", "").lower()
        if outcome == "state_change" and event.state:
            try:
                dep = registry.get(event.dependency)
            except KeyError:  # a dependency outside the registry (registry=None)
                dep = None
            owner = getattr(dep, "owner", None)
            if owner:
                self.ownership.learn_dependency(event.dependency, owner)
            verb = {"open": "opened", "closed": "closed", "half_open": "is half-open"}.get(
                event.state, event.state
            )
            share = ""
            if dep is not None and event.state == "open":  # how much the fallbacks carry now
                try:
                    share = fallback_share(dep.snapshot())
                except Exception:  # a snapshot is context only: never lose the event over it
                    share = ""
            self.add_event(
                "breaker",
                target=event.dependency,
                description=f"The circuit breaker for {event.dependency} {verb}{share}",
            )
        elif outcome == "fallback_success":
            self.count_fallback(event.dependency, event.source)

    def watch_audit(self, audit: Any) -> Callable[[], None]:
        """Listen to a chaos `AuditLog`: every kill, fault and experiment verdict becomes a
        context event, so alerts name them in their cause chain. Returns a function that stops
        listening."""
        return watch_audit(audit, self.add_event)

    def count_fallback(self, dependency: str, source: str, count: int = 1) -> None:
        """Count answers served by fallback `source` of `dependency` (the weekly report sums them)."""
        with self._lock:
            key = (dependency, source)
            self._fallbacks[key] = self._fallbacks.get(key, 0) + count

    def fallback_counts(self) -> dict[str, dict[str, int]]:
        """Fallback answers per dependency and level not yet written to history."""
        with self._lock:
            out: dict[str, dict[str, int]] = {}
            for (dep, src), n in self._fallbacks.items():
                out.setdefault(dep, {})[src] = n
            return out

    # ---- evaluation ------------------------------------------------------------------------
    def evaluate(self, now: float | None = None) -> list[Alert]:
        """Run the detectors on every bucket that closed since the last call and the burn-rate
        rules at `now`; returns the alerts that changed (new or resolved) and routes them."""
        now = self.clock() if now is None else now
        changed: list[Alert] = []
        rows: list[tuple[str, str, float, float | None, float | None, float | None]] = []
        with self._lock:
            last_closed = self._last_closed(now)
            for region in self.indicators.regions():
                changed += self._evaluate_region(region, last_closed, rows)
                changed += self._evaluate_burn(region, now)
            fallbacks = self._take_fallbacks(now)
            changed = self._admit(changed, now)
        churn = self._churn_due(now)  # routed to their owners, not kept as incidents
        for alert in [*changed, *churn]:  # first: only writes to the outbox, a worker delivers
            self.router.route(alert)
        for alert in self.router.release(now):  # a silence ended while they still fire
            with self._lock:
                for key, firing in self._firing.items():
                    if firing.id == alert.id:
                        self._firing[key] = alert
        if self.history is not None:
            self._write_history(rows, changed, fallbacks)
        return changed + churn

    def _admit(self, changed: list[Alert], now: float) -> list[Alert]:
        """Mark what silences hold back (or what breaks through an experiment's), also in the
        firing alerts the view lists."""
        admitted = [self.router.admit(a, now) for a in changed]
        by_id = {a.id: a for a in admitted if a.status == "firing"}
        for key, firing in self._firing.items():
            if firing.id in by_id:
                self._firing[key] = by_id[firing.id]
        return admitted

    # ---- silences ----------------------------------------------------------------------------
    def silenced(self) -> list[dict[str, object]]:
        """What silences held back, newest last: `at`, `alert_id`, `summary`, `silence`."""
        return list(self.router.silenced)

    def route_churn(self, now: float | None = None) -> list[Alert]:
        """Send each owning team its accounts at risk of churning now (one digest alert per
        team, with the list, the reasons and next steps; a resolve when its list empties)."""
        now = self.clock() if now is None else now
        changed = self.churn.alerts(self.ownership, at=now)
        for alert in changed:
            self.router.route(alert)
        with self._lock:
            self._churn_routed = now
        return changed

    def _churn_due(self, now: float) -> list[Alert]:
        # the first evaluation only starts the clock: a fresh process has no history to judge yet
        with self._lock:
            if self._churn_routed is None:
                self._churn_routed = now
            if now - self._churn_routed < self.churn_every:
                return []
            self._churn_routed = now
        return self.churn.alerts(self.ownership, at=now)

    def _write_history(self, rows: list[Any], alerts: list[Alert], fallbacks: Any) -> None:
        """Write to history, with what earlier failed first; a failure (a locked database) is
        logged and retried at the next evaluation, never raised."""
        assert self.history is not None
        try:
            self.history.maybe_prune(self.clock())  # keep_days, once an hour
        except sqlite3.Error as exc:
            log.warning("history %s: prune failed (%s); will retry", self.history.path, exc)
        with self._lock:
            if rows or alerts or fallbacks:
                self._history_backlog.append([rows, list(alerts), fallbacks])
            while len(self._history_backlog) > _MAX_HISTORY_BACKLOG:
                self._history_backlog.popleft()
                log.error("history backlog full: dropped the oldest evaluation's rows")
            backlog, self._history_backlog = self._history_backlog, deque()
        while backlog:
            entry = backlog[0]
            rows, alerts = entry[0], entry[1]
            try:
                if rows:
                    self.history.record_points(rows)
                    rows.clear()  # written: a retry must not repeat them
                while alerts:
                    self.history.record_alert(alerts[0])
                    alerts.pop(0)
                if entry[2]:
                    self.history.record_fallbacks(*entry[2])
                    entry[2] = None
            except sqlite3.Error as exc:
                log.warning("history %s: write failed (%s); will retry", self.history.path, exc)
                with self._lock:
                    backlog.extend(self._history_backlog)
                    self._history_backlog = backlog
                return
            backlog.popleft()

    def _last_closed(self, now: float) -> int:
        """The newest bucket that may be judged: one the source has moved past (after a short
        grace for stragglers), or one whose lateness has passed."""
        index = self.indicators.index
        timed_out = index(now - self.lateness) - 1
        newest = self.indicators.source_newest()
        if newest is None:
            return timed_out
        complete = min(newest - 1, index(now - min(self.lateness, 0.25 * self.interval)) - 1)
        return max(complete, timed_out)

    def _evaluate_region(self, region: str, last_closed: int, rows: list[Any]) -> list[Alert]:
        changed: list[Alert] = []
        first = self._evaluated.get(region)
        oldest = self.indicators.oldest_index(region)
        if oldest is None:
            return changed
        start = oldest if first is None else first + 1
        start = max(start, last_closed - self.retention + 1)
        names = self.indicators.names(region)
        for idx in range(start, last_closed + 1):
            t = self.indicators.bucket_start(idx)
            for name in names:
                track = self._track(name, region)
                value = self.indicators.value(name, region, idx)
                d = track.detector.step(value, t)
                track.points.append((t, value, d.expected, d.lower, d.upper, d.evidence))
                rows.append((name, region, t, value, d.expected, d.bound))
                changed += self._no_data(name, region, track, value, t)
                key = f"drop:{name}:{region}"
                if d.started:
                    events = list(self._events)
                    cause = likely_cause(events, region, t, lookback=self.lookback, lead=self.interval)
                    links = chain(events, region, t, lookback=self.lookback, lead=self.interval)
                    alert = drop_alert(
                        name,
                        region,
                        d,
                        cause=cause,
                        ownership=self.ownership,
                        lookback=self.lookback,
                        links=links,
                    )
                    self._firing[key] = alert
                    changed.append(alert)
                elif d.ended and key in self._firing:
                    alert = self._firing.pop(key).resolved(t)
                    self._recent.append(alert)
                    changed.append(alert)
        if last_closed >= start:
            self._evaluated[region] = last_closed
        return changed

    def _no_data(self, name: str, region: str, track: _Track, value: float | None, t: float) -> list[Alert]:
        """One "no data" alert when an indicator that had data goes silent, resolved when it is
        back; a silence shorter than three buckets (or the lateness) is a sparse source."""
        key = f"nodata:{name}:{region}"
        if value is not None:
            track.last_data = t
            if key in self._firing:
                alert = self._firing.pop(key).resolved(t)
                self._recent.append(alert)
                return [alert]
            return []
        if track.last_data is None or name in _SILENT_OK or key in self._firing:
            return []
        since = track.last_data + self.interval
        if t + self.interval - since < max(self.lateness, 3 * self.interval):
            return []
        alert = no_data_alert(name, region, since, ownership=self.ownership, at=t)
        self._firing[key] = alert
        return [alert]

    def _evaluate_burn(self, region: str, now: float) -> list[Alert]:
        """The region's burn-rate rules as one alert (`stoic.signals.grouping`)."""
        burn = self._burn.get(region)
        if burn is None:
            return []
        group = self._groups.get(region)
        if group is None:
            group = self._groups[region] = BurnGroup(self.grouping)

        def make(windows: list[Any], severity: str, starts_at: float) -> Alert:
            lookback = max(self.lookback, max(w.long for w in windows))
            events = list(self._events)
            cause = likely_cause(events, region, starts_at, lookback=lookback)
            return burn_group_alert(
                region,
                windows,
                self.slo,
                severity,
                starts_at,
                cause=cause,
                ownership=self.ownership,
                lookback=self.lookback,
                links=chain(events, region, starts_at, lookback=lookback),
            )

        changed = group.step(now, burn.status(at=now), make, _burn_severity)
        key = f"burn:{region}"
        for alert in changed:
            if alert.status == "resolved":
                self._firing.pop(key, None)
                self._recent.append(alert)
            else:
                self._firing[key] = alert
        return changed

    def _track(self, name: str, region: str) -> _Track:
        track = self._tracks.get((name, region))
        if track is None:
            detector = Detector(
                self.interval,
                direction=DIRECTION.get(name, "both"),
                count=name in BUILT_IN,
                # stream starts per second: one start adds 1/interval to its bucket
                per_event=1.0 / self.interval if name == SPS else None,
                seasons=(self.day, 7 * self.day),
                min_change=self.floors.get(name, 0.0),
                threshold=self.threshold,
                confirm=self.confirm,
                warmup=min(60, max(5, self.season // 4)),
            )
            track = self._tracks[(name, region)] = _Track(detector, deque(maxlen=self.retention))
        return track

    def _take_fallbacks(self, now: float) -> tuple[float, dict[tuple[str, str], int]] | None:
        if not self._fallbacks or self.history is None:
            return None
        counts, self._fallbacks = self._fallbacks, {}
        return (now // 3600.0) * 3600.0, counts

    # ---- reading ---------------------------------------------------------------------------
    def alerts(self) -> list[dict[str, object]]:
        """Firing alerts (newest first), then recently resolved ones."""
        with self._lock:
            firing = sorted(self._firing.values(), key=lambda a: -a.starts_at)
            resolved = sorted(self._recent, key=lambda a: -(a.ends_at or 0.0))
            return [a.to_dict() for a in firing] + [a.to_dict() for a in resolved]

    def deliveries(self) -> list[Delivery]:
        return list(self.router.deliveries)

    def view(self, window: float = 3600.0, *, churn_top: int = 10) -> dict[str, Any]:
        """Recent series with predictions, alerts, burn rates, churn risk and events (JSON-ready)."""
        # a window longer than the retained buckets simply returns all of them
        window = _validate.number("window", window, low=0.0, low_open=True, high=366 * 86400.0)
        self.evaluate()
        now = self.clock()
        since = now - window
        with self._lock:
            series = []
            for (name, region), track in sorted(self._tracks.items(), key=lambda kv: (kv[0][1], kv[0][0])):
                label, unit = LABELS.get(name, (name, ""))
                points = [
                    {
                        "t": t,
                        "value": _round(v),
                        "expected": _round(e),
                        "lower": _round(lo),
                        "upper": _round(hi),
                        "score": _round(score),
                    }
                    for t, v, e, lo, hi, score in track.points
                    if t >= since
                ]
                series.append(
                    {
                        "indicator": name,
                        "region": region,
                        "label": label,
                        "unit": unit,
                        "direction": track.detector.direction,
                        "points": points,
                    }
                )
            burn = [
                {"region": region, "slo": self.slo, "windows": [w.to_dict() for w in b.status(at=now)]}
                for region, b in sorted(self._burn.items())
            ]
            events = [e.to_dict() for e in self._events if e.at >= since]
        return {
            "interval": self.interval,
            "now": now,
            "series": series,
            "alerts": self.alerts(),
            "burn_rate": burn,
            "churn": [r.to_dict() for r in self.churn.top(churn_top, at=now)],
            "events": events,
        }

    def snapshot_churn(self, n: int = 50) -> None:
        """Write the `n` accounts most at risk to history (the weekly report lists them)."""
        if self.history is not None:
            now = self.clock()
            self.history.record_churn(now, self.churn.top(n, at=now))

    def close(self, timeout: float = 5.0) -> None:
        """Evaluate what is pending, stop the delivery worker (waiting at most `timeout` seconds
        for a delivery in flight; undelivered alerts stay in the outbox), snapshot churn risk and
        close the history database."""
        try:
            self.evaluate()
        finally:
            self.router.close(timeout)
        if self.history is not None:
            try:
                self.snapshot_churn()
            except sqlite3.Error as exc:
                log.warning("history %s: churn snapshot not written (%s)", self.history.path, exc)
            self.history.close()


def _burn_severity(rule: BurnRateRule) -> str:
    return "critical" if rule.severity == "page" else "warning"


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def _all(registry: Any) -> list[Any]:
    try:
        return list(registry.all())
    except (AttributeError, TypeError):
        return []
