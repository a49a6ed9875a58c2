"""Stand-in answers for the faults that answer instead of failing (`status` and `result`).

An HTTP-status fault answers in the caller's own type: a guarded httpx or requests call gets a real
response object for its request, so the integrations' status checks, `Retry-After` parsing and the
caller's code all see what a real 503 would give them. httpx and requests are never imported here:
a call can only carry one of their requests if the caller imported the library already.
"""

from __future__ import annotations

import copy
import http
import json
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._inject import Fault


@dataclass(frozen=True, slots=True)
class InjectedStatus:
    """The answer of a `status` fault to a call that is not an httpx or requests request.

    `status` (also as `status_code`), `headers` (lower-case names; ``retry-after`` when the fault
    asks for one), `retry_after` in seconds or None, and `body` (JSON text naming the fault).

    >>> InjectedStatus(503, retry_after=2.0).headers["retry-after"]
    '2'
    """

    status: int
    retry_after: float | None = None
    message: str = "injected"
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.headers:
            object.__setattr__(self, "headers", _headers(self.retry_after))

    @property
    def status_code(self) -> int:
        """`status`, under the name httpx and requests use."""
        return self.status

    @property
    def body(self) -> str:
        """A JSON body naming the fault, as an HTTP error page would explain itself."""
        return _body(self.status, self.message)

    def json(self) -> dict[str, Any]:
        """The body, parsed."""
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


def _headers(retry_after: float | None) -> dict[str, str]:
    # delta-seconds is an integer on the wire: round up, so a client never comes back early
    return {} if retry_after is None else {"retry-after": str(math.ceil(retry_after))}


def _body(status: int, message: str) -> str:
    return json.dumps({"error": _phrase(status), "status": status, "injected": message})


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def stand_in(fault: Fault, args: tuple[Any, ...]) -> Any:
    """What a call answers under `fault` (kind `status` or `result`), built for its first argument."""
    if fault.kind == "result":
        return copy.deepcopy(fault.value)  # each call its own copy: a caller may change what it got
    request = args[0] if args else None
    httpx: Any = sys.modules.get("httpx")
    if httpx is not None and isinstance(request, httpx.Request):
        return httpx.Response(
            fault.status,
            headers={**_headers(fault.retry_after), "content-type": "application/json"},
            content=_body(fault.status, fault.message).encode(),
            request=request,
        )
    requests: Any = sys.modules.get("requests")
    if requests is not None and isinstance(request, requests.PreparedRequest):
        response = requests.Response()
        response.status_code = fault.status
        response.reason = _phrase(fault.status)
        response.headers = requests.structures.CaseInsensitiveDict(
            {**_headers(fault.retry_after), "content-type": "application/json"}
        )
        response._content = _body(fault.status, fault.message).encode()
        response.encoding = "utf-8"
        response.url = request.url
        response.request = request
        return response
    return InjectedStatus(fault.status, fault.retry_after, fault.message)
