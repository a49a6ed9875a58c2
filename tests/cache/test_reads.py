"""Reads stay in the local zone and fall back; bulk reads refetch only the keys still missing."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from stoic.cache import LocalMemcached, ZonalCache


def _requested(cache: ZonalCache, zone: str) -> int:
    """Keys the zone's servers were asked for (hits + misses, from the servers' own stats)."""
    stats = [s.node.stats() for s in cache.zone(zone).servers.values()]
    return sum(st["hits"] + st["misses"] for st in stats)


def test_get_many_refetches_only_the_missing_keys(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    cache = make_cache(memcached3)
    keys = [f"{prefix}{i}" for i in range(60)]
    for i, key in enumerate(keys):
        assert cache.set(key, i, policy="all").wait(2.0)
    zone_a = cache.zone("zone-a")
    dropped = keys[::4]  # 15 keys vanish from the local zone only (evicted, say)
    for key in dropped:
        assert zone_a.server_for(key.encode()).node.delete(key.encode())
    asked_a, asked_b, asked_c = (_requested(cache, z) for z in ("zone-a", "zone-b", "zone-c"))

    got = cache.get_many([*keys, prefix + "never-written"])

    assert got == {key: i for i, key in enumerate(keys)}
    assert _requested(cache, "zone-a") - asked_a == 61
    assert _requested(cache, "zone-b") - asked_b == 16  # only the 15 missing keys + the unknown one
    assert _requested(cache, "zone-c") - asked_c == 1  # only the key no zone has
    ops = cache.snapshot()["operations"]["get_many"]
    assert ops["zone-a"] == {"hit": 45, "miss": 16}
    assert ops["zone-b"] == {"hit": 15, "miss": 1}


def test_get_falls_back_on_miss_and_on_a_dead_server(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    cache = make_cache(memcached3)
    key = prefix + "profile"
    assert cache.set(key, {"plan": "premium"}, policy="all").wait(2.0)
    assert cache.zone("zone-a").server_for(key.encode()).node.delete(key.encode())
    assert cache.get(key) == {"plan": "premium"}  # local miss -> next zone
    assert cache.get(prefix + "absent", default="fallback") == "fallback"
    local_only = make_cache(memcached3, fallback_on_miss=False)
    assert local_only.get(key) is None  # a local miss is final without fallback_on_miss
    snap = cache.snapshot()
    assert snap["operations"]["get"]["zone-a"] == {"miss": 2}
    assert snap["operations"]["get"]["zone-b"] == {"hit": 1, "miss": 1}
    assert snap["hits"] == 1 and snap["misses"] == 1 and snap["fallback_hits"] == 1
    assert snap["hit_ratio"] == 0.5


def test_reads_survive_a_killed_server_whose_breaker_then_opens(
    make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    with LocalMemcached(zones=2, per_zone=2) as fleet:
        cache = make_cache(fleet)
        keys = [f"{prefix}{i}" for i in range(40)]
        for key in keys:
            assert cache.set(key, key, policy="all").wait(2.0)
        dead = fleet.zones["zone-a"][0]
        fleet.kill(dead)
        assert not fleet.alive(dead)
        assert all(cache.get(key) == key for key in keys)
        assert cache.get_many(keys) == {k: k for k in keys}
        ops = cache.snapshot()["operations"]
        on_dead = sum(cache.zone("zone-a").server_for(k.encode()).address == dead for k in keys)
        assert 0 < on_dead < 40
        assert ops["get"]["zone-a"]["error"] == on_dead
        assert ops["get"]["zone-b"]["hit"] == on_dead
        assert ops["get_many"]["zone-a"]["error"] == on_dead
        time.sleep(0.6)  # the breaker judges the error rate at most every 0.5 s
        assert all(cache.get(key) == key for key in keys)
        assert cache.zone("zone-a").breakers()[dead] == "open"
        counts = cache.zone("zone-a").servers[dead].dependency.snapshot()["counts"]
        assert counts["short_circuited"] > 0  # the dead node is no longer even tried
        # the server comes back (empty): after open_for the breaker lets a trial through and closes
        fleet.restart(dead)
        time.sleep(2.1)  # DEFAULT_BREAKER.open_for is 2 s
        for key in keys:
            cache.get(key)
        assert cache.zone("zone-a").breakers()[dead] == "closed"
        assert cache.set(keys[0], "again", policy="all").wait(2.0)
        assert cache.get(keys[0], zone="zone-a") == "again"


def test_a_hung_server_times_out_and_the_read_answers_from_another_zone(
    make_cache: Callable[..., ZonalCache],
) -> None:
    with LocalMemcached(zones=2, per_zone=1) as fleet:
        cache = make_cache(fleet, timeout=0.2)
        assert cache.set("title", "Stoic", policy="all").wait(2.0)
        hung = fleet.zones["zone-a"][0]
        node = cache.zone("zone-a").servers[hung].node
        fleet.pause(hung)  # SIGSTOP: the connection stays open and nothing answers
        try:
            start = time.monotonic()
            assert cache.get("title") == "Stoic"
            waited = time.monotonic() - start
            with pytest.raises(TimeoutError, match=rf"memcached {hung}: no reply within 0.2 s"):
                node.get(b"title")
        finally:
            fleet.resume(hung)
        assert 0.15 <= waited < 2.0  # the local read waited for its timeout, then moved on
        assert cache.snapshot()["operations"]["get"] == {"zone-a": {"error": 1}, "zone-b": {"hit": 1}}
        assert node.get(b"title") is not None  # the next read reconnects to the resumed server
