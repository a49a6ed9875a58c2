"""The guard state of every platform process, in one registry-shaped view for the dashboard.

Each process serves its registry's snapshot at ``/guard``; a background thread polls them, so the
dashboard reads a fresh copy without waiting on the network.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import httpx


class FleetGuardView:
    """`snapshot()` returns every process's dependencies, named ``<process>/<dependency>``."""

    def __init__(self, processes: Mapping[str, str], interval: float = 2.0) -> None:
        if not 0.2 <= interval <= 60:
            raise ValueError(f"interval: must be in [0.2, 60] seconds, got {interval!r}")
        self.processes = dict(processes)  # process id -> base URL
        self.interval = interval
        self._snaps: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def snapshot(self) -> list[dict[str, Any]]:
        return list(self._snaps)

    def get(self, name: str) -> Any:
        # remote breakers cannot be forced from here: the dashboard shows them read-only
        raise KeyError(name)

    def refresh(self, client: httpx.Client) -> None:
        snaps: list[dict[str, Any]] = []
        for pid, url in self.processes.items():
            try:
                body = client.get(f"{url}/guard", timeout=0.5).json()
            except (httpx.HTTPError, ValueError):
                continue  # a dead process shows no tiles until it is back
            for snap in body.get("dependencies", []):
                snaps.append({**snap, "name": f"{pid}/{snap.get('name', '')}"})
        self._snaps = snaps

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fleet-guard-view", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client() as client:
            while not self._stop.is_set():
                self.refresh(client)
                self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
