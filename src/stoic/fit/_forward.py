"""Forward the bound plan to downstream services: httpx event hooks, or plain headers for any client."""

from __future__ import annotations

from collections.abc import Callable, Collection, Coroutine, MutableMapping
from typing import Any, Protocol

from stoic.fit._codec import HeaderCodec
from stoic.fit._incoming import check_header_name
from stoic.fit._plan import current_plan


class _URL(Protocol):
    @property
    def host(self) -> str: ...


class OutgoingRequest(Protocol):
    """What the hooks need from a request (an `httpx.Request` has both)."""

    @property
    def headers(self) -> MutableMapping[str, str]: ...

    @property
    def url(self) -> _URL: ...


class Forwarder:
    """Adds the current request's plan (re-signed) and identity to outgoing requests.

    `hosts`: forward only to these host names (None: to every host); a signed plan is no business of
    third parties.

    >>> forwarder = Forwarder(codec)
    >>> client = httpx.Client(event_hooks={"request": [forwarder.hook]})
    >>> aclient = httpx.AsyncClient(event_hooks={"request": [forwarder.async_hook]})
    >>> urllib.request.Request(url, headers=forwarder.headers())
    """

    def __init__(
        self,
        codec: HeaderCodec,
        *,
        hosts: Collection[str] | None = None,
        request_id_header: str = "x-request-id",
        user_header: str = "x-user-id",
        device_header: str = "x-device-type",
    ) -> None:
        if not isinstance(codec, HeaderCodec):
            raise TypeError(f"codec: must be a HeaderCodec, got {type(codec).__name__}")
        if hosts is not None and (isinstance(hosts, str) or not all(isinstance(h, str) and h for h in hosts)):
            raise ValueError(f"hosts: must be a collection of host names or None, got {hosts!r}")
        self.codec = codec
        self.hosts = None if hosts is None else frozenset(h.lower() for h in hosts)
        self.request_id_header = check_header_name("request_id_header", request_id_header)
        self.user_header = check_header_name("user_header", user_header)
        self.device_header = check_header_name("device_header", device_header)

    def headers(self, host: str | None = None) -> dict[str, str]:
        """The headers to add to a call to `host` made in the current context (empty outside a request)."""
        plan = current_plan()
        if plan is None or (self.hosts is not None and (host or "").lower() not in self.hosts):
            return {}
        identity = plan.identity
        out = {self.request_id_header: identity.request_id}
        if identity.user_id is not None:
            out[self.user_header] = identity.user_id
        if identity.device is not None:
            out[self.device_header] = identity.device
        value = self.codec.sign_plan(plan)
        if value is not None:
            out[self.codec.header] = value
        return out

    def hook(self, request: OutgoingRequest) -> None:
        """httpx `event_hooks={"request": [...]}` hook for `httpx.Client`."""
        request.headers.update(self.headers(request.url.host))

    async def async_hook(self, request: OutgoingRequest) -> None:
        """httpx `event_hooks={"request": [...]}` hook for `httpx.AsyncClient`."""
        request.headers.update(self.headers(request.url.host))


def forward_hooks(
    codec: HeaderCodec, *, asynchronous: bool = False, hosts: Collection[str] | None = None
) -> dict[str, list[Callable[[OutgoingRequest], Any]]]:
    """`event_hooks` for an httpx client: `httpx.Client(event_hooks=forward_hooks(codec))`.

    Pass `asynchronous=True` for an `httpx.AsyncClient`.
    """
    forwarder = Forwarder(codec, hosts=hosts)
    hook: Callable[[OutgoingRequest], Coroutine[Any, Any, None] | None]
    hook = forwarder.async_hook if asynchronous else forwarder.hook
    return {"request": [hook]}
