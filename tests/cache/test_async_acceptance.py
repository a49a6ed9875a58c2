"""The outage acceptance of test_acceptance.py, for AsyncZonalCache: three zones, one SIGKILLed mid-write.
Reads keep answering from another zone, and every write acknowledged under the policy is back in
that zone once it restarts empty and is warmed."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator

import pytest

from stoic.cache import AsyncLatch, AsyncZonalCache, EmbeddedValkey, LocalMemcached, Policy
from stoic.guard import Registry

from .conftest import MEMCACHED, Fleet

WRITES = 400
_ids = itertools.count()


@pytest.fixture(params=["memcached", "valkey"])
def fleet(request: pytest.FixtureRequest) -> Iterator[Fleet]:
    servers: Fleet
    if request.param == "memcached":
        servers = LocalMemcached(zones=3, per_zone=2, binary=MEMCACHED)
    else:
        servers = EmbeddedValkey(zones=3, per_zone=2)
    with servers:
        yield servers


def _cache(fleet: Fleet, local_zone: str, **options: object) -> AsyncZonalCache:
    return AsyncZonalCache(fleet.zones, local_zone, backend=fleet.backend, registry=Registry(),
                           name=f"async{next(_ids)}", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("policy", [Policy.QUORUM, Policy.ALL_MINUS_ONE])
def test_zone_outage_loses_no_acknowledged_write(fleet: Fleet, policy: Policy) -> None:
    asyncio.run(_outage(fleet, policy))


async def _outage(fleet: Fleet, policy: Policy) -> None:
    cache = _cache(fleet, "zone-a", policy=policy, timeout=0.2)
    reader_b = _cache(fleet, "zone-b")  # a client living in a zone that stays up
    latches: dict[str, tuple[int, AsyncLatch]] = {}
    killed = asyncio.Event()
    written_after_kill = 0

    async def write_all() -> None:
        nonlocal written_after_kill
        for i in range(WRITES):
            key = f"movie:{i}"
            latches[key] = (i, await cache.set(key, {"id": i, "title": f"Film {i}"}, ttl=600))
            if i == WRITES // 2:
                fleet.kill_zone("zone-a")  # the writer's own local zone dies mid-stream
                killed.set()
            elif killed.is_set():
                written_after_kill += 1

    writer = asyncio.create_task(write_all())
    # reads keep answering while the zone dies and stays dead
    await asyncio.wait_for(killed.wait(), 30.0)
    deadline = time.monotonic() + 30.0
    for i in range(0, WRITES // 2, 7):
        assert await latches[f"movie:{i}"][1].wait(5.0)
        assert await cache.get(f"movie:{i}") == {"id": i, "title": f"Film {i}"}
        assert time.monotonic() < deadline
    await asyncio.wait_for(writer, 60.0)
    assert written_after_kill > 100

    acknowledged = {key: i for key, (i, latch) in latches.items() if await latch.wait(5.0)}
    unacknowledged = [latch for key, (_, latch) in latches.items() if key not in acknowledged]
    assert not unacknowledged, unacknowledged[:3]  # two zones stayed up: every write is acknowledged
    late = [latch for i, latch in latches.values() if i > WRITES // 2 + 20]
    assert late and all("zone-a" in latch.failed_zones for latch in late)

    for key, i in acknowledged.items():
        assert await cache.get(key) == {"id": i, "title": f"Film {i}"}
        assert await reader_b.get(key) == {"id": i, "title": f"Film {i}"}
    await asyncio.sleep(0.6)  # the breaker judges the error rate at most every 0.5 s
    for key in list(acknowledged)[:20]:
        assert await cache.get(key) is not None
    snapshot = cache.snapshot()
    assert snapshot["fallback_hits"] >= WRITES
    assert set(snapshot["zones"]["zone-a"]["breakers"].values()) == {"open"}  # dead nodes fail fast

    # the zone comes back empty ...
    fleet.restart_zone("zone-a")
    assert all([await cache.get(key, zone="zone-a") is None for key in list(acknowledged)[:50]])
    # ... and a warm-up from a healthy zone brings every acknowledged write back
    progress: list[tuple[int, int]] = []
    report = await cache.warm("zone-b", "zone-a", batch=64,
                              progress=lambda seen, est: progress.append((seen, est)))
    assert report.failed == 0 and not report.unreachable
    assert report.copied >= WRITES
    assert progress and progress[-1][0] == report.seen
    assert set(cache.snapshot()["zones"]["zone-a"]["breakers"].values()) == {"closed"}
    for key, i in acknowledged.items():
        assert await cache.get(key, zone="zone-a") == {"id": i, "title": f"Film {i}"}

    # and zone-a alone can now serve them: take the other two zones down
    fleet.kill_zone("zone-b")
    fleet.kill_zone("zone-c")
    for key, i in list(acknowledged.items())[::13]:
        assert await cache.get(key) == {"id": i, "title": f"Film {i}"}
    await cache.close()
    await reader_b.close()


def test_all_policy_reports_the_dead_zone(fleet: Fleet) -> None:
    async def scenario() -> None:
        async with _cache(fleet, "zone-a", policy="all", timeout=0.2) as cache:
            assert await (await cache.set("k", "v")).wait(5.0)
            fleet.kill_zone("zone-c")
            latch = await cache.set("k", "v2")
            assert await latch.wait(5.0) is False
            assert await latch.wait_all(5.0)
            assert latch.failed_zones == ["zone-c"]
            assert latch.succeeded == 2
            assert latch.results["zone-a"] == "stored" and latch.results["zone-c"].startswith("error")
            assert await (await cache.set("k", "v3", policy=Policy.QUORUM)).wait(5.0)

    asyncio.run(scenario())
