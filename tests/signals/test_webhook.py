"""Routing to a real webhook receiver on 127.0.0.1: Alertmanager v4 JSON, dedup, resolve.

`router.flush()` delivers what is due on the test's thread, so no test waits on the worker."""

from __future__ import annotations

from dataclasses import replace

import pytest

from stoic.signals import AlertRouter, Ownership, Signals, WebhookReceiver

from .conftest import Clock, Receiver
from .helpers import feed


def _signals(clock: Clock, *receivers: WebhookReceiver) -> Signals:
    owners = Ownership.from_dict(
        {"teams": {"edge-eu": {"receivers": [r.name for r in receivers]}}, "regions": {"eu-west": "edge-eu"}}
    )
    signals = Signals(interval=1.0, day=60.0, ownership=owners, receivers=list(receivers), clock=clock)
    feed(signals, clock, 180)
    signals.evaluate()
    return signals


def test_receiver_gets_alertmanager_json_once_then_a_resolve(clock: Clock, receiver: Receiver) -> None:
    signals = _signals(clock, WebhookReceiver("edge-eu-pager", receiver.url))
    signals.router.flush()
    assert receiver.bodies == []
    feed(signals, clock, 6, factor=0.5)
    signals.evaluate()
    signals.router.flush()
    firing = [b for b in receiver.bodies if b["status"] == "firing"]
    sps = [b for b in firing if b["alerts"][0]["labels"]["indicator"] == "sps"]  # type: ignore[index]
    assert len(sps) == 1
    body = sps[0]
    assert body["version"] == "4" and body["receiver"] == "edge-eu-pager"
    assert set(body) >= {
        "version",
        "groupKey",
        "truncatedAlerts",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    }
    assert body["groupKey"] == '{}:{alertname="StreamStartsDrop", region="eu-west"}'
    alert = body["alerts"][0]  # type: ignore[index]
    assert alert["status"] == "firing"
    assert alert["labels"] == {
        "alertname": "StreamStartsDrop",
        "severity": "critical",
        "region": "eu-west",
        "indicator": "sps",
        "team": "edge-eu",
    }
    assert alert["annotations"]["summary"].startswith("Stream starts in eu-west are ")
    assert alert["annotations"]["next_step"]
    assert alert["startsAt"].endswith("Z") and alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert receiver.paths[0] == "/hook"

    count = len(receiver.bodies)
    feed(signals, clock, 1, factor=0.5)  # still firing: deduplicated, nothing new is sent
    signals.evaluate()
    signals.router.flush()
    assert len(receiver.bodies) == count

    feed(signals, clock, 6)  # recovered
    signals.evaluate()
    signals.router.flush()
    resolved = [
        b
        for b in receiver.bodies
        if b["status"] == "resolved" and b["alerts"][0]["labels"]["indicator"] == "sps"
    ]  # type: ignore[index]
    assert len(resolved) == 1
    end = resolved[0]["alerts"][0]  # type: ignore[index]
    assert end["status"] == "resolved" and end["endsAt"] > end["startsAt"]
    assert end["fingerprint"] == alert["fingerprint"]
    signals.close()


def test_repeat_interval_resends_a_firing_alert(clock: Clock, receiver: Receiver) -> None:
    router = AlertRouter([WebhookReceiver("pager", receiver.url)], repeat_interval=60.0, clock=clock)
    signals = _signals(clock)
    feed(signals, clock, 6, factor=0.5)
    alert = next(a for a in signals.evaluate() if a.indicator == "sps")
    alert = replace(alert, receivers=("pager",))
    assert [d.ok for d in router.send(alert)] == [True]
    assert router.send(alert) == []  # deduplicated
    clock.now += 61.0
    assert [d.ok for d in router.send(alert)] == [True]
    assert len(receiver.bodies) == 2
    router.close()
    signals.close()


def test_failed_delivery_is_recorded_not_raised(clock: Clock, failing_receiver: Receiver) -> None:
    signals = _signals(clock, WebhookReceiver("edge-eu-pager", failing_receiver.url, timeout=2.0))
    feed(signals, clock, 6, factor=0.5)
    signals.evaluate()
    signals.router.flush()
    deliveries = signals.deliveries()
    assert deliveries and not any(d.ok for d in deliveries)
    assert "500" in deliveries[0].error
    assert failing_receiver.bodies  # it did arrive, the receiver refused it
    assert signals.router.outbox.undelivered() >= 1  # kept for a retry
    signals.close(timeout=5.0)


def test_receiver_config_is_validated() -> None:
    with pytest.raises(ValueError, match=r"^receiver.url: must be an http:// or https:// URL"):
        WebhookReceiver("pager", "ftp://example")
    with pytest.raises(ValueError, match=r"^receiver.timeout: must be > 0"):
        WebhookReceiver("pager", "http://127.0.0.1:9/", timeout=0)
    with pytest.raises(ValueError, match=r"^receiver.repeat_interval: must be >= 1"):
        WebhookReceiver("pager", "http://127.0.0.1:9/", repeat_interval=0.5)
