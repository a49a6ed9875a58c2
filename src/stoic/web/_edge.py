"""The edge every request crosses first: a Host allowlist and the security headers on every reply.

A browser page on any site can point a DNS name at 127.0.0.1 ("DNS rebinding") and then read this
API as same-origin; the only thing that gives such a request away is its `Host` header, so only
names the operator listed are served. Framing is refused so the page cannot be clickjacked.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")

# The page loads only its own script, stylesheet and streams; the tiles size themselves with inline
# `style` attributes, hence 'unsafe-inline' for styles only (never for scripts).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


def check_hosts(hosts: Any) -> tuple[str, ...]:
    """`hosts` as lower-case names; ValueError naming `allowed_hosts` if one is not a host name.

    A name is matched exactly (any port); `*.example.com` matches its subdomains; `*` matches any.
    """
    if isinstance(hosts, str) or not isinstance(hosts, Iterable):
        raise ValueError(f"allowed_hosts: must be a list of host names, got {type(hosts).__name__}")
    out = []
    for host in hosts:
        problem = host_problem(host)
        if problem is not None:
            raise ValueError(f"allowed_hosts: {problem}")
        out.append(host.lower().strip("[]"))
    if not out:
        raise ValueError("allowed_hosts: must name at least one host ('*' allows any)")
    return tuple(out)


def host_problem(host: Any) -> str | None:
    """Why `host` is not a host name for the allowlist, or None."""
    if not isinstance(host, str) or not host or len(host) > 253:
        return f"must be a host name, got {host!r}"
    wild = host.startswith("*") and host != "*" and not (host.startswith("*.") and len(host) > 2)
    if wild or any(c in host for c in "/@?#% \t\r\n") or "*" in host[1:]:
        return f"must be a host name like 'stoic.internal', '*.example.com' or '*', got {host!r}"
    return None


def _hostname(header: str) -> str:
    """The host part of a `Host` header: no port, no IPv6 brackets, lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else ""
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def host_allowed(header: str, allowed: tuple[str, ...]) -> bool:
    name = _hostname(header)
    if not name:
        return False
    for pattern in allowed:
        if pattern == "*" or pattern == name:
            return True
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return True
    return False


class EdgeMiddleware:
    """Refuses requests for hosts not in `allowed_hosts` and adds `SECURITY_HEADERS` to every reply."""

    def __init__(self, app: Any, allowed_hosts: tuple[str, ...]) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = False

        async def send_with_headers(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        headers = [v for k, v in scope.get("headers", []) if k == b"host"]
        host = headers[0].decode("latin-1") if len(headers) == 1 else ""
        if not host_allowed(host, self.allowed_hosts):
            message = (
                "must be a name this dashboard serves (allowed_hosts, stoic web --allow-host), "
                f"got {host[:100]!r}"
            )
            await _reply(send_with_headers, 400, {"error": message, "field": "host"})
            return
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # The server's own error page is sent outside this middleware, without the headers:
            # answer here, then re-raise so the server still logs the failure.
            if not started:
                await _reply(send_with_headers, 500, {"error": "internal error; see the server log"})
            raise


async def _reply(send: Any, status: int, body: dict[str, str]) -> None:
    raw = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})
