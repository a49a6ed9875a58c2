"""Alertmanager as a receiver, following its client contract (`POST /api/v2/alerts`).

A client posts a list of alerts; each is identified by its label set. A firing alert is posted
again every 30 s to 3 min while it fires (Alertmanager resolves an alert it has not heard of for
`resolve_timeout`), with no `endsAt`; a resolved one is posted once with `endsAt`. The posts go
through the durable outbox like every other notification (`AlertRouter`), so they survive a
restart and are retried until Alertmanager answers.

```python
from stoic.signals.alertmanager import alertmanager_receiver

receiver = alertmanager_receiver("http://127.0.0.1:9093")
print(receiver.url)     # http://127.0.0.1:9093/api/v2/alerts
```
"""

from __future__ import annotations

from typing import Any

from stoic.signals.alerts import Alert, iso

# The key under which a notification's payload holds the list Alertmanager expects; the
# outbox stores objects, Alertmanager's API takes a bare list.
BODY = "alertmanager_v2_alerts"
API_PATH = "/api/v2/alerts"
# The key under which a notification holds a silence for `POST /api/v2/silences`.
SILENCE = "alertmanager_v2_silence"
SILENCES_PATH = "/api/v2/silences"


def alertmanager_receiver(url: str, *, name: str = "alertmanager", timeout: float = 5.0) -> Any:
    """A `WebhookReceiver` that posts to the Alertmanager at `url` (its base URL) through its
    v2 API; re-sends follow the router's `repeat_interval` (keep it within 30 s..3 min)."""
    from stoic.signals.webhook import WebhookReceiver

    base = url.rstrip("/")
    if base.endswith(API_PATH):
        base = base[: -len(API_PATH)]
    return WebhookReceiver(name, base + API_PATH, timeout, api="alertmanager")


def alertmanager_alert(alert: Alert, generator_url: str = "") -> dict[str, object]:
    """`alert` as one element of the `POST /api/v2/alerts` list.

    Labels: `alertname`, `team`, `severity`, `indicator`, the region when there is one, and the
    alert's own dimensions. Annotations: `summary`, `description`, `next_step`, `cause`, and
    `runbook_url` when set. Empty values are left out (Alertmanager treats them as absent)."""
    labels = alert.label_set()
    annotations = {
        "summary": alert.summary,
        "description": alert.description or alert.cause,
        "next_step": alert.next_step,
        "cause": alert.cause,
        "runbook_url": alert.runbook_url,
    }
    entry: dict[str, object] = {
        "labels": {k: v for k, v in labels.items() if v},
        "annotations": {k: v for k, v in annotations.items() if v},
        "startsAt": iso(alert.starts_at),
    }
    if alert.status == "resolved" and alert.ends_at is not None:
        entry["endsAt"] = iso(alert.ends_at)
    if generator_url:
        entry["generatorURL"] = generator_url
    return entry


def payload(alerts: list[Alert], generator_url: str = "") -> dict[str, object]:
    """The outbox payload for one post (`_post` sends the list under `BODY`)."""
    return {BODY: [alertmanager_alert(a, generator_url) for a in alerts]}


def silences_url(alerts_url: str) -> str:
    """The `/api/v2/silences` address of the Alertmanager whose alerts API is `alerts_url`."""
    base = alerts_url.rstrip("/")
    if base.endswith(API_PATH):
        base = base[: -len(API_PATH)]
    return base + SILENCES_PATH
