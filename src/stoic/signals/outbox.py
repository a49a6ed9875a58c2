"""The durable outbox: every notification is written to SQLite before anyone tries to deliver it.

A row is one notification for one receiver, keyed by the receiver and a dedup key (alert id,
status and start time), so writing the same notification twice keeps one row. The row carries
what the delivery worker needs: the body, when to try next, how many attempts failed, and, for a
firing alert, how often to re-send it while it fires. Delivered rows are kept for `keep` seconds
and then pruned, so the file stays bounded.

`Outbox()` (no path) keeps the rows in memory: they do not survive a restart. Give a path to
keep undelivered notifications across restarts; one process at a time should use a path.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from stoic.signals import _validate

log = logging.getLogger("stoic.signals.outbox")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    receiver TEXT NOT NULL, key TEXT NOT NULL,
    alert_id TEXT NOT NULL, status TEXT NOT NULL, starts_at REAL NOT NULL,
    url TEXT NOT NULL, timeout REAL NOT NULL, payload TEXT NOT NULL,
    created REAL NOT NULL,
    next_at REAL,
    repeat REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    sent INTEGER NOT NULL DEFAULT 0,
    delivered_at REAL,
    error TEXT NOT NULL DEFAULT '',
    owner TEXT NOT NULL,
    lease REAL NOT NULL DEFAULT 0,
    UNIQUE (receiver, key));
CREATE INDEX IF NOT EXISTS notifications_next ON notifications (next_at);
CREATE INDEX IF NOT EXISTS notifications_alert ON notifications (receiver, alert_id);
"""

# Due: scheduled, time has come, a re-send only for the process that wrote it, and no older
# notification of the same alert for the same receiver still undelivered (a resolve never
# overtakes its firing).
_COUNT_UNDELIVERED = "SELECT COUNT(*) FROM notifications WHERE sent = 0 AND next_at IS NOT NULL"
_DUE = (
    "n.next_at IS NOT NULL AND n.next_at <= ? AND (n.sent = 0 OR n.owner = ?) "
    "AND NOT EXISTS (SELECT 1 FROM notifications o WHERE o.receiver = n.receiver "
    "AND o.alert_id = n.alert_id AND o.seq < n.seq AND o.sent = 0 AND o.next_at IS NOT NULL)"
)

# A notification not yet written (the database was busy) waits here for the worker; bounded.
MAX_SPOOL = 10_000
_REVISION = re.compile(r":r(\d+)$")


def _revision(key: str) -> int:
    m = _REVISION.search(key)
    return int(m.group(1)) if m else 0


def dedup_key(alert_id: str, status: str, starts_at: float) -> str:
    """The stable key of one notification: the same alert, status and start give the same key."""
    return f"{alert_id}:{status}:{starts_at!r}"


@dataclass(frozen=True, slots=True)
class Notification:
    """One notification for one receiver, as written to the outbox."""

    receiver: str
    alert_id: str
    status: str
    starts_at: float
    url: str
    timeout: float
    payload: dict[str, object]
    repeat: float | None = None  # seconds between re-sends while firing; None: never
    revision: int = 0  # an update of the same firing episode (a burn-rate group that changed)

    @property
    def key(self) -> str:
        key = dedup_key(self.alert_id, self.status, self.starts_at)
        return f"{key}:r{self.revision}" if self.revision else key


@dataclass(frozen=True, slots=True)
class Row:
    """A notification read back from the outbox for delivery."""

    seq: int
    notification: Notification
    attempts: int
    sent: bool
    created: float


@dataclass(frozen=True, slots=True)
class DeliveryRetry:
    """How the delivery worker retries a notification that failed.

    The first retry waits `first` seconds, each next one twice as long, never more than `longest`.
    A notification still undelivered `give_up_after` seconds after it was written is abandoned
    (and logged at error level).

    >>> [DeliveryRetry(first=1.0, longest=5.0).delay(n) for n in (1, 2, 3, 4)]
    [1.0, 2.0, 4.0, 5.0]
    """

    first: float = 1.0
    longest: float = 300.0
    give_up_after: float = 86400.0

    def __post_init__(self) -> None:
        _validate.number("DeliveryRetry.first", self.first, low=0.0, low_open=True, high=3600.0)
        _validate.number("DeliveryRetry.longest", self.longest, low=self.first, high=86400.0)
        _validate.number("DeliveryRetry.give_up_after", self.give_up_after, low=self.first, high=30 * 86400.0)

    def delay(self, attempts: int) -> float:
        """Seconds to wait after `attempts` failed attempts in a row."""
        return min(self.first * 2.0 ** min(max(attempts - 1, 0), 60), self.longest)


class Outbox:
    """The SQLite store of notifications. `path=None` keeps them in memory only (lost on restart).

    Every method is thread-safe and holds its lock only for one short transaction, never while
    a notification is being delivered.
    """

    def __init__(
        self, path: str | Path | None = None, *, keep: float = 7 * 86400.0, busy: float = 0.5
    ) -> None:
        self.path = ":memory:" if path is None else str(path)
        self.durable = self.path != ":memory:"
        self.keep = _validate.number("outbox.keep", keep, low=0.0)
        self._lock = threading.Lock()
        # A short busy timeout: a caller enqueuing must not wait long on a lock held by another
        # process; a write that fails is spooled and retried by the worker.
        self._db = sqlite3.connect(self.path, timeout=busy, check_same_thread=False)
        if self.durable:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.commit()
        self._spool: deque[tuple[Notification, str, float]] = deque()
        self.dropped = 0  # notifications lost because the spool was full

    def close(self) -> None:
        with self._lock:
            if self._spool:
                log.error("outbox closed with %d notifications it could not write", len(self._spool))
            self._db.close()

    # ---- writing ---------------------------------------------------------------------------
    def put(self, notes: list[Notification], *, owner: str, now: float) -> None:
        """Write `notes` (a repeat of a key already written is ignored). A resolve stops the
        re-sends of the firing notification it closes. Never raises for a busy database: the
        notes wait in memory until `flush_spool` can write them."""
        if not notes:
            return
        with self._lock:
            # while earlier notes wait in memory, later ones queue behind them: the caller does not
            # wait on the busy database again, and a resolve is never written before its firing
            try:
                if not self._spool:
                    self._write(notes, owner, now)
                    return
            except sqlite3.Error as exc:
                log.warning(
                    "outbox %s: could not write %d notifications (%s); will retry", self.path, len(notes), exc
                )
            for note in notes:
                if len(self._spool) >= MAX_SPOOL:
                    self.dropped += 1
                    log.error("outbox spool full: dropped notification %s for %s", note.key, note.receiver)
                    continue
                self._spool.append((note, owner, now))

    def flush_spool(self) -> int:
        """Write what `put` could not, in order; returns how many are still waiting."""
        with self._lock:
            while self._spool:
                note, owner, now = self._spool[0]
                try:
                    self._write([note], owner, now)
                except sqlite3.Error as exc:
                    log.warning(
                        "outbox %s: %d notifications still waiting (%s)", self.path, len(self._spool), exc
                    )
                    break
                self._spool.popleft()
            return len(self._spool)

    def _write(self, notes: list[Notification], owner: str, now: float) -> None:
        with self._db:
            for n in notes:
                if n.status == "resolved":
                    # the episode is over: stop re-sending it (an undelivered firing is still sent first)
                    self._db.execute(
                        "UPDATE notifications SET repeat = NULL, "
                        "next_at = CASE WHEN sent = 1 THEN NULL ELSE next_at END "
                        "WHERE receiver = ? AND alert_id = ? AND status = 'firing' AND starts_at = ?",
                        (n.receiver, n.alert_id, n.starts_at),
                    )
                else:
                    # a new episode (or a new revision of this one) replaces the re-sends of the older
                    self._db.execute(
                        "UPDATE notifications SET repeat = NULL, "
                        "next_at = CASE WHEN sent = 1 THEN NULL ELSE next_at END "
                        "WHERE receiver = ? AND alert_id = ? AND status = 'firing' "
                        "AND (starts_at <> ? OR key <> ?)",
                        (n.receiver, n.alert_id, n.starts_at, n.key),
                    )
                self._db.execute(
                    "INSERT OR IGNORE INTO notifications (receiver, key, alert_id, status, starts_at, url, "
                    "timeout, payload, created, next_at, repeat, owner) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        n.receiver,
                        n.key,
                        n.alert_id,
                        n.status,
                        n.starts_at,
                        n.url,
                        n.timeout,
                        json.dumps(n.payload),
                        now,
                        now,
                        n.repeat if n.status == "firing" else None,
                        owner,
                    ),
                )
                if n.status == "firing" and n.repeat is not None:
                    # a restarted process that re-detects an episode a previous one announced takes
                    # over its re-sends (restart() stopped them), unless the episode was resolved
                    self._db.execute(
                        "UPDATE notifications SET owner = ?, repeat = ?, next_at = COALESCE(next_at, ?) "
                        "WHERE receiver = ? AND key = ? AND owner <> ? AND repeat IS NULL "
                        "AND NOT EXISTS (SELECT 1 FROM notifications r WHERE r.receiver = ? "
                        "AND r.alert_id = ? AND r.status = 'resolved' AND r.starts_at = ?)",
                        (owner, n.repeat, now, n.receiver, n.key, owner, n.receiver, n.alert_id, n.starts_at),
                    )

    def announced(self, receiver: str, alert_id: str, starts_at: float) -> bool:
        """Whether a firing notification of this episode was written for `receiver`."""
        with self._lock:
            try:
                row = self._db.execute(
                    "SELECT 1 FROM notifications WHERE receiver = ? AND alert_id = ? AND status = 'firing' "
                    "AND starts_at = ? LIMIT 1",
                    (receiver, alert_id, starts_at),
                ).fetchone()
            except sqlite3.Error:
                row = None
            return row is not None or any(
                n.receiver == receiver and n.alert_id == alert_id and n.starts_at == starts_at
                for n, _, _ in self._spool
            )

    # ---- delivering ------------------------------------------------------------------------
    def due(self, now: float, *, owner: str, alert_id: str | None = None, limit: int = 100) -> list[Row]:
        """Notifications to deliver now, oldest first. A re-send is only due for the process that
        wrote it; a notification waits while an older one of the same alert is undelivered."""
        sql = (
            "SELECT seq, receiver, alert_id, status, starts_at, url, timeout, payload, repeat, attempts, "
            f"sent, created, key FROM notifications n WHERE {_DUE} AND lease <= ?"
        )
        args: list[object] = [now, owner, now]
        if alert_id is not None:
            sql += " AND alert_id = ?"
            args.append(alert_id)
        sql += " ORDER BY seq LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [
            Row(
                r[0],
                Notification(r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8], _revision(r[12])),
                r[9],
                bool(r[10]),
                r[11],
            )
            for r in rows
        ]

    def due_count(self, now: float, *, owner: str) -> int:
        """How many notifications are due now, including those being delivered at this moment."""
        with self._lock:
            (count,) = self._db.execute(
                f"SELECT COUNT(*) FROM notifications n WHERE {_DUE}", (now, owner)
            ).fetchone()
        return int(count)

    def claim(self, seq: int, now: float, until: float) -> bool:
        """Take a row for delivery until `until`; False if someone else holds it."""
        with self._lock, self._db:
            cur = self._db.execute(
                # still due: a row another thread delivered after this one read it is not sent twice
                "UPDATE notifications SET lease = ? WHERE seq = ? AND lease <= ? AND next_at IS NOT NULL "
                "AND next_at <= ?",
                (until, seq, now, now),
            )
            return cur.rowcount == 1

    def delivered(self, seq: int, now: float) -> None:
        """Mark a row delivered: it is re-sent after `repeat` seconds if it has one, else done."""
        with self._lock, self._db:
            self._db.execute(
                "UPDATE notifications SET sent = 1, delivered_at = ?, attempts = 0, error = '', lease = 0, "
                "next_at = CASE WHEN repeat IS NULL THEN NULL ELSE ? + repeat END WHERE seq = ?",
                (now, now, seq),
            )

    def failed(self, seq: int, error: str, next_at: float | None) -> None:
        """Record a failed attempt; `next_at=None` abandons the row."""
        with self._lock, self._db:
            self._db.execute(
                "UPDATE notifications SET attempts = attempts + 1, error = ?, lease = 0, "
                # a re-send that failed after its alert resolved is not tried again
                "next_at = CASE WHEN sent = 1 AND repeat IS NULL THEN NULL ELSE ? END WHERE seq = ?",
                (error[:500], next_at, seq),
            )

    def next_due(self, *, owner: str) -> float | None:
        """When the next notification becomes due (None: nothing is scheduled)."""
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(MAX(next_at, lease)) FROM notifications WHERE next_at IS NOT NULL "
                "AND (sent = 0 OR owner = ?)",
                (owner,),
            ).fetchone()
        return None if row is None else row[0]

    def restart(self, now: float, *, owner: str) -> int:
        """At start-up: what a previous process wrote but did not deliver is due at once (its
        leases died with it); its re-sends stop (this process re-detects what still fires).
        Returns how many notifications are waiting."""
        with self._lock, self._db:
            self._db.execute(
                "UPDATE notifications SET repeat = NULL, "
                "next_at = CASE WHEN sent = 1 THEN NULL ELSE next_at END WHERE owner <> ?",
                (owner,),
            )
            self._db.execute(
                "UPDATE notifications SET lease = 0, next_at = MIN(next_at, ?) "
                "WHERE sent = 0 AND next_at IS NOT NULL",
                (now,),
            )
            (count,) = self._db.execute(_COUNT_UNDELIVERED).fetchone()
        return int(count)

    def undelivered(self) -> int:
        """Notifications written but not yet delivered (including any waiting to be written)."""
        with self._lock:
            (count,) = self._db.execute(_COUNT_UNDELIVERED).fetchone()
            return int(count) + len(self._spool)

    def prune(self, now: float) -> None:
        """Forget finished rows older than `keep` seconds."""
        with self._lock, self._db:
            self._db.execute(
                "DELETE FROM notifications WHERE next_at IS NULL AND created < ?", (now - self.keep,)
            )
