"""`stoic fit catalog`: the fleet-wide catalogue from the command line, on a real board file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from stoic.chaos import KillSwitch
from stoic.fit import Catalog, HeaderCodec, Scenario


def run(*args: str, board: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "STOIC_FAULT_BOARD"}
    if board is not None:
        env["STOIC_FAULT_BOARD"] = str(board)
    return subprocess.run(
        [sys.executable, "-m", "stoic.fit", "catalog", *args], capture_output=True, text=True, env=env,
        timeout=60,
    )


def test_add_list_halt_resume_remove(tmp_path: Path) -> None:
    board = tmp_path / "chaos" / "faults.json"
    added = run("--board", str(board), "add", "no-recs", "recs-*", "--kind", "status", "--status", "503",
                "--retry-after", "2", "--percent", "5")
    assert added.returncode == 0, added.stderr
    follower = Catalog(board=board, registry=None)
    assert follower.get("no-recs") == Scenario(
        "no-recs", "recs-*", "status", status=503, retry_after=2, percent=5,
        expires_at=follower.get("no-recs").expires_at,  # type: ignore[union-attr]
    )
    stand_in = run("add", "empty-recs", "recs", "--kind", "result", "--result", '{"rows": []}', board=board)
    assert stand_in.returncode == 0, stand_in.stderr

    assert run("halt", "--reason", "game day over", board=board).returncode == 0
    assert KillSwitch(board.parent / "kill-switch").reason() == "game day over"  # the chaos switch itself
    listed = json.loads(run("list", board=board).stdout)
    assert listed["halted"] is True
    assert [s["name"] for s in listed["scenarios"]] == ["no-recs", "empty-recs"]
    assert listed["scenarios"][1]["result"] == {"rows": []}
    assert run("resume", board=board).returncode == 0
    assert json.loads(run("list", board=board).stdout)["halted"] is False

    assert run("remove", "no-recs", board=board).returncode == 0
    missing = run("remove", "no-recs", board=board)
    assert missing.returncode == 1 and "name: no scenario called 'no-recs'" in missing.stderr
    assert run("clear", board=board).returncode == 0
    assert Catalog(board=board, registry=None).active() == ()


def test_bad_input_is_refused_naming_the_field(tmp_path: Path) -> None:
    board = tmp_path / "faults.json"
    cases = [
        (("add", "s", "ratings", "--kind", "status", "--status", "302"),
         "status: must be an HTTP error status, an integer in [400, 599]; got 302"),
        (("add", "s", "ratings", "--kind", "result", "--result", "{bad"), "result: --result must be JSON"),
        (("add", "s", "ratings", "--kind", "result"), "result: is required when kind is 'result'"),
        (("add", "s", "ratings", "--retry-after", "3"), "retry_after: is for kind 'status' only"),
        (("add", "s", "ratings", "--percent", "0"), "percent: must be in (0, 100], got 0.0"),
    ]
    for args, message in cases:
        refused = run(*args, board=board)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
        assert refused.stdout == ""
    assert not board.exists()
    unset = run("list")
    assert unset.returncode == 2
    assert "board: give the fault board's path, or set the STOIC_FAULT_BOARD" in unset.stderr


def test_sign_carries_the_new_kinds() -> None:
    secret = "cli-kinds-secret-0123456789"
    env = {**os.environ, "STOIC_FIT_SECRET": secret}
    signed = subprocess.run(
        [sys.executable, "-m", "stoic.fit", "sign", "prices", "--kind", "status", "--status", "429",
         "--retry-after", "5", "--audience", "edge"], capture_output=True, text=True, env=env, timeout=60,
    )
    assert signed.returncode == 0, signed.stderr
    (scenario,) = HeaderCodec(secret).verify(signed.stdout.strip(), service="edge").scenarios
    assert (scenario.kind, scenario.status, scenario.retry_after) == ("status", 429, 5.0)
