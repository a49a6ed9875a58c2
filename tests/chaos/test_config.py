"""The chaos TOML file: validated with errors naming the field, and run end to end by `stoic chaos`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from _chaos_support import SLEEPER

from stoic.chaos import (
    AppSettings,
    AuditLog,
    BlastRadius,
    ChaosConfigError,
    ChaosGorilla,
    ChaosMonkey,
    ConformityMonkey,
    LatencyMonkey,
)
from stoic.chaos.config import load_config, parse_config, parse_duration
from stoic.cli import main as stoic_main

GOOD = """
state_dir = "state"
interval = "0.05s"
speed = 3600
start = "2026-11-23T10:00:00Z"
seed = 4

[schedule]
timezone = "Europe/London"
weekdays = ["mon", "tue", "wed", "thu", "fri"]
holidays = ["2026-12-25"]

[limits]
window = "1h"
max_instances = 1
max_zones = "none"
max_share = 1.0

[[instances]]
app = "api"
zone = "a"
argv = ["{python}", "-c", SLEEPER]
count = 2

[[instances]]
app = "api"
zone = "b"
argv = ["{python}", "-c", SLEEPER]

[apps.api]
owner = "api-team"
grouping = "app+zone"

[monkeys.chaos]
mean_time_between_kills = "none"
min_time_between_kills = "30m"

[monkeys.latency]
delay = "250ms"
dependencies = ["recommendations"]

[monkeys.gorilla]
zone = "b"

[monkeys.conformity]
rules = ["runs_in_zones", "has_owner"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "chaos.toml"
    path.write_text(text.replace("SLEEPER", repr(SLEEPER).replace("'", '"')))
    return path


def test_a_good_config_builds_every_monkey(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.state_dir == tmp_path / "state" and cfg.audit_db == tmp_path / "state" / "audit.db"
    assert cfg.limits.max_instances == 1 and cfg.limits.max_zones is None and cfg.speed == 3600
    assert cfg.schedule.timezone == "Europe/London" and cfg.owners == {"api": "api-team"}
    assert [s.count for s in cfg.instances] == [2, 1] and cfg.instances[0].argv[0] == sys.executable
    monkeys = cfg.monkeys()
    assert [type(m) for m in monkeys] == [ChaosMonkey, LatencyMonkey, ChaosGorilla, ConformityMonkey]
    chaos = monkeys[0]
    assert isinstance(chaos, ChaosMonkey) and chaos.settings("api").grouping == "app+zone"
    assert chaos.settings("api").min_time_between_kills == 1800
    latency = monkeys[1]
    assert isinstance(latency, LatencyMonkey) and latency.delay == 0.25 and latency.board is not None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("colour = 'red'\n", "unknown field colour; allowed: state_dir"),
        ("[apps.web]\nenabled = false\n", "apps.web.enabled: apps cannot opt out of chaos"),
        ("[apps.web]\nopt_out = true\n", "apps.web.opt_out: apps cannot opt out of chaos"),
        (
            "[apps.web]\ngrouping = 'rack'\n",
            "apps.web.grouping must be one of app, app+region, app+zone; got 'rack'",
        ),
        ("[schedule]\ntimezone = 'Nowhere/Land'\n", "schedule.timezone must be an IANA time zone"),
        ("[schedule]\nweekdays = ['someday']\n", "schedule.weekdays entries must be one of mon, tue, wed"),
        ("[schedule]\nstart = '9am'\n", "schedule.start must be a time of day HH:MM; got '9am'"),
        ("[limits]\nmax_share = 2\n", "limits.max_share must be in (0, 1] or None; got 2"),
        ("[monkeys.kong.limits]\nmax_share = 0\n", "monkeys.kong.limits.max_share must be in (0, 1]"),
        ("[limits]\nwindow = 'soon'\n", 'limits.window must be seconds >= 0 or a duration like "500ms"'),
        (
            "[monkeys.chaos]\ngrouping = 'host'\n",
            "monkeys.chaos.grouping must be one of app, app+region, app+zone",
        ),
        (
            "[monkeys.latency]\nkind = 'slow'\n",
            "monkeys.latency.kind must be one of delay, error, timeout, reject",
        ),
        (
            "[monkeys.conformity]\nrules = ['be_nice']\n",
            "monkeys.conformity.rules entries must be one of has_fallback",
        ),
        ("[monkeys.ape]\n", "unknown field monkeys.ape; allowed: chaos, latency, gorilla, kong, conformity"),
        ("[target]\nkind = 'vm'\n", "target.kind must be one of processes, kubernetes; got 'vm'"),
        ("[[instances]]\napp = 'x'\n", "instances[0].argv must be a non-empty list of strings"),
        (
            "[[instances]]\napp = 'x'\nargv = ['a']\nport = 99999\n",
            "instances[0].port must be an integer in [0, 65535]",
        ),
        ("speed = 0\n", "speed must be a number in [0.001, 100000]; got 0"),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, change: str, message: str) -> None:
    path = write(tmp_path, change)
    with pytest.raises(ChaosConfigError) as info:
        load_config(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_durations() -> None:
    assert parse_duration("500ms", "x") == 0.5
    assert parse_duration("2h", "x") == 7200
    assert parse_duration("1d", "x") == 86400
    assert parse_duration(12, "x") == 12
    assert parse_duration("none", "x", allow_none=True) is None
    with pytest.raises(ChaosConfigError, match="x must be seconds >= 0"):
        parse_duration(-1, "x")
    with pytest.raises(ChaosConfigError, match=r"missing\.toml does not exist"):
        load_config(Path("missing.toml"))
    assert parse_config({}).monkeys() == []  # an empty config is valid: no monkeys, nothing happens
    with pytest.raises(ChaosConfigError, match="not valid TOML"):
        load_config(Path(__file__))


def test_cli_run_kills_within_the_cap_and_audits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = GOOD.split("[monkeys.latency]")[0]  # chaos monkey only
    path = write(tmp_path, text)
    assert stoic_main(["chaos", "run", "--config", str(path), "--runs", "3"]) == 0
    out = capsys.readouterr().out
    assert "started 3 instances" in out and "chaos armed: chaos-monkey" in out and "[run 3]" in out
    with AuditLog(tmp_path / "state" / "audit.db") as audit:
        # three groups want a kill every run, but max_instances = 1 per hour holds across runs
        assert len(audit.terminations()) == 1
        assert len(audit.entries(None, outcome="skipped")) >= 2


def test_cli_run_leashed_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD.split("[monkeys.latency]")[0])
    assert stoic_main(["chaos", "run", "--config", str(path), "--once", "--leashed"]) == 0
    out = capsys.readouterr().out
    assert "chaos leashed (dry run)" in out and "leashed" in out
    with AuditLog(tmp_path / "state" / "audit.db") as audit:
        assert audit.terminations() == [] and audit.entries(None, outcome="leashed")


def test_cli_reports_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "[limits]\nmax_zones = -2\n")
    assert stoic_main(["chaos", "run", "--config", str(path), "--once"]) == 2
    assert "limits.max_zones must be an integer in [0, 1000000]" in capsys.readouterr().err


def test_cli_conformity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD + "\n[[instances]]\napp = 'lonely'\nzone = 'a'\nargv = ['true']\n")
    deps = tmp_path / "deps.json"
    deps.write_text('[{"name": "geo", "owner": "maps-team", "has_fallback": false}]')
    code = stoic_main(["chaos", "conformity", "--config", str(path), "--dependencies", str(deps)])
    out = capsys.readouterr().out
    assert code == 1
    assert "[runs_in_2_zones] lonely (owner unowned)" in out and "[has_owner] lonely" in out
    assert "geo" not in out  # has_fallback is not among this config's rules
    assert "2 finding(s)" in out


def test_a_monkeys_partial_limits_inherit_the_armys(tmp_path: Path) -> None:
    army = '[limits]\nwindow = "2h"\nmax_instances = 1\nmax_zones = "none"\nmax_share = 1.0\n'
    cfg = load_config(
        write(
            tmp_path,
            army + "[monkeys.chaos.limits]\nmax_regions = 2\n[monkeys.gorilla.limits]\nmax_share = 0.9\n",
        )
    )
    chaos, gorilla = cfg.monkeys()
    assert chaos.limits == BlastRadius(
        window=7200, max_instances=1, max_zones=None, max_regions=2, max_share=1.0
    )
    assert gorilla.limits == BlastRadius(
        window=7200, max_instances=1, max_zones=None, max_regions=1, max_share=0.9
    )
    # no table at all: the Gorilla keeps its own limits, and the army's still bound it
    assert (
        load_config(write(tmp_path, army + "[monkeys.gorilla]\n")).monkeys()[0].limits
        == ChaosGorilla().limits
    )


def test_an_apps_shape_inherits_the_chaos_monkeys(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            '[monkeys.chaos]\ngrouping = "app+zone"\nmean_time_between_kills = "3d"\n'
            '[apps.api]\nmin_time_between_kills = "5m"\n',
        )
    )
    assert cfg.app_settings["api"] == AppSettings(
        grouping="app+zone", mean_time_between_kills=3 * 86400, min_time_between_kills=300
    )


def test_cli_run_holds_the_armys_cap_over_a_gorilla(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'state_dir = "state"\n[schedule]\nalways = true\n[limits]\nmax_instances = 1\nmax_share = 1.0\n'
        '[[instances]]\napp = "api"\nzone = "a"\nargv = ["{python}", "-c", SLEEPER]\ncount = 3\n'
        '[monkeys.gorilla]\nzone = "a"\nmean_time_between = "none"\nmin_time_between = 0\n'
        "[monkeys.gorilla.limits]\nmax_instances = 5\nmax_share = 1.0\n",  # the Gorilla's own would allow it
    )
    assert stoic_main(["chaos", "run", "--config", str(path), "--once"]) == 0
    with AuditLog(tmp_path / "state" / "audit.db") as audit:
        assert audit.terminations() == []
        skipped = audit.entries(None, outcome="skipped")
        assert len(skipped) == 3 and all(
            e.reason.endswith("> max_instances 1 (army limits)") for e in skipped
        )
