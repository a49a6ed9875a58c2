"""Where everything runs: two regions, two zones each, and which process hosts which service."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: region -> its zones, in preference order
REGIONS: dict[str, tuple[str, ...]] = {
    "us-east": ("us-east-1a", "us-east-1b"),
    "eu-west": ("eu-west-1a", "eu-west-1b"),
}

#: the services a play touches
SERVICES: tuple[str, ...] = (
    "device",
    "subscription",
    "personalisation",
    "steering",
    "manifest",
    "licence",
    "playback-log",
)

#: process (the unit Chaos Monkey kills) -> the services it hosts, one process of each per zone.
#: Grouped by owning team so a zone runs 4 processes, not 8: the platform starts in a few seconds
#: on a 2-core machine and a kill still takes out a real slice of one zone.
PROCESSES: dict[str, tuple[str, ...]] = {
    "edge": ("edge",),
    "account": ("device", "subscription"),
    "discovery": ("personalisation",),
    "playback": ("steering", "manifest", "licence", "playback-log"),
}

#: the processes a FIT header may reach: the edge a play arrives at and the service processes it
#: calls (a strike may target any dependency on the play path, wherever it is guarded)
FIT_AUDIENCE: tuple[str, ...] = tuple(PROCESSES)

#: the team paged when a service misbehaves
OWNERS: dict[str, str] = {
    "edge": "edge-team",
    "device": "device-team",
    "subscription": "membership-team",
    "personalisation": "personalisation-team",
    "steering": "open-connect-team",
    "manifest": "playback-team",
    "licence": "drm-team",
    "playback-log": "playback-team",
    "oca": "open-connect-team",
    "evcache": "cache-team",
}

#: the Open Connect appliance (segment server) of each region lives in that region's first zone
OCA_APP = "oca"
CACHE_APP = "evcache"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One process: its app, labels and loopback port."""

    app: str
    region: str
    zone: str
    port: int

    @property
    def id(self) -> str:
        """The process id the Supervisor and the report use: ``<app>-<zone>``."""
        return f"{self.app}-{self.zone}"

    @property
    def url(self) -> str:
        """Base URL on loopback."""
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True, slots=True)
class Topology:
    """Every process of the platform with its port; written to a JSON file each process reads."""

    regions: dict[str, tuple[str, ...]]
    endpoints: tuple[Endpoint, ...]
    fit_secret: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        port: Callable[[], int],
        *,
        regions: Mapping[str, Iterable[str]] = REGIONS,
        fit_secret: str = "",
        settings: Mapping[str, Any] | None = None,
    ) -> Topology:
        """Lay out every process in every zone, asking `port()` for each port."""
        regs = {name: tuple(zones) for name, zones in regions.items()}
        if len(regs) < 1 or any(len(z) < 1 for z in regs.values()):
            raise ValueError("regions: need at least one region with at least one zone")
        eps: list[Endpoint] = []
        for region, zones in regs.items():
            for zone in zones:
                eps.extend(Endpoint(app, region, zone, port()) for app in (*PROCESSES, CACHE_APP))
            eps.append(Endpoint(OCA_APP, region, zones[0], port()))
        return cls(regs, tuple(eps), fit_secret, dict(settings or {}))

    # -- lookups -------------------------------------------------------------------------------

    def region_of(self, zone: str) -> str:
        """The region a zone belongs to; KeyError names the known zones."""
        for region, zones in self.regions.items():
            if zone in zones:
                return region
        raise KeyError(f"zone {zone!r} is not in any region ({', '.join(self.zones)})")

    @property
    def zones(self) -> list[str]:
        """Every zone, region by region."""
        return [z for zones in self.regions.values() for z in zones]

    def endpoint(self, app: str, zone: str) -> Endpoint:
        """The process of `app` in `zone`."""
        for ep in self.endpoints:
            if ep.app == app and ep.zone == zone:
                return ep
        raise KeyError(f"no {app!r} process in zone {zone!r}")

    def endpoints_of(self, app: str, region: str | None = None) -> list[Endpoint]:
        """Every process of `app` (in `region`, if given)."""
        return [ep for ep in self.endpoints if ep.app == app and (region is None or ep.region == region)]

    def host_of(self, service: str) -> str:
        """The process app that hosts `service`."""
        for app, services in PROCESSES.items():
            if service in services:
                return app
        raise KeyError(f"unknown service {service!r}; known: {', '.join(SERVICES)}")

    def service_urls(self, service: str, zone: str) -> dict[str, str]:
        """zone -> base URL of `service`, own zone first, then the region's other zones."""
        region = self.region_of(zone)
        zones = [zone, *[z for z in self.regions[region] if z != zone]]
        app = self.host_of(service)
        return {z: f"{self.endpoint(app, z).url}/{service}" for z in zones}

    def other_regions(self, region: str) -> list[str]:
        """Every region but `region`."""
        return [r for r in self.regions if r != region]

    # -- files ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "regions": {k: list(v) for k, v in self.regions.items()},
            "endpoints": [asdict(ep) for ep in self.endpoints],
            "fit_secret": self.fit_secret,
            "settings": self.settings,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Topology:
        """Read what `to_dict` wrote."""
        return cls(
            {k: tuple(v) for k, v in data["regions"].items()},
            tuple(Endpoint(**ep) for ep in data["endpoints"]),
            str(data.get("fit_secret", "")),
            dict(data.get("settings", {})),
        )

    def save(self, path: Path) -> Path:
        """Write the topology as JSON to `path`."""
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: Path) -> Topology:
        """Read a topology written by `save`."""
        return cls.from_dict(json.loads(path.read_text()))
