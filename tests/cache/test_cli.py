"""`stoic cache serve | stats | warm` as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from stoic.cache import ZonalCache
from stoic.cli import main
from stoic.guard import Registry


@pytest.fixture
def served() -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """`stoic cache serve` in a real child process; yields it and its connect flags."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stoic",
            "cache",
            "serve",
            "--backend",
            "memcached",
            "--zones",
            "2",
            "--per-zone",
            "2",
            "--for",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        lines = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
            if line.startswith("connect with:"):
                break
        assert lines and lines[-1].startswith("connect with:"), (
            lines,
            process.stderr.read() if process.poll() else "",
        )
        assert lines[0].startswith("zone-a: 127.0.0.1:") and lines[1].startswith("zone-b: 127.0.0.1:")
        yield process, lines[-1].removeprefix("connect with: ").split()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def test_serve_stats_and_warm(
    served: tuple[subprocess.Popen[str], list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    process, flags = served
    assert flags[:2] == ["--backend", "memcached"]
    zones = dict(flag.split("=", 1) for flag in flags[3::2])
    cache = ZonalCache({z: a.split(",") for z, a in zones.items()}, "zone-a", registry=Registry())
    try:
        for i in range(120):
            cache.set(f"k{i}", i, policy="all").wait(2.0)
        # make zone-b cold: empty its servers by hand
        for server in cache.zone("zone-b").servers.values():
            for batch in server.node.dump(500):
                for key, _ in batch:
                    server.node.delete(key)
        assert cache.get("k5", zone="zone-b") is None

        assert main(["cache", "stats", *flags, "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert len(rows) == 4 and all(r["up"] for r in rows)
        assert sum(r["items"] for r in rows if r["zone"] == "zone-a") == 120
        assert sum(r["items"] for r in rows if r["zone"] == "zone-b") == 0

        assert (
            main(["cache", "warm", *flags, "--source", "zone-a", "--target", "zone-b", "--batch", "25"]) == 0
        )
        out, err = capsys.readouterr()
        assert "warming zone-b from zone-a: 120/120 keys (100%)" in err  # the progress line
        assert "120 copied, 0 skipped, 0 failed of 120 keys" in out
        assert all(cache.get(f"k{i}", zone="zone-b") == i for i in range(120))

        assert main(["cache", "stats", *flags]) == 0
        table = capsys.readouterr().out.splitlines()
        assert table[0].split() == ["zone", "server", "up", "items", "hits", "misses", "memory"]
        assert len(table) == 5
    finally:
        cache.close()

    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0
    assert process.stdout is not None and "stopped" in process.stdout.read()
    for address in (a for addrs in zones.values() for a in addrs.split(",")):  # servers are gone
        host, port = address.split(":")
        with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=1):
            pass

    # a dead zone makes stats say so and exit 1
    assert main(["cache", "stats", *flags]) == 1
    assert " no " in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cache", "serve", "--zones", "0"], "--zones must be an integer in 1..26"),
        (["cache", "serve", "--per-zone", "x"], "--per-zone must be an integer in 1..64"),
        (["cache", "serve", "--for", "-1"], "--for must be a number of seconds >= 0"),
        (["cache", "serve", "--backend", "mongo"], "invalid choice: 'mongo'"),
        (["cache", "stats", "--zone", "a"], "--zone must be NAME=HOST:PORT"),
        (["cache", "stats", "--zone", "a=127.0.0.1"], "--zone a must be 'host:port'"),
        (["cache", "warm", "--zone", "a=127.0.0.1:1", "--source", "a"], "--target"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_warm_names_unknown_zones(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["cache", "warm", "--zone", "a=127.0.0.1:1", "--source", "a", "--target", "b"])
    assert code == 2
    assert "local_zone must be one of ['a'], got 'b'" in capsys.readouterr().err
