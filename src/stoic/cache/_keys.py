"""Key and TTL rules, checked at the edge before anything reaches a server (memcached's rules)."""

from __future__ import annotations

import hashlib
import re

from ._errors import InvalidKey, InvalidTTL

MAX_KEY_BYTES = 250
MAX_TTL = 30 * 24 * 3600  # memcached reads larger numbers as absolute unix times
CHUNK_PREFIX = b"~c:"  # keys of value chunks; reserved so a user key never collides with one
HASH_PREFIX = b"~h:"  # a key over MAX_KEY_BYTES, hashed (opt-in: ZonalCache(hash_keys=True))
LOCK_PREFIX = b"~l:"  # get_or_set's "someone is computing this key" item
MAX_HASHED_KEY_BYTES = 64 * 1024  # the longest key hash_keys=True accepts
_RESERVED = {CHUNK_PREFIX: "value chunks", HASH_PREFIX: "hashed keys", LOCK_PREFIX: "get_or_set locks"}

_FORBIDDEN = re.compile(rb"[\x00-\x20\x7f]")


_PLAIN = bytes(range(0x21, 0x7F))  # printable ASCII but space: what nearly every key is made of


def check_key(key: str | bytes, field: str = "key") -> bytes:
    """Return `key` as UTF-8 bytes, or raise `InvalidKey` naming the broken rule."""
    if isinstance(key, str):
        try:
            raw = key.encode()
        except UnicodeEncodeError:
            raise InvalidKey(f"{field} must be valid Unicode (no lone surrogates), got {key[:40]!r}"
                             ) from None
    elif isinstance(key, bytes):
        raw = key
    else:
        raise InvalidKey(f"{field} must be str or bytes, got {type(key).__name__}")
    # The common key passes in one C call: delete its plain bytes and find nothing left. Between two
    # system calls that is cheaper than a string predicate per rule; other keys take the full check.
    if not raw.translate(None, _PLAIN) and 0 < len(raw) <= MAX_KEY_BYTES and raw[0] != 0x7E:
        return raw
    return _check_bytes(raw, field)


def _check_bytes(raw: bytes, field: str) -> bytes:
    """Every key rule, byte by byte, naming the first one broken."""
    if not 0 < len(raw) <= MAX_KEY_BYTES:
        raise InvalidKey(f"{field} must be 1..{MAX_KEY_BYTES} bytes long (UTF-8), got {len(raw)} bytes")
    _check_rules(raw, field)
    return raw


def _check_rules(raw: bytes, field: str) -> None:
    bad = _FORBIDDEN.search(raw)
    if bad is not None:
        raise InvalidKey(
            f"{field} must not contain whitespace or control characters (bytes 0x00-0x20, 0x7f): "
            f"found 0x{bad.group()[0]:02x} at byte {bad.start()} of {raw[:40]!r}"
        )
    reserved = _RESERVED.get(raw[:3])
    if reserved is not None:
        raise InvalidKey(f"{field} must not start with {raw[:3].decode()!r} (reserved for {reserved})")


def check_long_key(key: str | bytes, field: str = "key") -> bytes:
    """`check_key`, except that a key of MAX_KEY_BYTES+1..MAX_HASHED_KEY_BYTES bytes becomes
    "~h:" + its BLAKE2b-256 digest in hex (67 bytes). Used by `ZonalCache(hash_keys=True)`.

    >>> check_long_key("title:" + "x" * 300)[:3]
    b'~h:'
    """
    if isinstance(key, str):
        try:
            raw = key.encode()
        except UnicodeEncodeError:
            return check_key(key, field)  # raises, naming the rule
    elif isinstance(key, bytes):
        raw = key
    else:
        return check_key(key, field)  # raises, naming the types allowed
    if len(raw) <= MAX_KEY_BYTES:
        return check_key(raw, field)
    if len(raw) > MAX_HASHED_KEY_BYTES:
        raise InvalidKey(f"{field} must be 1..{MAX_HASHED_KEY_BYTES} bytes long (UTF-8) with hash_keys=True, "
                         f"got {len(raw)} bytes")
    _check_rules(raw, field)
    return HASH_PREFIX + hashlib.blake2b(raw, digest_size=32).hexdigest().encode()


def lock_key(raw: bytes) -> bytes:
    """The get_or_set lock item of a (checked) key."""
    return LOCK_PREFIX + hashlib.blake2b(raw, digest_size=16).hexdigest().encode()


def check_ttl(ttl: object, field: str = "ttl") -> int:
    """Return `ttl` in seconds (0 = never expires), or raise `InvalidTTL`."""
    if isinstance(ttl, bool) or not isinstance(ttl, int):
        raise InvalidTTL(
            f"{field} must be an integer number of seconds in 0..{MAX_TTL} (0 = never expires), "
            f"got {ttl!r}"
        )
    if not 0 <= ttl <= MAX_TTL:
        raise InvalidTTL(f"{field} must be in 0..{MAX_TTL} seconds (0 = never expires), got {ttl}")
    return ttl
