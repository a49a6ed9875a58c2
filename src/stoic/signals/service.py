"""`SignalsService`: runs an indicators file. Pulls and takes samples, judges every label set of
every indicator with its own `Detector` (and SLO burn rates for ratios), keeps history, and
routes alerts through the durable outbox to Alertmanager and webhooks.

```python
from stoic.signals.config import parse
from stoic.signals.service import SignalsService

config = parse('''
[service]
history = "/tmp/stoic-example-signals.db"
[[indicators]]
name = "orders"
source = "push"
kind = "count"
labels = ["region"]
team = "shop"
interval = "60s"
''')
service = SignalsService(config)
print(service.ingest({"observations": [
    {"type": "metric", "name": "orders", "labels": {"region": "eu"}, "value": 12.0}]}))
service.close()
```

On start, `start()` reads the backfill files and asks Prometheus for `prometheus.backfill` of
history (`query_range`), so each detector has learnt its season before the first live point;
episodes that began and ended inside that history are kept in history, not paged. Then one
background thread polls each Prometheus indicator once per `interval`, evaluating the query at
the end of each interval (a gap after an outage is filled from `query_range`), and judges push
indicators once their lateness has passed.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stoic.signals import backfill
from stoic.signals.alertmanager import alertmanager_receiver
from stoic.signals.alerts import Alert, _explain, alert_id, burn_description, clock_time
from stoic.signals.burnrate import DEFAULT_RULES, BurnRateRule, BurnWindow
from stoic.signals.cause import chain, watch_audit
from stoic.signals.churn import DAY, ChurnRisk
from stoic.signals.config import DEFAULT_NEXT_STEP, IndicatorSpec, SignalsConfig, churn_signal
from stoic.signals.context import ContextEvent, likely_cause
from stoic.signals.detector import Detection, Detector
from stoic.signals.grouping import BurnGroup, Grouping
from stoic.signals.history import History
from stoic.signals.ingest import IngestError, _one, observations
from stoic.signals.outbox import Outbox
from stoic.signals.pending import PendingSamples
from stoic.signals.prometheus import PrometheusError, PrometheusSource
from stoic.signals.series import Labels, Sample, Series, SeriesStore, labels_text
from stoic.signals.silences import SilenceControls, Silences
from stoic.signals.webhook import AlertRouter, Post, WebhookReceiver

log = logging.getLogger("stoic.signals.service")


class IngestUnavailable(RuntimeError):
    """A valid body could not be stored durably (the disk or database failed): not taken, the
    sender should retry."""

_MAX_HISTORY_BACKLOG = 10_000  # evaluations whose history rows wait for a locked database
_POINTS_SHOWN = 1440  # points per series kept for the dashboard
_CHURN_EVERY = 300.0  # seconds between churn snapshots within a day, when accounts were observed


@dataclass(slots=True)
class _Judge:
    """What judging keeps for one label set."""

    detector: Detector
    points: deque[tuple[float, float | None, float | None, float | None, float | None, float]]
    firing: dict[str, Alert] = field(default_factory=dict)
    last_data: float | None = None  # the start of the newest interval that had a value
    # for burn rates: times, cumulative bad fraction and count of the points seen (trimmed)
    burn_t: list[float] = field(default_factory=list)
    burn_sum: list[float] = field(default_factory=list)
    burn_group: BurnGroup | None = None  # the burn-rate rules as one alert


class SignalsService(SilenceControls):
    """Runs one indicators file (`stoic.signals.config.SignalsConfig`). Thread-safe.

    `clock` gives now (epoch seconds); `post` replaces the HTTP POST of alert deliveries (for
    tests of the outbox); `generator_url` is the dashboard address put on every alert.
    """

    def __init__(
        self,
        config: SignalsConfig,
        *,
        clock: Callable[[], float] = time.time,
        post: Post | None = None,
        generator_url: str = "",
        burn_rules: tuple[BurnRateRule, ...] = DEFAULT_RULES,
        grouping: Grouping | None = None,
    ) -> None:
        self.config = config
        if grouping is not None and not isinstance(grouping, Grouping):
            raise ValueError(f"grouping: must be a Grouping, got {type(grouping).__name__}")
        self.grouping = grouping or Grouping()
        self.clock = clock
        self.specs = {s.name: s for s in config.indicators}
        self.interval = min(s.interval for s in config.indicators)
        self.retention = _POINTS_SHOWN  # points a dashboard can ask for, per series
        self.burn_rules = burn_rules
        self.store = SeriesStore(config.indicators, retention=config.keep_days * 86400.0, clock=clock)
        receivers: list[WebhookReceiver] = [
            alertmanager_receiver(url, name=f"alertmanager-{i}", timeout=config.receiver_timeout)
            for i, url in enumerate(config.alertmanagers)
        ]
        receivers += [
            WebhookReceiver(f"webhook-{i}", url, config.receiver_timeout)
            for i, url in enumerate(config.webhooks)
        ]
        receivers += [
            WebhookReceiver(f"slack-{i}", url, config.receiver_timeout, api="slack")
            for i, url in enumerate(config.slack)
        ]
        self.receiver_names = tuple(r.name for r in receivers)
        history = config.path(config.history)
        history.parent.mkdir(parents=True, exist_ok=True)
        # a locked history answers fast: rows wait in memory for the next evaluation
        self.history = History(history, keep_days=config.keep_days, busy_timeout=0.25)
        self.pending = PendingSamples(f"{history}.pending")
        # declared in the file, plus those made through the API (kept in history)
        self.silences = Silences(config.silences, store=self.history, clock=clock)
        router_args: dict[str, Any] = {"post": post} if post is not None else {}
        self.router = AlertRouter(
            receivers,
            repeat_interval=config.resend,
            external_url=generator_url,
            outbox=Outbox(f"{history}.outbox"),
            clock=clock,
            silences=self.silences,
            **router_args,
        )
        self.prometheus = (
            PrometheusSource(config.prometheus_url, timeout=config.prometheus_timeout)
            if config.prometheus_url
            else None
        )
        # indicator -> the last bucket its pull source has finished (Prometheus indicators only)
        self._complete: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}  # indicator -> no pull before (Prometheus failed)
        self._recent: deque[Alert] = deque(maxlen=200)
        self._events: deque[ContextEvent] = deque(maxlen=1000)
        self._backlog: deque[tuple[list[Any], list[Alert]]] = deque()
        self._judged: list[tuple[str, Labels, float]] = []  # pushed samples to forget once written
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.accepted = 0  # samples taken, from every source
        self.pull_errors = 0
        # per-account activity from indicators labelled by `account` (None when none declares churn)
        self.churn = churn_model(config, clock)
        self._churn_day: int | None = None  # the business day of the last churn snapshot
        self._churn_at = -math.inf  # when it was taken
        self._churn_new = False  # accounts were observed since

    # ---- starting --------------------------------------------------------------------------
    def start(self, *, background: bool = True) -> None:
        """Read the backfill files, learn Prometheus history, route what still fires, then (with
        `background`) poll and judge on a daemon thread. IngestError: a bad backfill file;
        PrometheusError: Prometheus could not give its history."""
        now = self.clock()
        for spec in self.config.indicators:
            if spec.source == "file":
                rows = backfill.read(self.config.path(spec.file), spec.name)
                samples = [
                    self.store.sample(r.path, r.indicator, r.labels, r.at, r.value, now=now) for r in rows
                ]
                self.store.add(samples, [r.path for r in rows])
                self.accepted += len(samples)
            elif spec.source == "prometheus":
                self._complete[spec.name] = int((now - self.config.backfill) // spec.interval) - 1
                self._pull(spec, now, strict=True)
        kept = self.pending.load()  # pushed and acknowledged before a restart, not yet judged
        names = [f"{s.indicator}{labels_text(s.labels)}" for s in kept]
        refused = self.store.add(kept, names, all_or_nothing=False)
        for exc in refused[:5]:
            log.warning("a pushed sample kept from before the restart is refused now: %s", exc)
        self.accepted += len(kept) - len(refused)
        self.evaluate(now, quiet=True)
        with self.store.lock:
            firing = [a for series in self._all_series() for a in _judge(series).firing.values()]
        for alert in firing:  # still firing at the end of history: page (again, after a restart)
            self.router.route(alert)
        if background:
            self._thread = threading.Thread(target=self._run, name="stoic-signals", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = self.clock()
            wait = self.interval / 2
            for spec in self.config.indicators:
                if spec.source != "prometheus":
                    continue
                due = self._due(spec)
                if now >= due:
                    try:
                        self._pull(spec, now)
                    except Exception:  # a bug in one indicator must not stop the others
                        log.exception("pulling %s failed", spec.name)
                        self._retry_at[spec.name] = now + _retry(spec)
                    due = self._due(spec)
                wait = min(wait, max(due - now, 0.05))
            try:
                self.evaluate()
            except Exception:
                log.exception("evaluation failed")
            self._stop.wait(wait)

    def _due(self, spec: IndicatorSpec) -> float:
        """When the next interval of `spec` can be pulled (later while Prometheus fails)."""
        due = (self._complete[spec.name] + 2) * spec.interval + _delay(spec)
        return max(due, self._retry_at.get(spec.name, 0.0))

    # ---- sources ---------------------------------------------------------------------------
    def _pull(self, spec: IndicatorSpec, now: float, *, strict: bool = False) -> None:
        """Evaluate the query at the end of every interval since the last one taken (a gap after
        an outage included, up to the backfill); each value describes the interval it ends."""
        assert self.prometheus is not None
        first_end = (self._complete[spec.name] + 2) * spec.interval
        last_end = int((now - _delay(spec)) // spec.interval) * spec.interval
        first_end = max(first_end, last_end - self.config.backfill)
        if last_end < first_end:
            return
        try:
            result = self.prometheus.query_range(spec.query, first_end, last_end, spec.interval)
        except PrometheusError as exc:
            self.pull_errors += 1
            if strict:
                raise
            # what was missed is asked for again, in one range query, once it answers
            self._retry_at[spec.name] = now + _retry(spec)
            log.warning("%s: %s; retrying in %g s", spec.name, exc, _retry(spec))
            return
        samples: list[Sample] = []
        paths: list[str] = []
        refusals: list[str] = []
        # Two result series that differ only in labels the indicator does not declare (job,
        # instance) would be averaged into one: refused instead, as Prometheus refuses a rule
        # whose result has duplicate label sets.
        seen: dict[tuple[tuple[tuple[str, str | None], ...], float], int] = {}
        for series in result:
            key = tuple((k, series.labels.get(k)) for k in spec.labels)
            for te, _ in series.points:
                seen[(key, te)] = seen.get((key, te), 0) + 1
        clashes = {k for k, n in seen.items() if n > 1}
        for series in result:
            key = tuple((k, series.labels.get(k)) for k in spec.labels)
            path = f"{spec.name}{labels_text(tuple(sorted(series.labels.items())))}"
            labels = dict(key)
            for te, v in series.points:
                if (key, te) in clashes:
                    refusals.append(
                        f"{path}: the query gives several series for {labels}; aggregate the "
                        f"labels that are not declared, e.g. max by ({', '.join(spec.labels)}) (...)"
                    )
                    continue
                try:
                    samples.append(self.store.sample(path, spec.name, labels, te - spec.interval, v, now=now))
                    paths.append(path)
                except IngestError as exc:
                    refusals.append(str(exc))
        refused = self.store.add(samples, paths, all_or_nothing=False)
        refusals += [str(e) for e in refused]
        self.accepted += len(samples) - len(refused)
        if refusals:
            self.store.refused += len(refusals) - len(refused)
            log.warning(
                "%s: refused %d samples from Prometheus, e.g. %s", spec.name, len(refusals), refusals[0]
            )
        with self.store.lock:
            self._complete[spec.name] = int(last_end // spec.interval) - 1

    def ingest(self, body: object) -> dict[str, int]:
        """Take a push body, all or nothing: `{"observations": [...]}` of metrics
        (`{"type": "metric", "name": ..., "labels": {...}, "value": ..., "at": ...}`, `at`
        optional) and context events (`{"type": "event", ...}` as in `Signals.ingest`).
        IngestError names the field at fault; then nothing is kept."""
        now = self.clock()
        items = observations(body)
        samples: list[Sample] = []
        paths: list[str] = []
        events: list[ContextEvent] = []
        for i, item in enumerate(items):
            path = f"observations[{i}]"
            if not isinstance(item, Mapping):
                raise IngestError(path, f"{path}: must be an object, got {type(item).__name__}")
            kind = item.get("type")
            if kind == "event":
                ob = _one(path, item, now)
                assert isinstance(ob, ContextEvent)
                events.append(ob)
                continue
            if kind != "metric":
                raise IngestError(f"{path}.type", f"{path}.type: must be one of metric, event, got {kind!r}")
            extra = set(item) - {"type", "name", "labels", "value", "at"}
            if extra:
                key = sorted(extra)[0]
                raise IngestError(
                    f"{path}.{key}",
                    f"{path}.{key}: unknown field for type metric; allowed: at, labels, name, type, value",
                )
            if "value" not in item:
                raise IngestError(f"{path}.value", f"{path}.value: required, a finite number")
            at = now if item.get("at") is None else item["at"]
            name, labels = item.get("name"), item.get("labels")
            sample = self.store.sample(path, name, labels, at, item["value"], now=now)
            source = self.specs[sample.indicator].source
            if source == "prometheus":  # one series, one source: Prometheus already holds it
                raise IngestError(
                    f"{path}.name",
                    f"{path}.name: {sample.indicator} is pulled from Prometheus; push is for indicators "
                    'with source = "push" or "file"',
                )
            samples.append(sample)
            paths.append(path)
        with self.store.lock:
            self.store.add(samples, paths, check_only=True)  # raises before keeping anything
            try:
                self.pending.add(samples)  # durable before it is acknowledged
            except sqlite3.Error as exc:
                raise IngestUnavailable(f"body: not stored, retry later ({exc})") from None
            self.store.add(samples, paths)
        self.accepted += len(samples)
        with self.store.lock:
            self._events.extend(events)
        for event in events:  # context, also for the weekly report; a failed write is only logged
            try:
                self.history.record_event(event)
            except sqlite3.Error as exc:
                log.warning("history %s: event not written (%s)", self.history.path, exc)
        self.evaluate(now)
        return {"accepted": len(samples) + len(events)}

    # ---- judging ---------------------------------------------------------------------------
    def _all_series(self) -> list[Series]:
        return [s for per in self.store.series.values() for s in per.values()]

    def evaluate(self, now: float | None = None, *, quiet: bool = False) -> list[Alert]:
        """Judge every interval that closed, in every label set; route the alerts that changed
        (with `quiet`, as for history learnt at start, only resolves of announced alerts)."""
        now = self.clock() if now is None else now
        changed: list[Alert] = []
        rows: list[tuple[str, str, float, float | None, float | None, float | None]] = []
        with self.store.lock:
            for series in self._all_series():
                changed += self._judge_series(series, now, rows)
            for gone in self.store.expire(now):
                for alert in _judge(gone).firing.values():  # a label set that went away resolves
                    changed.append(alert.resolved(now))
                self._judged.append((gone.spec.name, gone.labels, math.inf))
            self._recent.extend(a for a in changed if a.status == "resolved")
            changed = self._admit(changed, now)
            # under the lock: a resolve judged by another thread is never routed before its firing
            for alert in changed:
                if not quiet or alert.status == "resolved":
                    self.router.route(alert)  # writes to the outbox only; a worker delivers
            if not quiet:
                self._mark(self.router.release(now))  # a silence ended while they still fire
        self._write_history(rows, changed)
        self._snapshot_churn(now)
        return changed

    # ---- churn -----------------------------------------------------------------------------
    def _observe_churn(self, series: Series, t: float, value: float) -> None:
        """One judged interval of a churn indicator, for the account it is labelled with (a
        count is per second: the interval holds value x interval events)."""
        assert self.churn is not None
        spec = series.spec
        account = dict(series.labels).get("account")
        if not account:
            return
        amount = value * spec.interval if spec.kind == "count" else value
        try:
            self.churn.observe(account, churn_signal(spec), amount, at=t)
            self._churn_new = True
        except ValueError as exc:  # an amount past the model's bound: named, the point stays judged
            log.warning("churn: %s%s not counted (%s)", spec.name, labels_text(series.labels), exc)

    def _snapshot_churn(self, now: float) -> None:
        """Keep the accounts most at risk (with who they are) in history, so the weekly view
        names them and can tell who recovered: when a business day begins, and again when
        accounts were observed since (at most every `_CHURN_EVERY` seconds)."""
        if self.churn is None:
            return
        day = math.floor((now + self.config.churn.utc_offset * 3600.0) / DAY)
        if day == self._churn_day and not (self._churn_new and now - self._churn_at >= _CHURN_EVERY):
            return
        try:
            self.history.record_churn(now, self.churn.top(self.config.churn.top, at=now))
        except sqlite3.Error as exc:
            log.warning("history %s: churn snapshot not written (%s); will retry", self.history.path, exc)
            return
        self._churn_day, self._churn_at, self._churn_new = day, now, False

    def _admit(self, changed: list[Alert], now: float) -> list[Alert]:
        """Mark what silences hold back (or what breaks through an experiment's)."""
        admitted = [self.router.admit(a, now) for a in changed]
        self._mark([a for a in admitted if a.status == "firing"])
        return admitted

    def _mark(self, alerts: list[Alert]) -> None:
        """Put the admitted version of firing alerts where `alerts()` reads them."""
        by_id = {a.id: a for a in alerts}
        if not by_id:
            return
        for series in self._all_series():
            firing = _judge(series).firing
            for key, alert in firing.items():
                if alert.id in by_id:
                    firing[key] = by_id[alert.id]
            group = _judge(series).burn_group
            if group is not None and group.alert is not None and group.alert.id in by_id:
                group.alert = by_id[group.alert.id]

    # ---- context -----------------------------------------------------------------------------
    def add_event(
        self,
        kind: str,
        *,
        target: str,
        description: str = "",
        region: str | None = None,
        at: float | None = None,
    ) -> ContextEvent:
        """Report something that may explain an alert (as an ingested `event`): chaos, experiment,
        zone_outage, breaker, deploy, note or fit. A chaos `Experiment` can use the service as its
        `context`. ValueError names the field at fault."""
        event = ContextEvent(self.clock() if at is None else at, kind, target, description, region)
        with self.store.lock:
            self._events.append(event)
        try:
            self.history.record_event(event)
        except sqlite3.Error as exc:  # context for the report; a failed write is only logged
            log.warning("history %s: event not written (%s)", self.history.path, exc)
        return event

    def watch_audit(self, audit: Any) -> Callable[[], None]:
        """Turn every entry of a chaos `AuditLog` into a context event (see `Signals.watch_audit`)."""
        return watch_audit(audit, self.add_event)

    def _last_closed(self, series: Series, now: float) -> int:
        spec = series.spec
        if spec.source == "prometheus":
            return self._complete.get(spec.name, series.index(now) - 1)
        timed_out = series.index(now - spec.lateness) - 1
        if series.newest is None:
            return timed_out
        # the source moved past a bucket: judge it after a short grace for stragglers
        moved = min(series.newest - 1, series.index(now - min(spec.lateness, 0.25 * spec.interval)) - 1)
        if series.arrived is not None and now - series.arrived < spec.lateness:
            # still sending (a live stream, or history in batches): wait for it to move on
            return moved
        return max(timed_out, moved)

    def _judge_series(self, series: Series, now: float, rows: list[Any]) -> list[Alert]:
        spec = series.spec
        judge = _judge(series)
        last = self._last_closed(series, now)
        if series.judged is not None:
            start = series.judged + 1
        elif series.buckets:
            start = min(series.buckets)
        else:
            return []
        # bounded: never walk more buckets than the retention holds
        start = max(start, last - int(self.store.retention // spec.interval))
        changed: list[Alert] = []
        name, text = spec.name, labels_text(series.labels)
        for idx in range(start, last + 1):
            t = idx * spec.interval
            value = series.take(idx)
            if spec.churn:
                # judged per account by the churn model (its own rhythm, its peers), not by a
                # detector: one alert per quiet customer would bury the real incidents
                if value is not None and value > 0 and self.churn is not None:
                    self._observe_churn(series, t, value)
                rows.append((name, text, t, value, None, None))
                continue
            d = judge.detector.step(value, t)
            judge.points.append((t, value, d.expected, d.lower, d.upper, d.evidence))
            rows.append((name, text, t, value, d.expected, d.bound))
            if d.started:
                alert = self._drop_alert(series, d)
                judge.firing["drop"] = alert
                changed.append(alert)
            elif d.ended and "drop" in judge.firing:
                changed.append(judge.firing.pop("drop").resolved(t))
            if spec.slo is not None and value is not None:
                changed += self._burn(series, judge, t, value)
            changed += self._no_data(series, judge, t, value)
        for old in [i for i in series.buckets if i < start]:
            del series.buckets[old]  # older than the retention: nothing can judge them
        if last >= start:
            series.judged = last
            if spec.source != "prometheus":
                self._judged.append((name, series.labels, (last + 1) * spec.interval))
        return changed

    def _burn(self, series: Series, judge: _Judge, t: float, value: float) -> list[Alert]:
        """Multi-window burn rates of the bad fraction (each point weighs the same)."""
        spec = series.spec
        assert spec.slo is not None
        bad = value if spec.direction != "down" else 1.0 - value
        total = (judge.burn_sum[-1] if judge.burn_sum else 0.0) + bad
        judge.burn_t.append(t)
        judge.burn_sum.append(total)
        horizon = max(r.long for r in self.burn_rules)
        if len(judge.burn_t) > 2 * (horizon / spec.interval) + 16:
            cut = _index_at(judge.burn_t, t - horizon)
            del judge.burn_t[:cut]
            del judge.burn_sum[:cut]
        budget = 1.0 - spec.slo
        windows = []
        for rule in self.burn_rules:
            long_burn = _mean_since(judge, t - rule.long) / budget
            short_burn = _mean_since(judge, t - rule.short) / budget
            # a window needs to be mostly covered by data before it can page
            covered = t - judge.burn_t[0] >= 0.9 * rule.long
            windows.append(BurnWindow(rule, rule.long, rule.short, long_burn, short_burn, covered))
        if judge.burn_group is None:
            judge.burn_group = BurnGroup(self.grouping)

        def make(active: list[BurnWindow], severity: str, starts_at: float) -> Alert:
            return self._burn_alert(series, active, severity, starts_at)

        def level(rule: BurnRateRule) -> str:
            return spec.severity if rule.severity == "page" else "warning"

        changed = judge.burn_group.step(t, windows, make, level)
        for alert in changed:
            if alert.status == "resolved":
                judge.firing.pop("burn", None)
            else:
                judge.firing["burn"] = alert
        return changed

    def _no_data(self, series: Series, judge: _Judge, t: float, value: float | None) -> list[Alert]:
        """One alert when a label set that had data goes silent for three intervals (or its
        lateness), resolved when data is back: silence is never judged as normal."""
        spec = series.spec
        if value is not None:
            judge.last_data = t
            if "no_data" in judge.firing:
                return [judge.firing.pop("no_data").resolved(t)]
            return []
        if judge.last_data is None or "no_data" in judge.firing:
            return []
        since = judge.last_data + spec.interval
        if t + spec.interval - since < max(3 * spec.interval, spec.lateness):
            return []
        text = labels_text(series.labels)
        where = (
            "Prometheus (check the query and the targets it scrapes)"
            if spec.source == "prometheus"
            else "its sender (check that it runs and can reach Stoic)"
        )
        alert = Alert(
            id=alert_id("no_data", spec.name, text),
            kind="no_data",
            status="firing",
            severity="warning",
            indicator=spec.name,
            region=dict(series.labels).get("region", ""),
            team=spec.team,
            receivers=self.receiver_names,
            summary=f"No data for {spec.name}{text} since {clock_time(since)}",
            cause="Nothing arrived for this label set: the source or the pipeline that sends it stopped. "
            "It is not judged as a drop.",
            next_step=f"Look at {where}; {spec.team} owns {spec.name}.",
            starts_at=t,
            labels=dict(series.labels),
            runbook_url=spec.runbook_url,
        )
        judge.firing["no_data"] = alert
        return [alert]

    # ---- alerts ----------------------------------------------------------------------------
    def _context(self, series: Series, at: float) -> tuple[str, str, str]:
        """(region, cause, next step) for an alert starting at `at`."""
        spec = series.spec
        labels = dict(series.labels)
        region = labels.get("region", "")
        lookback = 15 * spec.interval
        events = list(self._events)
        cause = likely_cause(events, region or "global", at, lookback=lookback, lead=spec.interval)
        links = chain(events, region or "global", at, lookback=lookback, lead=spec.interval)
        cause_text, suggested = _explain(cause, region or "this service", at, lookback, spec.team, links)
        next_step = spec.next_step if cause is None or spec.next_step != DEFAULT_NEXT_STEP else suggested
        return region, cause_text, next_step

    def _drop_alert(self, series: Series, d: Detection) -> Alert:
        spec = series.spec
        labels = dict(series.labels)
        region, cause, next_step = self._context(series, d.at)
        value, expected = d.value or 0.0, d.expected or 0.0
        fields: dict[str, Any] = dict(labels)
        fields.update(
            indicator=spec.name,
            value=value,
            expected=expected,
            change=d.change,
            unit=spec.unit,
            team=spec.team,
            since=clock_time(d.at),
            labels=labels_text(series.labels),
        )
        side = "above" if d.move == "up" else "below"
        band = d.upper if d.move == "up" else d.lower
        description = (
            f"{spec.name}{labels_text(series.labels)} is {value:.4g} {spec.unit}, {d.change:.0%} {side} the "
            f"expected {expected:.4g} (band edge {band if band is None else round(band, 6)}), "
            f"anomaly score {d.evidence:.2f}, since {clock_time(d.at)}."
        )
        return Alert(
            id=alert_id("drop", spec.name, labels_text(series.labels)),
            kind="drop",
            status="firing",
            severity=spec.severity,
            indicator=spec.name,
            region=region,
            team=spec.team,
            receivers=self.receiver_names,
            summary=spec.summary.format(**fields),
            cause=cause,
            next_step=next_step,
            starts_at=d.at,
            value=d.value,
            expected=d.expected,
            labels=labels,
            description=description,
            runbook_url=spec.runbook_url,
        )

    def _burn_alert(self, series: Series, windows: list[BurnWindow], severity: str, t: float) -> Alert:
        """One alert for the burn-rate rules active on a label set (`stoic.signals.grouping`)."""
        spec = series.spec
        assert spec.slo is not None
        region, cause, next_step = self._context(series, t)
        lead = windows[0]
        rule, short_burn = lead.rule, lead.short_burn
        others = [f"{_span(w.rule.long)}/{_span(w.rule.short)}" for w in windows[1:]]
        also = f"; also {', '.join(others)}" if others else ""
        summary = (
            f"{spec.name}{labels_text(series.labels)} is burning the {spec.slo:.3%} SLO error budget "
            f"{short_burn:.1f}x faster than sustainable (over {_span(rule.long)} and {_span(rule.short)}"
            f"{also}) as of {clock_time(t)}"
        )
        return Alert(
            id=alert_id("burn_rate", spec.name, labels_text(series.labels)),
            kind="burn_rate",
            status="firing",
            severity=severity,
            indicator=spec.name,
            region=region,
            team=spec.team,
            receivers=self.receiver_names,
            summary=summary,
            cause=cause,
            next_step=next_step,
            starts_at=t,
            value=short_burn,
            expected=rule.factor,
            labels={**dict(series.labels), "slo": f"{spec.slo:g}"},
            description=burn_description(windows),
            runbook_url=spec.runbook_url,
        )

    def _write_history(self, rows: list[Any], alerts: list[Alert]) -> None:
        """Write rows and alerts, what earlier failed first; a locked database is retried at the
        next evaluation, never raised. Pushed samples are forgotten only once their points are
        in history. History older than `keep_days` is pruned once an hour."""
        try:
            self.history.maybe_prune(self.clock())
        except sqlite3.Error as exc:
            log.warning("history %s: prune failed (%s); will retry", self.history.path, exc)
        with self.store.lock:
            if rows or alerts:
                self._backlog.append((rows, alerts))
            while len(self._backlog) > _MAX_HISTORY_BACKLOG:
                self._backlog.popleft()
                log.error("history backlog full: dropped the oldest evaluation's rows")
            while self._backlog:
                rows, alerts = self._backlog[0]
                try:
                    if rows:
                        self.history.record_points(rows)
                        rows.clear()
                    while alerts:
                        self.history.record_alert(alerts[0])
                        alerts.pop(0)
                except sqlite3.Error as exc:
                    log.warning("history %s: write failed (%s); will retry", self.history.path, exc)
                    return
                self._backlog.popleft()
            judged, self._judged = self._judged, []
            for i, (name, labels, until) in enumerate(judged):
                try:
                    self.pending.judged(name, labels, until)
                except sqlite3.Error as exc:
                    log.warning("pending samples %s: not trimmed (%s); will retry", self.pending.path, exc)
                    self._judged = judged[i:] + self._judged
                    return

    # ---- reading (the web layer's source) --------------------------------------------------
    def alerts(self) -> list[dict[str, object]]:
        """Firing alerts (newest first), then recently resolved ones."""
        with self.store.lock:
            firing = [a for s in self._all_series() for a in _judge(s).firing.values()]
            resolved = list(self._recent)
        firing.sort(key=lambda a: -a.starts_at)
        resolved.sort(key=lambda a: -(a.ends_at or 0.0))
        return [a.to_dict() for a in firing] + [a.to_dict() for a in resolved]

    def view(self, window: float = 3600.0) -> dict[str, Any]:
        """Recent points of every label set with what was expected, and the alerts (JSON-ready)."""
        now = self.clock()
        since = now - window
        series_out = []
        with self.store.lock:
            for s in self._all_series():
                if s.spec.churn:  # one series per customer: named only in the churn list, by token
                    continue
                judge = _judge(s)
                series_out.append(
                    {
                        "indicator": s.spec.name,
                        "region": labels_text(s.labels) or "all",
                        "labels": dict(s.labels),
                        "label": s.spec.name,
                        "unit": s.spec.unit,
                        "direction": s.spec.direction,
                        "team": s.spec.team,
                        "points": [
                            {"t": t, "value": v, "expected": e, "lower": lo, "upper": hi, "score": sc}
                            for t, v, e, lo, hi, sc in judge.points
                            if t >= since
                        ],
                    }
                )
            events = [e.to_dict() for e in self._events if e.at >= since]
        view: dict[str, Any] = {"interval": self.interval, "now": now, "series": series_out}
        view.update(alerts=self.alerts(), events=events)
        if self.churn is not None:  # who is at risk, for the operator's churn panel
            view["churn"] = [r.to_dict() for r in self.churn.top(10, at=now)]
        return view

    def close(self, timeout: float = 5.0) -> None:
        """Stop polling, stop the delivery worker (undelivered alerts stay in the outbox for the
        next process) and close history."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.router.close(timeout)
        if self.prometheus is not None:
            self.prometheus.close()
        self.history.close()
        self.pending.close()


def churn_model(config: SignalsConfig, clock: Callable[[], float]) -> ChurnRisk | None:
    """The churn model the indicators file declares (indicators with `churn = ...`), with the
    accounts of `[churn] accounts`; None when no indicator declares churn."""
    roles: dict[str, list[str]] = {"activity": [], "problem": [], "own_error": []}
    for spec in config.indicators:
        if spec.churn:
            roles[spec.churn].append(churn_signal(spec))
    if not roles["activity"]:
        return None
    accounts = config.path(config.churn.accounts) if config.churn.accounts else None
    return ChurnRisk(
        activity=roles["activity"],
        problems=roles["problem"],
        own_errors=roles["own_error"],
        accounts=accounts,
        utc_offset=config.churn.utc_offset,
        alert_at=config.churn.alert_at,
        max_accounts=max(100_000, sum(s.max_series for s in config.indicators if s.churn)),
        clock=clock,
    )


def _judge(series: Series) -> _Judge:
    """The judging state of a label set, made on first use (its own detector)."""
    if series.state is None:
        spec = series.spec
        series.state = _Judge(
            Detector(
                spec.interval,
                direction=spec.direction,
                count=spec.kind in ("count", "latency"),
                per_event=1.0 / spec.interval if spec.events else None,  # a count is per second
                # a season needs two intervals at least: a daily indicator learns the week only
                seasons=tuple(s for s in (DAY, 7 * DAY) if s >= 2 * spec.interval),
                warmup=min(60, max(5, int(3600 // spec.interval))),
            ),
            deque(maxlen=_POINTS_SHOWN),
        )
    assert isinstance(series.state, _Judge)
    return series.state


def _delay(spec: IndicatorSpec) -> float:
    """How long after an interval ends it is queried: time for the last scrape to land."""
    return min(0.25 * spec.interval, 5.0)


def _retry(spec: IndicatorSpec) -> float:
    """Seconds before a failed pull is tried again: a few times per interval, at most 30 s."""
    return min(max(spec.interval / 4, 1.0), 30.0)


def _index_at(times: list[float], t: float) -> int:
    return bisect_left(times, t)


def _mean_since(judge: _Judge, since: float) -> float:
    i = _index_at(judge.burn_t, since)
    n = len(judge.burn_t) - i
    if n <= 0:
        return 0.0
    before = judge.burn_sum[i - 1] if i > 0 else 0.0
    return (judge.burn_sum[-1] - before) / n


def _span(seconds: float) -> str:
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{seconds / 86400:g}d"
    if seconds >= 3600:
        return f"{seconds / 3600:g}h"
    return f"{seconds / 60:g}m"

