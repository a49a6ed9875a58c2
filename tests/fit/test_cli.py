from __future__ import annotations

import os
import subprocess
import sys

from stoic.fit import HeaderCodec, Scenario

SECRET = "cli-test-secret-0123456789"


def run(*args: str, secret: str | None = SECRET) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "STOIC_FIT_SECRET"}
    if secret is not None:
        env["STOIC_FIT_SECRET"] = secret
    return subprocess.run(
        [sys.executable, "-m", "stoic.fit", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_sign_makes_a_header_the_services_accept() -> None:
    signed = run("sign", "ratings", "personalisation", "--kind", "delay", "--delay", "0.2",
                 "--device", "tv", "--percent", "10", "--name", "slow-tv", "--request-id", "req-1",
                 "--audience", "edge,ratings-*", "--audience", "search")
    assert signed.returncode == 0, signed.stderr
    header = HeaderCodec(SECRET).verify(signed.stdout.strip(), service="ratings-eu")
    assert header.scenarios == (
        Scenario("slow-tv", ["ratings", "personalisation"], "delay", delay=0.2, devices=["tv"], percent=10),
    )
    assert header.identity is not None and header.identity.request_id == "req-1"
    assert header.audience == ("edge", "ratings-*", "search")
    checked = run("verify", signed.stdout.strip())
    assert checked.returncode == 0 and '"name": "slow-tv"' in checked.stdout
    assert '"audience": [' in checked.stdout


def test_verify_checks_the_audience_as_a_receiver_would() -> None:
    value = run("sign", "ratings", "--audience", "edge").stdout.strip()
    assert run("verify", value, "--service", "edge").returncode == 0
    elsewhere = run("verify", value, "--service", "search")
    assert elsewhere.returncode == 1 and "ignored: wrong-audience" in elsewhere.stderr
    bare = HeaderCodec(SECRET).sign([Scenario("x", "y")])  # no audience
    refused = run("verify", bare, "--service", "edge")
    assert refused.returncode == 1 and "ignored: no-audience" in refused.stderr
    assert run("verify", bare, "--service", "edge", "--allow-no-audience").returncode == 0


def test_sign_refuses_a_lifetime_default_receivers_reject() -> None:
    too_long = run("sign", "ratings", "--audience", "edge", "--ttl", "5000")
    assert too_long.returncode == 2 and too_long.stdout == ""
    assert "--ttl: must be a number of seconds in (0, 3600]" in too_long.stderr
    assert "got 5000" in too_long.stderr
    assert run("sign", "ratings", "--audience", "edge", "--ttl", "0").returncode == 2
    assert run("sign", "ratings", "--audience", "edge", "--ttl", "nan").returncode == 2
    longest = run("sign", "ratings", "--audience", "edge", "--ttl", "3600")
    assert longest.returncode == 0, longest.stderr
    assert HeaderCodec(SECRET).verify(longest.stdout.strip(), service="edge").scenarios  # a default receiver


def test_a_percent_below_one_is_signed_with_a_plain_warning() -> None:
    signed = run("sign", "ratings", "--audience", "edge", "--percent", "0.05")
    assert signed.returncode == 0
    assert signed.stderr.strip() == (
        "stoic fit sign: warning: percent: 0.05 is out of 100, so it fails 0.05 % of requests "
        "(about 1 in 2,000); for 5 % write percent=5"
    )
    assert HeaderCodec(SECRET).verify(signed.stdout.strip(), service="edge").scenarios[0].percent == 0.05


def test_errors_name_the_field() -> None:
    bad_percent = run("sign", "ratings", "--audience", "edge", "--percent", "0")
    assert bad_percent.returncode == 2 and "percent: must be in (0, 100]" in bad_percent.stderr
    no_secret = run("sign", "ratings", "--audience", "edge", secret=None)
    assert no_secret.returncode == 2 and "STOIC_FIT_SECRET is not set" in no_secret.stderr
    no_audience = run("sign", "ratings")
    assert no_audience.returncode == 2 and "--audience" in no_audience.stderr
    bad_audience = run("sign", "ratings", "--audience", "edge service")
    assert bad_audience.returncode == 2
    assert "audience: each entry must be a service name" in bad_audience.stderr
    forged = HeaderCodec("another-secret-entirely").sign([Scenario("x", "y")])
    refused = run("verify", forged)
    assert refused.returncode == 1 and "ignored: bad-signature" in refused.stderr
    rotated = run("verify", forged, secret=f"{SECRET},another-secret-entirely")
    assert rotated.returncode == 0
