"""Routing alerts to webhook receivers as Alertmanager-compatible JSON, with dedup and resolves."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from stoic.signals import _validate
from stoic.signals.alerts import Alert


@dataclass(frozen=True, slots=True)
class WebhookReceiver:
    """A named receiver: alerts for teams that list `name` are POSTed to `url`."""

    name: str
    url: str
    timeout: float = 2.0

    def __post_init__(self) -> None:
        _validate.text("receiver.name", self.name, max_len=100)
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"receiver.url: must be an http:// or https:// URL, got {self.url!r}")
        _validate.number("receiver.timeout", self.timeout, low=0.0, high=60.0, low_open=True)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt to deliver a notification (kept for the dashboard and tests)."""

    at: float
    receiver: str
    alert_id: str
    status: str
    ok: bool
    error: str = ""


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


Post = Callable[[WebhookReceiver, dict[str, object]], None]


def _post(receiver: WebhookReceiver, payload: dict[str, object]) -> None:
    response = httpx.post(receiver.url, json=payload, timeout=receiver.timeout)
    response.raise_for_status()


class AlertRouter:
    """Sends each alert to its team's receivers: once when it starts firing, again only after
    `repeat_interval` seconds while it keeps firing, and once when it resolves."""

    def __init__(
        self,
        receivers: list[WebhookReceiver] | None = None,
        *,
        repeat_interval: float = 4 * 3600.0,
        external_url: str = "",
        post: Post = _post,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.receivers = {r.name: r for r in receivers or []}
        self.repeat_interval = _validate.number("repeat_interval", repeat_interval, low=0.0)
        self.external_url = external_url
        self._post = post
        self.clock = clock
        self._lock = threading.Lock()
        self._sent: dict[tuple[str, str], tuple[str, float]] = {}  # (alert, receiver) -> (status, at)
        self.deliveries: deque[Delivery] = deque(maxlen=500)

    def add(self, receiver: WebhookReceiver) -> None:
        with self._lock:
            self.receivers[receiver.name] = receiver

    def due(self, alert: Alert) -> list[WebhookReceiver]:
        """The receivers that should hear about `alert` now (dedup by id and status)."""
        now = self.clock()
        out = []
        with self._lock:
            for name in alert.receivers:
                receiver = self.receivers.get(name)
                if receiver is None:
                    continue
                last = self._sent.get((alert.id, name))
                if alert.status == "resolved":
                    # resolve only what was announced, and only once
                    if last is None or last[0] == "resolved":
                        continue
                elif last is not None and last[0] == "firing" and now - last[1] < self.repeat_interval:
                    continue
                self._sent[(alert.id, name)] = (alert.status, now)
                out.append(receiver)
            if len(self._sent) > 10_000:  # bounded: forget the oldest resolved entries
                for key in [k for k, v in self._sent.items() if v[0] == "resolved"][:5_000]:
                    del self._sent[key]
        return out

    def send(self, alert: Alert) -> list[Delivery]:
        """Deliver `alert` to whoever is due; errors are recorded, never raised."""
        results = []
        for receiver in self.due(alert):
            payload = alertmanager_payload([alert], receiver.name, external_url=self.external_url)
            try:
                self._post(receiver, payload)
                d = Delivery(self.clock(), receiver.name, alert.id, alert.status, True)
            except (httpx.HTTPError, OSError) as exc:
                d = Delivery(
                    self.clock(), receiver.name, alert.id, alert.status, False, f"{type(exc).__name__}: {exc}"
                )
            self.deliveries.append(d)
            results.append(d)
        return results
