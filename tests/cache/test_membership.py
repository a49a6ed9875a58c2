"""Servers and zones join and leave while a writer keeps writing: no acknowledged write is lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from stoic.cache import CacheError, InvalidConfig, Latch, LocalMemcached, ZonalCache
from stoic.guard import Registry

from .conftest import MEMCACHED

KEYS = 150
ROUNDS = 8  # writes per key at least: the last acknowledged one must be what every read returns
MAX_ROUNDS = 2000  # the writer keeps going until the membership changes are over, at most this


@pytest.fixture
def fleet() -> Iterator[LocalMemcached]:
    """zone-a..c serve; zone-d joins later; "spare" holds empty servers to add."""
    with LocalMemcached(zones=["zone-a", "zone-b", "zone-c", "zone-d", "spare"], per_zone=2,
                        binary=MEMCACHED) as servers:
        yield servers


def test_membership_changes_under_load_lose_no_acknowledged_write(fleet: LocalMemcached) -> None:
    zones = fleet.zones
    serving = {z: zones[z] for z in ("zone-a", "zone-b", "zone-c")}
    cache = ZonalCache(serving, "zone-a", policy="quorum", timeout=0.5, registry=Registry(), name="moving")
    last: dict[str, tuple[int, Latch]] = {}
    counted: dict[str, int] = {}
    done = threading.Event()
    changed = threading.Event()
    failures: list[BaseException] = []
    written = 0
    during = 0

    def write() -> None:
        nonlocal written, during
        try:
            for n in range(MAX_ROUNDS):
                if n >= ROUNDS and changed.is_set():
                    break
                for i in range(KEYS):
                    key = f"title:{i}"
                    last[key] = (n, cache.set(key, {"id": i, "version": n}, ttl=600))
                    if i % 15 == 0:  # ten counters, counting on while their keys move
                        counted[f"plays:{i}"] = counted.get(f"plays:{i}", 0) + 1
                        cache.incr(f"plays:{i}", initial=1, ttl=600)
                    written += 1
                    during += not changed.is_set()
        except BaseException as exc:  # reported below: a failed writer must fail the test
            failures.append(exc)
        finally:
            done.set()

    def writes_go_on() -> None:
        """Between two changes, let the writer make 50 more writes (waits at most 5 s)."""
        target = written + 50
        deadline = time.monotonic() + 5.0
        while written < target and time.monotonic() < deadline and not done.is_set():
            time.sleep(0.001)

    # written once, before any change: only the ring's key moves (and the warm-up) keep them whole
    early = {f"early:{i}": cache.set(f"early:{i}", {"early": i}, ttl=600) for i in range(300)}
    assert all(latch.wait(5.0) for latch in early.values())
    writer = threading.Thread(target=write)
    writer.start()
    try:
        writes_go_on()
        cache.add_server("zone-a", zones["spare"][0])          # the local zone grows
        writes_go_on()
        cache.remove_server("zone-b", zones["zone-b"][1])      # a remote zone shrinks
        writes_go_on()
        cache.add_zone("zone-d", zones["zone-d"])              # a new zone joins write-only ...
        assert cache.shadow_zones == ["zone-d"] and "zone-d" not in cache.zones
        writes_go_on()
        report = cache.warm("zone-c", "zone-d")                # ... is filled ...
        assert report.failed == 0 and not report.unreachable
        writes_go_on()
        cache.promote("zone-d")                                # ... and serves
        writes_go_on()
        cache.remove_zone("zone-c")                            # an old zone leaves
        writes_go_on()
        cache.add_server("zone-d", zones["spare"][1])
        writes_go_on()
        cache.remove_server("zone-a", zones["zone-a"][0])      # the local zone loses an original server
        writes_go_on()
    finally:
        changed.set()
        assert done.wait(120.0)
        writer.join(10.0)
    assert not failures, failures
    assert during >= 9 * 50  # the changes happened under load, not after it
    assert cache.zones == ["zone-a", "zone-b", "zone-d"]
    assert cache.zone("zone-a").addresses == [zones["zone-a"][1], zones["spare"][0]]

    unacknowledged = [latch for _, latch in last.values() if not latch.wait(5.0)]
    assert not unacknowledged, unacknowledged[:3]
    assert cache.flush_writes(10.0)
    for key, (n, _) in last.items():
        i = int(key.split(":")[1])
        assert cache.get(key) == {"id": i, "version": n}, key
        # the local zone moved its keys along with its ring: it alone has every last write
        assert cache.get(key, zone="zone-a") == {"id": i, "version": n}, key
    for i in range(300):
        assert cache.get(f"early:{i}", zone="zone-a") == {"early": i}
        assert cache.get(f"early:{i}") == {"early": i}
    moved = {k for k in counted if cache.zone("zone-a").server_for(k.encode()).address == zones["spare"][0]}
    assert moved  # some counters changed servers in the local zone
    assert {k: cache.counter(k, zone="zone-a") for k in counted} == counted
    # a client whose local zone is the one that joined reads them too
    reader = ZonalCache({z: cache.zone(z).addresses for z in cache.zones}, "zone-d", registry=Registry(),
                        name="reader")
    for key, (n, _) in list(last.items())[::7]:
        assert reader.get(key) == {"id": int(key.split(":")[1]), "version": n}
    reader.close()
    cache.close()


def test_membership_inputs_are_checked(fleet: LocalMemcached) -> None:
    zones = fleet.zones
    cache = ZonalCache({"zone-a": zones["zone-a"], "zone-b": zones["zone-b"]}, "zone-a", registry=Registry())
    with pytest.raises(InvalidConfig, match=r"zone must be one of \['zone-a', 'zone-b'\], got 'zone-x'"):
        cache.add_server("zone-x", zones["spare"][0])
    with pytest.raises(InvalidConfig, match=r"address must be 'host:port'"):
        cache.add_server("zone-a", "nowhere")
    with pytest.raises(InvalidConfig, match=r"is already a server of zone 'zone-a'"):
        cache.add_server("zone-a", zones["zone-a"][0])
    cache.set("full", "x").wait(1.0)
    owner = cache.zone("zone-a").server_for(b"full").address
    cache.remove_server("zone-a", owner)
    with pytest.raises(InvalidConfig, match=r"holds 1 items: a joining server must start empty"):
        cache.add_server("zone-a", owner)
    with pytest.raises(InvalidConfig, match=r"has only .*: remove the zone instead"):
        cache.remove_server("zone-a", cache.zone("zone-a").addresses[0])
    with pytest.raises(InvalidConfig, match=r"address must be one of"):
        cache.remove_server("zone-b", zones["spare"][1])
    with pytest.raises(InvalidConfig, match=r"zone must not be the local zone 'zone-a'"):
        cache.remove_zone("zone-a")
    with pytest.raises(InvalidConfig, match=r"zone 'zone-b' already exists"):
        cache.add_zone("zone-b", zones["zone-d"])
    with pytest.raises(InvalidConfig, match=r"zone names must be non-empty, without spaces"):
        cache.add_zone("zone d", zones["zone-d"])
    with pytest.raises(InvalidConfig, match=r"shadow must be True or False, got 'yes'"):
        cache.add_zone("zone-d", zones["zone-d"], shadow="yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidConfig, match=r"zone must be one of the shadow zones \[\], got 'zone-b'"):
        cache.promote("zone-b")
    cache.close()
    with pytest.raises(CacheError, match=r"is closed: no membership changes"):
        cache.add_zone("zone-d", zones["zone-d"])


def test_a_shadow_zone_gets_writes_but_serves_no_read_and_counts_for_no_policy(fleet: LocalMemcached) -> None:
    zones = fleet.zones
    cache = ZonalCache({"zone-a": zones["zone-a"]}, "zone-a", registry=Registry())
    cache.add_zone("zone-d", zones["zone-d"])
    latch = cache.set("poster", "p", policy="all")
    assert latch.wait(1.0) and latch.zones == ["zone-a"]  # the shadow zone is no part of "all"
    assert cache.flush_writes(5.0)
    assert cache.get("poster", zone="zone-d") == "p"  # but it got the write
    cache.delete("poster").wait(1.0)
    assert cache.flush_writes(5.0)
    cache.zone("zone-d").server_for(b"only-d").set(b"only-d", b"\x00sfrom d", 0)
    assert cache.get("only-d") is None  # never read while it is a shadow
    assert cache.snapshot()["zones"]["zone-d"]["shadow"] is True
    cache.promote("zone-d")
    assert cache.get("only-d") == "from d"  # now it serves, last in the read order
    assert cache.set("poster", "q", policy="all").wait(1.0)
    cache.close()
