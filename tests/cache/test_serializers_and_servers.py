"""Pluggable serialization; the local server fleets that the demo and tests run."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

from stoic.cache import (
    CorruptValue,
    EmbeddedValkey,
    InvalidConfig,
    LocalMemcached,
    PlainSerializer,
    Serializer,
    ZonalCache,
)


def test_plain_serializer_keeps_types_and_refuses_pickle_territory() -> None:
    s = PlainSerializer()
    for value in (b"\x00\xff", "text é", {"a": [1, 2.5, None, True]}, [], 0, None):
        data = s.dumps(value)
        assert isinstance(data, bytes)
        assert s.loads(data) == value and type(s.loads(data)) is type(value)
    with pytest.raises(CorruptValue, match="unknown value tag"):
        s.loads(b"\x80\x04pickle")


class UpperText:
    """A custom serializer: stores str upper-cased with its own tag."""

    def dumps(self, value: Any) -> bytes:
        return b"U" + str(value).upper().encode()

    def loads(self, data: bytes) -> Any:
        assert data[:1] == b"U"
        return data[1:].decode()


def test_a_custom_serializer_is_used_for_both_directions(
    valkey3: EmbeddedValkey, make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    assert isinstance(UpperText(), Serializer)
    cache = make_cache(valkey3, serializer=UpperText())
    assert cache.set(prefix + "k", "quiet", policy="all").wait(2.0)
    assert cache.get(prefix + "k") == "QUIET"
    raw = cache.zone("zone-c").server_for((prefix + "k").encode()).node.get((prefix + "k").encode())
    assert raw == b"\x00UQUIET"  # frame header + the serializer's bytes, nothing else
    plain = make_cache(valkey3)
    assert plain.get(prefix + "k") is None  # another serializer's bytes read as corrupt, not garbage
    assert plain.snapshot()["operations"]["get"]["zone-a"] == {"corrupt": 1}


def test_valkey_fleet_kills_and_restarts_a_zone_on_the_same_ports() -> None:
    with EmbeddedValkey(zones=["us-east-1a", "us-east-1b"], per_zone=1) as fleet:
        before = fleet.zones
        assert list(before) == ["us-east-1a", "us-east-1b"]
        (address,) = before["us-east-1a"]
        assert fleet.alive(address)
        fleet.kill_zone("us-east-1a")
        assert not fleet.alive(address)
        host, port = address.split(":")
        with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=1):
            pass
        fleet.restart_zone("us-east-1a")
        assert fleet.alive(address) and fleet.zones == before
        with fleet.cache("us-east-1b", registry=None) as cache:
            assert cache.set("k", 1, policy="all").wait(2.0)
            assert cache.get("k", zone="us-east-1a") == 1
    assert not fleet.alive(address)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: EmbeddedValkey(zones=0), "zones must be in 1..26"),
        (lambda: EmbeddedValkey(zones=["a", "a"]), "distinct"),
        (lambda: EmbeddedValkey(per_zone=0), "per_zone must be an integer in 1..64"),
        (lambda: LocalMemcached(memory_mb=1), "memory_mb must be an integer in 8..65536"),
        (lambda: LocalMemcached(binary="/nonexistent/memcached"), "binary must be an executable memcached"),
    ],
)
def test_fleet_settings_are_validated(make: Callable[[], object], message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        make()


def test_fleet_names_unknown_zones_and_addresses() -> None:
    with LocalMemcached(zones=1, per_zone=1) as fleet:
        with pytest.raises(InvalidConfig, match=r"zone must be one of \['zone-a'\]"):
            fleet.kill_zone("zone-x")
        with pytest.raises(InvalidConfig, match="address must be one of"):
            fleet.kill("127.0.0.1:1")


class SamePlainFormat(PlainSerializer):
    """PlainSerializer's format under another type: the cache then takes no bytes shortcut."""


def test_bytes_shortcut_stores_and_reads_what_the_serializer_would(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    shortcut = make_cache(memcached3, chunk_size=1024)  # frames and tags bytes values in one step
    general = make_cache(memcached3, chunk_size=1024, serializer=SamePlainFormat())
    values: list[Any] = [b"", b"\x00b\xff", b"x" * 1022, b"y" * 5000, "text", {"j": [1]}]
    for i, value in enumerate(values):
        key = f"{prefix}{i}"
        assert shortcut.set(key, value, policy="all").wait(2.0)
        stored = shortcut.zone("zone-a").server_for(key.encode()).node.get(key.encode())
        if len(value) <= 1022:  # one item (the first 1024 bytes long): the framed serializer output
            assert stored == b"\x00" + PlainSerializer().dumps(value)
        assert general.get(key) == value
        assert general.set(key, value, policy="all").wait(2.0)
        assert shortcut.get(key) == value and type(shortcut.get(key)) is type(value)
