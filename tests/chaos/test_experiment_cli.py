"""`stoic chaos experiment run | list | show`, `stoic chaos plan` and conformity's "fallback verified",
run as real processes against a real service (WSGI on loopback, FIT middleware, guarded calls)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from stoic.chaos import AuditLog, Experiment, Hypothesis, plan, verified_fallbacks
from stoic.fit import FitWSGIMiddleware, HeaderCodec, Scenario
from stoic.guard import Dependency, DependencyFailed, Fallback, Registry

SECRET = "experiment-cli-secret-0123456789"
SRC = str(Path(__file__).resolve().parents[2] / "src")


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class _Threaded(WSGIServer):
    daemon_threads = True

    def process_request(self, request: Any, client_address: Any) -> None:
        threading.Thread(target=self._serve_one, args=(request, client_address), daemon=True).start()

    def _serve_one(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        finally:
            self.shutdown_request(request)


@pytest.fixture(scope="module")
def shop() -> Iterator[str]:
    """A service with two guarded calls: /recs (a fallback answers) and /pay (none)."""
    registry = Registry()
    recs = Dependency("recs", fallbacks=[Fallback.value(["popular"], name="popular")], registry=registry,
                      owner="recs-team")
    payments = Dependency("payments", registry=registry, owner="payments-team")

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        if path == "/guard":
            body, status = {"dependencies": registry.snapshot()}, "200 OK"
        else:
            dep = recs if path == "/recs" else payments
            try:
                body, status = {"answer": dep.call(lambda: ["row"])}, "200 OK"
            except DependencyFailed as exc:
                body, status = {"error": str(exc)}, "503 Service Unavailable"
        start_response(status, [("content-type", "application/json")])
        return [json.dumps(body).encode()]

    wrapped = FitWSGIMiddleware(app, HeaderCodec(SECRET), service="shop", catalog=None)
    server = make_server("127.0.0.1", 0, wrapped, server_class=_Threaded, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def stoic(*args: str, secret: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    env.pop("STOIC_FIT_SECRET", None)
    if secret:
        env["STOIC_FIT_SECRET"] = SECRET
    return subprocess.run(
        [sys.executable, "-m", "stoic", "chaos", *args], capture_output=True, text=True, env=env, timeout=120
    )


def run_args(state: Path, name: str, dependency: str, url: str, duration: str) -> list[str]:
    return [
        "experiment", "run", "--state-dir", str(state), "--name", name, "--dependency", dependency,
        "--share", "0.2", "--duration", duration, "--hypothesis", "error_rate:0.05",
        "--min-samples", "8", "--abort-alpha", "0.01", "--url", url, "--rate", "40",
        "--audience", "shop", "--actor", "user:ada",
    ]  # fmt: skip


def test_a_breaking_experiment_is_aborted_and_a_holding_one_passes(shop: str, tmp_path: Path) -> None:
    broken = stoic(*run_args(tmp_path, "fail-payments", "payments", f"{shop}/pay", "60"))
    assert broken.returncode == 1, broken.stderr
    assert "experiment fail-payments aborted: error_rate 100.0% vs control 0.0%" in broken.stdout
    held = stoic(*run_args(tmp_path, "fail-recs", "recs", f"{shop}/recs", "3"))
    assert held.returncode == 0, held.stdout + held.stderr
    assert "experiment fail-recs passed: error_rate 0.0% vs control 0.0%" in held.stdout

    listed = stoic("experiment", "list", "--state-dir", str(tmp_path))
    lines = listed.stdout.splitlines()
    assert [line.split()[2:4] for line in lines] == [
        ["fail-payments", "started"],
        ["fail-payments", "ABORTED"],
        ["fail-recs", "started"],
        ["fail-recs", "PASSED"],
    ]
    assert all(line.endswith("[user:ada]") for line in lines)
    shown = stoic("experiment", "show", "fail-recs", "--state-dir", str(tmp_path), "--json")
    outcomes = [json.loads(line)["outcome"] for line in shown.stdout.splitlines()]
    assert outcomes == ["started", "passed"]

    # the plan now says the recs fallback was verified; payments has none and comes last
    planned = stoic("plan", "--guard", f"{shop}/guard", "--state-dir", str(tmp_path))
    assert planned.returncode == 0, planned.stderr
    assert planned.stdout.splitlines()[0].startswith("  1. recs (recs-team, ")
    assert "fallback verified by fail-recs" in planned.stdout.splitlines()[0]
    assert planned.stdout.splitlines()[2].startswith("  2. payments (payments-team, ")
    assert "no fallback: its callers fail with it" in planned.stdout.splitlines()[2]

    # Conformity Monkey's fallback rule reads the same passed experiment
    config = tmp_path / "chaos.toml"
    config.write_text(
        f'state_dir = "{tmp_path}"\n[monkeys.conformity]\nrules = ["has_fallback", "fallback_verified"]\n'
    )
    conf = stoic("conformity", "--config", str(config), "--dependencies", f"{shop}/guard")
    assert "[has_fallback] recs: fallback verified by experiment fail-recs (passed " in conf.stdout
    no_fallback = "[has_fallback] payments (owner payments-team): dependency 'payments' has no fallback"
    assert no_fallback in conf.stdout
    assert "[fallback_verified] recs" not in conf.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--share", "0.9"], r"experiment.share must be a number in (0, 0.5]; got 0.9"),
        (["--hypothesis", "error_rate"], "hypothesis must be KPI:TOLERANCE"),
        (["--rate", "0"], "--rate must be requests per second in [0.1, 1000]; got 0.0"),
        (["--kind", "delay"], "delay: must be in (0, 60] seconds when kind is 'delay'"),
    ],
)
def test_bad_flags_are_refused_with_the_field_and_nothing_runs(
    shop: str, tmp_path: Path, extra: list[str], message: str
) -> None:
    done = stoic(*run_args(tmp_path, "bad", "recs", f"{shop}/recs", "5"), *extra)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    if (tmp_path / "audit.db").exists():
        assert not AuditLog(tmp_path / "audit.db", readonly=True).entries(5, monkey="experiment")


def test_without_the_fit_secret_nothing_runs(shop: str, tmp_path: Path) -> None:
    done = stoic(*run_args(tmp_path, "x", "recs", f"{shop}/recs", "5"), secret=False)
    assert done.returncode == 2
    assert "$STOIC_FIT_SECRET must hold the FIT secret" in done.stderr


def test_list_of_a_missing_log_says_so(tmp_path: Path) -> None:
    done = stoic("experiment", "list", "--state-dir", str(tmp_path))
    assert done.returncode == 2
    assert f"audit log {tmp_path / 'audit.db'} does not exist" in done.stderr


def test_the_plan_ranks_fallbacks_first_then_traffic() -> None:
    snapshots = [
        {"name": "ratings", "requests": 900, "has_fallback": False, "owner": "r"},
        {"name": "recs", "requests": 10, "has_fallback": True, "fallbacks": {"popular": 3}},
        {"name": "artwork", "requests": 500, "has_fallback": True},
        {"name": "artwork", "requests": 700, "has_fallback": True},  # a second service's view adds up
        {"name": 7},  # not a dependency snapshot: skipped
    ]
    planned = plan(snapshots)
    assert [(p.rank, p.dependency, p.requests) for p in planned] == [
        (1, "artwork", 1200),
        (2, "recs", 10),
        (3, "ratings", 900),
    ]
    assert planned[1].fallbacks == ("popular",) and planned[0].owner == "unowned"
    command = "stoic chaos experiment run --name fail-artwork --dependency artwork "
    assert planned[0].command().startswith(command)


def test_a_passed_experiment_verifies_only_its_own_dependencies(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.db")
    exp = Experiment("x", Scenario("x", ["recs", "art"]), [Hypothesis("error_rate", 0.1)], audit=audit)
    exp.start()
    exp.abort("manual")  # an aborted experiment verifies nothing
    assert verified_fallbacks(audit) == {}
    audit.record("experiment", "experiment", "passed", target="y", group="recs")
    assert set(verified_fallbacks(audit)) == {"recs"}


def test_the_configs_stop_conditions_keep_an_experiment_from_starting(shop: str, tmp_path: Path) -> None:
    from stoic.chaos import free_port

    config = tmp_path / "chaos.toml"
    config.write_text(
        f'state_dir = "{tmp_path}"\n'
        f'[stop]\nprometheus = "http://127.0.0.1:{free_port()}"\nalerts = ["StreamStartsDrop"]\n'
        'timeout = "1s"\n'
    )
    args = run_args(tmp_path, "gated", "recs", f"{shop}/recs", "5")
    args[2:4] = ["--config", str(config)]  # instead of --state-dir
    done = stoic(*args)
    assert done.returncode == 2
    assert "experiment gated not started: stop condition could not be read: URLError(" in done.stderr
    entry = AuditLog(tmp_path / "audit.db", readonly=True).entries(1)[0]
    assert (entry.outcome, entry.target) == ("skipped", "gated")
