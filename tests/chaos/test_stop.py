"""Stop conditions read from a real Prometheus: a named alert firing, the burn rate, the budget left."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from stoic.chaos import (
    AuditLog,
    BlastRadius,
    ChaosConfigError,
    ChaosMonkey,
    Hypothesis,
    ProcessTarget,
    PrometheusSignals,
    Schedule,
    SimianArmy,
    StopConditions,
    Supervisor,
    free_port,
)
from stoic.chaos.config import parse_config
from stoic.chaos.experiment import Experiment
from stoic.fit import Scenario

PROMETHEUS = "/usr/bin/prometheus"
RULES = """
groups:
  - name: slo
    interval: 1s
    rules:
      - alert: StreamStartsDrop
        expr: vector(1)
"""


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prometheus on loopback with one alert that always fires."""
    tmp = tmp_path_factory.mktemp("prometheus")
    (tmp / "rules.yml").write_text(RULES)
    (tmp / "prometheus.yml").write_text(
        "global: {evaluation_interval: 1s}\nrule_files: [" + json.dumps(str(tmp / "rules.yml")) + "]\n"
    )
    port = free_port()
    log = (tmp / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        signals = PrometheusSignals(url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # ready, and the rule evaluated at least once
            assert proc.poll() is None, (tmp / "prometheus.log").read_text()
            try:
                if "StreamStartsDrop" in signals.firing_alerts():
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("prometheus did not fire its alert within 60 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def test_a_firing_alert_pauses_the_army_and_nothing_is_killed(prometheus: str, tmp_path: Path) -> None:
    sleeper = "import time\nfor _ in range(600): time.sleep(0.1)"
    with Supervisor() as sup:
        victim = sup.start([sys.executable, "-c", sleeper], app="api", zone="a")
        audit = AuditLog(tmp_path / "audit.db")
        army = SimianArmy(
            ProcessTarget(sup),
            [ChaosMonkey(mean_time_between_kills=None, min_time_between_kills=0)],
            audit=audit,
            schedule=Schedule.always(),
            limits=BlastRadius.unlimited(),
            stop=StopConditions(PrometheusSignals(prometheus), alerts=["StreamStartsDrop"]),
        )
        report = army.run_once()
        assert report.paused == "stop condition: alert StreamStartsDrop is firing"
        assert [e.outcome for e in audit.entries(5)] == ["paused"]
        assert victim.alive and victim.restarts == 0
        # an alert that is not named does not stop anything
        army.stop_conditions = StopConditions(PrometheusSignals(prometheus), alerts=["SomethingElse"])
        assert army.run_once().count("terminated") == 1


def test_burn_rate_and_error_budget_thresholds(prometheus: str) -> None:
    def reason(burn: str, budget: str, **kw: float) -> str:
        source = PrometheusSignals(prometheus, burn_rate=burn, error_budget=budget)
        return StopConditions(source, **kw).reason()

    assert reason("vector(20)", "vector(1)", max_burn_rate=14.4) == (
        "stop condition: error budget burning at 20x > max_burn_rate 14.4"
    )
    assert reason("vector(2)", "vector(1)", max_burn_rate=14.4) == ""
    assert reason("vector(2)", "vector(0.1)", min_error_budget=0.25) == (
        "stop condition: 10.0% of the error budget left < min_error_budget 25%"
    )
    assert reason("vector(2)", "vector(0.5)", min_error_budget=0.25) == ""
    # a query that answers nothing cannot vouch for the budget
    assert reason("vector(2)", "absent(vector(1))", min_error_budget=0.25) == (
        "stop condition: the error budget cannot be read (no data)"
    )


def test_a_stop_condition_aborts_a_running_experiment(prometheus: str) -> None:
    source = PrometheusSignals(prometheus, burn_rate="vector(2)")
    watching = StopConditions(source, max_burn_rate=14.4)
    exp = Experiment(
        "recs", Scenario("recs", "recs"), [Hypothesis("error_rate", 0.01)], audit=AuditLog(), stop=watching
    )
    exp.start()
    assert exp.check() is None
    source.burn_rate_query = "vector(50)"
    verdict = exp.check()
    assert verdict is not None and verdict.outcome == "aborted"
    assert verdict.reason == "stop condition: error budget burning at 50x > max_burn_rate 14.4"


def test_an_unreachable_source_counts_as_stop() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    why = StopConditions(PrometheusSignals(dead, timeout=1.0), alerts=["X"]).reason()
    assert why.startswith("stop condition could not be read: URLError(")


def test_the_config_builds_stop_conditions_that_reach_the_army(prometheus: str) -> None:
    cfg = parse_config(
        {
            "stop": {
                "prometheus": prometheus,
                "alerts": ["StreamStartsDrop"],
                "burn_rate_query": "vector(1)",
                "max_burn_rate": 14.4,
            }
        }
    )
    assert cfg.stop is not None
    assert cfg.stop.describe() == "alert StreamStartsDrop fires or burn rate > 14.4"
    with Supervisor() as sup:
        army = cfg.army(ProcessTarget(sup), audit=AuditLog())
        assert army.run_once().paused == "stop condition: alert StreamStartsDrop is firing"
    # and Prometheus really was asked: its API lists the rule
    with urllib.request.urlopen(f"{prometheus}/api/v1/rules", timeout=5) as resp:
        assert b"StreamStartsDrop" in resp.read()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"alerts": ["A"]}, r"stop.prometheus is required: the http\(s\) URL of the Prometheus to read"),
        (
            {"prometheus": "localhost:9090", "alerts": ["A"]},
            r"stop.prometheus must be an http\(s\) URL; got .localhost:9090.",
        ),
        ({"prometheus": "http://x", "max_burn_rate": 2}, "stop.max_burn_rate needs stop.burn_rate_query"),
        ({"prometheus": "http://x", "burn_rate_query": "q"}, "stop.burn_rate_query needs stop.max_burn_rate"),
        ({"prometheus": "http://x"}, "stop needs alerts, max_burn_rate or min_error_budget"),
        (
            {"prometheus": "http://x", "min_error_budget": 2, "error_budget_query": "q"},
            r"stop.min_error_budget must be a number in \[0, 1\]; got 2",
        ),
        ({"prometheus": "http://x", "alerts": "A"}, "stop.alerts must be a list of non-empty strings"),
        ({"prometheus": "http://x", "page": True}, "unknown field stop.page; allowed: prometheus, alerts"),
    ],
)
def test_bad_stop_settings_name_the_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(ChaosConfigError, match=message):
        parse_config({"stop": table})
