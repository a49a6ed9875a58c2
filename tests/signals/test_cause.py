"""The cause chain, end to end: a chaos action from a real audit log and a breaker opening in a
real guard registry come before a drop in stream starts; the alert names them newest first,
in the built-in text and in the `cause` annotation Alertmanager gets (a loopback receiver)."""

from __future__ import annotations

from stoic.chaos import AuditLog
from stoic.guard import BreakerPolicy, Dependency, Fallback, Registry
from stoic.signals import ContextEvent, Ownership, Signals
from stoic.signals.alertmanager import alertmanager_receiver
from stoic.signals.cause import chain, describe

from .conftest import Clock, Receiver
from .helpers import feed

OWNERS = {"teams": {"playback-team": {"receivers": ["am"]}}, "default": "playback-team"}


def test_an_alert_names_what_happened_before_it_in_order(clock: Clock, receiver: Receiver) -> None:
    signals = Signals(
        interval=1.0,
        day=60.0,
        clock=clock,
        ownership=Ownership.from_dict(OWNERS),
        receivers=[alertmanager_receiver(receiver.url.removesuffix("/hook"), name="am", timeout=30.0)],
    )
    feed(signals, clock, 180)  # three compressed days of normal traffic
    assert signals.evaluate() == []
    registry = Registry()
    playback = Dependency(
        "playback-api",
        timeout=None,
        registry=registry,
        breaker=BreakerPolicy(min_calls=5, check_interval=0.0, open_for=60.0),
        fallbacks=[Fallback.value("cached", name="cached-manifest")],
    )
    signals.watch(registry)
    audit = AuditLog()
    signals.watch_audit(audit)
    reason = "+2s on 30% of calls"
    audit.record("latency_monkey", "delay", "injected", target="playback-api", reason=reason, at=clock.now)
    audit.record("chaos_monkey", "kill", "skipped", target="i-123", at=clock.now)  # nothing happened
    feed(signals, clock, 2)

    def broken() -> str:
        raise ConnectionError("playback-api is down")

    assert [playback.call(broken) for _ in range(10)] == ["cached"] * 10
    feed(signals, clock, 6, factor=0.5)
    alert = next(a for a in signals.evaluate() if a.indicator == "sps")
    assert alert.cause == (
        "The circuit breaker for playback-api opened; fallbacks answered 80% of its 5 calls "
        "in the same minute <- "
        "Latency Monkey delay playback-api (injected): +2s on 30% of calls in the same minute."
    )
    assert signals.router.flush(60.0) == 0
    posted = [a for body in receiver.bodies for a in body]  # type: ignore[attr-defined]
    sent = [a for a in posted if a["labels"]["alertname"] == "StreamStartsDrop"]
    assert sent[0]["annotations"]["cause"] == alert.cause
    signals.close()


def test_the_chain_is_newest_first_bounded_and_keeps_faults_on_the_dependencies_that_broke() -> None:
    t = 1_764_064_800.0
    events = [
        ContextEvent(t - 600, "deploy", "payments", "payments v42 rolled out"),
        ContextEvent(t - 240, "chaos", "payments", "Latency Monkey hit payments"),
        ContextEvent(t - 200, "chaos", "search", "Latency Monkey hit search"),  # nothing of it broke
        ContextEvent(t - 180, "fit", "payments", "FIT scenario payments-errors added for 5% of calls"),
        ContextEvent(t - 120, "breaker", "payments", "The payments breaker opened"),
        ContextEvent(t - 60, "chaos", "us-east-1a", "Chaos Gorilla took down us-east-1a"),  # another region
        ContextEvent(t - 30, "breaker", "payments", "The payments breaker opened"),  # the same, again
    ]
    links = chain(events, "eu-west", t, lookback=900.0)
    assert describe(links, t) == (
        "The payments breaker opened in the same minute <- "
        "FIT scenario payments-errors added for 5% of calls 3 min earlier <- "
        "Latency Monkey hit payments 4 min earlier <- payments v42 rolled out 10 min earlier"
    )
    assert len(chain(events * 3, "eu-west", t, lookback=900.0, limit=2)) == 2
    assert chain(events, "eu-west", t, lookback=60.0)[0].kind == "breaker"
