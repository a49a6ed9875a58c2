"""The failure-plan header: compact JSON, HMAC-SHA256 signed, short-lived.

Wire form: ``v1.<base64url(json)>.<base64url(hmac_sha256(secret, "v1." + base64url(json)))>``.
The signature is checked (in constant time, against every accepted secret) before the JSON is parsed,
and everything in the JSON is then checked again: a signature proves who wrote a header, not that the
writer's code was right, so no payload may make a receiver fail with anything but `InvalidHeader`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stoic.fit._audience import admits, check_audience, check_service
from stoic.fit._errors import InvalidHeader, InvalidScenario
from stoic.fit._identity import RequestIdentity
from stoic.fit._plan import MAX_SCENARIOS, FailurePlan
from stoic.fit._scenario import Scenario, decoded, default_message

log = logging.getLogger("stoic.fit")

VERSION = "v1"
DEFAULT_HEADER = "x-stoic-fit"
MIN_SECRET_BYTES = 16
DEFAULT_MAX_TTL = 3600.0
_SIGNATURE_CHARS = 43  # base64url of 32 bytes, unpadded
_HEADER_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_LOG_WINDOW = 10.0
_LOG_LIMIT = 20


@dataclass(frozen=True, slots=True)
class SignedHeader:
    """A verified header: its scenarios, the identity it was signed for (if any), its lifetime and the
    services it may reach (None: signed without an audience)."""

    scenarios: tuple[Scenario, ...]
    identity: RequestIdentity | None
    issued_at: float
    expires_at: float
    audience: tuple[str, ...] | None = None

    def plan(self, fallback: RequestIdentity | None = None) -> FailurePlan:
        """The plan for this request: the signed identity wins; `fallback` is used when there is none.

        The plan keeps the audience, so a header forwarded downstream never reaches more services.
        """
        return FailurePlan(
            self.scenarios, self.identity or fallback, expires_at=self.expires_at, audience=self.audience
        )


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _positive(field: str, value: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value <= high):
        raise ValueError(f"{field}: must be a number of seconds in (0, {high:g}], got {value!r}")
    return float(value)


class HeaderCodec:
    """Signs failure plans into one HTTP header and verifies them on the way in.

    `secrets`: one secret, or several for key rotation (the first signs, any of them verifies);
    each at least 16 bytes. `ttl`: lifetime of headers this codec signs. `max_ttl`: the longest
    lifetime it accepts. `leeway`: clock skew tolerated between services. `audience`: the services
    (names or globs) the headers it signs may reach when `sign` is given none, and for plans that
    arrived without one (a catalog's, a `Fit` block's); None signs without an audience, which
    receivers refuse unless they allow it.

    >>> codec = HeaderCodec("a shared secret of 16+ bytes")
    >>> value = codec.sign([Scenario("no-recs", "personalisation")], audience=["edge", "ratings"])
    >>> codec.verify(value, service="ratings").scenarios[0].name
    'no-recs'
    """

    def __init__(
        self,
        secrets: str | bytes | Sequence[str | bytes],
        *,
        header: str = DEFAULT_HEADER,
        ttl: float = 60.0,
        max_ttl: float = DEFAULT_MAX_TTL,
        max_bytes: int = 4096,
        leeway: float = 5.0,
        audience: str | Iterable[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        given: Sequence[object]
        if isinstance(secrets, str | bytes):
            given = [secrets]
        elif isinstance(secrets, Iterable) and not isinstance(secrets, Mapping):
            given = list(secrets)
        else:  # the type only: a value here may be a secret in the wrong wrapper, not for the log
            raise ValueError(
                "secrets: must be a secret (str or bytes of at least 16 bytes) or a list of them, "
                f"got {'None' if secrets is None else type(secrets).__name__}"
            )
        if not given:
            raise ValueError("secrets: give at least one secret")
        keys = []
        for index, secret in enumerate(given):
            if not isinstance(secret, str | bytes):
                raise ValueError(f"secrets[{index}]: must be str or bytes, got {type(secret).__name__}")
            key = secret.encode() if isinstance(secret, str) else bytes(secret)
            if len(key) < MIN_SECRET_BYTES:
                raise ValueError(
                    f"secrets[{index}]: must be at least {MIN_SECRET_BYTES} bytes, got {len(key)}"
                )
            keys.append(key)
        if not isinstance(header, str) or not _HEADER_NAME.fullmatch(header):
            raise ValueError(
                f"header: must be a lower-case header name of letters, digits and '-', got {header!r}"
            )
        self.max_ttl = _positive("max_ttl", max_ttl, 7 * 86400.0)
        self.ttl = _positive("ttl", ttl, self.max_ttl)
        if isinstance(leeway, bool) or not isinstance(leeway, int | float) or not (0 <= leeway <= 300):
            raise ValueError(f"leeway: must be a number of seconds in [0, 300], got {leeway!r}")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or not (256 <= max_bytes <= 65536):
            raise ValueError(f"max_bytes: must be an integer in [256, 65536], got {max_bytes!r}")
        self.audience = None if audience is None else check_audience("audience", audience)
        self.header = header
        self.leeway = float(leeway)
        self.max_bytes = max_bytes
        self._keys = tuple(keys)
        self._clock = clock
        self._log_lock = threading.Lock()
        self._log_window = -math.inf
        self._logged = 0
        self._suppressed = 0

    # -- signing -----------------------------------------------------------------------------

    def sign(
        self,
        scenarios: Iterable[Scenario],
        *,
        audience: str | Iterable[str] | None = None,
        identity: RequestIdentity | None = None,
        ttl: float | None = None,
    ) -> str:
        """A header value carrying `scenarios` (and, optionally, the identity they are decided on).

        `audience`: the services (names or globs, `"*"` for all) that may honour it; the codec's
        `audience` when not given.
        """
        items = list(scenarios)
        if any(not isinstance(s, Scenario) for s in items):
            raise TypeError("scenarios: every item must be a Scenario")
        lifetime = self.ttl if ttl is None else _positive("ttl", ttl, self.max_ttl)
        reach = self.audience if audience is None else check_audience("audience", audience)
        now = self._clock()
        return self._encode([_compact(s) for s in items], identity, reach, now, now + lifetime)

    def sign_plan(self, plan: FailurePlan) -> str | None:
        """Re-sign a bound plan for a downstream call, or None when nothing in it targets this request.

        Only the scenarios that target this request travel, with their targeting already decided, and
        the new header never outlives nor reaches beyond the one the plan arrived with (a plan that
        arrived without an audience gets the codec's).
        """
        matching = plan.matching()
        if not matching:
            return None
        now = self._clock()
        expires = now + self.ttl
        if plan.expires_at is not None:
            expires = min(expires, plan.expires_at)
        reach = self.audience if plan.audience is None else plan.audience
        return self._encode(
            [_compact(s, decided=True) for s in matching], plan.identity, reach, now, expires
        )

    def _encode(
        self,
        scenarios: list[dict[str, Any]],
        identity: RequestIdentity | None,
        audience: tuple[str, ...] | None,
        iat: float,
        exp: float,
    ) -> str:
        if len(scenarios) > MAX_SCENARIOS:
            raise ValueError(f"scenarios: a header carries at most {MAX_SCENARIOS} scenarios")
        body: dict[str, Any] = {"iat": round(iat, 3), "exp": round(exp, 3), "s": scenarios}
        if audience is not None:
            body["aud"] = list(audience)
        if identity is not None:
            body["rid"] = identity.request_id
            if identity.user_id is not None:
                body["uid"] = identity.user_id
            if identity.device is not None:
                body["dev"] = identity.device
        payload = _b64encode(json.dumps(body, separators=(",", ":")).encode())
        signed = f"{VERSION}.{payload}"
        value = f"{signed}.{_b64encode(self._mac(self._keys[0], signed))}"
        if len(value) > self.max_bytes:
            raise ValueError(
                f"header: {len(value)} bytes exceeds max_bytes={self.max_bytes}; send fewer targets"
            )
        return value

    @staticmethod
    def _mac(key: bytes, signed: str) -> bytes:
        return hmac.new(key, signed.encode("ascii"), hashlib.sha256).digest()

    # -- verifying ---------------------------------------------------------------------------

    def verify(self, value: str, *, service: str | None, allow_no_audience: bool = False) -> SignedHeader:
        """The verified contents of a header value; raises `InvalidHeader` naming the reason.

        `service`: the receiving service's name, which the header's audience must admit; a header
        without an audience is refused unless `allow_no_audience`. Pass `service=None` only to inspect
        a header (as `stoic fit verify` does): the audience is then returned, not checked.
        """
        if service is not None:
            service = check_service("service", service)
        if not isinstance(value, str):
            raise InvalidHeader("malformed", "header value must be text")
        if len(value) > self.max_bytes:
            raise InvalidHeader("oversized", f"{len(value)} bytes > max_bytes={self.max_bytes}")
        parts = value.strip().split(".")
        if len(parts) != 3 or not parts[2]:
            raise InvalidHeader("unsigned", "expected v1.<payload>.<signature>")
        version, payload, signature = parts
        if version != VERSION:
            raise InvalidHeader("malformed", f"version must be {VERSION}, got {version[:16]!r}")
        if len(signature) != _SIGNATURE_CHARS or not signature.isascii():
            raise InvalidHeader("bad-signature", "signature is not 43 base64url characters")
        signed = f"{version}.{payload}"
        if not signed.isascii():
            raise InvalidHeader("malformed", "payload must be base64url")
        # The encoded forms are compared, so there is exactly one valid spelling of each signature
        # (decoding first would accept variants in the unused trailing bits). Every key is tried, with
        # no early exit, so timing does not reveal which key matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(_b64encode(self._mac(key, signed)), signature)
        if not matched:
            raise InvalidHeader("bad-signature", "no accepted secret produced this signature")
        try:
            body = json.loads(_b64decode(payload))
        except RecursionError:
            raise InvalidHeader("malformed", "payload JSON is nested too deeply") from None
        except (binascii.Error, ValueError):  # UnicodeDecodeError and over-long integers included
            raise InvalidHeader("malformed", "payload is not base64url JSON") from None
        signed_header = self._read_body(body)
        if service is not None:
            _check_audience(signed_header.audience, service, allow_no_audience)
        return signed_header

    def _read_body(self, body: object) -> SignedHeader:
        if not isinstance(body, dict):
            raise InvalidHeader("malformed", "payload must be a JSON object")
        iat, exp = _stamp(body, "iat"), _stamp(body, "exp")
        now = self._clock()
        if now >= exp + self.leeway:
            raise InvalidHeader("expired", f"expired {now - exp:.1f} s ago")
        if iat > now + self.leeway:
            raise InvalidHeader("not-yet-valid", f"issued {iat - now:.1f} s in the future")
        if exp - iat > self.max_ttl:
            raise InvalidHeader("lifetime-too-long", f"{exp - iat:.0f} s > max_ttl={self.max_ttl:g}")
        audience = None
        if "aud" in body:
            try:
                audience = check_audience("aud", body["aud"])
            except InvalidScenario as exc:
                raise InvalidHeader("malformed", str(exc)) from None
        raw = body.get("s")
        if not isinstance(raw, list) or len(raw) > MAX_SCENARIOS:
            raise InvalidHeader("malformed", f"s must be a list of at most {MAX_SCENARIOS} scenarios")
        try:
            scenarios = tuple(_expand(item) for item in raw)
            identity = None
            if "rid" in body:
                identity = RequestIdentity(body["rid"], body.get("uid"), body.get("dev"))
        except InvalidScenario as exc:
            raise InvalidHeader("invalid-scenario", str(exc)) from None
        return SignedHeader(scenarios, identity, iat, exp, audience)

    def read(
        self, value: str | None, *, service: str | None, allow_no_audience: bool = False
    ) -> SignedHeader | None:
        """Like `verify`, but an invalid header is logged with its reason and ignored (None)."""
        if value is None:
            return None
        try:
            return self.verify(value, service=service, allow_no_audience=allow_no_audience)
        except InvalidHeader as exc:
            self._log_ignored(exc)
            return None

    def _log_ignored(self, exc: InvalidHeader) -> None:
        # bounded: a flood of forged headers must not become a flood of log lines
        with self._log_lock:
            now = time.monotonic()
            if now - self._log_window >= _LOG_WINDOW:
                if self._suppressed:
                    log.warning("ignored %d more invalid %s headers", self._suppressed, self.header)
                self._log_window, self._logged, self._suppressed = now, 0, 0
            if self._logged >= _LOG_LIMIT:
                self._suppressed += 1
                return
            self._logged += 1
        log.warning("ignored %s header: %s", self.header, exc, extra={"fit_reason": exc.reason})


_KEYS = {
    "n": "name", "d": "dependencies", "k": "kind", "t": "delay", "m": "message", "p": "percent",
    "u": "user_ids", "v": "devices", "x": "expires_at", "c": "status", "w": "retry_after", "o": "result",
}


def _check_audience(audience: tuple[str, ...] | None, service: str, allow_no_audience: bool) -> None:
    if audience is None:
        if not allow_no_audience:
            raise InvalidHeader(
                "no-audience", f"signed without an audience; {service} accepts only headers naming it"
            )
    elif not admits(audience, service):
        raise InvalidHeader("wrong-audience", f"signed for {', '.join(audience)[:200]}, not {service}")


def _stamp(body: dict[str, Any], field: str) -> float:
    stamp = body.get(field)
    if isinstance(stamp, bool) or not isinstance(stamp, int | float):
        raise InvalidHeader("malformed", f"{field} must be a Unix time")
    try:
        seconds = float(stamp)
    except OverflowError:  # an integer beyond any float
        raise InvalidHeader("malformed", f"{field} must be a Unix time") from None
    if not math.isfinite(seconds):
        raise InvalidHeader("malformed", f"{field} must be a Unix time")
    return seconds


def _compact(scenario: Scenario, *, decided: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"n": scenario.name, "d": list(scenario.dependencies), "k": scenario.kind}
    if scenario.delay:
        out["t"] = scenario.delay
    if scenario.message != default_message(scenario.name):
        out["m"] = scenario.message
    if scenario.expires_at is not None:
        out["x"] = scenario.expires_at
    if scenario.status is not None:
        out["c"] = scenario.status
    if scenario.retry_after is not None:
        out["w"] = scenario.retry_after
    if scenario.kind == "result":
        out["o"] = scenario.result
    if not decided:  # once decided for this identity, targeting need not travel
        if scenario.percent < 100.0:
            out["p"] = scenario.percent
        if scenario.user_ids is not None:
            out["u"] = sorted(scenario.user_ids)
        if scenario.devices is not None:
            out["v"] = sorted(scenario.devices)
    return out


def _expand(item: object) -> Scenario:
    if not isinstance(item, dict):
        raise InvalidScenario("scenario", "must be an object")
    unknown = set(item) - set(_KEYS)
    if unknown:
        raise InvalidScenario("scenario", f"unknown key {sorted(unknown)[0]!r}")
    return decoded({_KEYS[key]: value for key, value in item.items()})
