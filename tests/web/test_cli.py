"""`stoic web` serves the dashboard; bad flags get a clear message."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from .conftest import TOKEN, free_port, wait_healthy


def _stoic(*args: str) -> list[str]:
    return [sys.executable, "-m", "stoic", *args]


def test_stoic_web_serves_this_process() -> None:
    port = free_port()
    env = {**os.environ, "STOIC_WEB_TOKEN": TOKEN}
    proc = subprocess.Popen(
        _stoic("web", "--port", str(port), "--interval", "0.5", "--allow-host", "stoic.internal"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        assert "EventSource" in httpx.get(f"{url}/static/dashboard.js").text
        assert "# TYPE stoic_breaker_state gauge" in httpx.get(f"{url}/metrics").text
        body = {"name": "cli-check", "dependencies": ["anything"]}
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.post(f"{url}/api/fit/scenarios", json=body, headers=auth).status_code == 201
        assert [s["name"] for s in httpx.get(f"{url}/api/fit/scenarios").json()] == ["cli-check"]
        assert httpx.post(f"{url}/api/fit/scenarios", json=body).status_code == 401
        # Loopback names stay allowed next to the ones added; any other Host is refused.
        for host, status in [("stoic.internal", 200), ("localhost", 200), ("evil.example", 400)]:
            assert httpx.get(f"{url}/api/state", headers={"Host": host}).status_code == status, host
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate(timeout=5)
    assert f"http://127.0.0.1:{port}/" in err.decode()
    assert TOKEN not in err.decode(), "a token the operator supplied is never printed"
    assert "STOIC_WEB_TOKEN" in err.decode(), "where the token came from is"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--port", "0"], "--port: must be an integer in [1, 65535], got '0'"),
        (["--port", "http"], "--port: must be an integer in [1, 65535]"),
        (["--interval", "0"], "--interval: must be a number of seconds in [0.05, 60]"),
        (["--token", "short"], "--token: must be at least 8 characters"),
        (["--allow-host", "http://x"], "--allow-host: must be a host name"),
        (["--merge", "ftp://x/hystrix.stream"], "--merge: must be an http(s) URL"),
        (["--merge"], "--merge: expected at least one argument"),
        (["--view", "admin"], "--view: invalid choice: 'admin'"),
        (["--max-streams", "0"], "--max-streams: must be an integer in [1, 100000], got '0'"),
        (["--max-connections", "many"], "--max-connections: must be an integer in [1, 1000000], got 'many'"),
        (["--header-timeout", "0"], "--header-timeout: must be a number in [0.1, 300], got '0'"),
        (["--stale-after", "nan"], "--stale-after: must be a number in [0.5, 300], got 'nan'"),
        (["--view", "support", "--token", TOKEN], "--token: the support view takes no token"),
    ],
)
def test_bad_flags_are_named(args: list[str], words: str) -> None:
    done = subprocess.run(_stoic("web", *args), capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert words in done.stderr


@pytest.mark.parametrize("token", ["short", "has a space"])
def test_a_bad_token_in_the_environment_is_one_clean_line(token: str) -> None:
    env = {**os.environ, "STOIC_WEB_TOKEN": token}
    done = subprocess.run(
        _stoic("web", "--port", str(free_port())), env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert lines[0].startswith("stoic web: STOIC_WEB_TOKEN: must be at least 8 characters")
    assert token not in done.stderr, "the secret is never echoed"


def _low_file_limit() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))


def test_more_connections_than_descriptors_is_refused_at_start() -> None:
    done = subprocess.run(
        _stoic("web", "--port", str(free_port()), "--max-connections", "1000"),
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "STOIC_WEB_TOKEN": TOKEN},
        preexec_fn=_low_file_limit,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "stoic web: --max-connections: must be at most 320 here (the open-file limit less 192 kept "
        "for the server itself), got 1000"
    )
