"""incr/decr replicated to every zone, opt-in hashing of long keys, bounded TTL jitter, memoise."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import redis

from stoic.cache import (
    AsyncZonalCache,
    EmbeddedValkey,
    InvalidConfig,
    InvalidKey,
    LocalMemcached,
    ZonalCache,
    check_key,
)
from stoic.guard import Registry

from .conftest import Fleet


@pytest.fixture(params=["memcached", "valkey"])
def servers(request: pytest.FixtureRequest, memcached3: LocalMemcached, valkey3: EmbeddedValkey) -> Fleet:
    return memcached3 if request.param == "memcached" else valkey3


# -- counters ----------------------------------------------------------------------------------------


def test_counters_count_in_every_zone(
    servers: Fleet, make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    cache = make_cache(servers, policy="all")
    key = prefix + "plays"
    first = cache.incr(key, 5, initial=100)
    assert first.value == 100 and first.latch.wait(2.0)  # absent: it starts at `initial`
    assert first.latch.results == {"zone-a": "created", "zone-b": "created", "zone-c": "created"}
    assert cache.incr(key, 5).value == 105
    assert cache.decr(key, 2).value == 103
    last = cache.decr(key, 1000)
    assert last.value == 0 and last.latch.wait(2.0)  # never below zero, as memcached counts
    assert cache.incr(key).value == 1
    assert cache.flush_writes(5.0)
    assert [cache.counter(key, zone=z) for z in cache.zones] == [1, 1, 1]
    assert cache.counter(prefix + "absent", -1) == -1
    assert cache.get(key, "not a value") == "not a value"  # counters are read with counter()
    cache.set(prefix + "text", "hello").wait(1.0)
    assert cache.counter(prefix + "text", -1) == -1  # not a counter: counted corrupt, next zone
    assert cache.snapshot()["operations"]["counter"]["zone-a"]["corrupt"] == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"delta": -1}, r"delta must be an integer in 0..18446744073709551615, got -1"),
        ({"delta": "1"}, r"delta must be an integer in 0..18446744073709551615, got '1'"),
        ({"delta": True}, r"delta must be an integer"),
        ({"initial": -5}, r"initial must be an integer in 0..18446744073709551615, got -5"),
        ({"ttl": 1.5}, r"ttl must be an integer number of seconds"),
        ({"policy": "some"}, r"policy must be one of ONE, QUORUM, ALL_MINUS_ONE, ALL, got 'some'"),
    ],
)
def test_bad_counter_arguments_are_refused_by_name(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache], kwargs: dict[str, object], message: str
) -> None:
    cache = make_cache(memcached3)
    for count in (cache.incr, cache.decr):
        with pytest.raises(ValueError, match=message):
            count("k", **kwargs)  # type: ignore[arg-type]
    assert cache.snapshot()["operations"] == {}


def test_async_counters(servers: Fleet, prefix: str) -> None:
    async def scenario() -> None:
        async with AsyncZonalCache(servers.zones, "zone-a", backend=servers.backend, registry=Registry(),
                                   name="acount", policy="quorum") as cache:
            created = await cache.incr(prefix + "n", 3, initial=7)
            assert created.value == 7 and await created.latch.wait(2.0)
            assert (await cache.incr(prefix + "n", 3)).value == 10
            assert (await cache.decr(prefix + "n", 4)).value == 6
            assert await cache.flush_writes(5.0)
            assert [await cache.counter(prefix + "n", zone=z) for z in cache.zones] == [6, 6, 6]
            with pytest.raises(InvalidConfig, match=r"delta must be an integer"):
                await cache.incr(prefix + "n", -3)

    asyncio.run(scenario())


# -- keys over 250 bytes -------------------------------------------------------------------------------


def test_long_keys_are_refused_unless_hashing_is_asked_for(
    servers: Fleet, make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    long_key = prefix + "search:" + "drama+" * 60  # over 250 bytes
    plain = make_cache(servers)
    with pytest.raises(InvalidKey, match=r"key must be 1..250 bytes long \(UTF-8\), got \d+ bytes"):
        plain.set(long_key, "x")
    hashed = make_cache(servers, hash_keys=True)
    assert hashed.set(long_key, ["result"]).wait(1.0)
    assert hashed.get(long_key) == ["result"]
    assert hashed.get_many([long_key, prefix + "short"]) == {long_key: ["result"]}
    assert hashed.set(prefix + "short", 1).wait(1.0)
    assert plain.get(prefix + "short") == 1  # keys within the limit are not hashed
    with pytest.raises(InvalidKey, match=r"key must be 1..65536 bytes long \(UTF-8\) with hash_keys=True"):
        hashed.get("k" * 70_000)
    with pytest.raises(InvalidKey, match=r"whitespace or control characters"):
        hashed.get("k " * 200)


@pytest.mark.parametrize(("key", "reserved"), [("~h:abc", "hashed keys"), ("~l:abc", "get_or_set locks")])
def test_the_prefixes_of_hashed_keys_and_locks_are_reserved(key: str, reserved: str) -> None:
    with pytest.raises(InvalidKey, match=rf"key must not start with '{key[:3]}' \(reserved for {reserved}\)"):
        check_key(key)


def test_hash_keys_must_be_a_bool(memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache]) -> None:
    with pytest.raises(InvalidConfig, match=r"hash_keys must be True or False, got 'yes'"):
        make_cache(memcached3, hash_keys="yes")


# -- TTL jitter ----------------------------------------------------------------------------------------


def test_ttl_jitter_spreads_expiry_within_its_bound(
    valkey3: EmbeddedValkey, make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    cache = make_cache(valkey3, ttl_jitter=0.2, policy="all")
    for i in range(200):
        cache.set(f"{prefix}{i}", i, ttl=1000)
    assert cache.flush_writes(5.0)
    host, port = valkey3.zones["zone-b"][0].split(":")
    server = redis.Redis(host=host, port=int(port))
    ttls = [int(server.ttl(f"{prefix}{i}")) for i in range(200)]  # type: ignore[arg-type]
    server.close()
    assert all(790 <= ttl <= 1000 for ttl in ttls), (min(ttls), max(ttls))  # 1000 less at most 20%
    assert len(set(ttls)) > 20  # spread, not one expiry second for all
    never = make_cache(valkey3, ttl_jitter=0.5)
    never.set(prefix + "forever", 1, ttl=0).wait(1.0)
    host, port = valkey3.zones["zone-a"][0].split(":")
    server = redis.Redis(host=host, port=int(port))
    assert server.ttl(prefix + "forever") == -1  # 0 = never expires, whatever the jitter
    server.close()


@pytest.mark.parametrize("jitter", [0.6, -0.1, True, "0.1", None])
def test_ttl_jitter_is_a_bounded_fraction(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache], jitter: object
) -> None:
    with pytest.raises(InvalidConfig, match=r"ttl_jitter must be a fraction in 0..0.5, got"):
        make_cache(memcached3, ttl_jitter=jitter)


# -- memoise -----------------------------------------------------------------------------------------------


def test_memoize_caches_by_arguments(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    cache = make_cache(memcached3)
    calls: list[tuple[int, str]] = []

    @cache.memoize(ttl=60, prefix=prefix + "rank")
    def rank(title: int, region: str = "eu") -> dict[str, object]:
        calls.append((title, region))
        return {"title": title, "region": region}

    assert rank(42) == {"title": 42, "region": "eu"}
    assert rank(42) == {"title": 42, "region": "eu"}
    assert rank(42, region="us") == {"title": 42, "region": "us"}
    assert rank(title=42) == {"title": 42, "region": "eu"}  # another spelling is another key
    assert calls == [(42, "eu"), (42, "us"), (42, "eu")]
    assert rank.__name__ == "rank"
    with pytest.raises(InvalidKey, match=rf"arguments of {prefix}rank must be JSON"):
        rank({1, 2})  # type: ignore[arg-type]


def test_memoize_refuses_the_wrong_kind_of_function(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache]
) -> None:
    cache = make_cache(memcached3)

    async def later() -> int:
        return 1

    with pytest.raises(InvalidConfig, match=r"memoize on ZonalCache takes a plain function, got async later"):
        cache.memoize()(later)
    with pytest.raises(InvalidKey, match=r"prefix must not contain whitespace"):
        cache.memoize(prefix="my rank")(lambda: 1)
    with pytest.raises(InvalidConfig, match=r"stale_for must be an integer"):
        cache.memoize(stale_for=-1)
    async_cache = AsyncZonalCache(memcached3.zones, "zone-a", registry=Registry(), name="amemo")
    with pytest.raises(InvalidConfig, match=r"memoize on AsyncZonalCache takes an async def function"):
        async_cache.memoize()(lambda: 1)


def test_async_memoize(memcached3: LocalMemcached, prefix: str) -> None:
    async def scenario() -> None:
        async with AsyncZonalCache(memcached3.zones, "zone-a", registry=Registry(), name="amemo2") as cache:
            calls: list[int] = []

            @cache.memoize(ttl=60, prefix=prefix + "similar")
            async def similar(title: int) -> list[int]:
                calls.append(title)
                await asyncio.sleep(0.05)
                return [title + 1, title + 2]

            assert await asyncio.gather(similar(1), similar(1), similar(2)) == [[2, 3], [2, 3], [3, 4]]
            assert await similar(1) == [2, 3]
            assert sorted(calls) == [1, 2]

    asyncio.run(scenario())
