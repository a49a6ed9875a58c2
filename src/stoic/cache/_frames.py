"""How a value is laid out on the servers: one item, or a manifest plus chunks with a checksum.

    small value:  key -> b"\\x00" + payload
    large value:  key -> b"\\x01" + JSON manifest {id, n, len, sum}
    get_or_set:   key -> b"\\x02" + fresh-until (8-byte unix time) + one of the two heads above
                  ~c:<id>:<i> -> payload[i * chunk_size : (i + 1) * chunk_size]   for i in 0..n-1

Chunk keys carry a random id, so overwriting a large value never mixes old and new chunks, and each
chunk is placed on the ring by its own key (a warm-up copies chunks like any other item).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import struct
from dataclasses import dataclass

from ._errors import CorruptValue, InvalidValue
from ._keys import CHUNK_PREFIX

SINGLE_HEAD = b"\x00"
CHUNKED_HEAD = b"\x01"
SOFT_HEAD = b"\x02"  # a value with a soft expiry: fresh until a time, then stale until its TTL ends
_SOFT = struct.Struct(">d")
SOFT_BYTES = 1 + _SOFT.size
MIN_CHUNK_SIZE = 1024
MAX_CHUNK_SIZE = 512 * 1024 * 1024
# A manifest read back names its chunk count, and a reader builds that many keys and asks for them:
# bounded here, so a forged head item costs a bounded read (4 GiB values at the default chunk size).
MAX_CHUNKS = 4096
_HEX = frozenset("0123456789abcdef")


def checksum(payload: bytes) -> str:
    """A 128-bit BLAKE2b digest, hex."""
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class Manifest:
    """Where the chunks of one large value live and how to check them."""

    id: str
    n: int
    length: int
    sum: str

    def chunk_keys(self) -> list[bytes]:
        return [CHUNK_PREFIX + f"{self.id}:{i}".encode() for i in range(self.n)]

    def chunk_bound(self) -> int:
        """The most bytes one chunk can hold: every chunk but the last has the writer's chunk size."""
        return self.length if self.n == 1 else self.length // (self.n - 1) + 1

    def join(self, chunks: list[bytes]) -> bytes:
        """Reassemble and verify; raise `CorruptValue` on a length or checksum mismatch."""
        payload = b"".join(chunks)
        if len(payload) != self.length or checksum(payload) != self.sum:
            raise CorruptValue(f"chunked value {self.id}: checksum or length mismatch")
        return payload


def encode(key: bytes, payload: bytes, chunk_size: int) -> list[tuple[bytes, bytes]]:
    """The items to store for `payload` under `key`: chunks first, the head item last."""
    if len(payload) + 1 <= chunk_size:
        return [(key, SINGLE_HEAD + payload)]
    ident = secrets.token_hex(8)
    n = -(-len(payload) // chunk_size)
    if n > MAX_CHUNKS:
        raise InvalidValue(
            f"value of {len(payload)} bytes needs {n} chunks of chunk_size={chunk_size} bytes, more than "
            f"MAX_CHUNKS={MAX_CHUNKS}: store less or raise chunk_size"
        )
    manifest = {"id": ident, "n": n, "len": len(payload), "sum": checksum(payload)}
    items = [
        (CHUNK_PREFIX + f"{ident}:{i}".encode(), payload[i * chunk_size : (i + 1) * chunk_size])
        for i in range(n)
    ]
    items.append((key, CHUNKED_HEAD + json.dumps(manifest, separators=(",", ":")).encode()))
    return items


def soften(items: list[tuple[bytes, bytes]], fresh_until: float) -> list[tuple[bytes, bytes]]:
    """`encode`'s items with the head marked fresh until `fresh_until` (a unix time)."""
    key, head = items[-1]
    return [*items[:-1], (key, SOFT_HEAD + _SOFT.pack(fresh_until) + head)]


def split_soft(data: bytes) -> tuple[float | None, bytes]:
    """(fresh-until or None, the head item without its soft-expiry mark)."""
    if data[:1] != SOFT_HEAD:
        return None, data
    if len(data) < SOFT_BYTES + 1 or data[SOFT_BYTES : SOFT_BYTES + 1] == SOFT_HEAD:
        raise CorruptValue("soft-expiry head without a value head after it")
    return _SOFT.unpack_from(data, 1)[0], data[SOFT_BYTES:]


def decode_head(data: bytes) -> bytes | Manifest:
    """The payload of a small value, or the manifest of a large one (a soft expiry is ignored)."""
    if data[:1] == SOFT_HEAD:
        data = split_soft(data)[1]
    head = data[:1]
    if head == SINGLE_HEAD:
        return data[1:]
    if head == CHUNKED_HEAD:
        if len(data) > 256:  # a real manifest is under 120 bytes
            raise CorruptValue(f"chunk manifest of {len(data)} bytes: at most 256 expected")
        try:
            raw = json.loads(data[1:])
            return _checked(raw["id"], raw["n"], raw["len"], raw["sum"])
        except (ValueError, KeyError, TypeError) as exc:  # at most 256 bytes: no recursion limit
            raise CorruptValue(f"unreadable chunk manifest: {exc}") from None
    raise CorruptValue(f"unknown frame header {head!r}")


def _checked(ident: object, n: object, length: object, digest: object) -> Manifest:
    """A manifest whose fields could have come from `encode`, else `CorruptValue`.

    The id becomes part of memcached command lines, so it must be plain hex; the chunk count must
    fit the stated length for some allowed chunk size and stay within MAX_CHUNKS.
    """
    if not isinstance(ident, str) or not 1 <= len(ident) <= 32 or not _HEX.issuperset(ident):
        raise CorruptValue(f"chunk manifest id must be 1..32 lowercase hex digits, got {ident!r:.60}")
    if type(n) is not int or type(length) is not int:
        raise CorruptValue(f"chunk manifest n and len must be integers, got {n!r:.30} and {length!r:.30}")
    if not 1 <= n <= MAX_CHUNKS:
        raise CorruptValue(f"chunk manifest n must be in 1..{MAX_CHUNKS}, got {n}")
    low, high = -(-length // MAX_CHUNK_SIZE), -(-length // MIN_CHUNK_SIZE)
    if not low <= n <= high:
        raise CorruptValue(
            f"chunk manifest n={n} does not fit len={length}: chunks of {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE} "
            f"bytes give {low}..{high}"
        )
    if not isinstance(digest, str) or len(digest) != 32 or not _HEX.issuperset(digest):
        raise CorruptValue(f"chunk manifest sum must be 32 lowercase hex digits, got {digest!r:.60}")
    return Manifest(ident, n, length, digest)
