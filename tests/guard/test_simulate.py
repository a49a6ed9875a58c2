"""`stoic simulate`: the fallback chain under a failing primary, through the command line."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from stoic.cli import main
from stoic.guard.simulate import Scenario, run


def shares(text: str, title: str) -> dict[str, float]:
    block = text.split(title, 1)[1]
    found = dict(re.findall(r"^\s+(primary|snapshot|generic)\s+[\d,]+\s+([\d.]+)%", block, re.M)[:3])
    return {k: float(v) for k, v in found.items()}


def test_simulate_answers_every_request(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--requests", "5000"]) == 0
    out = capsys.readouterr().out
    failing = shares(out, "failing primary")
    # 40 % primary failures, 85 % snapshot hits: 60 / 34 / 6
    assert failing["primary"] == pytest.approx(60, abs=2)
    assert failing["snapshot"] == pytest.approx(34, abs=2)
    assert failing["generic"] == pytest.approx(6, abs=2)
    failures = [int(n.replace(",", "")) for n in re.findall(r"user-visible failures\s+([\d,]+)", out)]
    assert failures == [0, 0]
    assert shares(out, "healthy primary") == {"primary": 100.0, "snapshot": 0.0, "generic": 0.0}
    assert "5,000 requests" in out


def test_simulate_flags_change_the_mix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--requests", "2000", "--failure-rate", "0.2", "--hit-rate", "0.5",
                 "--seed", "3"]) == 0
    failing = shares(capsys.readouterr().out, "failing primary")
    assert failing["primary"] == pytest.approx(80, abs=3)
    assert failing["snapshot"] == pytest.approx(10, abs=3)
    assert failing["generic"] == pytest.approx(10, abs=3)


def test_a_dead_primary_opens_the_breaker() -> None:
    outcome = run(Scenario(requests=3000, failure_rate=1.0, hit_rate=0.85))
    assert outcome.failures == 0
    assert outcome.answered_by["primary"] == 0
    assert outcome.breaker_opened >= 1
    assert sum(outcome.answered_by.values()) == 3000


@pytest.mark.parametrize(("flags", "message"), [
    (["--requests", "0"], "--requests must be in [1, 10000000], got 0"),
    (["--requests", "many"], "--requests must be a whole number in [1, 10000000], got 'many'"),
    (["--failure-rate", "1.5"], "--failure-rate must be in [0, 1], got 1.5"),
    (["--hit-rate", "high"], "--hit-rate must be a number in [0, 1], got 'high'"),
    (["--speed", "2"], "unrecognized arguments: --speed 2"),
])
def test_bad_flags_are_named(flags: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["simulate", *flags])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_flag_from_the_shell() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from stoic.cli import main; sys.exit(main())",
         "simulate", "--failure-rate", "-0.1"],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "--failure-rate must be in [0, 1], got -0.1" in done.stderr
    assert done.stdout == ""
