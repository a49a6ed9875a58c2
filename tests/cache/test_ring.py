"""Ketama ring: adding a server moves about 1/N of the keys, and only to the new server."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from stoic.cache import HashRing, InvalidConfig, LocalMemcached, ZonalCache

KEYS = [f"title:{i}".encode() for i in range(20_000)]


def test_adding_a_server_moves_about_one_nth_of_keys_all_to_it() -> None:
    servers = [f"127.0.0.{i}:11211" for i in range(1, 5)]
    ring = HashRing(servers)
    before = {k: ring.node_for(k) for k in KEYS}
    ring.add("127.0.0.5:11211")
    after = {k: ring.node_for(k) for k in KEYS}
    moved = [k for k in KEYS if before[k] != after[k]]
    assert 0.12 < len(moved) / len(KEYS) < 0.28  # ideal 1/5
    assert {after[k] for k in moved} == {"127.0.0.5:11211"}


def test_removing_a_server_moves_only_its_keys() -> None:
    servers = [f"127.0.0.{i}:11211" for i in range(1, 6)]
    ring = HashRing(servers)
    before = {k: ring.node_for(k) for k in KEYS}
    ring.remove("127.0.0.3:11211")
    for k in KEYS:
        if before[k] != "127.0.0.3:11211":
            assert ring.node_for(k) == before[k]
        else:
            assert ring.node_for(k) != "127.0.0.3:11211"


def test_keys_spread_evenly_and_placement_is_stable() -> None:
    servers = [f"127.0.0.{i}:11211" for i in range(1, 5)]
    ring = HashRing(servers)
    counts = Counter(ring.node_for(k) for k in KEYS)
    assert set(counts) == set(servers)
    assert max(counts.values()) / min(counts.values()) < 1.35
    # placement depends only on names: a ring built in another order agrees
    reordered = HashRing(list(reversed(servers)))
    assert all(reordered.node_for(k) == ring.node_for(k) for k in KEYS)


def test_ring_rejects_bad_changes() -> None:
    ring = HashRing(["a:1"])
    with pytest.raises(InvalidConfig, match="already on the ring"):
        ring.add("a:1")
    with pytest.raises(InvalidConfig, match="not on the ring"):
        ring.remove("b:1")
    with pytest.raises(InvalidConfig, match=r"points must be an integer in 4\.\.10000"):
        HashRing(["a:1"], points=1)
    ring.remove("a:1")
    with pytest.raises(InvalidConfig, match="no nodes"):
        ring.node_for(b"k")


def test_a_zone_shards_keys_over_its_real_servers(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    cache = make_cache(memcached3)
    zone = cache.zone("zone-b")
    before = {a: s.node.stats()["items"] for a, s in zone.servers.items()}
    for i in range(200):
        assert cache.set(f"{prefix}{i}", i, policy="all").wait(2.0)
    added = {a: s.node.stats()["items"] - before[a] for a, s in zone.servers.items()}
    assert sum(added.values()) == 200
    assert all(40 < n < 160 for n in added.values()), added
    # each key sits on the server the ring names, and nowhere else in the zone
    for i in range(0, 200, 17):
        key = f"{prefix}{i}".encode()
        owner = zone.server_for(key)
        for address, server in zone.servers.items():
            assert (server.node.get(key) is not None) == (address == owner.address)
