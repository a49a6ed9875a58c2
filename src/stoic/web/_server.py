"""Serving the dashboard so that a flood of connections cannot take it down.

An HTTP server that waits forever for request headers can be held by anyone who opens connections
and sends a header line now and then ("slowloris"): each one costs a file descriptor, and once
they run out `/healthz` cannot even be accepted. `ServerLimits` bounds both ends:

- `header_timeout`: a connection must finish its request line and headers this many seconds after
  it opened (or after its previous response); otherwise it is closed.
- `max_connections`: at the cap, a new connection closes the oldest one that has no request in
  flight (still sending headers, or idle between requests); if every connection is busy, the new
  one is answered `503` with `Retry-After` and closed. Either way the server keeps the descriptors
  it needs, and a health check always gets in.
- `keep_alive`: seconds an idle connection is kept between requests.
- `max_header_bytes`: a request line plus headers larger than this is refused with 400.

>>> ServerLimits(header_timeout=5.0).max_connections
1000
>>> ServerLimits(max_connections=0)
Traceback (most recent call last):
...
ValueError: ServerLimits.max_connections: must be an integer in [1, 1000000], got 0
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

# The event loop accepts up to the listen backlog in one go, before a connection closed to make
# room has given its descriptor back; a small backlog keeps that burst inside the reserve below.
ACCEPT_BACKLOG = 128
# Descriptors the process keeps for itself next to client connections: one accept burst, the
# listening socket, log files, the signals database, outgoing connections of a merge.
RESERVED_DESCRIPTORS = ACCEPT_BACKLOG + 64
_REFUSAL_BODY = b'{"error": "every connection is busy; retry in 1 s", "field": "max_connections"}'
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_REFUSAL_BODY), _REFUSAL_BODY)
)


def _number(owner: str, name: str, value: Any, low: float, high: float, integer: bool = False) -> None:
    kind = "an integer" if integer else "a number"
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or not math.isfinite(value) or not low <= value <= high:
        bounds = f"[{int(low)}, {int(high)}]" if integer else f"[{low:g}, {high:g}]"
        raise ValueError(f"{owner}.{name}: must be {kind} in {bounds}, got {value!r}")


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """How much a client may hold of the server (see the module docstring for each field).

    - `header_timeout`: seconds to send the request line and headers, 0.1..300 (default 10).
    - `max_connections`: open client connections, 1..1 000 000 (default 1000).
    - `keep_alive`: whole idle seconds between requests, 1..300 (default 5).
    - `max_header_bytes`: 1024..1 048 576 (default 16 KiB).
    """

    header_timeout: float = 10.0
    max_connections: int = 1000
    keep_alive: int = 5
    max_header_bytes: int = 16 * 1024

    def __post_init__(self) -> None:
        _number("ServerLimits", "header_timeout", self.header_timeout, 0.1, 300.0)
        _number("ServerLimits", "max_connections", self.max_connections, 1, 1_000_000, integer=True)
        _number("ServerLimits", "keep_alive", self.keep_alive, 1, 300, integer=True)
        _number("ServerLimits", "max_header_bytes", self.max_header_bytes, 1024, 1 << 20, integer=True)


def descriptor_room(wanted: int) -> int:
    """Raise this process's open-file limit to fit `wanted` connections if allowed; returns how many
    connections fit now (the soft limit less `RESERVED_DESCRIPTORS`)."""
    try:
        import resource  # POSIX only
    except ImportError:
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + RESERVED_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(0, soft - RESERVED_DESCRIPTORS)


def protocol_class(limits: ServerLimits) -> type[asyncio.Protocol]:
    """A uvicorn HTTP/1.1 protocol (h11) that enforces `limits` (pass it as `uvicorn.Config(http=...)`)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class LimitedH11Protocol(H11Protocol):
        """uvicorn's h11 protocol with a header deadline and a connection cap that evicts idle ones."""

        _deadline: asyncio.TimerHandle | None = None
        _ready_since = 0.0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            if len(self.connections) >= limits.max_connections and not self._evict_one():
                transport.write(REFUSAL)
                transport.close()
                return
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self.transport is None:  # refused in connection_made: uvicorn never saw it
                return
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._disarm()  # the headers are in; the request's own handling is not bounded here

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def _arm(self) -> None:
            self._disarm()
            self._ready_since = self.loop.time()
            self._deadline = self.loop.call_later(limits.header_timeout, self._header_deadline)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _waiting(self) -> bool:
            """True while no request is in flight: headers still coming, or idle between requests."""
            return self.conn.their_state is h11.IDLE and (self.cycle is None or self.cycle.response_complete)

        def _header_deadline(self) -> None:
            self._deadline = None
            if self._waiting() and not self.transport.is_closing():
                self.transport.close()

        def _evict_one(self) -> bool:
            waiting = [c for c in self.connections if isinstance(c, LimitedH11Protocol) and c._waiting()]
            if not waiting:
                return False
            oldest = min(waiting, key=lambda c: c._ready_since)
            oldest._disarm()
            # Dropped from the count now: the transport closes on the next loop iteration.
            self.connections.discard(oldest)
            oldest.transport.close()
            return True

    return LimitedH11Protocol


def server_config(
    app: Any, host: str = "127.0.0.1", port: int = 8700, limits: ServerLimits | None = None, **options: Any
) -> Any:
    """A `uvicorn.Config` serving `app` under `limits` (default `ServerLimits()`); `options` go to
    uvicorn as they are (e.g. `root_path="/stoic"`, `log_level="info"`)."""
    import uvicorn

    limits = ServerLimits() if limits is None else limits
    if not isinstance(limits, ServerLimits):
        raise TypeError(f"limits: must be a ServerLimits, got {type(limits).__name__}")
    options.setdefault("log_level", "warning")
    options.setdefault("backlog", ACCEPT_BACKLOG)
    options.setdefault("timeout_graceful_shutdown", 2)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol_class(limits),
        timeout_keep_alive=limits.keep_alive,
        h11_max_incomplete_event_size=limits.max_header_bytes,
        **options,
    )


def serve(
    app: Any, host: str = "127.0.0.1", port: int = 8700, limits: ServerLimits | None = None, **options: Any
) -> None:
    """Serve `app` with uvicorn under `limits` until interrupted (what `stoic web` does)."""
    import uvicorn

    uvicorn.Server(server_config(app, host, port, limits, **options)).run()
