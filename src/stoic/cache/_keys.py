"""Key and TTL rules, checked at the edge before anything reaches a server (memcached's rules)."""

from __future__ import annotations

import re

from ._errors import InvalidKey, InvalidTTL

MAX_KEY_BYTES = 250
MAX_TTL = 30 * 24 * 3600  # memcached reads larger numbers as absolute unix times
CHUNK_PREFIX = b"~c:"  # keys of value chunks; reserved so a user key never collides with one

_FORBIDDEN = re.compile(rb"[\x00-\x20\x7f]")


def check_key(key: str | bytes, field: str = "key") -> bytes:
    """Return `key` as UTF-8 bytes, or raise `InvalidKey` naming the broken rule."""
    # The common key, printable ASCII without spaces, passes in a few C-level string checks
    # (~3x cheaper than the byte scan below, which also finds what is wrong with the others).
    if (type(key) is str and key.isascii() and key.isprintable() and " " not in key
            and 0 < len(key) <= MAX_KEY_BYTES and key[0] != "~"):
        return key.encode()
    if isinstance(key, str):
        raw = key.encode("utf-8")
    elif isinstance(key, bytes):
        raw = key
    else:
        raise InvalidKey(f"{field} must be str or bytes, got {type(key).__name__}")
    if not 0 < len(raw) <= MAX_KEY_BYTES:
        raise InvalidKey(f"{field} must be 1..{MAX_KEY_BYTES} bytes long (UTF-8), got {len(raw)} bytes")
    bad = _FORBIDDEN.search(raw)
    if bad is not None:
        raise InvalidKey(
            f"{field} must not contain whitespace or control characters (bytes 0x00-0x20, 0x7f): "
            f"found 0x{bad.group()[0]:02x} at byte {bad.start()} of {raw[:40]!r}"
        )
    if raw.startswith(CHUNK_PREFIX):
        raise InvalidKey(f"{field} must not start with {CHUNK_PREFIX.decode()!r} (reserved for value chunks)")
    return raw


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
