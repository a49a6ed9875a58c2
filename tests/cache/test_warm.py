"""Warm-up copies a warm zone into a cold one, keeps TTLs and never overwrites newer writes."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import pytest
import redis

from stoic.cache import EmbeddedValkey, LocalMemcached, ZonalCache

from .conftest import Fleet


@pytest.mark.parametrize("backend", ["memcached", "valkey"])
def test_warm_fills_a_restarted_zone_and_keeps_newer_values(
    backend: str, make_cache: Callable[..., ZonalCache]
) -> None:
    fleet: Fleet = LocalMemcached(zones=2, per_zone=2) if backend == "memcached" else EmbeddedValkey(2, 2)
    with fleet:
        cache = make_cache(fleet, "zone-a")
        for i in range(300):
            assert cache.set(f"row:{i}", {"i": i}, ttl=600, policy="all").wait(2.0)
        assert cache.set("poster", b"p" * 50_000, policy="all").wait(2.0)
        fleet.kill_zone("zone-b")
        fleet.restart_zone("zone-b")
        assert cache.get("row:1", zone="zone-b") is None
        # a newer write reaches the cold zone before the warm-up copies the old value: it must survive
        zone_b = cache.zone("zone-b")
        zone_b.server_for(b"row:7").node.set_many([(b"row:7", b'\x00j{"i":"newer"}')], 600)

        calls: list[tuple[int, int]] = []
        report = cache.warm("zone-a", "zone-b", batch=50, progress=lambda s, e: calls.append((s, e)))
        assert report.failed == 0 and report.unreachable == ()
        assert report.copied == report.seen - report.skipped
        assert report.skipped >= 1  # row:7 was already there
        assert len(calls) >= 6 and calls[-1][0] == report.seen
        assert all(b[0] >= a[0] for a, b in itertools.pairwise(calls))
        for i in range(300):
            expected = {"i": "newer"} if i == 7 else {"i": i}
            assert cache.get(f"row:{i}", zone="zone-b") == expected
        assert cache.get("poster", zone="zone-b") == b"p" * 50_000
        assert "warmed zone-b from zone-a" in str(report)


def test_warm_keeps_the_remaining_ttl(make_cache: Callable[..., ZonalCache]) -> None:
    with EmbeddedValkey(zones=2, per_zone=1) as fleet:
        cache = make_cache(fleet)
        assert cache.set("short", 1, ttl=30, policy="all").wait(2.0)
        assert cache.set("forever", 1, ttl=0, policy="all").wait(2.0)
        fleet.kill_zone("zone-b")
        fleet.restart_zone("zone-b")
        time.sleep(1.1)
        assert cache.warm("zone-a", "zone-b").copied == 2
        host, port = fleet.zones["zone-b"][0].split(":")
        client = redis.Redis(host=host, port=int(port))
        try:
            assert 25 <= client.ttl("short") <= 29  # what was left, not a fresh 30 s
            assert client.ttl("forever") == -1
        finally:
            client.close()


def test_warm_rejects_bad_zones(memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache]) -> None:
    cache = make_cache(memcached3)
    with pytest.raises(ValueError, match="must differ"):
        cache.warm("zone-a", "zone-a")
    with pytest.raises(ValueError, match="zone must be one of"):
        cache.warm("zone-a", "zone-q")
    with pytest.raises(ValueError, match=r"batch must be an integer in 1\.\.100000"):
        cache.warm("zone-a", "zone-b", batch=0)


def test_warm_reports_an_unreachable_source_server(make_cache: Callable[..., ZonalCache]) -> None:
    with EmbeddedValkey(zones=2, per_zone=2) as fleet:
        cache = make_cache(fleet)
        for i in range(100):
            assert cache.set(f"k{i}", i, policy="all").wait(2.0)
        dead = fleet.zones["zone-a"][1]
        fleet.kill(dead)
        fleet.kill_zone("zone-b")
        fleet.restart_zone("zone-b")
        report = cache.warm("zone-a", "zone-b")
        assert report.unreachable == (dead,)
        assert 0 < report.copied < 100 and report.failed == 0
        assert f"unreachable: {dead}" in str(report)
        on_live = [i for i in range(100) if cache.zone("zone-a").server_for(f"k{i}".encode()).address != dead]
        assert all(cache.get(f"k{i}", zone="zone-b") == i for i in on_live)
        assert len(on_live) == report.copied
