"""`AuditLog`: every chaos decision and termination, in SQLite, surviving restarts."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._listeners import Listeners

#: what became of a decision
OUTCOMES = (
    "terminated",  # an instance was killed
    "leashed",  # decided, but leashed mode kept it from happening
    "skipped",  # refused by a safety rail (schedule, cap, kill switch, outage, minimum gap)
    "failed",  # tried and the target refused or errored
    "injected",  # latency or errors posted for the fleet
    "finding",  # a conformity finding, reported to its owner
    "paused",  # chaos paused (kill switch, outage)
    "resumed",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      REAL NOT NULL,      -- chaos-clock time, epoch seconds (compressed in demos)
    wall    REAL NOT NULL,      -- real time, epoch seconds
    monkey  TEXT NOT NULL,
    action  TEXT NOT NULL,      -- terminate | latency | conformity | army
    target  TEXT NOT NULL DEFAULT '',
    app     TEXT NOT NULL DEFAULT '',
    region  TEXT NOT NULL DEFAULT '',
    zone    TEXT NOT NULL DEFAULT '',
    grp     TEXT NOT NULL DEFAULT '',
    outcome TEXT NOT NULL,
    reason  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_outcome_at ON audit (outcome, at);
CREATE INDEX IF NOT EXISTS audit_monkey_grp ON audit (monkey, grp, at);
"""


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit log."""

    id: int
    at: float
    wall: float
    monkey: str
    action: str
    target: str
    app: str
    region: str
    zone: str
    group: str
    outcome: str
    reason: str

    @property
    def when(self) -> datetime:
        """`at` as an aware datetime (chaos-clock time)."""
        return datetime.fromtimestamp(self.at, UTC)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["when"] = self.when.isoformat()
        return d


class AuditLog:
    """An append-only SQLite log; safe to share between threads; reopen the same file after a restart."""

    def __init__(self, path: str | os.PathLike[str] = ":memory:") -> None:
        self.path = os.fspath(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._listeners: Listeners[Callable[[AuditEntry], None]] = Listeners()

    def record(
        self,
        monkey: str,
        action: str,
        outcome: str,
        *,
        at: float | None = None,
        target: str = "",
        app: str = "",
        region: str = "",
        zone: str = "",
        group: str = "",
        reason: str = "",
    ) -> AuditEntry:
        """Append one entry (committed before this returns)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}; got {outcome!r}")
        wall = time.time()
        at = wall if at is None else at
        row = (at, wall, monkey, action, target, app, region, zone, group, outcome, reason)
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO audit (at, wall, monkey, action, target, app, region, zone, grp, outcome,"
                " reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            entry = AuditEntry(int(cur.lastrowid or 0), *row)
        for fn in self._listeners.snapshot():
            fn(entry)
        return entry

    def entries(
        self,
        limit: int | None = 100,
        *,
        monkey: str | None = None,
        outcome: str | Sequence[str] | None = None,
        group: str | None = None,
        since: float | None = None,
    ) -> list[AuditEntry]:
        """Entries, newest first, filtered by monkey / outcome(s) / group / chaos-clock time."""
        where: list[str] = []
        args: list[object] = []
        if monkey is not None:
            where.append("monkey = ?")
            args.append(monkey)
        if outcome is not None:
            outcomes = [outcome] if isinstance(outcome, str) else list(outcome)
            where.append(f"outcome IN ({','.join('?' * len(outcomes))})")
            args.extend(outcomes)
        if group is not None:
            where.append("grp = ?")
            args.append(group)
        if since is not None:
            where.append("at >= ?")
            args.append(since)
        sql = "SELECT * FROM audit" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY at DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [AuditEntry(*r) for r in rows]

    def terminations(self, since: float | None = None) -> list[AuditEntry]:
        """Instances actually terminated, newest first."""
        return self.entries(None, outcome="terminated", since=since)

    def last(self, monkey: str, group: str, outcomes: Iterable[str]) -> AuditEntry | None:
        """The newest entry of `monkey` for `group` with one of `outcomes`."""
        found = self.entries(1, monkey=monkey, group=group, outcome=list(outcomes))
        return found[0] if found else None

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM audit").fetchone()[0])

    def listen(self, fn: Callable[[AuditEntry], None]) -> Callable[[], None]:
        """Call `fn(entry)` after every record (e.g. a dashboard timeline); returns an unsubscribe."""
        return self._listeners.add(fn)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AuditLog({self.path!r})"


__all__ = ["OUTCOMES", "AuditEntry", "AuditLog"]
