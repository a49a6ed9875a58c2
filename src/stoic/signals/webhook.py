"""Routing alerts to webhook receivers as Alertmanager-compatible JSON, through a durable outbox.

`AlertRouter.route` only writes notifications to the outbox; a background worker delivers them
with retries and re-sends firing alerts, so the caller's thread never waits on a receiver.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from stoic.signals import _validate
from stoic.signals import alertmanager as am
from stoic.signals.alerts import Alert, iso
from stoic.signals.outbox import DeliveryRetry, Notification, Outbox, Row
from stoic.signals.silences import Silence, Silences

log = logging.getLogger("stoic.signals.webhook")

# Alertmanager expects a client to re-send firing alerts every 30 s to 3 min.
REPEAT_INTERVAL = 60.0
APIS = ("webhook", "alertmanager", "slack")


@dataclass(frozen=True, slots=True)
class WebhookReceiver:
    """A named receiver: alerts for teams that list `name` are POSTed to `url`.

    `timeout` bounds one POST; `repeat_interval` (seconds) overrides the router's interval
    between re-sends of a firing alert to this receiver. `api` is "webhook" (the Alertmanager
    webhook body, for chat bridges and on-call tools), "slack" (a Slack incoming-webhook body,
    `{"text": ...}`, which Mattermost, Rocket.Chat and Teams' Slack connectors also take) or
    "alertmanager" (`url` is an Alertmanager's `/api/v2/alerts`; see
    `stoic.signals.alertmanager.alertmanager_receiver`).
    """

    name: str
    url: str
    timeout: float = 2.0
    repeat_interval: float | None = None
    api: str = "webhook"

    def __post_init__(self) -> None:
        _validate.choice("receiver.api", self.api, APIS)
        _validate.text("receiver.name", self.name, max_len=100)
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"receiver.url: must be an http:// or https:// URL, got {self.url!r}")
        _validate.number("receiver.timeout", self.timeout, low=0.0, high=60.0, low_open=True)
        if self.repeat_interval is not None:
            _validate.number("receiver.repeat_interval", self.repeat_interval, low=1.0, high=7 * 86400.0)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt to deliver a notification (kept for the dashboard and tests); `key` is the
    notification's dedup key (alert id, status, start)."""

    at: float
    receiver: str
    alert_id: str
    status: str
    ok: bool
    error: str = ""
    key: str = ""


def alertmanager_payload(alerts: list[Alert], receiver: str, *, external_url: str = "") -> dict[str, object]:
    """The Alertmanager webhook (version 4) body for one group of alerts."""
    firing = any(a.status == "firing" for a in alerts)
    labels = [a.to_alertmanager(external_url)["labels"] for a in alerts]
    common = {k: v for k, v in labels[0].items() if all(lab.get(k) == v for lab in labels)} if labels else {}
    group_labels = {k: common[k] for k in ("alertname", "region") if k in common}
    annotations = [a.to_alertmanager()["annotations"] for a in alerts]
    common_ann = (
        {k: v for k, v in annotations[0].items() if all(an.get(k) == v for an in annotations)}
        if annotations
        else {}
    )
    return {
        "version": "4",
        "groupKey": "{}:{" + ", ".join(f'{k}="{v}"' for k, v in sorted(group_labels.items())) + "}",
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": common,
        "commonAnnotations": common_ann,
        "externalURL": external_url,
        "alerts": [a.to_alertmanager(external_url) for a in alerts],
    }


def slack_payload(alerts: list[Alert]) -> dict[str, object]:
    """A Slack incoming-webhook body for one group of alerts: one `text`, firing first, each
    alert as its summary, cause and next step."""
    lines = []
    for a in sorted(alerts, key=lambda a: a.status != "firing"):
        mark = "RESOLVED" if a.status == "resolved" else a.severity.upper()
        lines.append(f"*[{mark}] {a.summary}*")
        if a.status == "firing":
            lines.append(f"Cause: {a.cause}")
            lines.append(f"Next: {a.next_step}")
            if a.runbook_url:
                lines.append(f"Runbook: {a.runbook_url}")
    return {"text": "\n".join(lines)}


Post = Callable[[WebhookReceiver, dict[str, object]], None]


def _post(receiver: WebhookReceiver, payload: dict[str, object]) -> None:
    if am.SILENCE in payload:  # a silence for Alertmanager, next to its alerts API
        url = am.silences_url(receiver.url)
        response = httpx.post(url, json=payload[am.SILENCE], timeout=receiver.timeout)
        response.raise_for_status()
        return
    # Alertmanager's API takes a bare list; the outbox keeps it inside an object
    body = payload.get(am.BODY, payload)
    response = httpx.post(receiver.url, json=body, timeout=receiver.timeout)
    response.raise_for_status()


class AlertRouter:
    """Sends each alert to its team's receivers through a durable outbox.

    `route(alert)` writes one notification per receiver to the outbox and returns at once; a
    background worker delivers it, retrying with exponential backoff (`retry`). A firing alert
    is re-sent every `repeat_interval` seconds (or the receiver's own) until it resolves; the
    resolve is sent once, with its end time, and only to receivers that were told it fired.
    Delivery is at least once: a receiver may see a notification again (same fingerprint and
    `startsAt`) after a failure or a restart, never zero times while the outbox is kept.

    `outbox` is an `Outbox` or a path to its SQLite file; None keeps notifications in memory,
    lost on restart. Notifications a previous process left undelivered in the same file are
    delivered by this one.

    `silences` (a `Silences`): a firing alert that `admit` marks as silenced is held, not
    written to the outbox; `release` delivers it if it still fires when its silence ends. Every
    silence added to it is also posted to each Alertmanager receiver's `/api/v2/silences`,
    through the outbox (retried like any notification).
    """

    def __init__(
        self,
        receivers: list[WebhookReceiver] | None = None,
        *,
        repeat_interval: float = REPEAT_INTERVAL,
        external_url: str = "",
        post: Post = _post,
        clock: Callable[[], float] = time.time,
        outbox: Outbox | str | Path | None = None,
        retry: DeliveryRetry | None = None,
        poll: float = 1.0,
        silences: Silences | None = None,
    ) -> None:
        self.receivers = {r.name: r for r in receivers or []}
        self.repeat_interval = _validate.number("repeat_interval", repeat_interval, low=1.0, high=7 * 86400.0)
        self.poll = _validate.number("poll", poll, low=0.01, high=60.0)
        self.external_url = external_url
        self.retry = retry if retry is not None else DeliveryRetry()
        self._post = post
        self.clock = clock
        self._lock = threading.Lock()
        self.deliveries: deque[Delivery] = deque(maxlen=500)
        self.outbox = outbox if isinstance(outbox, Outbox) else Outbox(outbox)
        self._owner = uuid.uuid4().hex
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._passes = 0
        self.silences = silences if silences is not None else Silences(clock=clock)
        self.silences.listen(self._mirror_silence)
        self.held: dict[str, Alert] = {}  # alert id -> a firing alert a silence holds back
        self.silenced: deque[dict[str, object]] = deque(maxlen=500)  # what was held, newest last
        self.silenced_count = 0  # every firing alert held back since start
        if self.outbox.restart(clock(), owner=self._owner):
            self.start()  # a previous process left pages undelivered

    def add(self, receiver: WebhookReceiver) -> None:
        with self._lock:
            self.receivers[receiver.name] = receiver

    # ---- silences ------------------------------------------------------------------------------
    def admit(self, alert: Alert, now: float | None = None) -> Alert:
        """`alert` as it will be routed: a firing alert an active silence matches is marked
        `silenced_by` (a maintenance window is also named as its cause); one raised beyond the
        blast radius of a running experiment says so, naming the experiment and its kill switch."""
        if alert.status != "firing":
            return alert
        now = self.clock() if now is None else now
        labels = alert.label_set()
        silence = self.silences.silencing(labels, now)
        if silence is not None:
            cause = alert.cause
            if silence.kind == "maintenance" and silence.comment not in cause:
                cause = f"Announced maintenance: {silence.comment} (by {silence.created_by}). {cause}"
            return replace(alert, silenced_by=silence.id, cause=cause)
        notes = [
            f"Beyond the expected blast radius of {s.comment} ({s.describe()}): "
            f"stop it with {s.kill_switch or 'its kill switch'}."
            for s in self.silences.exceeded(labels, now)
        ]
        if not notes or notes[0] in alert.cause:
            return replace(alert, silenced_by="")
        return replace(alert, silenced_by="", cause=" ".join([*notes, alert.cause]))

    def release(self, now: float | None = None) -> list[Alert]:
        """Route the held alerts whose silence has ended (or no longer matches); returns them."""
        now = self.clock() if now is None else now
        with self._lock:
            held = list(self.held.values())
        out = []
        for alert in held:
            again = self.admit(alert, now)
            if not again.silenced_by:
                with self._lock:
                    self.held.pop(alert.id, None)
                self.route(again)
                out.append(again)
        return out

    def _mirror_silence(self, silence: Silence) -> None:
        with self._lock:
            managers = [r for r in self.receivers.values() if r.api == "alertmanager"]
        notes = [
            Notification(
                r.name,
                f"silence:{silence.id}",
                "silence",
                silence.starts_at,
                r.url,
                r.timeout,
                {am.SILENCE: silence.to_alertmanager(iso)},
            )
            for r in managers
        ]
        if notes:
            self.outbox.put(notes, owner=self._owner, now=self.clock())
            self.start()
            self._wake.set()

    # ---- the caller's side: fast, no network ------------------------------------------------
    def route(self, alert: Alert) -> int:
        """Write `alert` to the outbox for each of its receivers and wake the worker; returns how
        many notifications were written. Never does network I/O, never raises for delivery. A
        firing alert marked `silenced_by` (see `admit`) is held instead: recorded, not sent."""
        if alert.status == "firing" and alert.silenced_by:
            with self._lock:
                self.held[alert.id] = alert
                self.silenced_count += 1
            self.silenced.append(
                {
                    "at": self.clock(),
                    "alert_id": alert.id,
                    "summary": alert.summary,
                    "silence": alert.silenced_by,
                }
            )
            return 0
        if alert.status == "resolved":
            with self._lock:
                self.held.pop(alert.id, None)
        count = self._enqueue(alert)
        if count:
            self.start()
            self._wake.set()
        return count

    def _enqueue(self, alert: Alert) -> int:
        notes = []
        with self._lock:
            receivers = [self.receivers[n] for n in alert.receivers if n in self.receivers]
        for receiver in receivers:
            if alert.status == "resolved" and not self.outbox.announced(
                receiver.name, alert.id, alert.starts_at
            ):
                continue  # resolve only what was announced
            repeat = receiver.repeat_interval or self.repeat_interval
            if receiver.api == "alertmanager":
                payload = am.payload([alert], self.external_url)
            elif receiver.api == "slack":
                payload = slack_payload([alert])
            else:
                payload = alertmanager_payload([alert], receiver.name, external_url=self.external_url)
            notes.append(
                Notification(
                    receiver.name,
                    alert.id,
                    alert.status,
                    alert.starts_at,
                    receiver.url,
                    receiver.timeout,
                    payload,
                    repeat,
                    alert.revision,
                )
            )
        self.outbox.put(notes, owner=self._owner, now=self.clock())
        return len(notes)

    def send(self, alert: Alert) -> list[Delivery]:
        """Write `alert` to the outbox and deliver what is due for it now, on this thread (for
        scripts and tests; `Signals` uses `route`). Errors are recorded, never raised."""
        self._enqueue(alert)
        return self.deliver(alert_id=alert.id)

    # ---- the worker's side ---------------------------------------------------------------
    def deliver(self, *, alert_id: str | None = None) -> list[Delivery]:
        """One delivery pass over what is due now (optionally only for `alert_id`). A receiver
        that fails is skipped for the rest of the pass, so a dead receiver costs one timeout per
        pass, not one per alert."""
        self.outbox.flush_spool()
        now = self.clock()
        failed: set[str] = set()
        results = []
        for row in self.outbox.due(now, owner=self._owner, alert_id=alert_id):
            if row.notification.receiver in failed:
                continue
            if self._stop.is_set() and threading.current_thread() is self._worker:
                break  # closing: what is left stays in the outbox
            d = self._attempt(row, now)
            if d is None:
                continue
            if not d.ok:
                failed.add(d.receiver)
            self.deliveries.append(d)
            results.append(d)
        self._passes += 1
        if self._passes % 1000 == 1:
            self.outbox.prune(now)
        return results

    def _attempt(self, row: Row, now: float) -> Delivery | None:
        n = row.notification
        with self._lock:
            receiver = self.receivers.get(n.receiver)
        if receiver is None:  # written by a process that knew this receiver
            receiver = WebhookReceiver(n.receiver, n.url, n.timeout)
        # the lease covers the real time a POST may take, even under an injected clock that
        # runs behind (or jumps ahead of) the wall: no other thread claims it while in flight
        if not self.outbox.claim(row.seq, now, max(now, time.time()) + receiver.timeout + 30.0):
            return None
        error = ""
        try:
            self._post(receiver, n.payload)
        except Exception as exc:  # network errors, and a custom `post` must not kill the worker
            error = f"{type(exc).__name__}: {exc}"
        at = self.clock()
        if not error:
            self.outbox.delivered(row.seq, at)
        else:
            attempts = row.attempts + 1
            if at - row.created >= self.retry.give_up_after:
                log.error(
                    "gave up delivering %s to %s after %d attempts: %s", n.key, n.receiver, attempts, error
                )
                next_at = None
            else:
                next_at = at + self.retry.delay(attempts)
                log.warning(
                    "delivery of %s to %s failed (attempt %d): %s", n.key, n.receiver, attempts, error
                )
            self.outbox.failed(row.seq, error, next_at)
        return Delivery(at, n.receiver, n.alert_id, n.status, not error, error, n.key)

    def start(self) -> None:
        """Start the background worker (idempotent; `route` starts it when needed)."""
        with self._lock:
            if self._worker is not None or self._stop.is_set():
                return
            self._worker = threading.Thread(target=self._run, name="stoic-alert-delivery", daemon=True)
            self._worker.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.deliver()
                next_at = self.outbox.next_due(owner=self._owner)
            except Exception:  # the outbox was closed under us, or the disk failed: log, keep going
                if self._stop.is_set():
                    return
                log.exception("alert delivery pass failed")
                next_at = None
            wait = self.poll if next_at is None else min(max(next_at - self.clock(), 0.05), self.poll)
            self._wake.wait(wait)

    def flush(self, timeout: float = 10.0) -> int:
        """Deliver what is due now, on this thread too, until nothing is due (or `timeout`
        seconds pass); returns how many notifications are still undelivered (some may be
        waiting for a retry)."""
        deadline = time.monotonic() + _validate.number("timeout", timeout, low=0.0, high=3600.0)
        while True:
            self.deliver()
            if self.outbox.due_count(self.clock(), owner=self._owner) == 0 or time.monotonic() >= deadline:
                return self.outbox.undelivered()
            self._stop.wait(0.02)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker (waiting at most `timeout` seconds for a delivery in flight) and close
        the outbox; undelivered notifications stay in it for the next process."""
        self._stop.set()
        self._wake.set()
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
            if worker.is_alive():
                log.warning("alert delivery still in flight after %.1f s; it stays in the outbox", timeout)
        left = self.outbox.undelivered()
        if left:
            log.warning("%d notifications undelivered; kept in outbox %s", left, self.outbox.path)
        self.outbox.close()
