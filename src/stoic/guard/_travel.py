"""Deadlines that travel: one request's time budget, shared by every guarded call made for it.

`with deadline(0.8):` (or `async with`) sets the request's deadline in a context variable, so it
follows the request through threads started with its context and through asyncio tasks. While
one is set, each guarded call's timeout is the smaller of its own and the time left; retries,
backoff pauses and fallback levels that cannot fit in the time left are skipped (and counted in the
dependency's snapshot). `deadline_headers()` gives the next service the time left (less a tenth,
kept to receive its answer) as a relative duration in the `grpc-timeout` format (`250m` is
250 ms), and `DeadlineMiddleware` reads it back on the way in. A deadline nested in another never extends it.

`call_timeout(2.0)` overrides the timeout of the guarded calls made in its block (still cut to
the request's deadline), for the one call that is known to need more, or less, than usual.

>>> with deadline(0.5):
...     0.4 < time_left() <= 0.5
True
>>> format_timeout(0.25), parse_timeout("250m")
('250m', 0.25)
"""

from __future__ import annotations

import re
import threading
import types
from contextvars import ContextVar, Token

from ._clock import SYSTEM_CLOCK, Clock
from ._errors import ConfigError
from ._validate import number

DEADLINE_HEADER = "x-stoic-timeout"

# How many deadline or call_timeout scopes are open in the process. The call path reads only this
# (a list item, cheaper than a context variable): while it is 0 no call looks for a deadline.
travelling = [0]
# How many of them are call_timeout scopes: while 0, no call looks for an override.
overriding = [0]
_counting = threading.Lock()

# (expiry in the clock's nanoseconds, the clock), or None: no request deadline in this context
_deadline: ContextVar[tuple[int, Clock] | None] = ContextVar("stoic_deadline", default=None)
# seconds replacing each guarded call's own timeout in this context, or None
_override: ContextVar[float | None] = ContextVar("stoic_call_timeout", default=None)

_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_FORMAT = re.compile(r"([0-9]{1,8})([HMSmun])")


class _Scope:
    """Counts itself in `travelling` while open, so calls know to look."""

    _token: Token[object] | None = None

    def _open(self) -> None:
        with _counting:
            travelling[0] += 1

    def _close(self) -> None:
        with _counting:
            travelling[0] -= 1

    def _set(self) -> Token[object]:
        raise NotImplementedError

    def _reset(self, token: Token[object]) -> None:
        raise NotImplementedError

    def __enter__(self) -> _Scope:
        if self._token is not None:
            raise RuntimeError(f"{type(self).__name__} is already entered; create one per block")
        self._token = self._set()
        self._open()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: types.TracebackType | None) -> None:
        token, self._token = self._token, None
        if token is not None:
            self._reset(token)
            self._close()

    async def __aenter__(self) -> _Scope:
        return self.__enter__()

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        tb: types.TracebackType | None) -> None:
        self.__exit__(kind, error, tb)


class deadline(_Scope):
    """The request must be answered within `seconds` (None: no deadline of its own, the outer one
    stays). Nested deadlines keep the earlier expiry."""

    def __init__(self, seconds: float | None, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.seconds = None if seconds is None else number("deadline", "seconds", seconds, low=0.0,
                                                           high=86400.0)
        self.clock = clock

    def _set(self) -> Token[object]:
        outer = _deadline.get()
        expires = outer
        if self.seconds is not None:
            mine = self.clock.now_ns() + int(self.seconds * 1e9)
            if outer is None or _left(*outer) > self.seconds:
                expires = (mine, self.clock)
        return _deadline.set(expires)  # type: ignore[return-value]

    def _reset(self, token: Token[object]) -> None:
        _deadline.reset(token)  # type: ignore[arg-type]


class call_timeout(_Scope):
    """Guarded calls in this block use `seconds` as their timeout instead of their own."""

    def __init__(self, seconds: float) -> None:
        self.seconds = number("call_timeout", "seconds", seconds, low=0.0, high=3600.0, low_open=True)

    def _open(self) -> None:
        with _counting:
            travelling[0] += 1
            overriding[0] += 1

    def _close(self) -> None:
        with _counting:
            travelling[0] -= 1
            overriding[0] -= 1

    def _set(self) -> Token[object]:
        return _override.set(self.seconds)  # type: ignore[return-value]

    def _reset(self, token: Token[object]) -> None:
        _override.reset(token)  # type: ignore[arg-type]


def _left(expires_ns: int, clock: Clock) -> float:
    return (expires_ns - clock.now_ns()) / 1e9


def time_left() -> float | None:
    """Seconds left before the current request's deadline (0 or less once it has passed), or None
    when there is none."""
    current = _deadline.get()
    return None if current is None else _left(*current)


def overdue(clock: Clock, now_ns: int) -> bool:
    """Has the current request's deadline passed? `now_ns` is read from `clock` (saves a reading
    when the deadline keeps the same clock). The sync call paths ask only this: a call on the
    caller's own thread cannot be stopped, so the time left matters only once it is gone."""
    current = _deadline.get()
    if current is None:
        return False
    expires, its_clock = current
    return expires <= (now_ns if its_clock is clock else its_clock.now_ns())


def call_limit(own: float | None, clock: Clock | None = None, now_ns: int = 0) -> float | None:
    """The timeout of a guarded call starting now: `own` (or the `call_timeout` in force), cut to
    the time left. May be 0 or less: the request's deadline has passed. `now_ns`, read from
    `clock`, saves a clock reading when the deadline keeps the same clock."""
    override = _override.get() if overriding[0] else None
    timeout = own if override is None else override
    current = _deadline.get()
    if current is None:
        return timeout
    expires, its_clock = current  # time_left(), inlined: this runs on every call under a deadline
    left = (expires - (now_ns if its_clock is clock else its_clock.now_ns())) / 1e9
    return left if timeout is None or left < timeout else timeout


def format_timeout(seconds: float) -> str:
    """`seconds` as a relative duration in the `grpc-timeout` format, rounded down (the next service
    must finish before this one gives up): milliseconds, microseconds below one, seconds above
    eight digits of milliseconds."""
    micros = max(0, int(seconds * 1e6))
    if micros < 1000:
        return f"{micros}u"
    millis = micros // 1000
    return f"{millis}m" if millis < 10**8 else f"{min(millis // 1000, 10**8 - 1)}S"


def parse_timeout(value: str, field: str = DEADLINE_HEADER) -> float:
    """Seconds from a `grpc-timeout` duration (1 to 8 digits, then H, M, S, m, u or n); a bad value
    raises ConfigError naming `field` and the format."""
    found = _FORMAT.fullmatch(value.strip()) if isinstance(value, str) else None
    if found is None:
        raise ConfigError(f"{field}: must be a duration of 1 to 8 digits and a unit (H, M, S, m, u or n), "
                          f"e.g. '300m' for 300 ms, got {value!r}")
    return int(found.group(1)) * _UNITS[found.group(2)]


KEEP = 0.1


def deadline_headers(header: str = DEADLINE_HEADER, keep: float = KEEP) -> dict[str, str]:
    """`{header: budget}` for a call made now to one of our own services (empty without a
    deadline). The budget is the time left less the share `keep` (a tenth by default) this service
    keeps to receive the answer, or to fall back, and reply before its own caller gives up. Send it
    only to your own hosts; FIT's `Forwarder` does so through httpx hooks."""
    left = time_left()
    return {} if left is None else {header: format_timeout(left * (1.0 - keep))}


__all__ = ["DEADLINE_HEADER", "call_limit", "call_timeout", "deadline", "deadline_headers",
           "format_timeout", "overdue", "overriding", "parse_timeout", "time_left", "travelling"]
