"""The indicators file: `stoic signals check` accepts the quick start's file and refuses mistakes
with exit 2 and a message naming the key and the allowed values, never a traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from stoic.signals.config import ConfigError, parse

DOC = Path(__file__).resolve().parents[2] / "docs" / "signals.md"

GOOD = """
[[indicators]]
name = "checkout_errors"
source = "push"
kind = "ratio"
labels = ["region", "status"]
team = "payments"
"""


def check(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "indicators.toml"
    path.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "stoic", "signals", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_quick_start_file_is_accepted(tmp_path: Path) -> None:
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert blocks, "docs/signals.md has no toml example"
    done = check(tmp_path, blocks[0])
    assert done.returncode == 0, done.stderr
    assert "ok: 2 indicators (checkout_errors, checkout_latency_p99)" in done.stdout
    config = parse(blocks[0])
    assert config.alertmanagers == ("http://127.0.0.1:9093",)
    assert config.indicator("checkout_errors").slo == 0.999


def test_defaults_of_a_minimal_indicator() -> None:
    spec = parse(GOOD).indicators[0]
    assert (spec.interval, spec.lateness, spec.max_series, spec.expire_after) == (60.0, 60.0, 100, 86400.0)
    assert (spec.direction, spec.severity, spec.unit) == ("both", "critical", "ratio")


BAD = [
    (
        GOOD.replace('"ratio"', '"counter"'),
        "indicators[0].kind: must be one of count, ratio, gauge, latency, got 'counter'",
    ),
    (
        GOOD.replace("source =", "sourec ="),
        "indicators[0].sourec: unknown key; allowed: name, source, query,",
    ),
    (
        GOOD.replace('"push"', '"kafka"'),
        "indicators[0].source: must be one of prometheus, push, file, got 'kafka'",
    ),
    (
        GOOD + 'direction = "sideways"\n',
        "indicators[0].direction: must be one of up, down, both, got 'sideways'",
    ),
    (GOOD.replace('"ratio"', '"gauge"') + "slo = 0.999\n", 'indicators[0].slo: only for kind = "ratio"'),
    (GOOD + "slo = 1.5\n", "indicators[0].slo: must be <= 0.99999, got 1.5"),
    (
        GOOD + 'summary = "errors in {regoin}"\n',
        "indicators[0].summary: unknown placeholder {regoin}; allowed: indicator,",
    ),
    (GOOD + 'summary = "{value:%Y}"\n', "indicators[0].summary: the template does not render"),
    (
        GOOD.replace('"push"', '"prometheus"') + 'query = "up"\n',
        'prometheus.url: required because indicators[0] (checkout_errors) has source = "prometheus"',
    ),
    (GOOD.replace('"push"', '"prometheus"'), "indicators[0].query: must be a non-empty string"),
    (GOOD + 'query = "up"\n', 'indicators[0].query: only for source = "prometheus"'),
    (
        GOOD.replace('"status"', '"team"'),
        "indicators[0].labels[1]: 'team' is set by Stoic on every alert; reserved: alertname, team,",
    ),
    (GOOD.replace('"status"', '"2xx"'), "indicators[0].labels[1]: must be a label name"),
    (GOOD + "max_series = 0\n", "indicators[0].max_series: must be between 1 and 10000, got 0"),
    (
        GOOD + 'interval = "5x"\n',
        "indicators[0].interval: must be seconds or a duration such as 30s, 5m, 1h, 14d, got '5x'",
    ),
    (GOOD + 'expire_after = "10s"\n', "indicators[0].expire_after: must be between 60 s and"),
    (
        GOOD + 'runbook_url = "wiki/page"\n',
        "indicators[0].runbook_url: must be an http:// or https:// URL, got 'wiki/page'",
    ),
    (GOOD + "events = true\n", 'indicators[0].events: only for kind = "count" (a number of events)'),
    (GOOD.replace('"ratio"', '"count"') + 'events = "yes"\n', "indicators[0].events: must be true or false"),
    (GOOD + GOOD, "indicators[1].name: 'checkout_errors' is declared twice"),
    ("[receivers]\nresend = \"10s\"\n" + GOOD, "receivers.resend: must be between 30 s and 180 s, got '10s'"),
    (
        "[receivers]\nalertmanager = [\"am:9093\"]\n" + GOOD,
        "receivers.alertmanager[0]: must be an http:// or https:// URL",
    ),
    ("[service]\nlisten = \"9470\"\n" + GOOD, "service.listen: must be HOST:PORT"),
    ("[servce]\n" + GOOD, "servce: unknown key; allowed: service, prometheus, receivers, indicators"),
    ("", "indicators: must be 1..1000 [[indicators]] tables, got none"),
    ("[[indicators]]\nname = 'x'\n", "indicators[0].source: required"),
    ("name = ", "file: not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_a_mistake_is_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert str(caught.value).startswith(message), str(caught.value)
    assert caught.value.field == message.split(":")[0]


@pytest.mark.parametrize(("text", "message"), [BAD[0], BAD[8], BAD[-1]], ids=["kind", "prometheus", "toml"])
def test_check_exits_2_with_the_message(tmp_path: Path, text: str, message: str) -> None:
    done = check(tmp_path, text)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_check_names_a_missing_file(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "stoic", "signals", "check", str(tmp_path / "nope.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "file: cannot read" in done.stderr and "Traceback" not in done.stderr


def test_check_names_a_backfill_file_that_is_missing(tmp_path: Path) -> None:
    done = check(tmp_path, GOOD.replace('"push"', '"file"') + 'file = "history.csv"\n')
    assert done.returncode == 2
    assert f"indicators[0].file: no such file {str(tmp_path / 'history.csv')!r}" in done.stderr
