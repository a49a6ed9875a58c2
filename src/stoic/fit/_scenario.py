"""Scenario: which dependency fails, how, and for whom."""

from __future__ import annotations

import fnmatch
import hashlib
import itertools
import json
import math
import re
import time
import warnings
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import Any, Literal

from stoic.fit._errors import FitWarning, InvalidScenario
from stoic.fit._identity import RequestIdentity, check_token
from stoic.guard import Fault

FaultKind = Literal["error", "delay", "timeout", "reject", "status", "result"]
_KINDS: dict[str, FaultKind] = {
    "error": "error", "delay": "delay", "timeout": "timeout", "reject": "reject", "status": "status",
    "result": "result",
}
KINDS = tuple(_KINDS)
ANY_DEPENDENCY = "*"
MAX_DELAY = 60.0
#: the HTTP statuses a `status` scenario may answer with (the errors a dependency can send back)
STATUS_RANGE = (400, 599)
MAX_RETRY_AFTER = 86400.0
#: the largest stand-in answer (JSON characters) a `result` scenario may carry: it travels in the header
MAX_RESULT_CHARS = 1024
_GLOB = frozenset("*?[")
_MISSING: Any = object()  # `result` not given (None is refused as a stand-in, named as missing)
MAX_DEPENDENCIES = 64
MAX_TARGETS = 1000
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")  # a dependency or service name
_FIELDS = (
    "name", "dependencies", "kind", "delay", "message", "percent", "user_ids", "devices", "expires_at",
    "status", "retry_after", "result",
)


def default_message(name: str) -> str:
    """The message a scenario's fault carries when none is given."""
    return f"injected by scenario {name}"


def share(request_id: str, scenario: str) -> float:
    """Where a request falls in [0, 100) for a scenario: the same on every call and in every service."""
    digest = hashlib.sha256(f"{scenario}\x00{request_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") * 100.0 / 2**64


def _number(field: str, value: object, low: float, high: float, *, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidScenario(field, f"must be a number, got {type(value).__name__}")
    bracket = "(" if low_open else "["
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float (a JSON body may hold one)
        allowed = f"{bracket}{low:g}, {high:g}]"
        raise InvalidScenario(field, f"must be in {allowed}, got an integer beyond any float") from None
    low_ok = number > low if low_open else number >= low
    if not (math.isfinite(number) and low_ok and number <= high):
        raise InvalidScenario(field, f"must be in {bracket}{low:g}, {high:g}], got {value!r}")
    return number


# Set while a signed header is decoded: its signer was already warned about a small percent, and a
# receiver must not warn once per request.
_decoding: ContextVar[bool] = ContextVar("stoic_fit_decoding", default=False)


def _warn_if_share(percent: float) -> None:
    if 0.0 < percent < 1.0 and not _decoding.get():
        warnings.warn(
            f"percent: {percent:g} is out of 100, so it fails {percent:g} % of requests "
            f"(about 1 in {round(100 / percent):,}); for {percent * 100:g} % write percent={percent * 100:g}",
            FitWarning,
            stacklevel=3,
        )


def _names(field: str, value: object, limit: int) -> tuple[str, ...]:
    if isinstance(value, str):
        items: list[object] = [value]
    elif isinstance(value, Iterable) and not isinstance(value, Mapping | bytes):
        items = list(itertools.islice(value, limit + 1))  # bounded even for endless iterables
    else:
        raise InvalidScenario(field, f"must be a string or a list of strings, got {type(value).__name__}")
    if len(items) > limit:
        raise InvalidScenario(field, f"must have at most {limit} values")
    names = tuple(dict.fromkeys(check_token(field, item) for item in items))
    if not names:
        raise InvalidScenario(field, "must name at least one value (or be left out to match all)")
    return names


def _status(status: object, kind: str) -> int | None:
    low, high = STATUS_RANGE
    if kind != "status":
        if status is not None:
            raise InvalidScenario("status", f"is for kind 'status' only; got kind {kind!r}")
        return None
    if status is None:
        raise InvalidScenario(
            "status", f"is required when kind is 'status': an HTTP status in [{low}, {high}]"
        )
    if isinstance(status, bool) or not isinstance(status, int) or not low <= status <= high:
        raise InvalidScenario(
            "status", f"must be an HTTP error status, an integer in [{low}, {high}]; got {status!r}"
        )
    return status


def _result(value: object, kind: str) -> object:
    if kind != "result":
        if value is not _MISSING and value is not None:
            raise InvalidScenario("result", f"is for kind 'result' only; got kind {kind!r}")
        return None
    if value is _MISSING or value is None:
        raise InvalidScenario(
            "result", "is required when kind is 'result': the stand-in answer, a JSON value"
        )
    try:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidScenario(
            "result", f"must be a JSON value (objects, lists, strings, numbers, booleans); {exc}"
        ) from None
    if len(text) > MAX_RESULT_CHARS:
        raise InvalidScenario(
            "result", f"must be at most {MAX_RESULT_CHARS} characters as JSON, got {len(text)}"
        )
    return json.loads(text)  # a private copy: the caller's object may change after this


class Scenario:
    """A named failure: `dependencies` fail with `kind` for the requests that match every given target.

    Targets (all optional, combined with AND): `percent` of requests, out of 100, in (0, 100]
    (stable per request id; a value below 1 warns with `FitWarning`, since 0.05 is more often a
    share meant as 5 %), `user_ids`, `devices`. `expires_at` is a Unix time (or give `ttl` in seconds
    from now). `dependencies` are names or globs (``"ratings-*"``), matched as the fault board does.

    Kinds: ``error``, ``timeout``, ``reject`` fail the call; ``delay`` slows it by `delay` seconds;
    ``status`` answers an HTTP error `status` (503, 429, ...) with a ``Retry-After`` of `retry_after`
    seconds when given; ``result`` answers `result` (a JSON value, a stand-in answer). The last two
    are answers, judged by the guard's result predicates like real ones.

    >>> Scenario("no-recs", "personalisation", kind="error", percent=5, devices=["tv"])
    """

    __slots__ = (
        "_exact", "_fault", "_patterns", "delay", "dependencies", "devices", "expires_at", "kind", "message",
        "name", "percent", "result", "retry_after", "status", "user_ids",
    )
    name: str
    dependencies: tuple[str, ...]
    kind: str
    delay: float
    message: str
    percent: float
    user_ids: frozenset[str] | None
    devices: frozenset[str] | None
    expires_at: float | None
    status: int | None
    retry_after: float | None
    result: Any
    _fault: Fault
    _exact: frozenset[str]
    _patterns: tuple[re.Pattern[str], ...]

    def __init__(
        self,
        name: str,
        dependencies: str | Iterable[str],
        kind: str = "error",
        *,
        delay: float = 0.0,
        message: str | None = None,
        percent: float = 100.0,
        user_ids: Iterable[str] | None = None,
        devices: Iterable[str] | None = None,
        expires_at: float | None = None,
        ttl: float | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        result: Any = _MISSING,
    ) -> None:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise InvalidScenario(
                "name", f"must be 1-64 characters of letters, digits, '_', '.', ':' or '-', got {name!r}"
            )
        if kind not in KINDS:
            raise InvalidScenario("kind", f"must be one of {', '.join(KINDS)}; got {kind!r}")
        code = _status(status, kind)
        if retry_after is not None:
            if kind != "status":
                raise InvalidScenario("retry_after", f"is for kind 'status' only; got kind {kind!r}")
            retry_after = _number("retry_after", retry_after, 0.0, MAX_RETRY_AFTER)
        answer = _result(result, kind)
        delay = _number("delay", delay, 0.0, MAX_DELAY)
        if kind == "delay" and delay == 0.0:
            raise InvalidScenario("delay", f"must be in (0, {MAX_DELAY:g}] seconds when kind is 'delay'")
        if message is not None:
            check_token("message", message, max_length=200)
        if expires_at is not None and ttl is not None:
            raise InvalidScenario("ttl", "give either expires_at or ttl, not both")
        if ttl is not None:
            expires_at = time.time() + _number("ttl", ttl, 0.0, 7 * 86400.0, low_open=True)
        elif expires_at is not None:
            expires_at = _number("expires_at", expires_at, 0.0, float(2**40))
        set_ = object.__setattr__
        set_(self, "name", name)
        set_(self, "dependencies", _names("dependencies", dependencies, MAX_DEPENDENCIES))
        set_(self, "kind", kind)
        set_(self, "delay", delay)
        set_(self, "message", message or default_message(name))
        set_(self, "percent", _number("percent", percent, 0.0, 100.0, low_open=True))
        users = None if user_ids is None else frozenset(_names("user_ids", user_ids, MAX_TARGETS))
        set_(self, "user_ids", users)
        types = None if devices is None else _names("devices", devices, MAX_TARGETS)
        set_(self, "devices", None if types is None else frozenset(d.lower() for d in types))
        set_(self, "expires_at", expires_at)
        set_(self, "status", code)
        set_(self, "retry_after", retry_after)
        set_(self, "result", answer)
        exact = frozenset(d for d in self.dependencies if _GLOB.isdisjoint(d))
        set_(self, "_exact", exact)
        globs = (d for d in self.dependencies if d not in exact and d != ANY_DEPENDENCY)
        set_(self, "_patterns", tuple(re.compile(fnmatch.translate(d)) for d in globs))
        set_(self, "_fault", Fault(
            kind=_KINDS[kind], delay=delay, message=self.message, status=code or 0, retry_after=retry_after,
            value=answer,
        ))
        _warn_if_share(self.percent)

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError("Scenario is immutable; use replace()")

    @property
    def fault(self) -> Fault:
        """The guard fault this scenario injects."""
        return self._fault

    def covers(self, dependency: str) -> bool:
        """True if this scenario fails `dependency`: a name it lists, or one of its globs matches
        (``*`` any run of characters, ``?`` one, ``[abc]`` one of; case-sensitive, as on the fault board)."""
        if dependency in self._exact or ANY_DEPENDENCY in self.dependencies:
            return True
        return any(p.match(dependency) for p in self._patterns)

    def targets(self, identity: RequestIdentity) -> bool:
        """True if the request matches every target (user, device, percentage)."""
        if self.user_ids is not None and identity.user_id not in self.user_ids:
            return False
        if self.devices is not None and identity.device not in self.devices:
            return False
        return self.percent >= 100.0 or share(identity.request_id, self.name) < self.percent

    def expired(self, now: float | None = None) -> bool:
        """True once the expiry has passed."""
        return self.expires_at is not None and (time.time() if now is None else now) >= self.expires_at

    def replace(self, **changes: Any) -> Scenario:
        """A copy with some fields changed (validated again)."""
        fields = self.to_dict()
        fields.update(changes)
        return Scenario.from_dict(fields)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; `Scenario.from_dict` reads it back."""
        return {
            "name": self.name,
            "dependencies": list(self.dependencies),
            "kind": self.kind,
            "delay": self.delay,
            "message": self.message,
            "percent": self.percent,
            "user_ids": None if self.user_ids is None else sorted(self.user_ids),
            "devices": None if self.devices is None else sorted(self.devices),
            "expires_at": self.expires_at,
            # the answer fields only for the kinds that answer, so other scenarios keep their shape
            **({"status": self.status, "retry_after": self.retry_after} if self.kind == "status" else {}),
            **({"result": self.result} if self.kind == "result" else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        """Build a scenario from a dict (e.g. an API body); unknown or missing fields are named."""
        if not isinstance(data, Mapping):
            raise InvalidScenario("scenario", f"must be an object, got {type(data).__name__}")
        unknown = sorted(set(data) - {*_FIELDS, "ttl"})
        if unknown:
            allowed = ", ".join((*_FIELDS, "ttl"))
            raise InvalidScenario(unknown[0], f"is not a scenario field; allowed: {allowed}")
        for required in ("name", "dependencies"):
            if required not in data:
                raise InvalidScenario(required, "is required")
        # a null `result` is kept, so the scenario can say it needs a real stand-in
        optional = {
            k: v
            for k, v in data.items()
            if k not in ("name", "dependencies") and (v is not None or k == "result")
        }
        return cls(data["name"], data["dependencies"], **optional)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Scenario) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.name, self.dependencies, self.kind, self.delay, self.percent))

    def __repr__(self) -> str:
        parts = [repr(self.name), repr(list(self.dependencies)), repr(self.kind)]
        if self.delay:
            parts.append(f"delay={self.delay:g}")
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.retry_after is not None:
            parts.append(f"retry_after={self.retry_after:g}")
        if self.kind == "result":
            parts.append(f"result={self.result!r}")
        if self.percent < 100.0:
            parts.append(f"percent={self.percent:g}")
        if self.user_ids is not None:
            parts.append(f"user_ids={sorted(self.user_ids)!r}")
        if self.devices is not None:
            parts.append(f"devices={sorted(self.devices)!r}")
        if self.expires_at is not None:
            parts.append(f"expires_at={self.expires_at:.0f}")
        return f"Scenario({', '.join(parts)})"


def decoded(data: Mapping[str, Any]) -> Scenario:
    """`Scenario.from_dict` for a scenario read from a signed header: validated, but never warned about."""
    token = _decoding.set(True)
    try:
        return Scenario.from_dict(data)
    finally:
        _decoding.reset(token)
