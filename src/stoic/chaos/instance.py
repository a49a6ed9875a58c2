"""`Instance`: one supervised local process, labelled app / region / zone."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["new", "starting", "running", "dead", "stopping", "stopped"]

#: statuses in which the process is (or should be) up
LIVE_STATUSES = frozenset({"starting", "running"})


@dataclass(eq=False)
class Instance:
    """One instance of an app: its launch spec (fixed) and its live state (updated by the `Supervisor`).

    A replacement after a crash or a kill keeps the same record (same id, port and labels) with a new
    pid and ``restarts`` incremented, like an auto-scaling group bringing the slot back.
    """

    id: str
    app: str
    region: str
    zone: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    port: int | None = None
    health_url: str | None = None
    probe: Callable[[Instance], bool] | None = field(default=None, repr=False)
    restart_after: float | None = None
    owner: str | None = None

    status: Status = "new"
    pid: int | None = None
    exit_code: int | None = None
    restarts: int = 0
    started_at: float | None = None  # time.time() of the latest (re)start
    healthy_at: float | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def alive(self) -> bool:
        """True while the OS process is running (whether or not it is healthy yet)."""
        proc = self._process
        return proc is not None and proc.poll() is None

    @property
    def healthy(self) -> bool:
        """True once the health check passed for the current process."""
        return self.status == "running" and self.alive

    @property
    def labels(self) -> dict[str, str]:
        return {"app": self.app, "region": self.region, "zone": self.zone}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (for dashboards and logs)."""
        return {
            "id": self.id,
            "app": self.app,
            "region": self.region,
            "zone": self.zone,
            "owner": self.owner,
            "status": self.status,
            "alive": self.alive,
            "pid": self.pid,
            "port": self.port,
            "health_url": self.health_url,
            "exit_code": self.exit_code,
            "restarts": self.restarts,
            "restart_after": self.restart_after,
            "started_at": self.started_at,
            "healthy_at": self.healthy_at,
        }
