"""Large values are split into chunks with a checksum; corruption is detected and routed around."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import pytest

from stoic.cache import DEFAULT_CHUNK_SIZE, EmbeddedValkey, LocalMemcached, ZonalCache

from .conftest import Fleet


def _zone_items(cache: ZonalCache, zone: str) -> int:
    return sum(s.node.stats()["items"] for s in cache.zone(zone).servers.values())


@pytest.mark.parametrize("fleet_name", ["memcached3", "valkey3"])
def test_large_values_round_trip_in_chunks(
    fleet_name: str, request: pytest.FixtureRequest, make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    fleet: Fleet = request.getfixturevalue(fleet_name)
    cache = make_cache(fleet)
    big = os.urandom(3 * 1024 * 1024 + 17)  # over memcached's 1 MiB item limit: needs 4 chunks
    before = _zone_items(cache, "zone-b")
    assert cache.set(prefix + "poster", big, policy="all").wait(10.0)
    assert _zone_items(cache, "zone-b") - before == 1 + 4  # the head item and its chunks
    for zone in cache.zones:
        assert cache.get(prefix + "poster", zone=zone) == big
    assert cache.get_many([prefix + "poster"]) == {prefix + "poster": big}
    # a smaller configured chunk size splits further, and small values stay a single item
    small_chunks = make_cache(fleet, chunk_size=1024)
    text = "é" * 5000  # 10,000 bytes of UTF-8
    before = _zone_items(cache, "zone-c")
    assert small_chunks.set(prefix + "synopsis", text, policy="all").wait(5.0)
    assert small_chunks.set(prefix + "tiny", "x", policy="all").wait(5.0)
    assert _zone_items(cache, "zone-c") - before == (1 + 10) + 1
    assert small_chunks.get(prefix + "synopsis") == text
    assert cache.get(prefix + "synopsis") == text  # any client reads it, whatever its chunk size
    # deleting removes the chunks too
    before = _zone_items(cache, "zone-b")
    assert cache.delete(prefix + "poster", policy="all").wait(5.0)
    assert before - _zone_items(cache, "zone-b") == 1 + 4
    assert cache.get(prefix + "poster") is None
    assert DEFAULT_CHUNK_SIZE < 1024 * 1024


def test_a_corrupt_chunk_is_detected_and_read_from_another_zone(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    cache = make_cache(memcached3, chunk_size=4096)
    value = os.urandom(20_000)
    key = prefix + "trailer"
    assert cache.set(key, value, policy="all").wait(5.0)
    zone_a = cache.zone("zone-a")
    head = zone_a.server_for(key.encode()).node.get(key.encode())
    assert head is not None and head[:1] == b"\x01"
    # flip one byte of one chunk directly on the server, as a bad NIC or a bug would
    chunk_key = _chunk_keys(head)[2]
    owner = zone_a.server_for(chunk_key).node
    chunk = owner.get(chunk_key)
    assert chunk is not None
    owner.set_many([(chunk_key, chunk[:100] + bytes([chunk[100] ^ 0xFF]) + chunk[101:])], 0)

    assert cache.get(key, zone="zone-a") is None  # the bad copy is never returned
    assert cache.get(key) == value  # the read moved on to a good zone
    ops = cache.snapshot()["operations"]["get"]
    assert ops["zone-a"]["corrupt"] == 2
    assert ops["zone-b"]["hit"] == 1
    assert cache.get_many([key]) == {key: value}
    assert cache.snapshot()["operations"]["get_many"]["zone-a"]["corrupt"] == 1


def test_a_missing_chunk_reads_as_a_miss(
    valkey3: EmbeddedValkey, make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    cache = make_cache(valkey3, chunk_size=2048)
    key = prefix + "subtitles"
    assert cache.set(key, "s" * 9000, policy="all").wait(5.0)
    zone_b = cache.zone("zone-b")
    head = zone_b.server_for(key.encode()).node.get(key.encode())
    assert head is not None
    chunk_key = _chunk_keys(head)[0]
    assert zone_b.server_for(chunk_key).node.delete(chunk_key)  # evicted, say
    assert cache.get(key, zone="zone-b") is None
    assert cache.get(key, zone="zone-a") == "s" * 9000
    assert cache.get_many([key], zone="zone-b") == {}
    reader_b = make_cache(valkey3, "zone-b")
    assert reader_b.get_many([key]) == {key: "s" * 9000}  # zone-b misses it, zone-a answers
    assert reader_b.snapshot()["operations"]["get_many"]["zone-b"] == {"miss": 1}


def _chunk_keys(head: bytes) -> list[bytes]:
    """The chunk keys named by a large value's head item (layout: docs/cache.md)."""
    assert head[:1] == b"\x01"
    manifest = json.loads(head[1:])
    return [f"~c:{manifest['id']}:{i}".encode() for i in range(manifest["n"])]
