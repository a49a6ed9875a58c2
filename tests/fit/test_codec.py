from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stoic.fit import FailurePlan, HeaderCodec, InvalidHeader, RequestIdentity, Scenario

SECRET = KEY = "codec-test-secret-0123456789"
OLD_SECRET = "older-secret-abcdefghijklmnop"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forge(body: dict, secret: str) -> str:
    """A header built by hand, the way a third party (or an attacker) would."""
    signed = "v1." + _b64(json.dumps(body).encode())
    return signed + "." + _b64(hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest())


def test_round_trip_keeps_scenarios_and_identity() -> None:
    clock = Clock()
    codec = HeaderCodec(SECRET, ttl=30, clock=clock)
    scenarios = [
        Scenario("no-recs", "personalisation", percent=5, devices=["tv"]),
        Scenario("slow", ["ratings", "search"], "delay", delay=0.1, message="slow ratings", expires_at=2e9),
    ]
    value = codec.sign(scenarios, identity=RequestIdentity("req-1", "u1", "tv"))
    signed = codec.verify(value)
    assert list(signed.scenarios) == scenarios
    assert signed.identity == RequestIdentity("req-1", "u1", "tv")
    assert (signed.issued_at, signed.expires_at) == (clock.now, clock.now + 30)
    assert value.isascii() and "\n" not in value


def test_key_rotation_signs_with_the_first_and_accepts_any() -> None:
    old = HeaderCodec(OLD_SECRET)
    rotated = HeaderCodec([SECRET, OLD_SECRET])
    new_only = HeaderCodec(SECRET)
    from_old = old.sign([Scenario("a", "x")])
    assert rotated.verify(from_old).scenarios[0].name == "a"
    from_rotated = rotated.sign([Scenario("b", "x")])
    assert new_only.verify(from_rotated).scenarios[0].name == "b"
    with pytest.raises(InvalidHeader) as info:
        old.verify(from_rotated)
    assert info.value.reason == "bad-signature"


def _reason(codec: HeaderCodec, value: str) -> str:
    with pytest.raises(InvalidHeader) as info:
        codec.verify(value)
    return info.value.reason


def test_every_bad_header_is_refused_with_its_reason() -> None:
    clock = Clock()
    codec = HeaderCodec(SECRET, clock=clock, max_bytes=1024, max_ttl=600, leeway=5)
    good = codec.sign([Scenario("a", "x")])
    version, payload, signature = good.split(".")
    now = clock.now
    widened = {"iat": now, "exp": now + 60, "s": [{"n": "a", "d": ["*"], "k": "error"}]}
    tampered_payload = _b64(json.dumps(widened).encode())
    cases = {
        "unsigned": f"{version}.{payload}",
        "unsigned-empty": f"{version}.{payload}.",
        "raw-json": json.dumps({"s": [{"n": "a", "d": ["x"], "k": "error"}]}),
        "tampered": f"{version}.{tampered_payload}.{signature}",
        "wrong-secret": forge({"iat": now, "exp": now + 60, "s": []}, "not-the-secret-at-all!!"),
        "bad-signature-chars": f"{version}.{payload}.{'*' * 43}",
        "oversized": good + "A" * 1024,
        "version": f"v2.{payload}.{signature}",
        "expired": forge({"iat": now - 100, "exp": now - 10, "s": []}, SECRET),
        "future": forge({"iat": now + 60, "exp": now + 90, "s": []}, SECRET),
        "too-long": forge({"iat": now, "exp": now + 601, "s": []}, SECRET),
        "no-times": forge({"s": []}, SECRET),
        "bad-scenario": forge({"iat": now, "exp": now + 60, "s": [{"n": "a", "d": ["x"], "k": "boom"}]}, KEY),
        "unknown-key": forge({"iat": now, "exp": now + 60, "s": [{"n": "a", "d": ["x"], "z": 1}]}, SECRET),
        "bad-rid": forge({"iat": now, "exp": now + 60, "s": [], "rid": ""}, SECRET),
        "list-body": forge([], SECRET),  # type: ignore[arg-type]
    }
    reasons = {name: _reason(codec, value) for name, value in cases.items()}
    assert reasons == {
        "unsigned": "unsigned",
        "unsigned-empty": "unsigned",
        "raw-json": "unsigned",
        "tampered": "bad-signature",
        "wrong-secret": "bad-signature",
        "bad-signature-chars": "bad-signature",
        "oversized": "oversized",
        "version": "malformed",
        "expired": "expired",
        "future": "not-yet-valid",
        "too-long": "lifetime-too-long",
        "no-times": "malformed",
        "bad-scenario": "invalid-scenario",
        "unknown-key": "invalid-scenario",
        "bad-rid": "invalid-scenario",
        "list-body": "malformed",
    }
    # a header signed correctly around non-JSON is still refused, as malformed
    signed = "v1." + _b64(b"not json")
    mac = _b64(hmac.new(SECRET.encode(), signed.encode(), hashlib.sha256).digest())
    assert _reason(codec, f"{signed}.{mac}") == "malformed"


def test_expiry_honours_leeway() -> None:
    clock = Clock()
    codec = HeaderCodec(SECRET, ttl=10, leeway=2, clock=clock)
    value = codec.sign([Scenario("a", "x")])
    clock.now += 11.9
    assert codec.verify(value).scenarios
    clock.now += 0.2
    assert _reason(codec, value) == "expired"


def test_read_ignores_and_logs_the_reason(caplog: pytest.LogCaptureFixture) -> None:
    codec = HeaderCodec(SECRET)
    with caplog.at_level(logging.WARNING, logger="stoic.fit"):
        assert codec.read(None) is None  # no header is not worth a log line
        assert caplog.records == []
        assert codec.read("v1.e30.") is None
    assert len(caplog.records) == 1
    assert "ignored x-stoic-fit header: unsigned" in caplog.text
    assert caplog.records[0].fit_reason == "unsigned"  # type: ignore[attr-defined]


def test_log_lines_are_bounded_under_a_flood(caplog: pytest.LogCaptureFixture) -> None:
    codec = HeaderCodec(SECRET)
    with caplog.at_level(logging.WARNING, logger="stoic.fit"):
        for _ in range(500):
            assert codec.read("v1.e30.forged") is None
    assert 1 <= len(caplog.records) <= 20


def test_sign_plan_carries_only_decided_scenarios_and_never_outlives_the_original() -> None:
    clock = Clock()
    codec = HeaderCodec(SECRET, ttl=60, clock=clock)
    identity = RequestIdentity("req-7", "u1", "tv")
    plan = FailurePlan(
        [
            Scenario("mine", "ratings", user_ids=["u1", *(f"u{i}" for i in range(2, 400))], devices=["tv"]),
            Scenario("not-mine", "search", user_ids=["someone-else"]),
        ],
        identity,
        expires_at=clock.now + 20,
        clock=clock,
    )
    value = codec.sign_plan(plan)
    assert value is not None
    assert len(value) < 400  # the 399 user ids did not travel: the decision for u1 is already made
    signed = codec.verify(value)
    assert [s.name for s in signed.scenarios] == ["mine"]
    assert signed.identity == identity
    assert signed.expires_at == clock.now + 20
    downstream = signed.plan()
    assert downstream.fault_for("ratings") is not None
    assert downstream.fault_for("search") is None
    assert codec.sign_plan(FailurePlan([Scenario("x", "y", user_ids=["nobody"])], identity)) is None


def test_configuration_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"secrets\[0\]: must be at least 16 bytes"):
        HeaderCodec("short")
    with pytest.raises(ValueError, match=r"secrets\[1\]: must be str or bytes"):
        HeaderCodec([SECRET, 42])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="secrets: give at least one"):
        HeaderCodec([])
    with pytest.raises(ValueError, match=r"ttl: must be a number of seconds in \(0, 3600\]"):
        HeaderCodec(SECRET, ttl=0)
    with pytest.raises(ValueError, match="header: must be a lower-case header name"):
        HeaderCodec(SECRET, header="X Fit")
    with pytest.raises(ValueError, match=r"max_bytes: must be an integer in \[256, 65536\]"):
        HeaderCodec(SECRET, max_bytes=10)
    with pytest.raises(ValueError, match=r"leeway: must be a number of seconds in \[0, 300\]"):
        HeaderCodec(SECRET, leeway=-1)
    big = Scenario("big", "x", user_ids=[f"user-{i}" for i in range(50)])
    with pytest.raises(ValueError, match=r"header: \d+ bytes exceeds max_bytes=256"):
        HeaderCodec(SECRET, max_bytes=256).sign([big])


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.{}\"=+/ "


@settings(max_examples=200, deadline=None)
@given(position=st.integers(min_value=0), replacement=st.sampled_from(_ALPHABET))
def test_changing_any_character_is_refused(position: int, replacement: str) -> None:
    codec = HeaderCodec(SECRET, clock=Clock())
    value = codec.sign([Scenario("a", "ratings", percent=50)], identity=RequestIdentity("req-1", "u1"))
    position %= len(value)
    if value[position] == replacement:
        return
    changed = value[:position] + replacement + value[position + 1:]
    with pytest.raises(InvalidHeader):
        codec.verify(changed)


_TOKENS = st.text(min_size=1, max_size=20).filter(str.isprintable)


@settings(max_examples=60, deadline=None)
@given(
    name=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,20}", fullmatch=True),
    dependencies=st.lists(_TOKENS, min_size=1, max_size=4),
    kind=st.sampled_from(["error", "timeout", "reject"]),
    percent=st.floats(min_value=0.01, max_value=100),
    users=st.none() | st.lists(_TOKENS, min_size=1, max_size=5),
)
def test_any_valid_scenario_survives_the_round_trip(
    name: str, dependencies: list[str], kind: str, percent: float, users: list[str] | None
) -> None:
    codec = HeaderCodec(SECRET)
    scenario = Scenario(name, dependencies, kind, percent=percent, user_ids=users)
    assert codec.verify(codec.sign([scenario])).scenarios == (scenario,)
