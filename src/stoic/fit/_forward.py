"""Forward the bound plan to downstream services: httpx event hooks, or plain headers for any client."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection, Coroutine, MutableMapping
from typing import Any, Protocol

from stoic.fit._audience import admits
from stoic.fit._codec import HeaderCodec
from stoic.fit._incoming import check_header_name
from stoic.fit._plan import current_plan
from stoic.guard import deadline_headers


class _URL(Protocol):
    @property
    def host(self) -> str: ...


class OutgoingRequest(Protocol):
    """What the hooks need from a request (an `httpx.Request` has both)."""

    @property
    def headers(self) -> MutableMapping[str, str]: ...

    @property
    def url(self) -> _URL: ...


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1), which never leave the machine."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_hosts(field: str, hosts: object) -> tuple[str, ...]:
    """Host names or globs (`*.internal`), lower-cased; ValueError names `field` and what is allowed."""
    if isinstance(hosts, Collection) and not isinstance(hosts, str | bytes):
        names = list(hosts)
        if all(isinstance(h, str) and 0 < len(h) <= 253 and h.isascii() and h.isprintable() and " " not in h
               for h in names):
            return tuple(dict.fromkeys(str(h).lower() for h in names))
    raise ValueError(
        f"{field}: must be a collection of host names or globs, e.g. ('*.internal', 'orders'), got {hosts!r}"
    )


class Forwarder:
    """Adds the current request's plan (re-signed) and identity to outgoing requests.

    Only to our own hosts: loopback (`localhost`, 127.0.0.0/8, ::1) and the names or globs in
    `allow_hosts` (`("*.internal", "orders")`; `("*",)` sends to every host, third parties
    included). A signed plan and a user id are no business of anyone else, so a call to any other
    host gets no header at all.

    >>> forwarder = Forwarder(codec, allow_hosts=["*.internal"])
    >>> client = httpx.Client(event_hooks={"request": [forwarder.hook]})
    >>> aclient = httpx.AsyncClient(event_hooks={"request": [forwarder.async_hook]})
    >>> urllib.request.Request(url, headers=forwarder.headers("ratings.internal"))
    """

    def __init__(
        self,
        codec: HeaderCodec,
        *,
        allow_hosts: Collection[str] = (),
        request_id_header: str = "x-request-id",
        user_header: str = "x-user-id",
        device_header: str = "x-device-type",
    ) -> None:
        if not isinstance(codec, HeaderCodec):
            raise TypeError(f"codec: must be a HeaderCodec, got {type(codec).__name__}")
        self.codec = codec
        self.allow_hosts = check_hosts("allow_hosts", allow_hosts)
        self.request_id_header = check_header_name("request_id_header", request_id_header)
        self.user_header = check_header_name("user_header", user_header)
        self.device_header = check_header_name("device_header", device_header)

    def allows(self, host: str) -> bool:
        """True if calls to `host` may carry the plan and the identity."""
        name = host.rstrip(".").lower()  # "orders." is the same host as "orders"
        return is_loopback(name) or admits(self.allow_hosts, name)

    def headers(self, host: str) -> dict[str, str]:
        """The headers to add to a call to `host` made in the current context (empty outside a request,
        and for a host that is not ours). Under a request deadline (`stoic.guard.deadline`) they
        include the time left, as `x-stoic-timeout`, for the next service's `DeadlineMiddleware`."""
        plan = current_plan()
        if plan is None:
            return deadline_headers() if self.allows(host) else {}
        if not self.allows(host):
            return {}
        identity = plan.identity
        out = {**deadline_headers(), self.request_id_header: identity.request_id}
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
    codec: HeaderCodec, *, asynchronous: bool = False, allow_hosts: Collection[str] = ()
) -> dict[str, list[Callable[[OutgoingRequest], Any]]]:
    """`event_hooks` for an httpx client: `httpx.Client(event_hooks=forward_hooks(codec))`.

    Pass `asynchronous=True` for an `httpx.AsyncClient`. The plan goes to loopback and to
    `allow_hosts` only (see `Forwarder`).
    """
    forwarder = Forwarder(codec, allow_hosts=allow_hosts)
    hook: Callable[[OutgoingRequest], Coroutine[Any, Any, None] | None]
    hook = forwarder.async_hook if asynchronous else forwarder.hook
    return {"request": [hook]}
