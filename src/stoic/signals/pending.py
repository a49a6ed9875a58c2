"""Pushed samples not yet judged, kept in SQLite: an ingest answered 202 survives a crash.

A pushed body is written here (one transaction) before it is acknowledged; the rows of an
interval are deleted once it is judged (its value then lives in history), and a restarted
process reads back what is left. Prometheus and file samples are not kept here: their source
still holds them and is read again at start.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from stoic.signals.series import Labels, Sample

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    indicator TEXT NOT NULL, labels TEXT NOT NULL, t REAL NOT NULL, value REAL NOT NULL);
CREATE INDEX IF NOT EXISTS pending_series ON pending (indicator, labels, t);
"""


class PendingSamples:
    """The SQLite file of pushed samples waiting to be judged. Thread-safe."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=5.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: survives a process crash
        self._db.executescript(_SCHEMA)
        self._db.commit()

    def add(self, samples: Sequence[Sample]) -> None:
        """Keep `samples` (one transaction); sqlite3.Error if they could not be written."""
        rows = [(s.indicator, json.dumps(s.labels), s.t, s.value) for s in samples]
        with self._lock, self._db:
            self._db.executemany("INSERT INTO pending VALUES (?, ?, ?, ?)", rows)

    def judged(self, indicator: str, labels: Labels, until: float) -> None:
        """Forget the samples of one label set before `until` (their intervals are judged)."""
        with self._lock, self._db:
            self._db.execute(
                "DELETE FROM pending WHERE indicator = ? AND labels = ? AND t < ?",
                (indicator, json.dumps(labels), until),
            )

    def load(self) -> list[Sample]:
        """Everything still waiting, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT indicator, labels, t, value FROM pending ORDER BY t").fetchall()
        return [Sample(i, tuple((k, v) for k, v in json.loads(lab)), t, v) for i, lab, t, v in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
