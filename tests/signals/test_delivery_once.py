"""A notification is sent once when two threads deliver at the same moment (the worker and a
`flush()`): a row another thread delivered after this one read it is no longer claimable."""

from __future__ import annotations

from pathlib import Path

from stoic.signals.outbox import Notification, Outbox


def test_a_row_delivered_by_another_thread_after_it_was_read_is_not_claimed_again(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox")
    note = Notification("am", "alert-1", "firing", 100.0, "http://127.0.0.1:1/hook", 1.0, {}, 60.0)
    outbox.put([note], owner="me", now=100.0)
    (seen_by_flush,) = outbox.due(100.0, owner="me")
    (seen_by_worker,) = outbox.due(100.0, owner="me")
    assert outbox.claim(seen_by_worker.seq, 100.0, 130.0)
    outbox.delivered(seen_by_worker.seq, 100.0)  # re-send due at 160
    assert not outbox.claim(seen_by_flush.seq, 100.0, 130.0)  # the flush's copy is stale
    assert outbox.claim(seen_by_flush.seq, 160.0, 190.0)  # the re-send, when it is due
    outbox.close()
