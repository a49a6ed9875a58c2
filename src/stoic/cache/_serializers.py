"""Pluggable value serialization. The default takes bytes, str and JSON values, never pickle."""

from __future__ import annotations

import json
from typing import Any, Protocol, runtime_checkable

from ._errors import CorruptValue, InvalidValue


@runtime_checkable
class Serializer(Protocol):
    """Turns values into bytes and back. Must be thread-safe (writers run on background threads)."""

    def dumps(self, value: Any) -> bytes:
        """Encode `value`; raise `InvalidValue` (or `TypeError`/`ValueError`) if it cannot."""
        ...

    def loads(self, data: bytes) -> Any:
        """Decode what `dumps` produced."""
        ...


MAX_DEPTH = 100  # lists and dicts nested deeper than this are refused (JSON recursion is bounded)
_SCALARS = frozenset({str, int, float, bool, type(None)})


class PlainSerializer:
    """bytes, str and JSON values, tagged with one byte so each comes back as the type it went in.

    Only what comes back equal and of the same type is taken: bytes, str, and JSON built from
    dict (with str keys), list, str, int, float, bool and None, nested at most MAX_DEPTH deep.
    Anything else (a tuple, a non-str dict key, a subclass such as an IntEnum, a string with a lone
    surrogate) raises `InvalidValue` naming where it is, instead of coming back changed.

    >>> s = PlainSerializer()
    >>> s.loads(s.dumps({"title": "Stoic"})), s.loads(s.dumps(b"raw")), s.loads(s.dumps("text"))
    ({'title': 'Stoic'}, b'raw', 'text')
    >>> s.dumps((1, 2))
    Traceback (most recent call last):
    ...
    stoic.cache._errors.InvalidValue: value is a tuple, which would come back as a list: use a list
    """

    BYTES_TAG = b"b"

    def dumps(self, value: Any) -> bytes:
        kind = type(value)
        if kind is bytes:
            return self.BYTES_TAG + value
        try:
            if kind is str:
                return b"s" + value.encode("utf-8")
            _check_json(value)
            return b"j" + json.dumps(value, separators=(",", ":"), allow_nan=False).encode("utf-8")
        except _Refused as refused:
            steps = refused.path[::-1]  # outermost first
            where = "value" + "".join(steps[:8]) + ("..." if len(steps) > 8 else "")
            raise InvalidValue(f"{where} {refused.reason}") from None
        except UnicodeEncodeError as exc:
            raise InvalidValue(f"value {_not_unicode(exc)}") from None
        except (TypeError, ValueError) as exc:  # e.g. NaN, or an int too long to print
            raise InvalidValue(
                f"value must be bytes, str or JSON (dict with str keys, list, str, int, float, bool, None), "
                f"got {type(value).__name__}: {exc}"
            ) from None

    def loads(self, data: bytes) -> Any:
        # A stored value nested too deeply raises RecursionError here: the cache reads it as corrupt.
        tag, body = data[:1], data[1:]
        if tag == self.BYTES_TAG:
            return body
        if tag == b"s":
            return body.decode("utf-8")
        if tag == b"j":
            return json.loads(body)
        raise CorruptValue(f"unknown value tag {tag!r}: written by another serializer?")


def _not_unicode(exc: UnicodeEncodeError) -> str:
    return (
        f"is a string that UTF-8 cannot encode ({exc.reason} at index {exc.start}), "
        f"so it cannot be stored as text"
    )


class _Refused(Exception):
    """Why a part of a value cannot round-trip; `path` grows as the check unwinds."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.path: list[str] = []


def _check_json(value: Any, depth: int = 0) -> None:
    """Raise `_Refused` unless `value` comes back from JSON equal and of the same types.

    Paths are built only on refusal, so a value that passes costs one type check per part.
    """
    kind = type(value)
    if kind in _SCALARS:
        if kind is str and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise _Refused(_not_unicode(exc)) from None
        return
    if depth >= MAX_DEPTH:
        raise _Refused(f"is nested more than MAX_DEPTH={MAX_DEPTH} lists or dicts deep")
    if kind is list or kind is dict:
        for key, item in value.items() if kind is dict else enumerate(value):
            if kind is dict and type(key) is not str:
                raise _Refused(
                    f"has a key of type {type(key).__name__} ({key!r:.40}), which would come back as a str: "
                    f"use str keys"
                )
            try:
                _check_json(item, depth + 1)
            except _Refused as refused:
                refused.path.append(f"[{key!r:.40}]")  # an int index prints as itself
                raise
        return
    if kind is tuple:
        raise _Refused("is a tuple, which would come back as a list: use a list")
    if kind is bytes:
        raise _Refused("is bytes inside a JSON value, which JSON cannot hold: store bytes on their own")
    raise _Refused(
        f"is of type {kind.__name__}, which would not come back as one: allowed are bytes, str, "
        f"and JSON made of dict (str keys), list, str, int, float, bool and None"
    )
