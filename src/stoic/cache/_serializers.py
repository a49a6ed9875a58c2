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


class PlainSerializer:
    """bytes, str and JSON values, tagged with one byte so each comes back as the type it went in.

    >>> s = PlainSerializer()
    >>> s.loads(s.dumps({"title": "Stoic"})), s.loads(s.dumps(b"raw")), s.loads(s.dumps("text"))
    ({'title': 'Stoic'}, b'raw', 'text')
    """

    BYTES_TAG = b"b"

    def dumps(self, value: Any) -> bytes:
        if isinstance(value, bytes):
            return self.BYTES_TAG + value
        if isinstance(value, str):
            return b"s" + value.encode("utf-8")
        try:
            return b"j" + json.dumps(value, separators=(",", ":"), allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise InvalidValue(
                f"value must be bytes, str or JSON-serialisable (dict, list, int, float, bool, None), "
                f"got {type(value).__name__}: {exc}"
            ) from None

    def loads(self, data: bytes) -> Any:
        tag, body = data[:1], data[1:]
        if tag == self.BYTES_TAG:
            return body
        if tag == b"s":
            return body.decode("utf-8")
        if tag == b"j":
            return json.loads(body)
        raise CorruptValue(f"unknown value tag {tag!r}: written by another serializer?")
