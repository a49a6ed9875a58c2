"""get_or_set: one caller computes a missing key (threads, tasks and processes alike), the others wait
for its value or get the stale one; errors reach the callers; bad arguments are refused by name."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from stoic.cache import AsyncZonalCache, InvalidConfig, InvalidTTL, LocalMemcached, ZonalCache
from stoic.guard import Registry


def test_threads_of_one_process_compute_a_missing_key_once(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    cache = make_cache(memcached3)
    calls: list[int] = []
    release = threading.Event()

    def compute() -> dict[str, int]:
        calls.append(1)
        release.wait(10.0)  # every other thread arrives while this one is computing
        return {"rank": 1}

    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_set(prefix + "top", compute, 60)))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for _ in range(1000):  # until the leader is inside compute (bounded: about 1 s)
        if calls:
            break
        time.sleep(0.001)
    release.set()
    for thread in threads:
        thread.join(10.0)
    assert calls == [1]
    assert results == [{"rank": 1}] * 8
    assert cache.get(prefix + "top") == {"rank": 1}  # a plain get reads what get_or_set stored
    counts = cache.snapshot()["operations"]["get_or_set"]["zone-a"]
    # the others waited for the leader's value (or, starting late, found it stored)
    assert counts["computed"] == 1 and counts.get("waited", 0) + counts.get("hit", 0) == 7


_WORKER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from stoic.cache import ZonalCache
    zones, key, log, go = eval(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
    cache = ZonalCache(zones, "zone-a", name="worker")
    for _ in range(1000):  # start together (bounded: 10 s)
        if go.exists():
            break
        time.sleep(0.01)
    def compute():
        with log.open("a") as out:
            out.write("computed\\n")
        time.sleep(0.5)
        return "expensive"
    print(cache.get_or_set(key, compute, 60))
    cache.close()
""")


def test_processes_compute_a_missing_key_once(
    memcached3: LocalMemcached, prefix: str, tmp_path: Path
) -> None:
    log, go = tmp_path / "computed.log", tmp_path / "go"
    workers = [
        subprocess.Popen([sys.executable, "-c", _WORKER, repr(memcached3.zones), prefix + "report", str(log),
                          str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    time.sleep(0.5)  # let the interpreters start; the workers wait for the go file
    go.touch()
    outputs = [worker.communicate(timeout=60) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0, 0], outputs
    assert [out.strip() for out, _ in outputs] == ["expensive"] * 3
    assert log.read_text().splitlines() == ["computed"]  # the lock item let one process compute


def test_a_stale_value_answers_at_once_while_one_caller_recomputes(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    cache = make_cache(memcached3)
    key = prefix + "chart"
    assert cache.get_or_set(key, lambda: "v1", 1, stale_for=60) == "v1"
    time.sleep(1.1)  # past its fresh second, within its stale minute
    entered, release = threading.Event(), threading.Event()

    def slow() -> str:
        entered.set()
        release.wait(10.0)
        return "v2"

    results: list[str] = []
    leader = threading.Thread(target=lambda: results.append(cache.get_or_set(key, slow, 60, stale_for=60)))
    leader.start()
    assert entered.wait(10.0)
    # while the leader is still computing, another caller gets the stale value without waiting
    assert cache.get_or_set(key, lambda: "never", 60, stale_for=60) == "v1"
    assert not release.is_set() and leader.is_alive()
    release.set()
    leader.join(10.0)
    assert results == ["v2"]
    assert cache.get_or_set(key, lambda: "never", 60) == "v2"
    assert cache.snapshot()["operations"]["get_or_set"]["zone-a"]["stale"] == 1


def test_an_error_reaches_the_caller_and_nothing_is_stored(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    cache = make_cache(memcached3)

    def broken() -> str:
        raise LookupError("catalog down")

    with pytest.raises(LookupError, match="catalog down"):
        cache.get_or_set(prefix + "k", broken, 60)
    assert cache.get(prefix + "k", "absent") == "absent"
    # the lock item was released: the next caller computes at once instead of waiting lock_for
    assert cache.get_or_set(prefix + "k", lambda: "ok", 60, lock_for=30, wait=30) == "ok"


def test_a_never_expiring_value_is_never_stale(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    cache = make_cache(memcached3)
    assert cache.get_or_set(prefix + "k", lambda: [1, 2], 0) == [1, 2]
    assert cache.get_or_set(prefix + "k", lambda: [3], 0) == [1, 2]
    assert cache.get(prefix + "k") == [1, 2]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"compute": 42}, InvalidConfig, r"compute must be a function of no arguments, got 42"),
        ({"ttl": -1}, InvalidTTL, r"ttl must be in 0..2592000 seconds"),
        ({"stale_for": -1}, InvalidConfig,
         r"stale_for must be an integer number of seconds in 0..2592000, got -1"),
        ({"stale_for": 1.5}, InvalidConfig, r"stale_for must be an integer"),
        ({"lock_for": 0}, InvalidConfig, r"lock_for must be a number of seconds in 1..3600, got 0"),
        ({"wait": -1}, InvalidConfig, r"wait must be a number of seconds in 0..3600, got -1"),
        ({"policy": "most"}, InvalidConfig,
         r"policy must be one of ONE, QUORUM, ALL_MINUS_ONE, ALL, got 'most'"),
    ],
)
def test_bad_arguments_are_refused_by_name(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache], kwargs: dict[str, object],
    error: type[Exception], message: str,
) -> None:
    cache = make_cache(memcached3)
    arguments: dict[str, object] = {"compute": lambda: 1, **kwargs}
    compute = arguments.pop("compute")
    with pytest.raises(error, match=message):
        cache.get_or_set("k", compute, **arguments)  # type: ignore[arg-type]
    assert cache.snapshot()["operations"] == {}  # refused before any server call


def test_tasks_compute_a_missing_key_once(memcached3: LocalMemcached, prefix: str) -> None:
    async def scenario() -> None:
        async with AsyncZonalCache(memcached3.zones, "zone-a", registry=Registry(), name="tasks") as cache:
            calls: list[int] = []

            async def compute() -> str:
                calls.append(1)
                await asyncio.sleep(0.2)
                return "once"

            results = await asyncio.gather(*(cache.get_or_set(prefix + "k", compute, 60) for _ in range(10)))
            assert results == ["once"] * 10 and calls == [1]
            assert await cache.get(prefix + "k") == "once"

            async def broken() -> str:
                raise LookupError("down")

            with pytest.raises(LookupError):
                await cache.get_or_set(prefix + "bad", broken, 60)
            with pytest.raises(InvalidConfig, match=r"stale_for must be an integer"):
                await cache.get_or_set(prefix + "k", compute, 60, stale_for=-2)
            with pytest.raises(InvalidConfig, match=r"compute must be an async function of no arguments, "
                                                    r"but it returned int, not an awaitable"):
                await cache.get_or_set(prefix + "sync", lambda: 1, 60)  # type: ignore[arg-type,return-value]

    asyncio.run(scenario())
