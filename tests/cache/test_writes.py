"""Writes reach every zone: local synchronously, remote through bounded writers, with latches."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis

from stoic.cache import CacheError, EmbeddedValkey, LocalMemcached, Policy, ZonalCache
from stoic.guard import Registry


@pytest.mark.parametrize("fleet_name", ["memcached3", "valkey3"])
def test_set_add_touch_delete_reach_every_zone(
    fleet_name: str, request: pytest.FixtureRequest, make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    cache = make_cache(request.getfixturevalue(fleet_name))
    key = prefix + "row"
    latch = cache.set(key, ["a", "b"], policy=Policy.ALL)
    assert latch.wait(2.0) and latch.succeeded == 3 and latch.failed_zones == []
    assert latch.results == {"zone-a": "stored", "zone-b": "stored", "zone-c": "stored"}
    assert all(cache.get(key, zone=z) == ["a", "b"] for z in cache.zones)

    added = cache.add(key, "other", policy="all")
    assert added.wait_all(2.0) and not added.ok
    assert set(added.results.values()) == {"not_stored"}  # present everywhere: add never overwrites
    fresh = cache.add(prefix + "new", 7, policy="all")
    assert fresh.wait(2.0) and all(cache.get(prefix + "new", zone=z) == 7 for z in cache.zones)

    assert cache.touch(key, 1, policy="all").wait(2.0)
    assert cache.delete(prefix + "new", policy="all").wait(2.0)
    assert all(cache.get(prefix + "new", zone=z) is None for z in cache.zones)
    gone = cache.delete(prefix + "new", policy="all")
    assert gone.wait_all(2.0) and set(gone.results.values()) == {"not_found"}  # still acknowledged
    time.sleep(2.1)  # the touched TTL of 1 s has passed in every zone
    assert all(cache.get(key, zone=z) is None for z in cache.zones)


def test_ttl_zero_never_expires_and_default_ttl_applies(
    valkey3: EmbeddedValkey, make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    cache = make_cache(valkey3, default_ttl=120)
    assert cache.set(prefix + "default", 1, policy="all").wait(2.0)
    assert cache.set(prefix + "forever", 1, ttl=0, policy="all").wait(2.0)
    for address in (s for z in valkey3.zones.values() for s in z):
        host, port = address.split(":")
        client = redis.Redis(host=host, port=int(port))
        try:
            assert 110 <= client.ttl(prefix + "default") <= 120
            assert client.ttl(prefix + "forever") == -1
        finally:
            client.close()


def test_a_hung_zone_drops_writes_once_its_queue_is_full(make_cache: Callable[..., ZonalCache]) -> None:
    with LocalMemcached(zones=2, per_zone=1) as fleet:
        cache = make_cache(fleet, write_queue=2, timeout=0.2)
        hung = fleet.zones["zone-b"][0]
        fleet.pause(hung)  # SIGSTOP: connections stay open, nothing answers
        try:
            latches = [cache.set(f"k{i}", i, policy="all") for i in range(10)]
            assert all(latch.results["zone-a"] == "stored" for latch in latches)  # the local write is sync
            dropped = [latch for latch in latches if latch.results.get("zone-b") == "dropped"]
            assert len(dropped) >= 6  # at most one in flight and two queued
            assert all(not latch.wait(0.0) for latch in dropped)
            assert cache.snapshot()["operations"]["set"]["zone-b"]["dropped"] == len(dropped)
            # a quorum of 2 zones needs the hung zone too: not met while it hangs
            assert cache.set("q", 1, policy="quorum").wait(0.0) is False
        finally:
            fleet.resume(hung)
        assert cache.flush_writes(5.0)
        assert cache.set("after", 1, policy="all").wait(2.0)  # the zone answers again


def test_each_server_is_a_named_guard_dependency(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache]
) -> None:
    registry = Registry()
    cache = make_cache(memcached3, registry=registry, name="titles", owner="catalog-team")
    expected = sorted(f"titles/{zone}/{a}" for zone, addrs in memcached3.zones.items() for a in addrs)
    assert registry.names() == expected
    assert cache.set("k", 1, policy="all").wait(2.0)
    assert cache.get("k") == 1
    local = registry.get(f"titles/zone-a/{cache.zone('zone-a').server_for(b'k').address}")
    snap = local.snapshot()
    assert snap["owner"] == "catalog-team" and snap["counts"]["success"] >= 2
    cache.close()
    assert registry.names() == []
    with pytest.raises(CacheError, match="closed"):
        cache.set("k", 2)


@pytest.mark.parametrize("backend", ["memcached", "valkey"])
def test_a_restarted_zone_takes_writes_at_once(backend: str, make_cache: Callable[..., ZonalCache]) -> None:
    """Connections left open to a server that restarted reconnect on first use, not fail once."""
    fleet = LocalMemcached(zones=2, per_zone=1) if backend == "memcached" else EmbeddedValkey(2, 1)
    with fleet:
        cache = make_cache(fleet)
        assert cache.set("k", 1, policy="all").wait(2.0)  # every connection is open now
        for zone in fleet.zones:
            fleet.kill_zone(zone)
            fleet.restart_zone(zone)
        latch = cache.set("k", 2, policy="all")
        assert latch.wait(2.0), latch
        assert cache.get("k", zone="zone-a") == 2 and cache.get("k", zone="zone-b") == 2
        assert "error" not in cache.snapshot()["operations"].get("get", {}).get("zone-a", {})


def test_a_zone_that_fell_behind_catches_up_in_order_with_few_round_trips(
    make_cache: Callable[..., ZonalCache],
) -> None:
    with LocalMemcached(zones=2, per_zone=1) as fleet:
        cache = make_cache(fleet, timeout=2.0)
        behind = fleet.zones["zone-b"][0]
        fleet.pause(behind)  # its writer blocks on the first write; the rest queue up
        try:
            latches = [cache.set(f"k{i}", i) for i in range(50)]
            latches += [cache.set("moved", 1), cache.set("moved", 2), cache.delete("gone"),
                        cache.set("gone", 1), cache.delete("gone"), cache.set("moved", 3),
                        cache.set("ttl", 1, ttl=60)]
        finally:
            fleet.resume(behind)
        assert cache.flush_writes(10.0)
        calls = cache.zone("zone-b").servers[behind].dependency.snapshot()["counts"]["success"]
        # one write in flight while paused, then a few pipelined multi-sets instead of 57 round trips
        assert calls < 15
        assert all(latch.results["zone-b"] in ("stored", "deleted", "not_found") for latch in latches)
        assert [cache.get(f"k{i}", zone="zone-b") for i in range(50)] == list(range(50))
        assert cache.get("moved", zone="zone-b") == 3  # the last write of a key wins
        assert cache.get("gone", "absent", zone="zone-b") == "absent"  # a delete after a set stays a delete
        assert cache.get("ttl", zone="zone-b") == 1
        assert cache.snapshot()["operations"]["set"]["zone-b"] == {"ok": 55}


def test_a_one_zone_cache_shares_final_latches_only_between_equal_outcomes(
    make_cache: Callable[..., ZonalCache],
) -> None:
    with LocalMemcached(zones=1, per_zone=1) as fleet:
        cache = make_cache(fleet, timeout=0.2)
        first, second = cache.set("a", 1), cache.set("b", 2)
        assert first is second  # both final and "stored": nothing tells them apart
        assert first.results == {"zone-a": "stored"} and first.wait(0.0) and first.pending_zones == []
        quorum = cache.set("c", 3, policy="quorum")
        assert quorum is not first and quorum.policy is Policy.QUORUM and quorum.ok
        deleted, missing = cache.delete("a"), cache.delete("never-set")
        assert deleted.results == {"zone-a": "deleted"} and missing.results == {"zone-a": "not_found"}
        assert deleted is not missing
        fleet.kill_zone("zone-a")
        failed = [cache.set(f"down{i}", i) for i in range(2)]
        assert failed[0] is not failed[1]  # a failure carries its own error
        assert all(not latch.ok and latch.results["zone-a"].startswith("error: ") for latch in failed)
        assert first.results == {"zone-a": "stored"}  # shared latches never change
        assert cache.get("b") is None
