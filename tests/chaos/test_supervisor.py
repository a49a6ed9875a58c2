"""The Supervisor starts, watches, replaces and stops real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from _chaos_support import FAMILY, pid_gone, read_pids, wait_until

from stoic.chaos import Fleet, Supervisor


def test_start_waits_until_the_http_health_check_passes(supervisor: Supervisor, http_argv: list[str]) -> None:
    inst = supervisor.start(
        http_argv,
        app="api",
        region="eu",
        zone="eu-1a",
        port=0,
        health_url="http://127.0.0.1:{port}/health",
        wait=True,
    )
    assert inst.status == "running" and inst.alive and inst.healthy
    assert inst.port and inst.health_url == f"http://127.0.0.1:{inst.port}/health"
    with urllib.request.urlopen(f"http://127.0.0.1:{inst.port}/", timeout=2) as resp:
        assert resp.read() == b"ok"
    assert not pid_gone(inst.pid or -1)


def test_kill_replaces_the_instance_after_restart_after(supervisor: Supervisor, http_argv: list[str]) -> None:
    events: list[tuple[str, str]] = []
    supervisor.listen(lambda event, inst: events.append((event, inst.id)))
    inst = supervisor.start(http_argv, app="api", port=0, restart_after=0.3, wait=True)
    first = inst.pid
    assert first is not None
    assert supervisor.kill(inst) is True
    assert inst.status == "dead" and not inst.alive and inst.exit_code == -signal.SIGKILL
    assert pid_gone(first)
    supervisor.wait_healthy(inst, timeout=10)
    assert inst.pid != first and inst.restarts == 1 and inst.healthy
    assert [e for e, _ in events] == ["started", "healthy", "died", "started", "healthy"]


def test_without_restart_after_a_killed_instance_stays_dead(
    supervisor: Supervisor, sleeper_argv: list[str]
) -> None:
    a = supervisor.start(sleeper_argv, app="api", zone="z1", wait=True)
    b = supervisor.start(sleeper_argv, app="api", zone="z2", wait=True)
    supervisor.kill(a)
    time.sleep(0.4)
    assert a.status == "dead" and not a.alive and a.restarts == 0
    assert [m.id for m in supervisor.fleet().alive()] == [b.id]
    assert supervisor.kill(a) is False


def test_crash_is_noticed_and_replaced(supervisor: Supervisor, sleeper_argv: list[str]) -> None:
    inst = supervisor.start(sleeper_argv, app="worker", restart_after=0.1, wait=True)
    first = inst.pid
    assert first is not None
    os.kill(first, signal.SIGTERM)  # from outside, as a crash would
    assert wait_until(lambda: inst.restarts == 1 and inst.alive, timeout=10)
    assert inst.pid != first


def test_stop_is_never_replaced(supervisor: Supervisor, sleeper_argv: list[str]) -> None:
    inst = supervisor.start(sleeper_argv, app="api", restart_after=0.05, wait=True)
    pid = inst.pid or -1
    supervisor.stop(inst, timeout=2)
    time.sleep(0.3)
    assert inst.status == "stopped" and not inst.alive and inst.restarts == 0 and pid_gone(pid)


def test_close_stops_every_child(tmp_path: Path, sleeper_argv: list[str]) -> None:
    with Supervisor() as sup:
        pids = [sup.start(sleeper_argv, app="api", zone=f"z{i}", wait=True).pid or -1 for i in range(3)]
        assert not any(pid_gone(p) for p in pids)
    assert all(pid_gone(p) for p in pids)
    assert all(i.status == "stopped" for i in sup.instances)
    with pytest.raises(RuntimeError, match="closed"):
        sup.start(sleeper_argv, app="api")


def test_children_die_with_the_parent(src_env: dict[str, str]) -> None:
    parent_code = (
        "import sys, time\n"
        "from stoic.chaos import Supervisor\n"
        "sup = Supervisor()\n"
        "i = sup.start([sys.executable, '-c', 'import time\\nfor _ in range(3000): time.sleep(0.1)'],"
        " app='api', wait=True)\n"
        "print(i.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code], stdout=subprocess.PIPE, env={**os.environ, **src_env}, text=True
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert not pid_gone(child)
        parent.kill()  # no chance to clean up: the kernel must take the child down
        parent.wait(timeout=10)
        assert wait_until(lambda: pid_gone(child), timeout=5)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=10)


def test_wait_healthy_reports_an_early_exit_and_a_timeout(supervisor: Supervisor) -> None:
    dead = supervisor.start([sys.executable, "-c", "raise SystemExit(3)"], app="api", zone="z1", port=0)
    with pytest.raises(RuntimeError, match=r"api-z1-1 exited with code 3"):
        supervisor.wait_healthy(dead, timeout=10)
    silent = supervisor.start(
        [sys.executable, "-c", "import time; time.sleep(30)"], app="api", zone="z2", port=0
    )
    with pytest.raises(TimeoutError, match="api-z2-1"):
        supervisor.wait_healthy(silent, timeout=0.5)


def test_bad_input_names_the_field(supervisor: Supervisor, sleeper_argv: list[str]) -> None:
    with pytest.raises(ValueError, match="zone must be a non-empty string"):
        supervisor.start(sleeper_argv, app="api", zone="")
    with pytest.raises(ValueError, match=r"port must be in 0\.\.65535"):
        supervisor.start(sleeper_argv, app="api", port=70000)
    with pytest.raises(ValueError, match="restart_after must be >= 0"):
        supervisor.start(sleeper_argv, app="api", restart_after=-1)
    with pytest.raises(ValueError, match="argv must be"):
        supervisor.start([], app="api")
    supervisor.start(sleeper_argv, app="api", name="one")
    with pytest.raises(ValueError, match="'one' already exists"):
        supervisor.start(sleeper_argv, app="api", name="one")


def test_fleet_groups_by_app_region_and_zone(supervisor: Supervisor, sleeper_argv: list[str]) -> None:
    for app, region, zone in [
        ("api", "eu", "eu-a"),
        ("api", "eu", "eu-b"),
        ("api", "us", "us-a"),
        ("web", "us", "us-a"),
    ]:
        supervisor.start(sleeper_argv, app=app, region=region, zone=zone, env={"WHERE": "{zone}"})
    fleet = supervisor.fleet()
    assert (
        fleet.apps == ["api", "web"]
        and fleet.regions == ["eu", "us"]
        and fleet.zones == ["eu-a", "eu-b", "us-a"]
    )
    assert {k: len(v) for k, v in fleet.group("app").items()} == {"api": 3, "web": 1}
    assert {k: len(v) for k, v in fleet.group("app+region").items()} == {
        "api/eu": 2,
        "api/us": 1,
        "web/us": 1,
    }
    assert list(fleet.group("app+zone")) == ["api/eu-a", "api/eu-b", "api/us-a", "web/us-a"]
    assert len(fleet.select(zone="us-a")) == 2 and len(fleet.by_region()["eu"]) == 2
    assert fleet.select(app="api", zone="eu-b").instances[0].env == {"WHERE": "eu-b"}  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="grouping must be one of app, app\\+region, app\\+zone"):
        fleet.group("rack")
    assert isinstance(fleet.alive(), Fleet)


def test_close_sends_sigterm_first_and_takes_the_whole_family(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    sup = Supervisor()
    inst = sup.start([sys.executable, "-c", FAMILY], app="api", env={"FAMILY_PIDS": str(pids_file)})
    pids = read_pids(pids_file)
    assert len(pids) == 4 and not any(pid_gone(p) for p in pids)
    sup.close(timeout=5)
    # the child was asked (SIGTERM) and had its 0.3 s to finish: it exited cleanly, not by SIGKILL
    assert inst.exit_code == 0 and inst.status == "stopped"
    # sh, its sleep, and the worker that ignores SIGTERM went with it
    assert wait_until(lambda: all(pid_gone(p) for p in pids), timeout=10), [
        p for p in pids if not pid_gone(p)
    ]


def test_a_dead_childs_family_is_taken_down(supervisor: Supervisor, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    supervisor.start([sys.executable, "-c", FAMILY], app="api", env={"FAMILY_PIDS": str(pids_file)})
    child, *family = read_pids(pids_file)
    os.kill(child, signal.SIGKILL)  # the child alone, from outside: its group outlives it
    assert wait_until(lambda: all(pid_gone(p) for p in family), timeout=10)


def test_no_grandchild_outlives_a_killed_runner(tmp_path: Path, src_env: dict[str, str]) -> None:
    pids_file = tmp_path / "pids"
    runner_code = (
        "import sys, time\n"
        "from stoic.chaos import Supervisor\n"
        "sup = Supervisor()\n"
        f"env = {{'FAMILY_PIDS': {str(pids_file)!r}}}\n"
        f"sup.start([sys.executable, '-c', {FAMILY!r}], app='api', env=env)\n"
        "time.sleep(60)\n"
    )
    runner = subprocess.Popen([sys.executable, "-c", runner_code], env={**os.environ, **src_env})
    try:
        pids = read_pids(pids_file, timeout=20)
        assert not any(pid_gone(p) for p in pids)
        runner.send_signal(signal.SIGKILL)  # kill -9: no chance to clean up
        runner.wait(timeout=10)
        assert wait_until(lambda: all(pid_gone(p) for p in pids), timeout=10), [
            p for p in pids if not pid_gone(p)
        ]
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(timeout=10)
