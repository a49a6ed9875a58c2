"""Guarded httpx transports: one line protects every call an `httpx.Client` or `AsyncClient` makes.

    client = httpx.AsyncClient(transport=AsyncGuardedTransport(timeout=0.5, retry=Retry()))

Each host gets its own `Dependency` (named `host` or `host:port`, behind an optional `prefix`),
built from the same settings. 5xx and 429 answers count as failures; other 4xx are the caller's
and are answered as they are. The dependency's `timeout` is passed down as the client's own
connect, read, write and pool timeouts, so even a sync call on the caller's thread ends at its
deadline; an httpx timeout counts as the dependency's timeout. Retries (when `retry=` is given)
go to idempotent methods only and honour `Retry-After`. Each response carries the guard's
`Result` as `response.extensions["guard"]` (who answered, and why it fell back).

The body is read inside the guard, so the deadline covers the whole answer and a broken body
counts against the host: a guarded client is not one to stream large downloads through.

Needs the `httpx` extra (`pip install stoic[httpx]`); `import stoic.guard` alone does not.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from ._clock import Clock
from ._dependency import Dependency
from ._errors import ConfigError, DeadlineExceeded, DependencyFailed, GuardError
from ._events import Result
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
CALLER_ERRORS: tuple[type[BaseException], ...] = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)


class DependencyUnavailable(httpx.TransportError):
    """No answer: the host's breaker is open, its bulkhead full, or every attempt and fallback
    failed. `failure` is the guard's `DependencyFailed`, with one cause per level."""

    def __init__(self, failure: DependencyFailed | GuardError, request: httpx.Request) -> None:
        super().__init__(str(failure), request=request)
        self.failure = failure


class _Guarded:
    """What the sync and async transports share: the hosts and the calls that read or change them."""

    hosts: Hosts[Any]

    def _guard(self, owner: str, *, timeout: float | None, breaker: BreakerPolicy | None,
               bulkhead: Bulkhead | None, retry: Retry | None,
               fallbacks: Sequence[Fallback | Callable[..., Any]], prefix: str, max_hosts: int,
               team: str | None, registry: Registry | None, clock: Clock,
               attach: Callable[[Dependency], Any]) -> None:
        self.hosts = Hosts(
            owner, timeout=timeout, breaker=breaker, bulkhead=bulkhead, retry=retry, fallbacks=fallbacks,
            prefix=prefix, max_hosts=max_hosts, team=team, registry=registry, clock=clock,
            status_of=_status_of, retry_after_of=_retry_after_of, caller_errors=CALLER_ERRORS,
            attach=attach)

    def dependency(self, url: httpx.URL | str) -> Dependency:
        """The dependency guarding the host of `url` (made on first use)."""
        return self.hosts.get(_host(httpx.URL(url)))[0]

    def dependencies(self) -> list[Dependency]:
        """The dependency of every host called so far."""
        return self.hosts.dependencies()

    def configure(self, **changes: Any) -> None:
        """Change `timeout`, `breaker`, `bulkhead`, `retry` or `fallbacks` for every host, now and
        to come: validated before anything changes, as `Dependency.configure` is."""
        self.hosts.configure(changes)


def _host(url: httpx.URL) -> str:
    return host_name(url.host, url.port)


def _status_of(value: Any) -> int | None:
    return value.status_code if isinstance(value, httpx.Response) else None


def _retry_after_of(value: Any) -> str | None:
    return value.headers.get("retry-after") if isinstance(value, httpx.Response) else None


def _within(timeouts: Any, deadline: float | None) -> dict[str, float | None]:
    """The client's own timeouts, none longer than the dependency's deadline."""
    given = timeouts if isinstance(timeouts, dict) else {}
    out: dict[str, float | None] = {}
    for phase in ("connect", "read", "write", "pool"):
        own = given.get(phase)
        out[phase] = own if deadline is None else deadline if own is None else min(own, deadline)
    return out


def _timed_out(dependency: Dependency, error: httpx.TimeoutException) -> DeadlineExceeded:
    return DeadlineExceeded(f"{dependency.name}: {type(error).__name__} within {dependency.timeout}s "
                            f"({error})")


def _answer(dependency: Dependency, result: Result[Any]) -> httpx.Response:
    response = result.value
    if not isinstance(response, httpx.Response):
        raise TypeError(f"{dependency.name}: fallback {result.source!r} answered {response!r}; a guarded "
                        f"transport's fallbacks take the request and return an httpx.Response")
    response.extensions["guard"] = result
    return response


class GuardedTransport(_Guarded, httpx.BaseTransport):
    """A transport for `httpx.Client` that guards every host it calls (see the module docstring).

    `transport` is the one that really sends (default `httpx.HTTPTransport()`). The other keywords
    are `Dependency`'s, for every host; `prefix` goes before each host's name, `max_hosts` bounds
    how many hosts one client may guard. Fallbacks are called with the `httpx.Request` and return
    an `httpx.Response`.
    """

    def __init__(self, transport: httpx.BaseTransport | None = None, *, timeout: float | None = 1.0,
                 breaker: BreakerPolicy | None = DEFAULT_BREAKER,
                 bulkhead: Bulkhead | None = DEFAULT_BULKHEAD, retry: Retry | None = None,
                 fallbacks: Sequence[Fallback | Callable[..., Any]] = NO_FALLBACKS,
                 prefix: str = "", max_hosts: int = 1000, owner: str | None = None,
                 registry: Registry | None = DEFAULT_REGISTRY, clock: Clock = DEFAULT_CLOCK) -> None:
        if transport is not None and not isinstance(transport, httpx.BaseTransport):
            raise ConfigError(f"GuardedTransport.transport must be an httpx.BaseTransport or None, "
                              f"got {transport!r}")
        self._inner = transport if transport is not None else httpx.HTTPTransport()
        self._guard("GuardedTransport", timeout=timeout, breaker=breaker, bulkhead=bulkhead, retry=retry,
                    fallbacks=fallbacks, prefix=prefix, max_hosts=max_hosts, team=owner, registry=registry,
                    clock=clock, attach=lambda dep: functools.partial(self._send, dep))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            dependency, send = self.hosts.get(_host(request.url))
        except GuardError as exc:
            raise DependencyUnavailable(exc, request) from exc
        token = sending.set(request.method)
        try:
            result = dependency.execute(send, request)
        except DependencyFailed as exc:
            raise DependencyUnavailable(exc, request) from exc
        finally:
            sending.reset(token)
        return _answer(dependency, result)

    def _send(self, dependency: Dependency, request: httpx.Request) -> httpx.Response:
        request.extensions = {**request.extensions,
                              "timeout": _within(request.extensions.get("timeout"), dependency.timeout)}
        try:
            response = self._inner.handle_request(request)
            try:
                response.read()  # inside the deadline: a body that never comes is the host's timeout
            except BaseException:
                response.close()
                raise
        except httpx.TimeoutException as exc:
            raise _timed_out(dependency, exc) from exc
        return response

    def close(self) -> None:
        """Close the inner transport and take the hosts' dependencies out of the registry."""
        self._inner.close()
        self.hosts.close()


class AsyncGuardedTransport(_Guarded, httpx.AsyncBaseTransport):
    """`GuardedTransport` for `httpx.AsyncClient`: the same settings, and a call is also cancelled
    at its deadline. Fallbacks may be coroutine functions."""

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None, *, timeout: float | None = 1.0,
                 breaker: BreakerPolicy | None = DEFAULT_BREAKER,
                 bulkhead: Bulkhead | None = DEFAULT_BULKHEAD, retry: Retry | None = None,
                 fallbacks: Sequence[Fallback | Callable[..., Any]] = NO_FALLBACKS,
                 prefix: str = "", max_hosts: int = 1000, owner: str | None = None,
                 registry: Registry | None = DEFAULT_REGISTRY, clock: Clock = DEFAULT_CLOCK) -> None:
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise ConfigError(f"AsyncGuardedTransport.transport must be an httpx.AsyncBaseTransport or "
                              f"None, got {transport!r}")
        self._inner = transport if transport is not None else httpx.AsyncHTTPTransport()
        self._guard("AsyncGuardedTransport", timeout=timeout, breaker=breaker, bulkhead=bulkhead,
                    retry=retry, fallbacks=fallbacks, prefix=prefix, max_hosts=max_hosts, team=owner,
                    registry=registry, clock=clock, attach=lambda dep: functools.partial(self._send, dep))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            dependency, send = self.hosts.get(_host(request.url))
        except GuardError as exc:
            raise DependencyUnavailable(exc, request) from exc
        token = sending.set(request.method)
        try:
            result = await dependency.aexecute(send, request)
        except DependencyFailed as exc:
            raise DependencyUnavailable(exc, request) from exc
        finally:
            sending.reset(token)
        return _answer(dependency, result)

    async def _send(self, dependency: Dependency, request: httpx.Request) -> httpx.Response:
        request.extensions = {**request.extensions,
                              "timeout": _within(request.extensions.get("timeout"), dependency.timeout)}
        try:
            response = await self._inner.handle_async_request(request)
            try:
                await response.aread()
            except BaseException:
                await response.aclose()
                raise
        except httpx.TimeoutException as exc:
            raise _timed_out(dependency, exc) from exc
        return response

    async def aclose(self) -> None:
        """Close the inner transport and take the hosts' dependencies out of the registry."""
        await self._inner.aclose()
        self.hosts.close()


__all__ = ["CALLER_ERRORS", "AsyncGuardedTransport", "DependencyUnavailable", "GuardedTransport"]
