"""`AuditLog`: every chaos decision and termination, in SQLite, surviving restarts.

A kill is written down before it happens: `claim()` checks the cap and records the intent in one
write transaction (so processes sharing the file cannot both squeeze under it), and `settle()` then
turns the intent into its outcome. When the log cannot be written, nothing is killed.
"""

from __future__ import annotations

import getpass
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ._errors import AuditError
from ._listeners import Listeners

#: what became of a decision
OUTCOMES = (
    "terminated",  # an instance was killed
    "intended",  # a kill written down before it happens; stays so if its outcome could not be written
    "leashed",  # decided, but leashed mode kept it from happening
    "skipped",  # refused by a safety rail (schedule, cap, kill switch, outage, minimum gap)
    "failed",  # tried and the target refused or errored; or an experiment's hypothesis was refuted
    "injected",  # latency or errors posted for the fleet
    "finding",  # a conformity finding, reported to its owner
    "paused",  # chaos paused (kill switch, outage)
    "resumed",
    "started",  # an experiment let its fault out (written before the first request gets it)
    "passed",  # an experiment's hypotheses held
    "aborted",  # an experiment stopped early: a KPI breach, a stop condition or the kill switch
    "inconclusive",  # an experiment saw too little traffic to judge
)
#: outcomes that count against the blast-radius cap: an intent whose outcome is unknown may have killed
KILLS = ("terminated", "intended")

#: bumped by every migration below; stored in the file's `PRAGMA user_version`
SCHEMA_VERSION = 1

_CREATE = """
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
#: MIGRATIONS[n] takes a file from version n to n + 1
_MIGRATIONS = ("ALTER TABLE audit ADD COLUMN actor TEXT NOT NULL DEFAULT ''",)
_COLUMNS = "id, at, wall, monkey, action, target, app, region, zone, grp, outcome, reason, actor"
_INSERT = f"INSERT INTO audit ({_COLUMNS.removeprefix('id, ')}) VALUES ({', '.join('?' * 12)})"
_SETTLE = "UPDATE audit SET outcome = ?, reason = ?, wall = ? WHERE id = ? AND outcome = 'intended'"


def default_actor() -> str:
    """Who is running chaos when nobody says: ``user:<login name>``."""
    try:
        return f"user:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in some containers
        return "user:unknown"


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit log. `actor` says who or what started the chaos (``user:ada``,
    ``schedule:nightly``, ``experiment:zone-drill``)."""

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
    actor: str = ""

    @property
    def when(self) -> datetime:
        """`at` as an aware datetime (chaos-clock time)."""
        return datetime.fromtimestamp(self.at, UTC)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["when"] = self.when.isoformat()
        return d


#: a function that reads the kills recorded since a chaos-clock time (inside `claim`'s transaction)
KillsSince = Callable[[float], list[AuditEntry]]


class AuditLog:
    """An append-only SQLite log; safe to share between threads and processes; reopen after a restart.

    `busy_timeout`: how long a write waits for another process holding the file.
    `max_bytes`: the largest the file may grow (None: no bound); a full log stops chaos.
    `readonly`: open for reading only (``stoic chaos log``); the file must exist.
    `actor`: written into every entry that does not name its own.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        *,
        busy_timeout: float = 10.0,
        max_bytes: int | None = None,
        readonly: bool = False,
        actor: str | None = None,
    ) -> None:
        if isinstance(busy_timeout, bool) or not isinstance(busy_timeout, int | float) or busy_timeout < 0:
            raise ValueError(f"AuditLog.busy_timeout must be seconds >= 0; got {busy_timeout!r}")
        if max_bytes is not None and (
            isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 4096
        ):
            raise ValueError(f"AuditLog.max_bytes must be an integer >= 4096 or None; got {max_bytes!r}")
        self.path = os.fspath(path)
        self.readonly = readonly
        self.actor = actor if actor is not None else default_actor()
        self._lock = threading.Lock()
        self._listeners: Listeners[Callable[[AuditEntry], None]] = Listeners()
        memory = self.path == ":memory:"
        try:
            if readonly:
                uri = f"file:{quote(os.path.abspath(self.path))}?mode=ro"
                self._db = sqlite3.connect(
                    uri, uri=True, check_same_thread=False, isolation_level=None, timeout=busy_timeout
                )
            else:
                if not memory:
                    Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(
                    self.path, check_same_thread=False, isolation_level=None, timeout=busy_timeout
                )
        except (sqlite3.Error, OSError) as exc:
            raise self._error("cannot be opened", exc) from None
        try:
            self._actor_column = self._prepare(memory, max_bytes)
        except sqlite3.Error as exc:
            self._db.close()
            raise self._error("cannot be used", exc) from None

    def _prepare(self, memory: bool, max_bytes: int | None) -> bool:
        """Create or migrate the schema (one write transaction); returns whether `actor` exists."""
        if self.readonly:
            columns = {r[1] for r in self._db.execute("PRAGMA table_info(audit)")}
            if not columns:
                raise sqlite3.DatabaseError("it holds no audit table")
            return "actor" in columns
        if not memory:
            self._db.execute("PRAGMA journal_mode=WAL")
        if max_bytes is not None:
            page = int(self._db.execute("PRAGMA page_size").fetchone()[0])
            self._db.execute(f"PRAGMA max_page_count = {max(max_bytes // page, 1)}")
        # BEGIN IMMEDIATE also proves at start-up that the file is writable, not at the first kill
        with self._transaction():
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if version < SCHEMA_VERSION:
                for statement in _CREATE.split(";"):  # executescript() would commit our transaction
                    if statement.strip():
                        self._db.execute(statement)
                for step in _MIGRATIONS[version:]:
                    self._db.execute(step)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return True

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")  # the write lock now, so what we read stays true
        try:
            yield
        except BaseException:
            if self._db.in_transaction:  # SQLite already rolled back after some errors (a full disk)
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _error(self, what: str, exc: BaseException) -> AuditError:
        text = str(exc)
        code = getattr(exc, "sqlite_errorname", "")
        if code == "SQLITE_NOTADB" or "not a database" in text:
            advice = "it is not a SQLite audit log: move it aside or set audit_db to a new file"
        elif code.startswith("SQLITE_READONLY") or "readonly" in text:
            advice = "make it writable, or set audit_db to a writable file"
        elif code.startswith("SQLITE_FULL") or "full" in text:
            advice = "free disk space (or raise max_bytes); chaos stays off until then"
        elif code.startswith("SQLITE_BUSY") or "locked" in text:
            advice = "another process holds it; retry, or stop that process"
        else:
            advice = "check the file and its directory, or set audit_db to another file"
        return AuditError(f"audit log {self.path} {what} ({text}): {advice}")

    # -- writing ---------------------------------------------------------------------------------

    def _row(
        self, monkey: str, action: str, outcome: str, at: float | None, fields: dict[str, str]
    ) -> tuple[Any, ...]:
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}; got {outcome!r}")
        unknown = set(fields) - {"target", "app", "region", "zone", "group", "reason", "actor"}
        if unknown:
            raise TypeError(f"unknown audit fields {sorted(unknown)}")
        wall = time.time()
        get = fields.get
        return (
            wall if at is None else at,
            wall,
            monkey,
            action,
            get("target", ""),
            get("app", ""),
            get("region", ""),
            get("zone", ""),
            get("group", ""),
            outcome,
            get("reason", ""),
            get("actor") or self.actor,
        )

    def _insert(self, row: tuple[Any, ...]) -> AuditEntry:
        cur = self._db.execute(_INSERT, row)
        return AuditEntry(int(cur.lastrowid or 0), *row)

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
        actor: str | None = None,
    ) -> AuditEntry:
        """Append one entry (committed before this returns); `AuditError` when it cannot be written."""
        row = self._row(
            monkey,
            action,
            outcome,
            at,
            {
                "target": target,
                "app": app,
                "region": region,
                "zone": zone,
                "group": group,
                "reason": reason,
                "actor": actor or "",
            },
        )
        self._writable()
        with self._lock:
            try:
                entry = self._insert(row)
            except sqlite3.Error as exc:
                raise self._error("cannot be written", exc) from None
        self._tell(entry)
        return entry

    def claim(
        self,
        monkey: str,
        action: str,
        at: float,
        drafts: Sequence[dict[str, str]],
        check: Callable[[KillsSince], str | None],
    ) -> tuple[list[AuditEntry], str | None]:
        """Check a planned kill and write it down, atomically across every process sharing the file.

        Inside one write transaction: `check(kills_since)` decides from the kills recorded so far
        (None: go ahead); then each draft (target, app, region, zone, group, reason, actor) is written
        as ``intended``, or as ``skipped`` with the refusal. Returns the entries and the refusal.
        Raises `AuditError` when the log cannot be written, and then nothing may be killed.
        """
        self._writable()
        with self._lock:
            try:
                with self._transaction():
                    refusal = check(self._kills_since)
                    outcome = "intended" if refusal is None else "skipped"
                    entries = []
                    for d in drafts:
                        fields = dict(d) if refusal is None else {**d, "reason": refusal}
                        entries.append(self._insert(self._row(monkey, action, outcome, at, fields)))
            except sqlite3.Error as exc:
                raise self._error("cannot be written", exc) from None
        if refusal is not None:
            for entry in entries:
                self._tell(entry)
        return entries, refusal

    def settle(self, entry: AuditEntry, outcome: str, reason: str | None = None) -> AuditEntry:
        """Record what became of an ``intended`` entry; `AuditError` leaves it ``intended``."""
        if outcome not in OUTCOMES or outcome == "intended":
            final = [o for o in OUTCOMES if o != "intended"]
            raise ValueError(f"outcome must be one of {', '.join(final)}; got {outcome!r}")
        done = replace(
            entry, outcome=outcome, reason=entry.reason if reason is None else reason, wall=time.time()
        )
        with self._lock:
            try:
                self._db.execute(_SETTLE, (done.outcome, done.reason, done.wall, entry.id))
            except sqlite3.Error as exc:
                raise self._error("cannot be written", exc) from None
        self._tell(done)
        return done

    def _writable(self) -> None:
        if self.readonly:
            raise AuditError(f"audit log {self.path} was opened read-only")

    def _tell(self, entry: AuditEntry) -> None:
        for fn in self._listeners.snapshot():
            fn(entry)

    # -- reading ---------------------------------------------------------------------------------

    def _select(self, where: Sequence[str], args: Sequence[object], limit: int | None) -> list[AuditEntry]:
        columns = _COLUMNS if self._actor_column else _COLUMNS.replace("actor", "'' AS actor")
        sql = f"SELECT {columns} FROM audit" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY at DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self._db.execute(sql, list(args)).fetchall()
        return [AuditEntry(*r) for r in rows]

    def _kills_since(self, since: float) -> list[AuditEntry]:
        # called with the lock held, inside claim()'s transaction
        return self._entries(None, outcome=KILLS, since=since, action="terminate")

    def entries(
        self,
        limit: int | None = 100,
        *,
        monkey: str | None = None,
        outcome: str | Sequence[str] | None = None,
        group: str | None = None,
        since: float | None = None,
        action: str | None = None,
    ) -> list[AuditEntry]:
        """Entries, newest first, filtered by monkey / outcome(s) / group / chaos-clock time / action."""
        with self._lock:
            try:
                return self._entries(
                    limit, monkey=monkey, outcome=outcome, group=group, since=since, action=action
                )
            except sqlite3.Error as exc:
                raise self._error("cannot be read", exc) from None

    def _entries(
        self,
        limit: int | None,
        *,
        monkey: str | None = None,
        outcome: str | Sequence[str] | None = None,
        group: str | None = None,
        since: float | None = None,
        action: str | None = None,
    ) -> list[AuditEntry]:
        # the caller holds the lock
        where: list[str] = []
        args: list[object] = []
        if action is not None:
            where.append("action = ?")
            args.append(action)
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
        return self._select(where, args, limit)

    def terminations(self, since: float | None = None) -> list[AuditEntry]:
        """Kills, newest first: every ``terminated`` entry, and every ``intended`` one whose outcome
        was never written (it may have killed, so the cap counts it)."""
        return self.entries(None, outcome=KILLS, since=since, action="terminate")

    def last(self, monkey: str, group: str, outcomes: Iterable[str]) -> AuditEntry | None:
        """The newest entry of `monkey` for `group` with one of `outcomes`."""
        found = self.entries(1, monkey=monkey, group=group, outcome=list(outcomes))
        return found[0] if found else None

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM audit").fetchone()[0])

    def listen(self, fn: Callable[[AuditEntry], None]) -> Callable[[], None]:
        """Call `fn(entry)` after every record and settled kill (e.g. a dashboard timeline);
        returns an unsubscribe."""
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


__all__ = ["KILLS", "OUTCOMES", "SCHEMA_VERSION", "AuditEntry", "AuditLog", "default_actor"]
