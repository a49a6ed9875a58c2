"""The review gate: outbound connections made outside a guarded call.

"A service whose calls are not wrapped does not pass review." A `Review` listens to the
interpreter's `socket.connect` audit event (PEP 578) and, for every TCP connection, looks at the
call stack: a connection is guarded when a frame of the guard's own call path (a private
`stoic.guard._*` module: `call`, `acall`, the thread-pool worker, the fallback walk) is on it.
Anything else is a finding, with the first frame of the caller's own code as its site.

    >>> import socket
    >>> from stoic.guard import Dependency
    >>> from stoic.guard.review import Review
    >>> listener = socket.create_server(("127.0.0.1", 0))
    >>> address = listener.getsockname()
    >>> with Review() as review:
    ...     socket.create_connection(address).close()                    # unguarded
    ...     Dependency("local").call(lambda: socket.create_connection(address).close())
    >>> [f.address for f in review.findings] == [f"127.0.0.1:{address[1]}"]
    True
    >>> listener.close()

Nothing runs on the hot path: the stack is read only when a connection is made. Audit hooks
cannot be removed, so one process-wide hook serves every active `Review`; with none active it
returns at once. Asyncio connections are seen too: a task resumes its whole chain of coroutines, so
`acall`'s frame is on the stack when the connection starts; and while a review is active, `acall`
marks its context, which the tasks a client starts for it (happy-eyeballs attempts) inherit. The pytest plugin
(`--stoic-review=warn|fail`, the `stoic_review` fixture) runs a `Review` around tests.
"""

from __future__ import annotations

import socket
import sys
import sysconfig
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from types import FrameType, TracebackType
from typing import Any

from ._errors import ConfigError
from ._reviewed import inside, reviewing

__all__ = ["Review", "Unguarded"]

_GUARD_PREFIX = "stoic.guard._"  # the call path's private modules
# where the standard library and installed clients live: never a call site
_PATHS = sysconfig.get_paths()
_LIBRARIES = tuple(sorted({_PATHS[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in _PATHS}))


@dataclass(frozen=True, slots=True)
class Unguarded:
    """One outbound connection made outside a guarded call: where to (`address`, "host:port") and
    from which line of the caller's own code (`site`, "file:line in function")."""

    address: str
    site: str

    def __str__(self) -> str:
        return f"unguarded connection to {self.address} from {self.site}"


class Review:
    """Collects `Unguarded` findings while active (`with Review(): ...` or `start()`/`stop()`).

    - `allow`: addresses that may be reached without a guard, as "host", "host:port" or glob
      patterns ("127.0.0.1:*", "*.internal:5432"): a test harness's own connections, a database
      driver the team reviews separately.
    - `limit`: findings kept (later ones are counted in `dropped`), so a loop of unguarded calls
      cannot grow memory without bound.
    """

    def __init__(self, allow: Iterable[str] = (), *, limit: int = 1000) -> None:
        allowed = () if isinstance(allow, str | bytes) else tuple(allow)
        if isinstance(allow, str | bytes) or not all(isinstance(a, str) and a for a in allowed):
            raise ConfigError(
                f"Review.allow must be a list of 'host', 'host:port' or glob patterns, got {allow!r}"
            )
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1_000_000:
            raise ConfigError(f"Review.limit must be an integer in [1, 1000000], got {limit!r}")
        self.allow = allowed
        self.limit = limit
        self.findings: list[Unguarded] = []
        self.dropped = 0
        self._lock = threading.Lock()

    def start(self) -> Review:
        _install()
        with _ACTIVE_LOCK:
            _ACTIVE.append(self)
            reviewing[0] = True
        return self

    def stop(self) -> None:
        with _ACTIVE_LOCK:
            if self in _ACTIVE:
                _ACTIVE.remove(self)
            reviewing[0] = bool(_ACTIVE)

    def __enter__(self) -> Review:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def allowed(self, host: str, port: int) -> bool:
        named = f"{host}:{port}"
        return any(fnmatchcase(host, a) or fnmatchcase(named, a) for a in self.allow)

    def _found(self, host: str, port: int, site: str) -> None:
        if self.allowed(host, port):
            return
        with self._lock:
            if len(self.findings) < self.limit:
                self.findings.append(Unguarded(f"{host}:{port}", site))
            else:
                self.dropped += 1


_ACTIVE: list[Review] = []
_ACTIVE_LOCK = threading.Lock()
_INSTALLED = False


def _install() -> None:
    global _INSTALLED
    with _ACTIVE_LOCK:
        if not _INSTALLED:
            sys.addaudithook(_hook)
            _INSTALLED = True


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect" or not _ACTIVE:
        return
    sock, address = args
    if getattr(sock, "family", None) not in (socket.AF_INET, socket.AF_INET6):
        return
    if not (isinstance(address, tuple) and len(address) >= 2):
        return
    frame = sys._getframe(1)
    if inside.get() or _guarded(frame):
        return
    site = _site(frame)
    host, port = str(address[0]), address[1]
    for review in list(_ACTIVE):
        review._found(host, port, site)


def _guarded(frame: FrameType | None) -> bool:
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).startswith(_GUARD_PREFIX):
            return True
        frame = frame.f_back
    return False


def _site(frame: FrameType | None) -> str:
    """The innermost frame of the caller's own code (not the standard library, not an installed
    package); the innermost frame at all when every frame is library code."""
    first = frame
    while frame is not None:
        path = frame.f_code.co_filename
        if not path.startswith(_LIBRARIES) and not path.startswith("<frozen"):
            break
        frame = frame.f_back
    chosen = frame or first
    if chosen is None:
        return "unknown"
    return f"{chosen.f_code.co_filename}:{chosen.f_lineno} in {chosen.f_code.co_name}"
