"""One cache shared by many threads: every read and write answered, every counter exact."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable

import pytest
from pymemcache.client.base import Client

from stoic.cache import LocalMemcached, ZonalCache

THREADS = 8
ROUNDS = 60


@pytest.mark.parametrize("fleet_name", ["memcached3", "valkey3"])
def test_threads_share_one_cache(
    fleet_name: str, request: pytest.FixtureRequest, make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    cache = make_cache(request.getfixturevalue(fleet_name), max_concurrent=THREADS)
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def work(t: int) -> None:
        try:
            start.wait(10.0)
            for i in range(ROUNDS):
                key = f"{prefix}{t}:{i}"
                assert cache.set(key, [t, i], policy="all").wait(5.0)
                assert cache.get(key) == [t, i]
            assert cache.get_many([f"{prefix}{t}:{i}" for i in range(ROUNDS)]) == {
                f"{prefix}{t}:{i}": [t, i] for i in range(ROUNDS)
            }
        except BaseException as exc:  # reported below: an assertion in a thread must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60.0)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    ops = cache.snapshot()["operations"]
    total = THREADS * ROUNDS
    assert ops["get"]["zone-a"] == {"hit": total}
    assert ops["get_many"]["zone-a"] == {"hit": total}
    assert all(ops["set"][zone] == {"ok": total} for zone in cache.zones)


def test_short_lived_threads_leave_no_connections_behind(make_cache: Callable[..., ZonalCache]) -> None:
    with LocalMemcached(zones=1, per_zone=1) as fleet:
        cache = make_cache(fleet)
        assert cache.set("k", 1).wait(2.0)
        host, port = fleet.zones["zone-a"][0].split(":")
        probe = Client((host, int(port)))

        def connections() -> int:
            return int(probe.stats()[b"curr_connections"])

        baseline = connections()
        for _ in range(30):  # each thread opens its own connection for its reads
            thread = threading.Thread(target=cache.get, args=("k",))
            thread.start()
            thread.join(10.0)
        gc.collect()
        assert connections() <= baseline + 2  # dead threads' connections were closed
        probe.close()
