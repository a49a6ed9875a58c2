"""Three zones; one is SIGKILLed mid-write. Reads keep answering from another zone, and every write
acknowledged under the chosen policy is back in that zone once it restarts empty and is warmed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from stoic.cache import EmbeddedValkey, Latch, LocalMemcached, Policy, ZonalCache

from .conftest import MEMCACHED, Fleet

WRITES = 400


@pytest.fixture(params=["memcached", "valkey"])
def fleet(request: pytest.FixtureRequest) -> Iterator[Fleet]:
    servers: Fleet
    if request.param == "memcached":
        servers = LocalMemcached(zones=3, per_zone=2, binary=MEMCACHED)
    else:
        servers = EmbeddedValkey(zones=3, per_zone=2)
    with servers:
        yield servers


@pytest.mark.parametrize("policy", [Policy.QUORUM, Policy.ALL_MINUS_ONE])
def test_zone_outage_loses_no_acknowledged_write(
    fleet: Fleet, make_cache: Callable[..., ZonalCache], policy: Policy
) -> None:
    cache = make_cache(fleet, "zone-a", policy=policy, timeout=0.2)
    reader_b = make_cache(fleet, "zone-b")  # a client living in a zone that stays up
    latches: dict[str, tuple[int, Latch]] = {}
    killed = threading.Event()
    written_after_kill = 0

    def write_all() -> None:
        nonlocal written_after_kill
        for i in range(WRITES):
            key = f"movie:{i}"
            latches[key] = (i, cache.set(key, {"id": i, "title": f"Film {i}"}, ttl=600))
            if i == WRITES // 2:
                fleet.kill_zone("zone-a")  # the writer's own local zone dies mid-stream
                killed.set()
            elif killed.is_set():
                written_after_kill += 1

    writer = threading.Thread(target=write_all)
    writer.start()
    # reads keep answering while the zone dies and stays dead
    assert killed.wait(30.0)
    deadline = time.monotonic() + 30.0
    for i in range(0, WRITES // 2, 7):
        # other zones are written asynchronously: read what the policy acknowledged
        assert latches[f"movie:{i}"][1].wait(5.0)
        assert cache.get(f"movie:{i}") == {"id": i, "title": f"Film {i}"}
        assert time.monotonic() < deadline
    writer.join(60.0)
    assert not writer.is_alive()
    assert written_after_kill > 100

    acknowledged = {key: i for key, (i, latch) in latches.items() if latch.wait(5.0)}
    unacknowledged = [latch for key, (_, latch) in latches.items() if key not in acknowledged]
    assert not unacknowledged, unacknowledged[:3]  # two zones stayed up: every write must be acknowledged
    # writes made after the kill were acknowledged without the dead zone
    late = [latch for i, latch in latches.values() if i > WRITES // 2 + 20]
    assert late and all("zone-a" in latch.failed_zones for latch in late)

    # every acknowledged value is readable through the dead zone's client (fallback) and from zone b
    for key, i in acknowledged.items():
        assert cache.get(key) == {"id": i, "title": f"Film {i}"}
        assert reader_b.get(key) == {"id": i, "title": f"Film {i}"}
    time.sleep(0.6)  # the breaker judges the error rate at most every 0.5 s (Hystrix's health snapshot)
    for key in list(acknowledged)[:20]:
        assert cache.get(key) is not None
    snapshot = cache.snapshot()
    assert snapshot["fallback_hits"] >= WRITES
    assert set(snapshot["zones"]["zone-a"]["breakers"].values()) == {"open"}  # dead nodes fail fast

    # the zone comes back empty ...
    fleet.restart_zone("zone-a")
    assert all(cache.get(key, zone="zone-a") is None for key in list(acknowledged)[:50])
    # ... and a warm-up from a healthy zone brings every acknowledged write back
    progress: list[tuple[int, int]] = []
    report = cache.warm("zone-b", "zone-a", batch=64, progress=lambda seen, est: progress.append((seen, est)))
    assert report.failed == 0 and not report.unreachable
    assert report.copied >= WRITES
    assert progress and progress[-1][0] == report.seen
    assert set(cache.snapshot()["zones"]["zone-a"]["breakers"].values()) == {"closed"}
    for key, i in acknowledged.items():
        assert cache.get(key, zone="zone-a") == {"id": i, "title": f"Film {i}"}

    # and zone-a alone can now serve them: take the other two zones down
    fleet.kill_zone("zone-b")
    fleet.kill_zone("zone-c")
    for key, i in list(acknowledged.items())[::13]:
        assert cache.get(key) == {"id": i, "title": f"Film {i}"}


def test_all_policy_reports_the_dead_zone(fleet: Fleet, make_cache: Callable[..., ZonalCache]) -> None:
    cache = make_cache(fleet, "zone-a", policy="all", timeout=0.2)
    assert cache.set("k", "v").wait(5.0)
    fleet.kill_zone("zone-c")
    latch = cache.set("k", "v2")
    assert latch.wait(5.0) is False
    assert latch.wait_all(5.0)
    assert latch.failed_zones == ["zone-c"]
    assert latch.succeeded == 2
    assert latch.results["zone-a"] == "stored" and latch.results["zone-c"].startswith("error")
    # the same write under QUORUM is acknowledged
    assert cache.set("k", "v3", policy=Policy.QUORUM).wait(5.0)
