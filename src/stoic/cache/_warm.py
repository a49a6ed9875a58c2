"""Warm-up: copy every live item of a warm zone into a cold one, server by server."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ._zone import Server, Zone

Progress = Callable[[int, int], None]
"""Called as progress(keys_seen, keys_estimated) after each batch."""


@dataclass(frozen=True, slots=True)
class WarmReport:
    """What a warm-up did. `skipped`: already present in the target (a newer write wins) or gone."""

    source: str
    target: str
    seen: int
    copied: int
    skipped: int
    failed: int
    seconds: float
    unreachable: tuple[str, ...] = ()

    def __str__(self) -> str:
        return (
            f"warmed {self.target} from {self.source}: {self.copied} copied, {self.skipped} skipped, "
            f"{self.failed} failed of {self.seen} keys in {self.seconds:.2f} s"
            + (f"; unreachable: {', '.join(self.unreachable)}" if self.unreachable else "")
        )


def copy_zone(source: Zone, target: Zone, batch: int, progress: Progress | None) -> WarmReport:
    """Copy raw items (heads and chunks alike) with their remaining TTL, using `add` so that a
    value written to the target while the warm-up runs is never overwritten by an older copy."""
    servers = list(source.servers.values())
    return copy_items(source.name, servers, target, batch, progress, moved_only=False)


def move_keys(zone: Zone, sources: list[Server], batch: int) -> WarmReport:
    """After a ring change in `zone`: copy each item of `sources` that the ring now places on
    another server to that server (with `add`, so a newer write there wins)."""
    return copy_items(zone.name, sources, zone, batch, None, moved_only=True)


def copy_items(source_name: str, servers: list[Server], target: Zone, batch: int, progress: Progress | None,
               *, moved_only: bool) -> WarmReport:
    """Copy every live item of `servers` to its owner in `target`; with `moved_only`, only items
    whose owner is not the server that holds them."""
    started = time.monotonic()
    estimate = 0
    for server in servers:
        try:
            estimate += server.call(server.node.count)
        except Exception:
            continue
    seen = copied = skipped = failed = 0
    unreachable: list[str] = []
    for server in servers:
        try:
            for listing in server.node.dump(batch):
                seen += len(listing)
                if moved_only:
                    listing = [(key, ttl) for key, ttl in listing if target.server_for(key) is not server]
                if not listing:
                    continue
                try:
                    values = server.call(server.node.get_many, [key for key, _ in listing])
                except Exception:
                    failed += len(listing)
                    continue
                for key, ttl in listing:
                    data = values.get(key)
                    if data is None:
                        skipped += 1
                        continue
                    owner = target.server_for(key)
                    try:
                        if owner.call(owner.node.add, key, data, ttl):
                            copied += 1
                        else:
                            skipped += 1
                    except Exception:
                        failed += 1
                if progress is not None:
                    progress(seen, max(estimate, seen))
        except Exception:  # the listing failed (OSError, redis.ConnectionError, ...)
            unreachable.append(server.address)  # its share of the keys stays cold
    seconds = time.monotonic() - started
    return WarmReport(source_name, target.name, seen, copied, skipped, failed, seconds, tuple(unreachable))
