"""Edge helpers: bearer-token check, bounded JSON bodies, query parameters, error replies, SSE frames."""

from __future__ import annotations

import hmac
import json
import math
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

MAX_BODY_BYTES = 1 << 20
# No endpoint takes a body nested more than a few levels; this bounds every walk over one.
MAX_JSON_DEPTH = 32
TOKEN_RULE = "must be at least 8 characters, visible ASCII without spaces"


class BadRequest(Exception):
    """An input the API refuses; `field` names what was wrong, `status` is the HTTP status."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.status = status


def error(
    status: int, message: str, field: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """A JSON error reply `{"error": ..., "field": ...}`."""
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status, headers=headers)


def token_problem(token: object) -> str | None:
    """Why `token` cannot be a bearer token (never quoting it), or None if it can."""
    if not isinstance(token, str) or len(token) < 8 or not all("!" <= c <= "~" for c in token):
        return TOKEN_RULE
    return None


def check_token(request: Request, token: str | None) -> JSONResponse | None:
    """None when the request carries `Authorization: Bearer <token>`, else the error reply to send."""
    if token is None:
        return error(403, "the control API is disabled: start the dashboard with a token", "authorization")
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="stoic"'}
    if scheme.lower() != "bearer" or not given:
        return error(401, "expected 'Authorization: Bearer <token>'", "authorization", challenge)
    # Constant-time compare so the reply time says nothing about how much of the token matched.
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return error(401, "the bearer token is not valid", "authorization", challenge)
    return None


async def json_body(request: Request, limit: int = MAX_BODY_BYTES) -> Any:
    """The request's JSON body, read up to `limit` bytes; BadRequest if too big or not JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest("body", f"must be at most {limit} bytes, got {declared}", status=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest("body", f"must be at most {limit} bytes", status=413)
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise BadRequest("body", "must be a JSON object, got an empty body")
    try:
        value = json.loads(raw)
    except RecursionError:
        raise BadRequest("body", f"must be valid JSON nested at most {MAX_JSON_DEPTH} levels") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("body", f"must be valid JSON ({exc})") from None
    check_json(value)
    return value


def _field(path: tuple[str | int, ...]) -> str:
    # The form ingest errors use: observations[0].value; a top-level array reads body[0].
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return text[1:] if text.startswith(".") else f"body{text}"


def check_json(value: Any, max_depth: int = MAX_JSON_DEPTH) -> None:
    """BadRequest naming the field if `value` nests deeper than `max_depth` or holds a number no
    float can carry (400 digits, `1e400`, `NaN`): code past the edge can then convert and walk it.
    """
    # An explicit stack, so a hostile body cannot exhaust the interpreter's own.
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, dict | list):
            if len(path) >= max_depth:
                # Name the innermost object field that holds the deep part, not a hundred indexes.
                named = path
                while named and isinstance(named[-1], int):
                    named = named[:-1]
                raise BadRequest(_field(named), f"must be nested at most {max_depth} levels")
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            stack.extend(((*path, key), child) for key, child in pairs)
        elif isinstance(item, float) and not math.isfinite(item):
            raise BadRequest(_field(path), f"must be a finite number, got {item!r}")
        elif isinstance(item, int) and not isinstance(item, bool):
            try:
                float(item)
            except OverflowError:
                raise BadRequest(
                    _field(path), f"must be a finite number, got {len(str(abs(item)))} digits"
                ) from None


def number_param(request: Request, name: str, default: float, low: float, high: float) -> float:
    """A numeric query parameter within [low, high]."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and low <= value <= high):
        raise BadRequest(name, f"must be a number in [{low:g}, {high:g}], got {raw!r}")
    return value


def finite(value: Any) -> Any:
    """`value` with NaN and infinities replaced by None (browsers' JSON.parse rejects them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def sse_frame(data: Any, event: str | None = None) -> str:
    """One SSE frame with a JSON payload (single line, so no `data:` splitting is needed)."""
    payload = json.dumps(finite(data), separators=(",", ":"), allow_nan=False, default=str)
    return (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"
