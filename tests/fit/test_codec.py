from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stoic.fit import FailurePlan, HeaderCodec, InvalidHeader, InvalidScenario, RequestIdentity, Scenario
from stoic.fit._incoming import IncomingPlan

SECRET = KEY = "codec-test-secret-0123456789"
OLD_SECRET = "older-secret-abcdefghijklmnop"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forge(body: object, secret: str) -> str:
    """A header built by hand, the way a third party (or an attacker) would."""
    return forge_raw(json.dumps(body).encode(), secret)


def forge_raw(payload: bytes, secret: str = SECRET) -> str:
    """A correctly signed header around any payload bytes, JSON or not."""
    return sign_text("v1." + _b64(payload), secret)


def sign_text(signed: str, secret: str = SECRET) -> str:
    return signed + "." + _b64(hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest())


def test_round_trip_keeps_scenarios_and_identity() -> None:
    clock = Clock()
    codec = HeaderCodec(SECRET, ttl=30, clock=clock)
    scenarios = [
        Scenario("no-recs", "personalisation", percent=5, devices=["tv"]),
        Scenario("slow", ["ratings", "search"], "delay", delay=0.1, message="slow ratings", expires_at=2e9),
    ]
    value = codec.sign(scenarios, identity=RequestIdentity("req-1", "u1", "tv"))
    signed = codec.verify(value, service=None)
    assert list(signed.scenarios) == scenarios
    assert signed.identity == RequestIdentity("req-1", "u1", "tv")
    assert (signed.issued_at, signed.expires_at) == (clock.now, clock.now + 30)
    assert value.isascii() and "\n" not in value


def test_key_rotation_signs_with_the_first_and_accepts_any() -> None:
    old = HeaderCodec(OLD_SECRET)
    rotated = HeaderCodec([SECRET, OLD_SECRET])
    new_only = HeaderCodec(SECRET)
    from_old = old.sign([Scenario("a", "x")])
    assert rotated.verify(from_old, service=None).scenarios[0].name == "a"
    from_rotated = rotated.sign([Scenario("b", "x")])
    assert new_only.verify(from_rotated, service=None).scenarios[0].name == "b"
    with pytest.raises(InvalidHeader) as info:
        old.verify(from_rotated, service=None)
    assert info.value.reason == "bad-signature"


def _reason(codec: HeaderCodec, value: str) -> str:
    with pytest.raises(InvalidHeader) as info:
        codec.verify(value, service=None)
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
    assert codec.verify(value, service=None).scenarios
    clock.now += 0.2
    assert _reason(codec, value) == "expired"


def test_read_ignores_and_logs_the_reason(caplog: pytest.LogCaptureFixture) -> None:
    codec = HeaderCodec(SECRET)
    with caplog.at_level(logging.WARNING, logger="stoic.fit"):
        assert codec.read(None, service="ratings") is None  # no header is not worth a log line
        assert caplog.records == []
        assert codec.read("v1.e30.", service="ratings") is None
    assert len(caplog.records) == 1
    assert "ignored x-stoic-fit header: unsigned" in caplog.text
    assert caplog.records[0].fit_reason == "unsigned"  # type: ignore[attr-defined]


def test_log_lines_are_bounded_under_a_flood(caplog: pytest.LogCaptureFixture) -> None:
    codec = HeaderCodec(SECRET)
    with caplog.at_level(logging.WARNING, logger="stoic.fit"):
        for _ in range(500):
            assert codec.read("v1.e30.forged", service="ratings") is None
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
    signed = codec.verify(value, service=None)
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
        codec.verify(changed, service=None)


_TOKENS = st.text(min_size=1, max_size=20).filter(str.isprintable)


@pytest.mark.filterwarnings("ignore::stoic.fit.FitWarning")  # percents below 1 warn, by design
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
    assert codec.verify(codec.sign([scenario]), service=None).scenarios == (scenario,)


# -- audience ----------------------------------------------------------------------------------


def test_a_header_reaches_only_the_services_in_its_audience() -> None:
    clock = Clock()
    codec = HeaderCodec(SECRET, clock=clock)
    value = codec.sign([Scenario("a", "x")], audience=["edge", "ratings-*"])
    assert codec.verify(value, service="edge").audience == ("edge", "ratings-*")
    assert codec.verify(value, service="ratings-eu").scenarios  # a glob
    assert codec.verify(value, service="Ratings-EU").scenarios  # service names compare case-insensitively
    with pytest.raises(InvalidHeader) as info:
        codec.verify(value, service="search")
    assert info.value.reason == "wrong-audience"
    assert str(info.value) == "wrong-audience: signed for edge, ratings-*, not search"
    assert codec.verify(value, service=None).audience == ("edge", "ratings-*")  # inspect, not check
    everyone = codec.sign([Scenario("a", "x")], audience="*")
    assert codec.verify(everyone, service="anything").scenarios


def test_a_header_without_audience_is_refused_unless_the_receiver_allows_it() -> None:
    codec = HeaderCodec(SECRET, clock=Clock())
    bare = codec.sign([Scenario("a", "x")])
    assert codec.verify(bare, service=None).audience is None
    with pytest.raises(InvalidHeader) as info:
        codec.verify(bare, service="edge")
    assert info.value.reason == "no-audience"
    assert codec.verify(bare, service="edge", allow_no_audience=True).scenarios
    # the codec's own audience is used when sign() is given none
    defaulted = HeaderCodec(SECRET, audience=["edge"], clock=Clock()).sign([Scenario("a", "x")])
    assert codec.verify(defaulted, service="edge").audience == ("edge",)


def test_a_forged_audience_is_refused_and_an_incoming_plan_ignores_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    codec = HeaderCodec(SECRET, clock=clock)
    incoming = IncomingPlan(codec, None, "x-request-id", "x-user-id", "x-device-type", service="ratings")
    for_search = codec.sign([Scenario("a", "*")], audience="search")
    widened = for_search.split(".")
    body = json.loads(base64.urlsafe_b64decode(widened[1] + "=" * (-len(widened[1]) % 4)))
    body["aud"] = ["*"]
    tampered = f"v1.{_b64(json.dumps(body).encode())}.{widened[2]}"
    with caplog.at_level(logging.WARNING, logger="stoic.fit"):
        assert incoming.plan({"x-stoic-fit": for_search}.get).scenarios == ()
        assert incoming.plan({"x-stoic-fit": tampered}.get).scenarios == ()
        assert incoming.plan({"x-stoic-fit": codec.sign([Scenario("a", "*")])}.get).scenarios == ()
    reasons = [getattr(record, "fit_reason", None) for record in caplog.records]
    assert reasons == ["wrong-audience", "bad-signature", "no-audience"]
    lenient = IncomingPlan(
        codec, None, "x-request-id", "x-user-id", "x-device-type", service="ratings", allow_no_audience=True
    )
    assert lenient.plan({"x-stoic-fit": codec.sign([Scenario("a", "*")])}.get).scenarios != ()
    assert lenient.plan({"x-stoic-fit": for_search}.get).scenarios == ()  # a named audience still counts


def test_forwarding_never_widens_the_audience() -> None:
    clock = Clock()
    codec = HeaderCodec(SECRET, clock=clock, audience="*")
    incoming = codec.sign([Scenario("a", "x")], audience=["edge", "ratings"])
    plan = codec.verify(incoming, service="edge").plan(RequestIdentity("req-1"))
    forwarded = codec.sign_plan(plan)
    assert forwarded is not None
    assert codec.verify(forwarded, service="ratings").audience == ("edge", "ratings")
    local = FailurePlan([Scenario("b", "x")], RequestIdentity("req-2"), clock=clock)  # e.g. a catalog's
    from_local = codec.sign_plan(local)
    assert from_local is not None and codec.verify(from_local, service="search").audience == ("*",)


@pytest.mark.parametrize(
    ("audience", "words"),
    [
        ([], "audience: must name at least one service ('*' for every service)"),
        ("edge service", "audience: each entry must be a service name or glob"),
        (["edge", 7], "audience: each entry must be a service name or glob"),
        (5, "audience: must be a service name or a list of them, got int"),
        ([f"s{i}" for i in range(65)], "audience: must name at most 64 services"),
    ],
)
def test_audience_errors_name_the_field(audience: object, words: str) -> None:
    codec = HeaderCodec(SECRET)
    with pytest.raises(InvalidScenario) as info:
        codec.sign([Scenario("a", "x")], audience=audience)  # type: ignore[arg-type]
    assert info.value.field == "audience" and words in str(info.value)
    with pytest.raises(ValueError, match="audience: "):
        HeaderCodec(SECRET, audience=audience)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"service: must be this service's name"):
        codec.verify(codec.sign([Scenario("a", "x")], audience="*"), service="two words")


# -- malformed payloads --------------------------------------------------------------------------

NOW = 1_800_000_000.0
_OK = {"iat": NOW, "exp": NOW + 60, "aud": ["ratings"]}


def _with(**fields: object) -> bytes:
    return json.dumps({**_OK, "s": [], **fields}).encode()


def _scenario(**fields: object) -> bytes:
    return _with(s=[{"n": "a", "d": ["x"], "k": "error", **fields}])


_MALFORMED = {
    "huge-iat": (_with(iat=10**400), "malformed"),
    "huge-exp": (_with(exp=10**400), "malformed"),
    "negative-huge-iat": (_with(iat=-(10**400)), "malformed"),
    "float-overflow-iat": (b'{"iat": 1e400, "exp": 1800000060, "s": []}', "malformed"),
    "nan-iat": (_with(iat=float("nan")), "malformed"),
    "text-iat": (_with(iat="now"), "malformed"),
    "too-many-digits": (b'{"iat": ' + b"1" * 5000 + b', "exp": 1, "s": []}', "malformed"),
    "huge-percent": (_scenario(p=10**400), "invalid-scenario"),
    "huge-delay": (_scenario(k="delay", t=10**400), "invalid-scenario"),
    "huge-expiry": (_scenario(x=10**400), "invalid-scenario"),
    "nan-percent": (_scenario(p=float("nan")), "invalid-scenario"),
    "infinite-percent": (_scenario(p=float("inf")), "invalid-scenario"),
    "list-kind": (_scenario(k=["error"]), "invalid-scenario"),
    "object-dependencies": (_scenario(d={"x": 1}), "invalid-scenario"),
    "number-name": (_scenario(n=5), "invalid-scenario"),
    "nested-users": (_scenario(u=[["u1"]]), "invalid-scenario"),
    "scenario-not-object": (_with(s=[5]), "invalid-scenario"),
    "scenarios-not-list": (_with(s={"n": "a"}), "malformed"),
    "number-rid": (_with(rid=5), "invalid-scenario"),
    "list-uid": (_with(rid="r", uid=["u"]), "invalid-scenario"),
    "number-audience": (_with(aud=5), "malformed"),
    "empty-audience": (_with(aud=[]), "malformed"),
    "deep-nesting": (b'{"iat": 1800000000, "exp": 1800000060, "s": ' + b"[" * 3000 + b"]" * 3000 + b"}",
                     "malformed"),
    "deep-object": (b'{"x": ' + b'{"x": ' * 3000 + b"1" + b"}" * 3001, "malformed"),
    "json-string": (b'"text"', "malformed"),
    "json-number": (b"5", "malformed"),
    "json-null": (b"null", "malformed"),
    "json-list": (b"[]", "malformed"),
    "not-utf8": (b"\xff\xfe\xfa{", "malformed"),
    "empty": (b"", "malformed"),
}


@pytest.mark.parametrize("case", sorted(_MALFORMED))
def test_every_malformed_payload_is_an_invalid_header(case: str) -> None:
    payload, reason = _MALFORMED[case]
    codec = HeaderCodec(SECRET, clock=Clock(NOW), max_bytes=65536)
    with pytest.raises(InvalidHeader) as info:
        codec.verify(forge_raw(payload), service="ratings")
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "unsigned"),
        ("v1", "unsigned"),
        ("v1.e30.abc.def", "unsigned"),
        ("v1.e30." + "A" * 42, "bad-signature"),
        ("v1.e30." + "A" * 44, "bad-signature"),
        ("v1.e30." + "é" * 43, "bad-signature"),
        (sign_text("v1.!!!!"), "malformed"),  # not base64url, but signed
        (sign_text("v1.A"), "malformed"),  # a base64 length no encoder produces
        (sign_text("v1.ñ"), "malformed"),
    ],
)
def test_bad_base64_and_wrong_lengths_are_invalid_headers(value: str, reason: str) -> None:
    assert _reason_for(value) == reason


def _reason_for(value: str) -> str:
    with pytest.raises(InvalidHeader) as info:
        HeaderCodec(SECRET, clock=Clock(NOW)).verify(value, service="ratings")
    return info.value.reason


_HUGE = st.sampled_from([10**400, -(10**400), 2**1023 * 2, 10**4000])
_SCALARS = (
    st.none() | st.booleans() | st.integers() | _HUGE | st.floats() | st.text(max_size=20)
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
_STAMP = st.sampled_from([NOW, NOW + 30, NOW - 30, NOW + 10_000]) | _JSON
_SCENARIO_ITEM = st.dictionaries(
    st.sampled_from(["n", "d", "k", "t", "m", "p", "u", "v", "x", "z"]),
    st.sampled_from(["a", ["x"], "error", "delay", 0.5, 50, ["u1"], ["tv"], NOW + 60]) | _JSON,
    max_size=9,
)
_BODY = st.fixed_dictionaries(
    {},
    optional={
        "iat": _STAMP,
        "exp": _STAMP,
        "s": st.lists(_SCENARIO_ITEM | _JSON, max_size=3) | _JSON,
        "rid": st.just("req-1") | _JSON,
        "uid": st.just("u1") | _JSON,
        "dev": st.just("tv") | _JSON,
        "aud": st.sampled_from([["ratings"], ["*"], ["search"], "ratings"]) | _JSON,
    },
)


def _receivers() -> list[tuple[HeaderCodec, IncomingPlan]]:
    codec = HeaderCodec(SECRET, clock=Clock(NOW), max_bytes=65536)
    return [
        (codec, IncomingPlan(codec, None, "x-request-id", "x-user-id", "x-device-type", service=service,
                             allow_no_audience=lenient))
        for service, lenient in (("ratings", False), ("ratings", True))
    ]


def _only_invalid_header(value: str) -> None:
    for codec, incoming in _receivers():
        for service in (None, "ratings"):
            with contextlib.suppress(InvalidHeader):
                codec.verify(value, service=service)
        codec.read(value, service="ratings")  # logs and ignores: never raises
        incoming.plan({"x-stoic-fit": value}.get)  # what both middlewares run: never raises


@pytest.mark.filterwarnings("ignore::stoic.fit.FitWarning")
@settings(max_examples=300, deadline=None)
@given(body=_BODY | _JSON)
def test_any_json_payload_signed_with_the_right_key_is_read_or_refused(body: object) -> None:
    try:
        payload = json.dumps(body).encode()
    except ValueError:  # an integer json itself cannot write
        return
    _only_invalid_header(forge_raw(payload))


@settings(max_examples=300, deadline=None)
@given(
    value=st.text(max_size=200)
    | st.builds(
        lambda version, payload, signature: f"{version}.{payload}.{signature}",
        st.sampled_from(["v1", "v2", "", "V1"]),
        st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/", max_size=80),
        st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=50),
    )
    | st.binary(max_size=120).map(lambda raw: sign_text("v1." + _b64(raw)))
)
def test_any_header_string_is_read_or_refused(value: str) -> None:
    _only_invalid_header(value)


@pytest.mark.parametrize(
    ("secrets", "words"),
    [
        (None, "secrets: must be a secret (str or bytes of at least 16 bytes) or a list of them, got None"),
        (42, "secrets: must be a secret (str or bytes of at least 16 bytes) or a list of them, got int"),
        ({"key": SECRET}, "or a list of them, got dict"),
        ([None], "secrets[0]: must be str or bytes, got NoneType"),
    ],
)
def test_a_missing_secret_names_the_field(secrets: object, words: str) -> None:
    with pytest.raises(ValueError) as info:
        HeaderCodec(secrets)  # type: ignore[arg-type]
    assert words in str(info.value)
