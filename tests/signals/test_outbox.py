"""Pages are never lost: the outbox, the delivery worker, retries, re-sends and restarts, against
real HTTP receivers on 127.0.0.1. No assertion depends on how long something took: waits are
bounded and the order of events is what is checked."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stoic.signals import Ownership, Signals, WebhookReceiver
from stoic.signals.outbox import DeliveryRetry, Outbox

from .conftest import Clock, Receiver
from .helpers import feed

FAST = DeliveryRetry(first=0.05, longest=0.2)


class SilentReceiver:
    """Accepts TCP connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.connections: list[socket.socket] = []
        self.accepted = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while len(self.connections) < 100:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)
            self.accepted.set()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.sock.close()
        for conn in self.connections:
            conn.close()
        self.thread.join(timeout=5)


def dead_url() -> str:
    """A loopback URL where nothing listens (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/hook"


def wait_until(done: Callable[[], bool], timeout: float = 10.0) -> bool:
    event = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if done():
            return True
        event.wait(0.01)
    return done()


def owners(*names: str) -> Ownership:
    return Ownership.from_dict(
        {"teams": {"edge-eu": {"receivers": list(names)}}, "regions": {"eu-west": "edge-eu"}}
    )


def paging(clock: Clock, *receivers: WebhookReceiver, **kwargs: object) -> Signals:
    """Signals with a learnt baseline in eu-west; the caller causes the drop."""
    signals = Signals(
        interval=1.0,
        day=60.0,
        ownership=owners(*(r.name for r in receivers)),
        receivers=list(receivers),
        clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )
    feed(signals, clock, 180)
    signals.evaluate()
    return signals


def sps_pages(bodies: list[dict[str, object]], status: str = "firing") -> list[dict[str, object]]:
    return [
        b
        for b in bodies
        if b["status"] == status and b["alerts"][0]["labels"]["indicator"] == "sps"  # type: ignore[index]
    ]


@pytest.fixture
def flaky() -> Iterator[Receiver]:
    r = Receiver(failures=2)
    yield r
    r.close()


@pytest.fixture
def silent() -> Iterator[SilentReceiver]:
    r = SilentReceiver()
    yield r
    r.close()


def test_a_receiver_that_fails_twice_gets_the_page_once(clock: Clock, flaky: Receiver) -> None:
    signals = paging(clock, WebhookReceiver("edge-eu-pager", flaky.url), retry=FAST)
    feed(signals, clock, 6, factor=0.5)
    signals.evaluate()
    for _ in range(20):  # each step makes the next retry due on the test's clock
        if sps_pages(flaky.bodies):
            break
        clock.now += 1.0
        signals.router.flush(timeout=5.0)
    signals.close()
    assert len(flaky.refused) == 2
    assert len(sps_pages(flaky.bodies)) == 1
    deliveries = signals.deliveries()
    assert [d.ok for d in deliveries].count(False) == 2
    keys = [d.key for d in deliveries if d.ok]
    assert len(keys) == len(set(keys)) == len(flaky.bodies)  # once per dedup key
    assert {d.key for d in deliveries if not d.ok} <= set(keys)  # what failed was retried


def test_routing_the_same_alert_twice_writes_one_notification(clock: Clock, receiver: Receiver) -> None:
    signals = paging(clock, WebhookReceiver("edge-eu-pager", receiver.url))
    feed(signals, clock, 6, factor=0.5)
    alert = next(a for a in signals.evaluate() if a.indicator == "sps")
    signals.router.route(alert)
    signals.router.route(alert)
    signals.router.flush()
    signals.close()
    assert len(sps_pages(receiver.bodies)) == 1


def test_a_locked_history_does_not_stop_the_page(tmp_path: Path, clock: Clock, receiver: Receiver) -> None:
    db = tmp_path / "history.db"
    signals = paging(clock, WebhookReceiver("edge-eu-pager", receiver.url), db=db)
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        feed(signals, clock, 6, factor=0.5, evaluate_every=1000)
        changed = signals.evaluate()  # history cannot be written: logged, kept for later
        assert any(a.indicator == "sps" for a in changed)
        assert wait_until(lambda: bool(sps_pages(receiver.bodies)))  # delivered while still locked
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    signals.evaluate()  # the lock is gone: the delayed history write goes through
    assert any(a["indicator"] == "sps" for a in signals.history.alerts(0.0, clock.now + 1))  # type: ignore[union-attr]
    signals.close()
    assert len(sps_pages(receiver.bodies)) == 1


def test_a_receiver_that_never_answers_does_not_slow_ingest(clock: Clock, silent: SilentReceiver) -> None:
    signals = paging(clock, WebhookReceiver("edge-eu-pager", silent.url, timeout=30.0))
    feed(signals, clock, 6, factor=0.5)
    signals.evaluate()
    assert silent.accepted.wait(10.0)  # the worker is now stuck in its first POST
    feed(signals, clock, 8, evaluate_every=1000)  # recovered: a resolve to route
    answer = signals.ingest({"observations": [{"type": "start", "region": "eu-west", "ok": True}]})
    assert answer == {"accepted": 1}
    # ingest returned (and routed the resolve) while the worker still waits for an answer
    assert signals.deliveries() == [] and len(silent.connections) == 1
    assert signals.router.outbox.undelivered() >= 2
    signals.close(timeout=0.1)  # bounded: the worker is abandoned, the rows stay


def test_a_restart_delivers_what_the_last_process_left(
    tmp_path: Path, clock: Clock, receiver: Receiver
) -> None:
    outbox = tmp_path / "alerts.outbox"
    first = paging(clock, WebhookReceiver("edge-eu-pager", dead_url()), outbox=outbox, retry=FAST)
    feed(signals := first, clock, 6, factor=0.5)
    signals.evaluate()
    signals.router.flush(timeout=5.0)
    assert signals.deliveries() and not any(d.ok for d in signals.deliveries())
    first.close()

    second = Signals(
        interval=1.0,
        day=60.0,
        ownership=owners("edge-eu-pager"),
        receivers=[WebhookReceiver("edge-eu-pager", receiver.url)],
        outbox=outbox,
        clock=clock,
    )
    assert wait_until(lambda: bool(sps_pages(receiver.bodies)))  # its worker started on its own
    second.router.flush()
    clock.now += 3600.0  # the last process's alert is not re-sent by this one
    second.router.flush()
    second.close()
    assert len(sps_pages(receiver.bodies)) == 1
    assert Outbox(outbox).undelivered() == 0


def test_firing_alerts_are_resent_on_the_interval_until_resolved(clock: Clock, receiver: Receiver) -> None:
    signals = paging(clock, WebhookReceiver("edge-eu-pager", receiver.url), repeat_interval=30.0)
    feed(signals, clock, 6, factor=0.5)
    signals.evaluate()
    signals.router.flush()
    assert len(sps_pages(receiver.bodies)) == 1
    for n in (2, 3):
        clock.now += 31.0
        signals.router.flush()
        assert len(sps_pages(receiver.bodies)) == n
    first, last = sps_pages(receiver.bodies)[0], sps_pages(receiver.bodies)[-1]
    assert first["alerts"] == last["alerts"]  # the same alert: fingerprint and startsAt unchanged

    feed(signals, clock, 8)  # recovered
    signals.evaluate()
    signals.router.flush()
    resolved = sps_pages(receiver.bodies, "resolved")
    assert len(resolved) == 1
    assert resolved[0]["alerts"][0]["endsAt"] > resolved[0]["alerts"][0]["startsAt"]  # type: ignore[index]
    clock.now += 3600.0
    signals.router.flush()
    signals.close()
    assert len(sps_pages(receiver.bodies)) == 3 and len(sps_pages(receiver.bodies, "resolved")) == 1


def test_close_keeps_what_is_undelivered(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "alerts.outbox"
    signals = paging(clock, WebhookReceiver("edge-eu-pager", dead_url()), outbox=path, retry=FAST)
    feed(signals, clock, 6, factor=0.5)
    signals.evaluate()
    signals.close()
    outbox = Outbox(path)
    assert outbox.durable and outbox.undelivered() >= 1
    outbox.close()


def test_without_a_path_the_outbox_is_in_memory() -> None:
    outbox = Outbox()
    assert outbox.path == ":memory:" and not outbox.durable
    outbox.close()


def test_retry_settings_are_validated() -> None:
    assert [DeliveryRetry(first=1.0, longest=5.0).delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    with pytest.raises(ValueError, match=r"^DeliveryRetry.first: must be > 0, got 0"):
        DeliveryRetry(first=0)
    with pytest.raises(ValueError, match=r"^DeliveryRetry.longest: must be >= 10, got 5"):
        DeliveryRetry(first=10.0, longest=5.0)


def test_a_resolve_never_overtakes_its_firing(clock: Clock, receiver: Receiver) -> None:
    signals = paging(clock, WebhookReceiver("edge-eu-pager", dead_url()), retry=FAST)
    feed(signals, clock, 6, factor=0.5)
    signals.evaluate()
    feed(signals, clock, 8)  # recovered before the receiver ever answered
    signals.evaluate()
    signals.router.flush()
    assert receiver.bodies == [] and signals.router.outbox.undelivered() >= 2
    signals.router.add(WebhookReceiver("edge-eu-pager", receiver.url))  # the receiver is back
    for _ in range(20):
        if sps_pages(receiver.bodies, "resolved"):
            break
        clock.now += 1.0
        signals.router.flush()
    signals.close()
    sps = [b["status"] for b in receiver.bodies if b["alerts"][0]["labels"]["indicator"] == "sps"]  # type: ignore[index]
    assert sps == ["firing", "resolved"]


def test_a_locked_outbox_keeps_the_page_in_memory_until_it_can_write(
    tmp_path: Path, clock: Clock, receiver: Receiver
) -> None:
    path = tmp_path / "alerts.outbox"
    signals = paging(clock, WebhookReceiver("edge-eu-pager", receiver.url), outbox=path)
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        feed(signals, clock, 6, factor=0.5, evaluate_every=1000)
        assert any(a.indicator == "sps" for a in signals.evaluate())  # routed, not raised
        assert signals.router.outbox.undelivered() >= 1  # waiting in memory
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert wait_until(lambda: bool(sps_pages(receiver.bodies)))  # the worker wrote and sent it
    signals.close()
    assert len(sps_pages(receiver.bodies)) == 1


def test_a_notification_is_abandoned_after_give_up_after(clock: Clock) -> None:
    retry = DeliveryRetry(first=0.05, longest=0.2, give_up_after=2.0)
    signals = paging(clock, WebhookReceiver("edge-eu-pager", dead_url()), retry=retry)
    feed(signals, clock, 6, factor=0.5)
    signals.evaluate()
    signals.router.flush()
    clock.now += 3.0
    signals.router.flush()
    assert signals.router.outbox.undelivered() == 0
    attempts = len(signals.deliveries())
    clock.now += 3600.0
    signals.router.flush()
    assert len(signals.deliveries()) == attempts and not any(d.ok for d in signals.deliveries())
    signals.close()
