"""The fault injection point: one contextvar per request, one process-wide slot."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ._errors import ConfigError

FaultKind = Literal["error", "delay", "timeout", "reject", "status", "result"]
FAULT_KINDS: tuple[FaultKind, ...] = ("error", "delay", "timeout", "reject", "status", "result")
#: kinds whose call still answers (late, or with a stand-in) instead of failing outright
ANSWERING_KINDS: tuple[FaultKind, ...] = ("delay", "status", "result")
#: the HTTP statuses a status fault may answer with: the errors a dependency can send back
STATUS_RANGE = (400, 599)


@dataclass(frozen=True, slots=True)
class Fault:
    """What to do to one call: fail it, delay it, time it out, reject it, or answer for it.

    - ``status``: the call answers an HTTP error `status` (503, 429, ...) without reaching the
      dependency, with a ``Retry-After`` of `retry_after` seconds when given. Through the httpx and
      requests integrations the answer is a real `httpx.Response` / `requests.Response`; anywhere
      else it is an `InjectedStatus`.
    - ``result``: the call answers `value` (a fresh copy each time) without reaching the dependency.

    Both are answers, not errors: the guard's result predicates (`BreakerPolicy(failure_when=...)`,
    `Retry(retry_when=..., retry_after=...)`) judge them as they would a real one. `delay` (seconds)
    comes first for every kind that answers.

    >>> Fault("delay", delay=0.2).kind
    'delay'
    >>> Fault("status", status=503, retry_after=2).retry_after
    2
    """

    kind: FaultKind
    delay: float = 0.0
    message: str = "injected"
    status: int = 0
    retry_after: float | None = None
    value: Any = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ConfigError(f"Fault.kind must be one of {', '.join(FAULT_KINDS)}; got {self.kind!r}")
        delay = self.delay
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= 3600:
            raise ConfigError(f"Fault.delay must be a number of seconds in [0, 3600], got {self.delay!r}")
        status = self.status
        low, high = STATUS_RANGE
        if self.kind == "status":
            if isinstance(status, bool) or not isinstance(status, int) or not low <= status <= high:
                raise ConfigError(
                    f"Fault.status must be an HTTP error status, an integer in [{low}, {high}], "
                    f"for kind 'status'; got {status!r}"
                )
        elif status != 0:
            raise ConfigError(
                f"Fault.status is for kind 'status' only; got {status!r} with kind {self.kind!r}"
            )
        wait = self.retry_after
        if wait is not None:
            if self.kind != "status":
                raise ConfigError(f"Fault.retry_after is for kind 'status' only; got kind {self.kind!r}")
            if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait <= 86400:
                raise ConfigError(f"Fault.retry_after must be seconds in [0, 86400] or None, got {wait!r}")
        if self.value is not None and self.kind != "result":
            raise ConfigError(f"Fault.value is for kind 'result' only; got kind {self.kind!r}")


class Injector(Protocol):
    """Decides, per dependency, whether the current call gets a fault."""

    def fault_for(self, dependency: str) -> Fault | None: ...


_log = logging.getLogger("stoic.guard")
_request_injector: ContextVar[Injector | None] = ContextVar("stoic_injector", default=None)
# A one-item list so the hot path reads it without a global statement or a lock.
_process_injector: list[Injector | None] = [None]
# Set once anything has ever injected in this process: until then a call skips the fault check.
armed: list[bool] = [False]


@contextmanager
def inject(injector: Injector | None) -> Iterator[None]:
    """Apply `injector` to the calls made in this context only (this request, task or thread)."""
    armed[0] = True
    token = _request_injector.set(injector)
    try:
        yield
    finally:
        _request_injector.reset(token)


def set_process_injector(injector: Injector | None) -> None:
    """Apply `injector` to every call in this process (fleet-wide faults); None removes it."""
    armed[0] = armed[0] or injector is not None
    _process_injector[0] = injector


def current_fault(dependency: str) -> Fault | None:
    """The fault for `dependency` in this context: the request's injector first, then the process's."""
    found = find_fault(dependency)
    return None if found is None else found[0]


def find_fault(dependency: str) -> tuple[Fault, bool] | None:
    """`current_fault` and whether it is the request's own (True) or the whole process's (False).

    A request's fault exercises that request's fallbacks only: the dependency did not fail, so the
    guard keeps it out of the shared breaker. A process-wide fault (Latency Monkey, the fault
    board) exists to exercise the breaker and counts like a real failure.
    """
    request = _request_injector.get()
    if request is not None:
        fault = _ask(request, dependency)
        if fault is not None:
            return fault, True
    process = _process_injector[0]
    if process is None:
        return None
    fault = _ask(process, dependency)
    return None if fault is None else (fault, False)


def _ask(injector: Injector, dependency: str) -> Fault | None:
    """An injector's fault for `dependency`; an injector that breaks injects nothing (and says so
    in the log), because an injector must never break the call it guards."""
    try:
        return injector.fault_for(dependency)
    except Exception:
        _log.exception("fault injector %r failed for %s; injecting nothing", injector, dependency)
        return None
