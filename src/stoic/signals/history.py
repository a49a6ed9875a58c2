"""History in SQLite: indicator rollups, alerts, incidents, context events and fallback use.

One file, safe to reopen: everything written is there after a restart. Writes are batched by
the caller (one transaction per evaluation) and old rows are pruned after `keep_days`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from stoic.signals.alerts import Alert
from stoic.signals.churn import AccountRisk
from stoic.signals.context import ContextEvent
from stoic.signals.silences import Silence, make_silence

# How often `maybe_prune` really prunes (seconds): often enough that the file stays within a
# few percent of `keep_days`, rarely enough that the delete costs nothing per evaluation.
PRUNE_EVERY = 3600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rollups (
    indicator TEXT NOT NULL, region TEXT NOT NULL, t REAL NOT NULL,
    value REAL, expected REAL, bound REAL,
    PRIMARY KEY (indicator, region, t));
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT NOT NULL, starts_at REAL NOT NULL, ends_at REAL, status TEXT NOT NULL,
    kind TEXT NOT NULL, severity TEXT NOT NULL, indicator TEXT NOT NULL, region TEXT NOT NULL,
    team TEXT NOT NULL, summary TEXT NOT NULL, body TEXT NOT NULL, incident INTEGER,
    PRIMARY KEY (id, starts_at));
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT, region TEXT NOT NULL, title TEXT NOT NULL,
    started REAL NOT NULL, ended REAL, alerts INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS events (
    at REAL NOT NULL, kind TEXT NOT NULL, target TEXT NOT NULL, region TEXT, description TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS fallbacks (
    t REAL NOT NULL, dependency TEXT NOT NULL, source TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (t, dependency, source));
CREATE TABLE IF NOT EXISTS churn (
    at REAL NOT NULL, account TEXT NOT NULL, score REAL NOT NULL, reasons TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS churn_accounts (
    at REAL NOT NULL, account TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (at, account));
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY, ends_at REAL NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS rollups_t ON rollups (t);
CREATE INDEX IF NOT EXISTS alerts_t ON alerts (starts_at);
CREATE INDEX IF NOT EXISTS events_t ON events (at);
"""


@dataclass(frozen=True, slots=True)
class Incident:
    """Alerts in one region that overlapped in time, seen as one incident."""

    id: int
    region: str
    title: str
    started: float
    ended: float | None
    alerts: int

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "region": self.region,
            "title": self.title,
            "started": self.started,
            "ended": self.ended,
            "alerts": self.alerts,
        }


class History:
    """The SQLite store. `path` may be ":memory:"."""

    def __init__(self, path: str | Path, *, keep_days: float = 90.0, busy_timeout: float = 5.0) -> None:
        self.path = str(path)
        self.keep = keep_days * 86400.0
        self.pruned_at: float | None = None  # when `maybe_prune` last pruned
        self._lock = threading.Lock()
        # `busy_timeout`: how long a write waits for another connection's lock before it fails
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=busy_timeout)
        # WAL + NORMAL: durable across process restarts, without an fsync per evaluation
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- writing ---------------------------------------------------------------------------
    def record_points(
        self, rows: Iterable[tuple[str, str, float, float | None, float | None, float | None]]
    ) -> None:
        """Store (indicator, region, t, value, expected, bound) rows; a re-write replaces a row."""
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO rollups VALUES (?, ?, ?, ?, ?, ?)", list(rows))

    def record_alert(self, alert: Alert) -> None:
        """Store a firing or resolved alert and keep incidents up to date."""
        with self._lock, self._db:
            row = self._db.execute(
                "SELECT incident FROM alerts WHERE id = ? AND starts_at = ?", (alert.id, alert.starts_at)
            ).fetchone()
            incident = row[0] if row else None
            if incident is None and alert.status == "firing":
                # critical alerts open incidents; warnings join one that is already open
                open_one = self._db.execute(
                    "SELECT id FROM incidents WHERE region = ? AND ended IS NULL "
                    "ORDER BY started DESC LIMIT 1",
                    (alert.region,),
                ).fetchone()
                if open_one:
                    incident = open_one[0]
                    self._db.execute("UPDATE incidents SET alerts = alerts + 1 WHERE id = ?", (incident,))
                elif alert.severity == "critical":
                    incident = self._db.execute(
                        "INSERT INTO incidents (region, title, started, alerts) VALUES (?, ?, ?, 1)",
                        (alert.region, alert.summary, alert.starts_at),
                    ).lastrowid
            self._db.execute(
                "INSERT OR REPLACE INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    alert.id,
                    alert.starts_at,
                    alert.ends_at,
                    alert.status,
                    alert.kind,
                    alert.severity,
                    alert.indicator,
                    alert.region,
                    alert.team,
                    alert.summary,
                    json.dumps(alert.to_dict()),
                    incident,
                ),
            )
            if alert.status == "resolved" and incident is not None:
                # the incident is over when no critical alert in it is still firing
                still = self._db.execute(
                    "SELECT COUNT(*) FROM alerts WHERE incident = ? AND status = 'firing' "
                    "AND severity = 'critical'",
                    (incident,),
                ).fetchone()[0]
                if not still:
                    self._db.execute("UPDATE incidents SET ended = ? WHERE id = ?", (alert.ends_at, incident))

    def record_event(self, event: ContextEvent) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?)",
                (event.at, event.kind, event.target, event.region, event.description),
            )

    def record_fallbacks(self, t: float, counts: dict[tuple[str, str], int]) -> None:
        """Add fallback uses, per (dependency, fallback name), to the hour starting at `t`."""
        with self._lock, self._db:
            self._db.executemany(
                "INSERT INTO fallbacks VALUES (?, ?, ?, ?) ON CONFLICT (t, dependency, source) "
                "DO UPDATE SET count = count + excluded.count",
                [(t, dep, src, n) for (dep, src), n in counts.items()],
            )

    def record_churn(self, at: float, accounts: Iterable[AccountRisk]) -> None:
        """Store a snapshot of the accounts most at risk (the report shows the latest one)."""
        with self._lock, self._db:
            self._db.executemany(
                "INSERT INTO churn VALUES (?, ?, ?, ?)",
                [(at, a.account, a.score, json.dumps(a.reasons)) for a in accounts],
            )
            # who each account is (name, segment, owner, value) and what to do, so a report
            # read later names customers instead of bare ids
            self._db.executemany(
                "INSERT OR REPLACE INTO churn_accounts VALUES (?, ?, ?)",
                [(at, a.account, json.dumps(a.to_dict())) for a in accounts],
            )

    def prune(self, now: float) -> None:
        """Drop rows older than `keep_days`: points, events, fallback counts, churn snapshots,
        alerts that resolved before then, incidents that ended before then and silences that
        ended before then. Firing alerts and open incidents are kept, however old."""
        floor = now - self.keep
        with self._lock, self._db:
            self._db.execute("DELETE FROM rollups WHERE t < ?", (floor,))
            self._db.execute("DELETE FROM events WHERE at < ?", (floor,))
            self._db.execute("DELETE FROM fallbacks WHERE t < ?", (floor,))
            self._db.execute("DELETE FROM churn WHERE at < ?", (floor,))
            self._db.execute("DELETE FROM churn_accounts WHERE at < ?", (floor,))
            self._db.execute("DELETE FROM alerts WHERE ends_at IS NOT NULL AND ends_at < ?", (floor,))
            self._db.execute("DELETE FROM incidents WHERE ended IS NOT NULL AND ended < ?", (floor,))
            self._db.execute("DELETE FROM silences WHERE ends_at < ?", (floor,))
        self.pruned_at = now

    def maybe_prune(self, now: float, every: float = PRUNE_EVERY) -> bool:
        """`prune(now)` if it last ran `every` seconds ago or more (or never); True if it ran.
        `Signals` and `SignalsService` call it at every evaluation."""
        if self.pruned_at is not None and now - self.pruned_at < every:
            return False
        self.prune(now)
        return True

    def counts(self) -> dict[str, int]:
        """Rows per table (what retention keeps bounded)."""
        tables = ("rollups", "alerts", "incidents", "events", "fallbacks", "churn", "silences")
        with self._lock:
            return {t: int(self._db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in tables}

    # ---- silences ----------------------------------------------------------------------------
    def save_silence(self, silence: Silence) -> None:
        """Keep a silence made through the API (a new version replaces the old)."""
        body = json.dumps(silence.to_dict())
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO silences VALUES (?, ?, ?)", (silence.id, silence.ends_at, body)
            )

    def load_silences(self, now: float) -> list[Silence]:
        """Silences kept (those that ended too: one declared in a file and expired through the API
        stays expired); ended ones older than `keep_days` are pruned."""
        with self._lock:
            rows = self._db.execute("SELECT body FROM silences ORDER BY ends_at").fetchall()
        out = []
        for (body,) in rows:
            d = json.loads(body)
            silence = make_silence(
                d["matchers"],
                starts_at=d["starts_at"],
                # one expired before it began ends as it starts (a silence needs a length)
                ends_at=max(d["ends_at"], d["starts_at"] + 0.001),
                created_by=d["created_by"],
                comment=d["comment"],
                kind=d["kind"],
                max_severity=d["max_severity"],
                kill_switch=d["kill_switch"],
                silence_id=d["id"],
            )
            out.append(replace(silence, expired_by=d.get("expired_by", "")))
        return out

    # ---- reading ---------------------------------------------------------------------------
    def points(
        self, indicator: str, region: str, since: float, until: float
    ) -> list[tuple[float, float | None, float | None, float | None]]:
        """(t, value, expected, bound) rows in time order."""
        with self._lock:
            return list(
                self._db.execute(
                    "SELECT t, value, expected, bound FROM rollups WHERE indicator = ? AND region = ? "
                    "AND t >= ? AND t < ? ORDER BY t",
                    (indicator, region, since, until),
                )
            )

    def series_keys(self, since: float, until: float) -> list[tuple[str, str]]:
        """(indicator, region) pairs with points in the range."""
        with self._lock:
            return list(
                self._db.execute(
                    "SELECT DISTINCT indicator, region FROM rollups WHERE t >= ? AND t < ? "
                    "ORDER BY region, indicator",
                    (since, until),
                )
            )

    def alerts(self, since: float, until: float) -> list[dict[str, Any]]:
        """Alert dicts (latest state) that started in the range, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM alerts WHERE starts_at >= ? AND starts_at < ? ORDER BY starts_at",
                (since, until),
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def incidents(self, since: float, until: float) -> list[Incident]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, region, title, started, ended, alerts FROM incidents "
                "WHERE started < ? AND (ended IS NULL OR ended >= ?) ORDER BY started",
                (until, since),
            ).fetchall()
        return [Incident(*r) for r in rows]

    def events(self, since: float, until: float) -> list[ContextEvent]:
        with self._lock:
            rows = self._db.execute(
                "SELECT at, kind, target, description, region FROM events "
                "WHERE at >= ? AND at < ? ORDER BY at",
                (since, until),
            ).fetchall()
        return [
            ContextEvent(at, kind, target, description, region)
            for at, kind, target, description, region in rows
        ]

    def fallbacks(self, since: float, until: float) -> list[tuple[float, str, str, int]]:
        with self._lock:
            return list(
                self._db.execute(
                    "SELECT t, dependency, source, count FROM fallbacks WHERE t >= ? AND t < ? ORDER BY t",
                    (since, until),
                )
            )

    def churn(self, until: float) -> list[AccountRisk]:
        """The latest churn-risk snapshot taken before `until`, highest score first."""
        with self._lock:
            row = self._db.execute("SELECT MAX(at) FROM churn WHERE at <= ?", (until,)).fetchone()
            if row is None or row[0] is None:
                return []
            rows = self._db.execute(
                "SELECT account, score, reasons FROM churn WHERE at = ? ORDER BY score DESC", (row[0],)
            ).fetchall()
        return [AccountRisk(acc, score, json.loads(reasons), row[0]) for acc, score, reasons in rows]

    def alerts_overlapping(self, since: float, until: float) -> list[dict[str, Any]]:
        """Alert dicts (latest state) firing at any time in the range, oldest first: those that
        started before `since` and were still firing are included."""
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM alerts WHERE starts_at < ? AND (ends_at IS NULL OR ends_at >= ?) "
                "ORDER BY starts_at",
                (until, since),
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def churn_accounts_after(self, since: float, until: float) -> list[AccountRisk]:
        """The first churn-risk snapshot taken in [since, until], as `churn_accounts` reads it."""
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(at) FROM churn_accounts WHERE at >= ? AND at <= ?", (since, until)
            ).fetchone()
        return [] if row is None or row[0] is None else self.churn_accounts(row[0])

    def churn_accounts(self, until: float) -> list[AccountRisk]:
        """The latest churn-risk snapshot taken at or before `until`, with who each account is
        (name, segment, owner, value), its kind and next step; highest score first."""
        with self._lock:
            row = self._db.execute("SELECT MAX(at) FROM churn_accounts WHERE at <= ?", (until,)).fetchone()
            if row is None or row[0] is None:
                return []
            bodies = [
                json.loads(b)
                for (b,) in self._db.execute("SELECT body FROM churn_accounts WHERE at = ?", (row[0],))
            ]
        risks = [
            AccountRisk(
                account=str(d["account"]),
                score=float(d["score"]),
                reasons={str(k): float(v) for k, v in dict(d.get("reasons") or {}).items()},
                last_seen=float(d.get("last_seen") or row[0]),
                name=str(d.get("name") or ""),
                segment=str(d.get("segment") or ""),
                owner=str(d.get("owner") or ""),
                value=float(d.get("value") or 0.0),
                kind=str(d.get("kind") or ""),
                next_step=str(d.get("next_step") or ""),
                trend=tuple(float(x) for x in d.get("trend") or ()),
            )
            for d in bodies
        ]
        return sorted(risks, key=lambda r: (-r.score, r.account))

    def latest(self) -> float | None:
        """The newest rollup time, or None for an empty history."""
        with self._lock:
            row = self._db.execute("SELECT MAX(t) FROM rollups").fetchone()
        return None if row is None or row[0] is None else float(row[0])
