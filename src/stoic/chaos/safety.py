"""Safety rails: the blast-radius cap, the kill switch and outage checks."""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._errors import ChaosConfigError
from .fleet import Fleet, Member

#: how much of the kill-switch file is read as its reason
_REASON_BYTES = 1024

#: returns True while the system is already unhealthy; chaos pauses then
OutageCheck = Callable[[], bool]


@dataclass(frozen=True)
class Casualty:
    """One instance taken down (recently or about to be), as the cap counts it."""

    id: str
    app: str
    region: str
    zone: str


@dataclass(frozen=True)
class BlastRadius:
    """How much one window of chaos may take down. None disables a limit.

    - `max_instances`: kills per `window` (all monkeys together; the same instance killed twice counts
      twice)
    - `max_zones` / `max_regions`: distinct zones / regions touched per window
    - `max_share`: share of an app's alive instances taken down per window (0 < share <= 1)

    An action that would cross any limit is refused whole: it kills nothing.
    """

    window: float = 3600.0
    max_instances: int | None = 3
    max_zones: int | None = 1
    max_regions: int | None = 1
    max_share: float | None = 0.5

    def __post_init__(self) -> None:
        if not _number(self.window) or self.window <= 0:
            raise ChaosConfigError(f"limits.window must be > 0 seconds; got {self.window!r}")
        for name in ("max_instances", "max_zones", "max_regions"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ChaosConfigError(f"limits.{name} must be an integer >= 0 or None; got {value!r}")
        if self.max_share is not None and (not _number(self.max_share) or not 0 < self.max_share <= 1):
            raise ChaosConfigError(f"limits.max_share must be in (0, 1] or None; got {self.max_share!r}")

    @classmethod
    def unlimited(cls, window: float = 3600.0) -> BlastRadius:
        return cls(window=window, max_instances=None, max_zones=None, max_regions=None, max_share=None)

    def refusal(self, planned: Sequence[Member], recent: Sequence[Casualty], alive: Fleet) -> str | None:
        """None if `planned` fits inside the cap given what was `recent`ly killed, else why not.

        Kills are counted, not distinct instances: an instance killed, replaced under the same id and
        killed again counts twice.
        """
        everyone = [*recent, *(Casualty(p.id, p.app, p.region, p.zone) for p in planned)]
        if self.max_instances is not None and len(everyone) > self.max_instances:
            return (
                f"blast radius: {len(recent)} killed in the last {self.window:g}s + {len(planned)} planned "
                f"> max_instances {self.max_instances}"
            )
        zones = {c.zone for c in everyone}
        if self.max_zones is not None and len(zones) > self.max_zones:
            return f"blast radius: zones {sorted(zones)} > max_zones {self.max_zones}"
        regions = {c.region for c in everyone}
        if self.max_regions is not None and len(regions) > self.max_regions:
            return f"blast radius: regions {sorted(regions)} > max_regions {self.max_regions}"
        if self.max_share is not None:
            for app in sorted({p.app for p in planned}):
                taken = sum(1 for c in everyone if c.app == app)
                size = max(len(alive.select(app=app)), 1)
                if taken / size > self.max_share + 1e-9:
                    return (
                        f"blast radius: {taken} of {size} alive {app} instances "
                        f"> max_share {self.max_share:g}"
                    )
        return None


class KillSwitch:
    """Stops all chaos at once: an in-memory flag, optionally mirrored by a file any process can create.

    `engaged` is read before every action; the fault board injectors also honour the file, so
    injected latency stops fleet-wide within ~100 ms.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._flag = threading.Event()
        self._reason = ""  # kept in memory too: a switch without a file still says why

    @property
    def engaged(self) -> bool:
        return self._flag.is_set() or (self.path is not None and self.path.exists())

    def engage(self, reason: str = "") -> None:
        """Turn chaos off (writes the file when there is one).

        The file existing is the switch; its text is only the reason. So an `OSError` raised while
        writing the reason (a full disk) can leave the switch on: check `engaged`.
        """
        self._reason = reason
        self._flag.set()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(reason or "engaged\n")

    def release(self) -> None:
        """Let chaos run again."""
        self._flag.clear()
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def reason(self) -> str:
        if self.path is not None and self.path.exists():
            try:
                with self.path.open("rb") as f:  # bounded: anyone may have written anything there
                    text = f.read(_REASON_BYTES).decode(errors="replace").strip("\x00 \n\t")
            except OSError:
                return "engaged"
            return text or "engaged"
        return (self._reason or "engaged") if self._flag.is_set() else ""

    def __repr__(self) -> str:
        return f"KillSwitch(path={self.path!s}, engaged={self.engaged})"


def url_outage(url: str, timeout: float = 1.0) -> OutageCheck:
    """An outage check: the system is in an outage while GET `url` does not answer 2xx."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return not 200 <= int(resp.status) < 300
        except (urllib.error.URLError, OSError, ValueError):
            return True

    return check


def open_breakers_outage(max_open: int = 0) -> OutageCheck:
    """An outage check: the system is in an outage while more than `max_open` circuit breakers
    of this process's `stoic.guard.registry` are open."""
    from stoic.guard import registry

    def check() -> bool:
        states = [d.breaker.state for d in registry.all()]
        return sum(1 for s in states if s == "open") > max_open

    return check


def _number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


__all__ = ["BlastRadius", "Casualty", "KillSwitch", "OutageCheck", "open_breakers_outage", "url_outage"]
