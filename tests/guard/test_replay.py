"""Outage replay: an event history recorded from a real dependency, played against proposed settings."""

from __future__ import annotations

import asyncio
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stoic.guard import (
    BreakerPolicy,
    ConfigError,
    Dependency,
    EventRecorder,
    Fallback,
    ManualClock,
    Registry,
    VirtualTimeLoop,
)
from stoic.guard._replay import read_events, replay


def record_outage(clock: ManualClock) -> str:
    """60 s at 50 calls/s through a dependency that answers in 20 ms, except from 20 s to 40 s,
    when it fails every call in 5 ms. Returns the JSON lines its recorder wrote."""
    out = io.StringIO()
    dep = Dependency("ratings", timeout=1.0, clock=clock, registry=Registry(),
                     fallbacks=[Fallback.value(None)])
    dep.listen(EventRecorder(out, clock=lambda: clock.now_ns() / 1e9))
    loop = VirtualTimeLoop(clock)

    async def call(down: bool) -> None:
        async def ratings() -> str:
            await asyncio.sleep(0.005 if down else 0.02)
            if down:
                raise ConnectionError("503")
            return "ok"

        await dep.aexecute(ratings)

    async def traffic() -> None:
        tasks = []
        for i in range(3000):
            tasks.append(asyncio.ensure_future(call(1000 <= i < 2000)))
            await asyncio.sleep(0.02)
        await asyncio.gather(*tasks)

    try:
        loop.run_until_complete(traffic())
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    return out.getvalue()


@pytest.fixture
def history(tmp_path: Path, clock: ManualClock) -> Path:
    path = tmp_path / "outage.jsonl"
    path.write_text(record_outage(clock), encoding="utf-8")
    return path


def simulate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stoic", "simulate", *args], capture_output=True, text=True,
                          timeout=120, check=False)


def rows(out: str) -> dict[str, list[int]]:
    number = r"\s+([\d,]+)"
    found = re.findall(rf"^  (\S.*?){number * 5}\s+(\d+)$", out, re.M)
    return {label: [int(n.replace(",", "")) for n in numbers] for label, *numbers in found}


def test_the_recorder_writes_one_json_line_per_event(clock: ManualClock) -> None:
    lines = record_outage(clock).splitlines()
    first = json.loads(lines[0])
    assert first == {"at": pytest.approx(0.02), "dependency": "ratings", "outcome": "success",
                     "latency": pytest.approx(0.02), "source": "primary"}
    outcomes = {json.loads(line)["outcome"] for line in lines}
    assert {"success", "failure", "short_circuited", "state_change", "fallback_success"} <= outcomes
    assert len(read_events(lines)) == 3000  # every call, whatever answered it


def test_replay_shows_what_each_configuration_would_have_done(history: Path) -> None:
    done = simulate("--replay", str(history), "--config", "error_rate=0.99,min_calls=100000",
                    "--config", "consecutive_failures=5,open_for=1,open_for_max=8")
    assert done.returncode == 0, done.stderr
    assert "replaying 3,000 calls to ratings over 60.0 s" in done.stdout
    table = rows(done.stdout)
    never = table["error_rate=0.99,min_calls=100000"]
    # a breaker that never opens: the 1,000 outage calls all reach the dependency and fail, and so
    # do the few the recording shed just after it (replayed as the last recorded answer, a failure)
    assert never[2:] == [0, 0, 0, 0]
    assert never[0] + never[1] == 3000 and 1000 <= never[1] <= 1010
    defaults = table["defaults"]
    # the 10 s window held 500 successes: half of it had to fail (about 5 s) before it opened
    assert 200 < defaults[1] < 300 and defaults[2] > 700 and defaults[5] >= 1
    assert defaults[0] + defaults[1] + defaults[2] == 3000
    quick = table["consecutive_failures=5,open_for=1,open_for_max=8"]
    assert quick[1] < defaults[1] and quick[5] >= 3  # opened after 5 failures, re-opened as trials failed
    assert quick[0] + quick[1] + quick[2] == 3000


def test_replay_with_a_small_bulkhead_sheds_the_excess() -> None:
    line = json.dumps({"at": 0.0, "dependency": "d", "outcome": "success", "latency": 1.0})
    calls = read_events([line] * 5)
    done = replay(calls, "two at a time", BreakerPolicy(), None, 5.0)
    assert (done.answered, done.shed) == (5, 0)
    from stoic.guard import SemaphoreBulkhead

    done = replay(calls, "two at a time", BreakerPolicy(), SemaphoreBulkhead(max_concurrent=2), 5.0)
    assert (done.answered, done.rejected) == (2, 3)


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", "outage.jsonl:1: not a JSON object"),
    ("[1, 2]", "outage.jsonl:1: must be a JSON object, got list"),
    ('{"outcome": "exploded", "at": 1, "dependency": "d"}', "outage.jsonl:1: outcome must be one of success"),
    ('{"outcome": "success", "at": -1, "dependency": "d"}', "outage.jsonl:1: at must be a number >= 0"),
    ('{"outcome": "success", "at": 1, "latency": "fast", "dependency": "d"}',
     "outage.jsonl:1: latency must be a number >= 0 (seconds), got 'fast'"),
    ('{"outcome": "success", "at": 1}', "outage.jsonl:1: dependency must be a non-empty string, got None"),
])
def test_a_bad_history_names_the_line_and_the_field(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        read_events([line], "outage.jsonl")
    path = tmp_path / "outage.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    done = simulate("--replay", str(path))
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_bad_flags_are_named(history: Path, tmp_path: Path) -> None:
    done = simulate("--replay", str(history), "--config", "error_rate=0.5,colour=blue")
    assert done.returncode == 2 and "--config: unknown key 'colour'; allowed: window, buckets" in done.stderr
    done = simulate("--replay", str(history), "--config", "error_rate=2")
    assert done.returncode == 2 and "BreakerPolicy.error_rate must be in (0.0, 1.0], got 2" in done.stderr
    done = simulate("--replay", str(tmp_path / "missing.jsonl"))
    assert done.returncode == 2 and "cannot read" in done.stderr
    done = simulate("--replay", str(history), "--dependency", "search")
    assert done.returncode == 2
    assert "--dependency 'search' is not in" in done.stderr and "ratings" in done.stderr
    done = simulate("--config", "error_rate=0.5")
    assert done.returncode == 2 and "--config and --dependency go with --replay FILE" in done.stderr
    two = tmp_path / "two.jsonl"
    two.write_text("\n".join(json.dumps({"at": i, "dependency": name, "outcome": "success", "latency": 0.01})
                             for i, name in enumerate(["a", "b"])), encoding="utf-8")
    done = simulate("--replay", str(two))
    assert done.returncode == 2
    assert "records 2 dependencies; choose one with --dependency (a, b)" in done.stderr
