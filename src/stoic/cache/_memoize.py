"""Cache keys for memoised functions: the function's name and a digest of its arguments."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from ._errors import InvalidConfig, InvalidKey
from ._keys import check_key

DIGEST_HEX = 32


def memo_prefix(fn: Callable[..., Any], prefix: str | None) -> str:
    """The key prefix of `fn`: `prefix`, or "<module>.<qualified name>"; checked as a key."""
    if not callable(fn):
        raise InvalidConfig(f"memoize decorates a function, got {fn!r}")
    name = prefix if prefix is not None else f"{fn.__module__}.{getattr(fn, '__qualname__', fn)}"
    if not isinstance(name, str):
        raise InvalidConfig(f"prefix must be a str, got {type(name).__name__}")
    check_key(f"{name}:{'0' * DIGEST_HEX}", "prefix")
    return name


def memo_key(prefix: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """prefix + ":" + BLAKE2b-128 of the arguments as canonical JSON.

    Arguments must be JSON (str, int, float, bool, None, list, dict with str keys): anything else
    has no stable text to hash, so it raises `InvalidKey` rather than caching under a wrong key.
    """
    try:
        text = json.dumps([args, kwargs], sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidKey(
            f"arguments of {prefix} must be JSON (str, int, float, bool, None, list, dict with str keys) "
            f"to make a cache key: {exc}"
        ) from None
    return f"{prefix}:{hashlib.blake2b(text.encode(), digest_size=DIGEST_HEX // 2).hexdigest()}"
