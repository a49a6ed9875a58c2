"""`stoic web --guard-config FILE` serves the dependencies a guard TOML declares; a bad file is
refused before the server starts, naming the key."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .conftest import TOKEN, free_port, wait_healthy

GUARD_TOML = """
[dependencies.ratings]
timeout = 0.5
owner = "catalogue"

[dependencies.ratings.breaker]
error_rate = 0.25

[dependencies.ratings.bulkhead]
kind = "adaptive"
algorithm = "aimd"
initial = 12

[dependencies.search]
timeout = 0.3
"""


def _stoic(*args: str) -> list[str]:
    return [sys.executable, "-m", "stoic", *args]


def test_the_dashboard_serves_the_dependencies_of_the_file(tmp_path: Path) -> None:
    config = tmp_path / "guard.toml"
    config.write_text(GUARD_TOML, encoding="utf-8")
    port = free_port()
    # an environment override applies as it does for stoic.guard.loader.load(env=...)
    env = {**os.environ, "STOIC_WEB_TOKEN": TOKEN, "STOIC_GUARD__SEARCH__TIMEOUT": "0.8"}
    proc = subprocess.Popen(_stoic("web", "--port", str(port), "--guard-config", str(config)),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        ratings = httpx.get(f"{url}/api/dependencies/ratings").json()
        assert ratings["owner"] == "catalogue" and ratings["timeout"] == 0.5
        assert ratings["limit"] == {"algorithm": "aimd", "current": 12, "min": 1, "max": 200}
        assert httpx.get(f"{url}/api/dependencies/search").json()["timeout"] == 0.8
        assert 'stoic_dependency_max_concurrent{dependency="ratings"' in httpx.get(f"{url}/metrics").text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=5)


@pytest.mark.parametrize(("text", "words"), [
    ("[dependencies.ratings.breaker]\nerror_rate = 2.0\n",
     "stoic web: --guard-config: dependencies.ratings.breaker: BreakerPolicy.error_rate must be in "
     "(0.0, 1.0], got 2.0"),
    ("[dependencies.ratings]\ntimeuot = 0.5\n",
     "stoic web: --guard-config: dependencies.ratings.timeuot: unknown setting; allowed: timeout, owner"),
    ("[dependencies.ratings.bulkhead]\nkind = \"elastic\"\n", "dependencies.ratings.bulkhead.kind"),
    ("[services]\n", "unknown table 'services'; the file has one table, [dependencies]"),
    ("[dependencies.ratings\n", "not valid TOML"),
])
def test_a_bad_file_is_one_line_naming_the_key(tmp_path: Path, text: str, words: str) -> None:
    config = tmp_path / "guard.toml"
    config.write_text(text, encoding="utf-8")
    done = subprocess.run(_stoic("web", "--port", str(free_port()), "--guard-config", str(config)),
                          capture_output=True, text=True, timeout=30,
                          env={**os.environ, "STOIC_WEB_TOKEN": TOKEN})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert words in done.stderr


def test_a_missing_file_and_a_merged_dashboard_are_refused(tmp_path: Path) -> None:
    env = {**os.environ, "STOIC_WEB_TOKEN": TOKEN}
    missing = subprocess.run(_stoic("web", "--guard-config", str(tmp_path / "none.toml")),
                             capture_output=True, text=True, timeout=30, env=env)
    assert missing.returncode == 2
    assert f"stoic web: --guard-config: {tmp_path / 'none.toml'}: cannot be read" in missing.stderr
    config = tmp_path / "guard.toml"
    config.write_text(GUARD_TOML, encoding="utf-8")
    merged = subprocess.run(_stoic("web", "--guard-config", str(config), "--merge",
                                   "http://127.0.0.1:9/hystrix.stream"),
                            capture_output=True, text=True, timeout=30, env=env)
    assert merged.returncode == 2
    assert "stoic web: --guard-config: not with --merge" in merged.stderr
