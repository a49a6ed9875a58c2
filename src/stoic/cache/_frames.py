"""How a value is laid out on the servers: one item, or a manifest plus chunks with a checksum.

    small value:  key -> b"\\x00" + payload
    large value:  key -> b"\\x01" + JSON manifest {id, n, len, sum}
                  ~c:<id>:<i> -> payload[i * chunk_size : (i + 1) * chunk_size]   for i in 0..n-1

Chunk keys carry a random id, so overwriting a large value never mixes old and new chunks, and each
chunk is placed on the ring by its own key (a warm-up copies chunks like any other item).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass

from ._errors import CorruptValue
from ._keys import CHUNK_PREFIX

SINGLE_HEAD = b"\x00"
CHUNKED_HEAD = b"\x01"


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
    manifest = {"id": ident, "n": n, "len": len(payload), "sum": checksum(payload)}
    items = [
        (CHUNK_PREFIX + f"{ident}:{i}".encode(), payload[i * chunk_size : (i + 1) * chunk_size])
        for i in range(n)
    ]
    items.append((key, CHUNKED_HEAD + json.dumps(manifest, separators=(",", ":")).encode()))
    return items


def decode_head(data: bytes) -> bytes | Manifest:
    """The payload of a small value, or the manifest of a large one."""
    head = data[:1]
    if head == SINGLE_HEAD:
        return data[1:]
    if head == CHUNKED_HEAD:
        try:
            raw = json.loads(data[1:])
            return Manifest(str(raw["id"]), int(raw["n"]), int(raw["len"]), str(raw["sum"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptValue(f"unreadable chunk manifest: {exc}") from None
    raise CorruptValue(f"unknown frame header {head!r}")
