"""History is pruned to `keep_days` on schedule, by the hub and by the service: a week of minutely
data for 100 series (compressed in time by an injected clock) leaves a bounded database."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from stoic.signals import History, Signals
from stoic.signals.config import parse
from stoic.signals.history import PRUNE_EVERY
from stoic.signals.service import SignalsService

from .conftest import Clock

DAY = 86400.0


def _size(path: Path) -> int:
    return sum(os.path.getsize(p) for p in (path, Path(f"{path}-wal")) if p.exists())


def test_a_week_of_minutely_data_for_100_series_stays_bounded(tmp_path: Path) -> None:
    path = tmp_path / "signals.db"
    history = History(path, keep_days=1.0)
    start = 1_764_028_800.0
    sizes: dict[int, int] = {}
    rows_at: dict[int, int] = {}
    for ten in range(7 * 144):  # a week, written ten minutes at a time, as evaluations write it
        t0 = start + ten * 600.0
        rows = [
            (f"m{s:03d}", "eu", t0 + 60.0 * m, 1.0, 1.0, 2.0) for m in range(10) for s in range(100)
        ]
        history.record_points(rows)
        history.maybe_prune(t0 + 600.0)  # what `evaluate()` calls
        if (ten + 1) % 144 == 0:
            day = (ten + 1) // 144
            sizes[day] = _size(path)
            rows_at[day] = history.counts()["rollups"]
    # one day and at most one prune period of rows are kept, whatever the age of the database
    ceiling = 100 * (1440 + PRUNE_EVERY / 60.0)
    assert all(n <= ceiling for n in rows_at.values()), rows_at
    assert rows_at[7] >= 100 * 1440  # nothing younger than keep_days was lost
    assert sizes[7] <= 1.25 * sizes[2], sizes  # freed pages are reused: the file stops growing
    history.close()


def test_prune_keeps_firing_alerts_and_open_incidents(tmp_path: Path) -> None:
    with History(tmp_path / "h.db", keep_days=1.0) as history:
        history.record_points([("sps", "eu", 1_000_000_000.0, 1.0, 1.0, 1.0)])
        assert history.maybe_prune(1_000_000_000.0 + 2 * DAY)
        assert not history.maybe_prune(1_000_000_000.0 + 2 * DAY + 60.0)  # once per PRUNE_EVERY
        assert history.counts()["rollups"] == 0


def test_the_hub_prunes_its_history_while_it_runs(tmp_path: Path) -> None:
    clock = Clock()
    signals = Signals(interval=60.0, day=3600.0, db=tmp_path / "hub.db", keep_days=0.25, clock=clock)
    for minute in range(24 * 60):
        signals.record("orders", 10.0 + minute % 7, region="eu")
        signals.record("refunds", 1.0 + minute % 3, region="eu")
        clock.now += 60.0
        if minute % 10 == 9:
            signals.evaluate()
    signals.close()
    with sqlite3.connect(tmp_path / "hub.db") as db:
        oldest, count = db.execute("SELECT MIN(t), COUNT(*) FROM rollups").fetchone()
    assert oldest >= clock.now - 0.25 * DAY - PRUNE_EVERY - 600.0  # a quarter day, plus one period
    assert 2 * 6 * 60 <= count <= 2 * (6 * 60 + PRUNE_EVERY / 60.0 + 10)


def test_the_service_prunes_its_history_while_it_runs(tmp_path: Path) -> None:
    clock = Clock()
    config = parse(
        f'[service]\nhistory = "{tmp_path / "svc.db"}"\nkeep_days = 1\n'
        '[[indicators]]\nname = "orders"\nsource = "push"\nkind = "count"\nteam = "shop"\n'
    )
    service = SignalsService(config, clock=clock)
    for hour in range(72):  # three days, pushed an hour at a time
        points = [
            {"type": "metric", "name": "orders", "value": 5.0 + m % 4, "at": clock.now + 60.0 * m}
            for m in range(60)
        ]
        clock.now += 3600.0
        service.ingest({"observations": points})
        assert hour < 30 or service.history.counts()["rollups"] <= 1440 + 60 + 60
    service.close()
    with sqlite3.connect(tmp_path / "svc.db") as db:
        oldest, count = db.execute("SELECT MIN(t), COUNT(*) FROM rollups").fetchone()
    assert oldest >= clock.now - DAY - PRUNE_EVERY - 3600.0
    assert count >= 1440 - 120  # the last day is there (less what was not yet judged)
