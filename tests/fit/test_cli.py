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
                 "--device", "tv", "--percent", "10", "--name", "slow-tv", "--request-id", "req-1")
    assert signed.returncode == 0, signed.stderr
    header = HeaderCodec(SECRET).verify(signed.stdout.strip())
    assert header.scenarios == (
        Scenario("slow-tv", ["ratings", "personalisation"], "delay", delay=0.2, devices=["tv"], percent=10),
    )
    assert header.identity is not None and header.identity.request_id == "req-1"
    checked = run("verify", signed.stdout.strip())
    assert checked.returncode == 0 and '"name": "slow-tv"' in checked.stdout


def test_errors_name_the_field() -> None:
    bad_percent = run("sign", "ratings", "--percent", "0")
    assert bad_percent.returncode == 2 and "percent: must be in (0, 100]" in bad_percent.stderr
    no_secret = run("sign", "ratings", secret=None)
    assert no_secret.returncode == 2 and "STOIC_FIT_SECRET is not set" in no_secret.stderr
    forged = HeaderCodec("another-secret-entirely").sign([Scenario("x", "y")])
    refused = run("verify", forged)
    assert refused.returncode == 1 and "ignored: bad-signature" in refused.stderr
    rotated = run("verify", forged, secret=f"{SECRET},another-secret-entirely")
    assert rotated.returncode == 0
