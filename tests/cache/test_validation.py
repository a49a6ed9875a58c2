"""Bad keys, TTLs, values and settings are refused at the edge with a message naming the rule."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stoic.cache import (
    InvalidConfig,
    InvalidKey,
    InvalidTTL,
    InvalidValue,
    LocalMemcached,
    Policy,
    ZonalCache,
    check_key,
)
from stoic.cache._keys import _check_bytes


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "1..250 bytes"),
        ("k" * 251, "got 251 bytes"),
        ("é" * 126, "got 252 bytes"),  # the limit is in UTF-8 bytes, not characters
        ("has space", "whitespace or control characters"),
        ("tab\there", "0x09"),
        ("new\nline", "0x0a"),
        ("nul\x00", "0x00"),
        ("del\x7f", "0x7f"),
        ("~c:abc:0", "reserved for value chunks"),
        ("lone\ud800", "valid Unicode"),
        (42, "must be str or bytes, got int"),
    ],
)
def test_bad_keys_are_refused_before_any_server_call(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache], key: object, message: str
) -> None:
    cache = make_cache(memcached3)
    for call in (lambda: cache.get(key), lambda: cache.set(key, "v"), lambda: cache.delete(key)):  # type: ignore[arg-type]
        with pytest.raises(InvalidKey, match=message):
            call()
    with pytest.raises(InvalidKey, match=r"keys\[1\]"):
        cache.get_many(["fine", key])  # type: ignore[list-item]
    assert cache.snapshot()["operations"] == {}  # nothing reached a server


@given(
    st.binary(max_size=260)
    | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=260).map(str.encode)
    | st.sampled_from([b"~c:1:0", b"~x", b"a b", b"a\x7f", b"k" * 250, b"\xc3\xa9"])
)
def test_the_shortcut_and_the_full_check_agree(raw: bytes) -> None:
    """Plain keys pass in one step; every other key gets the full check, whose verdict is the rule."""

    def verdict(check: Callable[[bytes], bytes]) -> bytes | str:
        try:
            return check(raw)
        except InvalidKey as exc:
            return str(exc)

    assert verdict(check_key) == verdict(lambda k: _check_bytes(k, "key"))


@given(st.text(st.characters(max_codepoint=0x3000, exclude_categories=["Cs"]), max_size=260))
def test_a_str_key_and_its_utf8_bytes_get_the_same_verdict(key: str) -> None:
    verdicts: list[bytes | str] = []
    for form in (key, key.encode()):
        try:
            verdicts.append(check_key(form))
        except InvalidKey as exc:
            verdicts.append(str(exc))
    assert verdicts[0] == verdicts[1]


def test_longest_and_unicode_keys_round_trip(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache], prefix: str
) -> None:
    cache = make_cache(memcached3)
    longest = (prefix + "x" * 250)[:250]
    unicode_key = prefix + "título-ñ"
    assert cache.set(longest, "a", policy="all").wait(2.0)
    assert cache.set(unicode_key, "b", policy="all").wait(2.0)
    assert cache.get(longest) == "a"
    assert cache.get(unicode_key.encode()) == "b"  # str and its UTF-8 bytes are the same key


@pytest.mark.parametrize(
    ("ttl", "message"),
    [(-1, "got -1"), (2_592_001, "0..2592000"), (1.5, "integer"), (True, "integer"), ("60", "integer")],
)
def test_bad_ttls_are_refused(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache], ttl: object, message: str
) -> None:
    cache = make_cache(memcached3)
    with pytest.raises(InvalidTTL, match=message):
        cache.set("k", "v", ttl=ttl)  # type: ignore[arg-type]
    with pytest.raises(InvalidTTL, match=message):
        cache.touch("k", ttl=ttl)  # type: ignore[arg-type]
    with pytest.raises(InvalidTTL, match="default_ttl"):
        make_cache(memcached3, default_ttl=ttl)


def test_unserialisable_values_are_refused(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache]
) -> None:
    cache = make_cache(memcached3)
    with pytest.raises(InvalidValue, match=r"value is of type object, .* allowed are bytes, str, and JSON"):
        cache.set("k", object())
    with pytest.raises(InvalidValue, match="float"):
        cache.set("k", float("nan"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"zones": {}}, "zones must be a non-empty mapping"),
        ({"zones": {"a": []}}, r"zones\['a'\] must be a non-empty list"),
        ({"zones": {"a": ["localhost"]}}, r"zones\['a'\]\[0\] must be 'host:port'"),
        ({"zones": {"a": ["127.0.0.1:70000"]}}, "port in 1..65535"),
        ({"zones": {"a": ["127.0.0.1:1", "127.0.0.1:1"]}}, "lists a server twice"),
        ({"zones": {"a b": ["127.0.0.1:1"]}}, "zone names"),
        ({"local_zone": "nowhere"}, "local_zone must be one of"),
        ({"chunk_size": 10}, r"chunk_size must be an integer in 1024\.\."),
        ({"write_queue": 0}, "write_queue must be an integer in 1.."),
        ({"timeout": 0}, r"timeout must be a number of seconds in \(0, 60\]"),
        ({"policy": "most"}, "policy must be one of ONE, QUORUM, ALL_MINUS_ONE, ALL"),
        ({"backend": "mongodb"}, r"backend must be one of \['memcached', 'redis', 'valkey'\]"),
        ({"serializer": "json"}, "serializer must have dumps"),
        ({"name": ""}, "name must be a non-empty string"),
        ({"max_concurrent": 0}, "max_concurrent must be an integer in 1.."),
    ],
)
def test_bad_settings_name_the_field(options: dict[str, object], message: str) -> None:
    settings: dict[str, object] = {"zones": {"a": ["127.0.0.1:1"]}, "local_zone": "a"}
    settings.update(options)
    with pytest.raises(InvalidConfig, match=message):
        ZonalCache(**settings)  # type: ignore[arg-type]


def test_policy_names_and_required_counts() -> None:
    assert Policy.parse("quorum") is Policy.QUORUM
    assert Policy.parse("ALL_MINUS_ONE") is Policy.ALL_MINUS_ONE
    assert [p.required(3) for p in Policy] == [1, 2, 2, 3]
    assert [p.required(5) for p in Policy] == [1, 3, 4, 5]
    assert Policy.ALL_MINUS_ONE.required(1) == 1


def test_write_policy_per_call_is_validated(
    memcached3: LocalMemcached, make_cache: Callable[..., ZonalCache]
) -> None:
    cache = make_cache(memcached3)
    with pytest.raises(InvalidConfig, match="policy must be one of"):
        cache.set("k", "v", policy="twice")
    with pytest.raises(InvalidConfig, match="zone must be one of"):
        cache.get("k", zone="zone-z")
