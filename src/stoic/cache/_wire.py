"""The memcached text protocol for the calls on the hot path: one `get`, one `set`.

A cache hit is one send and, nearly always, one recv. Both go straight to the socket's C methods
(the kernel bounds each with SO_RCVTIMEO / SO_SNDTIMEO), so a complete reply costs no Python code
but its parse. A reply that needs more reads finishes in `read_more`, which bounds the whole call
by its deadline and its byte cap. The asyncio node parses with the same functions.
"""

from __future__ import annotations

import errno
import socket
import struct
import time
from collections.abc import Callable

END = b"END\r\n"
STORED = b"STORED\r\n"
EOL = b"\r\n"
FIRST_READ = 65536  # one recv takes a whole small reply: the kernel hands over what it has
_ERRORS = (b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")

raw_recv = socket.socket.recv  # the C method: the node's socket overrides recv for pymemcache's calls
_arm_option = (socket.SOL_SOCKET, socket.SO_RCVTIMEO)


class ProtocolError(OSError):
    """The server answered something the protocol does not allow here (the connection is dropped)."""


class ReplyTooLarge(OSError):
    """A server's reply to one call passed the node's `max_reply` bytes."""


def value_of(reply: bytes) -> bytes | bool | None:
    """The value in a complete `get` reply, None for a miss, False when the reply is not complete.

    Raises `ProtocolError` for an error line or a reply that is not a `get` reply.
    """
    if reply == END:
        return None
    if reply[:6] == b"VALUE " and reply[-7:] == b"\r\nEND\r\n":
        eol = reply.find(EOL)
        try:
            length = int(reply[reply.rfind(b" ", 0, eol) + 1 : eol])
        except ValueError:
            raise ProtocolError(f"bad VALUE line {reply[:eol][:80]!r}") from None
        start = eol + 2
        if start + length + 7 == len(reply):
            return reply[start : start + length]
        if start + length + 7 < len(reply):  # a reply to more than one key: never asked for here
            raise ProtocolError(f"get reply longer than its VALUE line says: {reply[:eol][:80]!r}")
        return False
    check_line(reply, b"VALUE ")
    return False


def check_line(reply: bytes, expected: bytes) -> None:
    """Raise `ProtocolError` if the (possibly partial) reply cannot begin with `expected`."""
    if reply[: len(expected)] == expected[: len(reply)]:
        return
    line = reply.split(EOL, 1)[0]
    if line.startswith(_ERRORS):
        raise ProtocolError(f"server error: {line[:200].decode(errors='replace')}")
    raise ProtocolError(f"unexpected reply {line[:80]!r}")


def store_command(command: bytes, key: bytes, data: bytes, ttl: int) -> bytes:
    """`set` (or `add`) of one item with flags 0, as pymemcache writes bytes."""
    return b"%s %s 0 %d %d\r\n%s\r\n" % (command, key, ttl, len(data), data)


def get_complete(reply: bytes) -> bool:
    """Whether `reply` is a whole `get` reply (raises `ProtocolError` if it cannot become one)."""
    return value_of(reply) is not False


def store_complete(reply: bytes) -> bool:
    """Whether `reply` is a whole reply to a store (raises `ProtocolError` if it cannot become one)."""
    return stored(reply) is not None


def stored(reply: bytes) -> bool | None:
    """True for STORED, False for NOT_STORED, None while the line is incomplete."""
    if reply == STORED:
        return True
    if reply == b"NOT_STORED\r\n":
        return False
    if not reply.endswith(EOL):
        if EOL in reply:
            raise ProtocolError(f"unexpected reply to a store: {reply[:80]!r}")
        return None
    check_line(reply, STORED)
    raise ProtocolError(f"unexpected reply to a store: {reply[:80]!r}")


def read_more(sock: socket.socket, reply: bytes, timeout: float, max_reply: int,
              complete: Callable[[bytes], bool]) -> bytes:
    """Read until `complete(reply)`, within `timeout` of now and at most `max_reply` bytes.

    Called once the call's first read returned part of a reply, so "now" is within microseconds of
    the call's first read: the whole reply is bounded by one timeout, as for pymemcache's calls.
    Each read waits only for the time left; the full bound is restored afterwards.
    """
    deadline = time.monotonic() + timeout
    try:
        while True:
            if len(reply) > max_reply:
                raise ReplyTooLarge(f"reply to one call passed max_reply={max_reply} bytes")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BlockingIOError(errno.EAGAIN, "call deadline passed")
            sock.setsockopt(*_arm_option, timeval(remaining))
            more = raw_recv(sock, min(max(FIRST_READ, len(reply)), max_reply + 1 - len(reply)))
            if not more:
                raise ConnectionResetError(errno.ECONNRESET, "server closed the connection mid-reply")
            reply += more
            if complete(reply):
                return reply
    finally:
        sock.setsockopt(*_arm_option, timeval(timeout))


def timeval(seconds: float) -> bytes:
    """A struct timeval for SO_RCVTIMEO / SO_SNDTIMEO (at least one microsecond)."""
    return struct.pack("@ll", *divmod(max(1, round(seconds * 1_000_000)), 1_000_000))
