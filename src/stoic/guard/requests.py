"""A guarded `requests` adapter: one line protects every call a `requests.Session` makes.

    adapter = guard(session, timeout=0.5, retry=Retry())

The same rules as the httpx transports (`stoic.guard.httpx`): one `Dependency` per host, 5xx and
429 are failures and other 4xx the caller's, the dependency's `timeout` is passed down as the
connect and read timeouts (never longer than the session's own), retries go to idempotent
methods only and honour `Retry-After`. Unless the call asked for `stream=True`, the body is read
inside the guard, so the deadline covers the whole answer. `response.guard` is the guard's
`Result` (who answered, and why it fell back).

Needs the `requests` extra (`pip install stoic[requests]`); `import stoic.guard` alone does not.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.adapters
import requests.exceptions

from ._clock import Clock
from ._dependency import Dependency
from ._errors import ConfigError, DeadlineExceeded, DependencyFailed, GuardError
from ._http import (
    DEFAULT_BREAKER,
    DEFAULT_BULKHEAD,
    DEFAULT_CLOCK,
    DEFAULT_REGISTRY,
    NO_FALLBACKS,
    Hosts,
    host_name,
    sending,
)
from ._policies import BreakerPolicy, Bulkhead, Fallback, Retry
from ._registry import Registry

# Mistakes in the request itself: the breaker ignores them and they reach the caller as they are.
CALLER_ERRORS: tuple[type[BaseException], ...] = (
    requests.exceptions.InvalidURL, requests.exceptions.InvalidHeader, requests.exceptions.InvalidProxyURL)


class DependencyUnavailable(requests.exceptions.ConnectionError):
    """No answer: the host's breaker is open, its bulkhead full, or every attempt and fallback
    failed. `failure` is the guard's `DependencyFailed`, with one cause per level."""

    def __init__(self, failure: DependencyFailed | GuardError, request: requests.PreparedRequest) -> None:
        super().__init__(str(failure), request=request)
        self.failure = failure


class GuardedAdapter(requests.adapters.HTTPAdapter):
    """An `HTTPAdapter` that guards every host it calls. The keywords are `Dependency`'s, for every
    host; `prefix` goes before each host's name, `max_hosts` bounds how many hosts one adapter
    may guard. Fallbacks are called with the `requests.PreparedRequest` and return a
    `requests.Response`. Mount it with `guard(session, ...)` or `session.mount(prefix, adapter)`.
    """

    def __init__(self, *, timeout: float | None = 1.0, breaker: BreakerPolicy | None = DEFAULT_BREAKER,
                 bulkhead: Bulkhead | None = DEFAULT_BULKHEAD, retry: Retry | None = None,
                 fallbacks: Sequence[Fallback | Callable[..., Any]] = NO_FALLBACKS, prefix: str = "",
                 max_hosts: int = 1000, owner: str | None = None,
                 registry: Registry | None = DEFAULT_REGISTRY, clock: Clock = DEFAULT_CLOCK,
                 pool_connections: int = 10, pool_maxsize: int = 10) -> None:
        self.hosts: Hosts[Any] = Hosts(
            "GuardedAdapter", timeout=timeout, breaker=breaker, bulkhead=bulkhead, retry=retry,
            fallbacks=fallbacks, prefix=prefix, max_hosts=max_hosts, team=owner, registry=registry,
            clock=clock, status_of=_status_of, retry_after_of=_retry_after_of,
            caller_errors=CALLER_ERRORS, attach=lambda dep: functools.partial(self._send, dep))
        # retries are the guard's (budgeted, never into an open breaker): urllib3 makes none
        super().__init__(pool_connections=pool_connections, pool_maxsize=pool_maxsize, max_retries=0)

    def dependency(self, url: str) -> Dependency:
        """The dependency guarding the host of `url` (made on first use)."""
        return self.hosts.get(_host(url))[0]

    def dependencies(self) -> list[Dependency]:
        """The dependency of every host called so far."""
        return self.hosts.dependencies()

    def configure(self, **changes: Any) -> None:
        """Change `timeout`, `breaker`, `bulkhead`, `retry` or `fallbacks` for every host, now and
        to come: validated before anything changes, as `Dependency.configure` is."""
        self.hosts.configure(changes)

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Mapping[str, str] | None = None,
             ) -> requests.Response:
        try:
            dependency, send = self.hosts.get(_host(request.url or ""))
        except GuardError as exc:
            raise DependencyUnavailable(exc, request) from exc
        token = sending.set((request.method or "GET").upper())
        try:
            # the send options are bound here, so fallbacks are called with the request alone
            result = dependency.execute(functools.partial(send, stream=stream, timeout=timeout,
                                                          verify=verify, cert=cert, proxies=proxies),
                                        request)
        except DependencyFailed as exc:
            raise DependencyUnavailable(exc, request) from exc
        finally:
            sending.reset(token)
        response = result.value
        if not isinstance(response, requests.Response):
            raise TypeError(f"{dependency.name}: fallback {result.source!r} answered {response!r}; a "
                            f"guarded adapter's fallbacks take the request and return a requests.Response")
        response.guard = result  # type: ignore[attr-defined]
        return response

    def _send(self, dependency: Dependency, request: requests.PreparedRequest, *, stream: bool,
              timeout: Any, verify: Any, cert: Any, proxies: Mapping[str, str] | None) -> requests.Response:
        try:
            response = super().send(request, stream=stream, timeout=_within(timeout, dependency.timeout),
                                    verify=verify, cert=cert, proxies=proxies)
            if not stream:
                try:
                    response.content  # noqa: B018 (read inside the deadline)
                except BaseException:
                    response.close()
                    raise
        except requests.exceptions.Timeout as exc:
            raise DeadlineExceeded(f"{dependency.name}: {type(exc).__name__} within {dependency.timeout}s "
                                   f"({exc})") from exc
        return response


def guard(session: requests.Session, **settings: Any) -> GuardedAdapter:
    """Mount a `GuardedAdapter(**settings)` on `session` for http:// and https://; returns it."""
    if not isinstance(session, requests.Session):
        raise ConfigError(f"guard() protects a requests.Session, got {session!r}")
    adapter = GuardedAdapter(**settings)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return adapter


def _host(url: str) -> str:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # a port out of range: requests refuses the URL itself, name it as given
        port = None
    return host_name(parts.hostname or "", port)


def _status_of(value: Any) -> int | None:
    return value.status_code if isinstance(value, requests.Response) else None


def _retry_after_of(value: Any) -> str | None:
    return value.headers.get("retry-after") if isinstance(value, requests.Response) else None


def _within(timeout: Any, deadline: float | None) -> Any:
    """The session's own (connect, read) timeouts, none longer than the dependency's deadline."""
    if deadline is None:
        return timeout
    if timeout is None:
        return (deadline, deadline)
    if isinstance(timeout, int | float) and not isinstance(timeout, bool):
        return (min(timeout, deadline), min(timeout, deadline))
    if isinstance(timeout, tuple) and len(timeout) == 2:
        return tuple(deadline if t is None else min(t, deadline) for t in timeout)
    return (deadline, deadline)  # another form (a urllib3 Timeout): the deadline bounds both


__all__ = ["CALLER_ERRORS", "DependencyUnavailable", "GuardedAdapter", "guard"]
