"""HTTP answers as the guard judges them, and one dependency per host. Standard library only.

The httpx and requests integrations are thin glue over `Hosts`: they say how to read a status and
a header from their response type, which errors are the caller's own mistakes, and how to send.
Everything else (which statuses are failures, what is retried, what `Retry-After` asks, one
`Dependency` per host built from the same validated settings) is decided here once.
"""

from __future__ import annotations

import dataclasses
import email.utils
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Any, Generic, TypeVar

from . import _validate as v
from ._clock import SYSTEM_CLOCK, Clock
from ._dependency import Dependency
from ._errors import ConfigError, GuardError
from ._policies import BreakerPolicy, Bulkhead, Fallback, Retry, SemaphoreBulkhead
from ._registry import Registry
from ._registry import registry as default_registry
from ._settings import Settings

log = logging.getLogger("stoic.guard")

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
"""Methods a retry cannot turn into a second effect (RFC 9110, 9.2.2): the only ones retried."""

SETTINGS = ("timeout", "breaker", "bulkhead", "retry", "fallbacks")

# The method of the request being sent in this context (thread or task): the retry predicate reads
# it, since a policy is shared by every request to a host and an error does not always carry it.
sending: ContextVar[str] = ContextVar("stoic_guard_http_method", default="GET")

A = TypeVar("A")


def failing_status(status: int) -> bool:
    """5xx and 429 are the dependency's failures; every other status is an answer (a 404 or a 400
    is the caller's business, never a reason to open a breaker).

    >>> [failing_status(s) for s in (200, 404, 429, 503)]
    [False, False, True, True]
    """
    return status >= 500 or status == 429


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds a `Retry-After` value asks to wait: delta-seconds or an HTTP-date (RFC 9110, 10.2.3).

    None when there is no value. A date in the past asks for no wait (0.0). A value that is
    neither form is logged on the `stoic.guard` logger and ignored, as the RFC says to: the
    retry policy's own backoff applies.

    >>> retry_after_seconds("120")
    120.0
    >>> retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0)
    10.0
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():  # delta-seconds: digits only (no sign, no fraction)
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        when = None
    if when is None or when.tzinfo is None:  # an HTTP-date is always GMT
        log.warning("ignoring Retry-After %r: neither delta-seconds nor an HTTP-date", value[:100])
        return None
    wait = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, wait) if math.isfinite(wait) else None


def host_name(host: str, port: int | None) -> str:
    """The dependency name of a host: `host`, or `host:port` when the URL names a port."""
    host = host.lower()
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"


class Hosts(Generic[A]):
    """One `Dependency` per host, each built from the same settings, with HTTP's rules filled in.

    `status_of(value)` reads a response's status (None for anything else); `retry_after_of(value)`
    reads its `Retry-After` header. `caller_errors` are the client's own mistakes (a bad URL, an
    unsupported scheme): the breaker ignores them unless `breaker.ignore` says otherwise.
    `attach(dependency)` makes what the integration keeps with each host (its sender).
    """

    def __init__(self, owner: str, *, timeout: object, breaker: object, bulkhead: object, retry: object,
                 fallbacks: object, prefix: object, max_hosts: object, team: object,
                 registry: object, clock: Clock,
                 status_of: Callable[[Any], int | None], retry_after_of: Callable[[Any], str | None],
                 caller_errors: tuple[type[BaseException], ...],
                 attach: Callable[[Dependency], A]) -> None:
        self.owner = owner
        if not isinstance(prefix, str):
            raise ConfigError(f"{owner}.prefix must be a string, got {prefix!r}")
        if team is not None and not isinstance(team, str):
            raise ConfigError(f"{owner}.owner must be a string or None, got {team!r}")
        if registry is not None and not isinstance(registry, Registry):
            raise ConfigError(f"{owner}.registry must be a Registry or None, got {registry!r}")
        self.max_hosts = v.integer(owner, "max_hosts", max_hosts, low=1, high=100_000)
        self.prefix = prefix
        self.team = team
        self.registry = registry
        self.clock = clock
        self._status_of = status_of
        self._retry_after_of = retry_after_of
        self._caller_errors = caller_errors
        self._attach = attach
        self._lock = threading.Lock()
        self._by_host: dict[str, tuple[Dependency, A]] = {}
        self.settings = self._checked(timeout, breaker, bulkhead, retry, fallbacks)

    # -- HTTP's rules -----------------------------------------------------------------------
    def _checked(self, timeout: object, breaker: object, bulkhead: object, retry: object,
                 fallbacks: object) -> Settings:
        settings = Settings.checked(timeout, breaker, bulkhead, retry, fallbacks, owner=self.owner)
        return dataclasses.replace(settings, breaker=self._http_breaker(settings.breaker),
                                   retry=self._http_retry(settings.retry))

    def _http_breaker(self, breaker: BreakerPolicy | None) -> BreakerPolicy | None:
        """5xx and 429 are failures, the caller's errors count as nothing (unless set otherwise)."""
        if breaker is None:
            return None
        changes: dict[str, Any] = {}
        if breaker.failure_when is None:
            changes["failure_when"] = self.failing
        if not breaker.ignore:
            changes["ignore"] = self._caller_errors
        return dataclasses.replace(breaker, **changes)

    def _http_retry(self, retry: Retry | None) -> Retry | None:
        """Idempotent requests only, after errors, 5xx and 429; `Retry-After` honoured."""
        if retry is None:
            return None
        changes: dict[str, Any] = {}
        if retry.retry_when is None:
            changes["retry_when"] = self.retryable
        if retry.retry_after is None:
            changes["retry_after"] = self.asked_wait
        return dataclasses.replace(retry, **changes)

    def failing(self, answer: Any) -> bool:
        """Is this answer the dependency's failure? (5xx, 429)"""
        status = self._status_of(answer)
        return status is not None and failing_status(status)

    def retryable(self, seen: Any) -> bool:
        """Worth another try: an error or a failing status, for a method that allows it."""
        if sending.get() not in IDEMPOTENT:
            return False
        status = self._status_of(seen)
        return status is None or failing_status(status)

    def asked_wait(self, seen: Any) -> float | None:
        """What the answer's `Retry-After` asks for, in seconds (None: nothing asked)."""
        if self._status_of(seen) is None:
            return None
        return retry_after_seconds(self._retry_after_of(seen))

    # -- the hosts ----------------------------------------------------------------------------
    def get(self, host: str) -> tuple[Dependency, A]:
        """The dependency of `host` (made on first use) and what the integration attached to it."""
        found = self._by_host.get(host)
        if found is not None:
            return found
        with self._lock:
            found = self._by_host.get(host)
            if found is not None:
                return found
            if len(self._by_host) >= self.max_hosts:
                raise GuardError(f"{self.owner}: already guarding {self.max_hosts} hosts (max_hosts); "
                                 f"refusing {host!r}")
            s = self.settings
            dependency = Dependency(self.prefix + host, timeout=s.timeout, breaker=s.breaker,
                                    bulkhead=s.bulkhead, retry=s.retry, fallbacks=s.fallbacks,
                                    owner=self.team, registry=self.registry, clock=self.clock)
            found = self._by_host[host] = (dependency, self._attach(dependency))
            return found

    def dependencies(self) -> list[Dependency]:
        """The dependency of every host used so far, by name."""
        with self._lock:
            return sorted((d for d, _ in self._by_host.values()), key=lambda d: d.name)

    def configure(self, changes: dict[str, Any]) -> None:
        """Change settings for every host, now and to come; validated before anything changes."""
        for key in changes:
            if key not in SETTINGS:
                raise ConfigError(f"{self.owner}.configure() takes {', '.join(SETTINGS)}; got {key!r}")
        with self._lock:
            old = self.settings
            given = {key: changes.get(key, getattr(old, key)) for key in SETTINGS}
            new = self._checked(**given)
            old.check_change(new)
            applied = {key: getattr(new, key) for key in changes}
            for dependency, _ in self._by_host.values():
                dependency.configure(**applied)
            self.settings = new

    def close(self) -> None:
        """Take every host's dependency out of the registry (and stop its pool, if any); their
        snapshots stay readable through `dependencies()`."""
        with self._lock:
            for dependency, _ in self._by_host.values():
                dependency.close()


DEFAULT_BREAKER = BreakerPolicy()
DEFAULT_BULKHEAD: Bulkhead = SemaphoreBulkhead()
NO_FALLBACKS: Sequence[Fallback | Callable[..., Any]] = ()
DEFAULT_REGISTRY = default_registry
DEFAULT_CLOCK = SYSTEM_CLOCK
