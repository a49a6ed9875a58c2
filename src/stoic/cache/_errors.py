"""The typed errors of the zonal cache."""

from __future__ import annotations


class CacheError(Exception):
    """Base of every error raised by the cache itself."""


class InvalidKey(CacheError, ValueError):
    """A key broke the memcached key rules; the message names the rule and the allowed values."""


class InvalidTTL(CacheError, ValueError):
    """A TTL was not an integer number of seconds in the allowed range."""


class InvalidValue(CacheError, ValueError):
    """The serializer could not encode a value."""


class InvalidConfig(CacheError, ValueError):
    """A cache or server setting was out of range; the message names the field."""


class CorruptValue(CacheError):
    """A stored value failed its checksum or framing check (detected on read)."""
