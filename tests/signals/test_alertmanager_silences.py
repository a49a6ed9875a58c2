"""A chaos experiment's silence reaches a real Alertmanager (`/usr/bin/prometheus-alertmanager`)
through its `/api/v2/silences`, scoped to the experiment's regions and expected severity; the
alert held in its blast radius is never posted, the one beyond it is, naming the experiment."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stoic.chaos import AuditLog, Experiment, Hypothesis, KillSwitch, free_port
from stoic.fit import Scenario
from stoic.signals import BurnRateRule, Ownership, Signals
from stoic.signals.alertmanager import alertmanager_receiver
from stoic.signals.grouping import Grouping

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
TICKET = BurnRateRule(3600.0, 300.0, 14.4, "ticket")  # warning severity: what the experiment may cause

pytestmark = pytest.mark.skipif(
    not os.path.exists(ALERTMANAGER), reason="needs prometheus-alertmanager (./run setup_system installs it)"
)


def _until(what: str, check: Any, proc: subprocess.Popen[bytes], seconds: float = 60.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"alertmanager exited with {proc.returncode} while waiting for {what}"
        try:
            result = check()
        except httpx.TransportError:
            result = None
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"gave up waiting {seconds:g} s for {what}")


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    (tmp_path / "am.yml").write_text("route:\n  receiver: nobody\nreceivers:\n  - name: nobody\n")
    proc = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={tmp_path / 'am.yml'}",
            f"--storage.path={tmp_path / 'am'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=(tmp_path / "am.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _until("alertmanager ready", lambda: httpx.get(f"{url}/-/ready", timeout=1).status_code == 200, proc)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def test_an_experiment_silence_is_posted_to_alertmanager_and_beyond_it_pages(
    alertmanager: tuple[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    url, proc = alertmanager
    signals = Signals(
        interval=1.0,
        day=60.0,
        time_scale=60.0,  # 1 h -> 60 s, 5 min -> 5 s
        burn_rules=(TICKET,),
        ownership=Ownership.from_dict({"teams": {"pay": {"receivers": ["am"]}}, "default": "pay"}),
        receivers=[alertmanager_receiver(url, name="am", timeout=10.0)],
        grouping=Grouping(group_wait=0.0),
    )
    experiment = Experiment(
        "payments-latency",
        Scenario("payments-latency", "payments", "delay", delay=0.2),
        [Hypothesis("error_rate", 0.01)],
        share=0.05,
        duration=600.0,
        audit=AuditLog(),
        kill_switch=KillSwitch(tmp_path / "chaos-off"),
        context=signals,
        regions=["eu-west"],
        actor="user:ada",
    )
    experiment.start()

    def silences() -> list[dict[str, Any]]:
        answer = httpx.get(f"{url}/api/v2/silences", timeout=5).json()
        return [s for s in answer if s["status"]["state"] == "active"]

    (silence,) = _until("the experiment's silence in alertmanager", silences, proc)
    assert silence["createdBy"] == "user:ada"
    assert silence["comment"].startswith("chaos experiment payments-latency (stoic experiment ")
    matchers = {(m["name"], m["value"], m["isRegex"], m["isEqual"]) for m in silence["matchers"]}
    assert matchers == {("region", "eu\\-west", True, True), ("severity", "info|warning", True, True)}

    now = time.time()
    for i in range(70):  # the last 70 s: healthy, then 5 s with half the starts failing
        bad = 50 if i >= 65 else 0
        for region in ("eu-west", "us-east"):
            signals.observe_start(region, ok=True, count=100 - bad, at=now - 70 + i)
            if bad:
                signals.observe_start(region, ok=False, count=bad, at=now - 70 + i)
    signals.evaluate()
    assert signals.router.flush(30.0) == 0

    def burn_alerts() -> list[dict[str, Any]]:
        answer = httpx.get(f"{url}/api/v2/alerts", timeout=5).json()
        return [a for a in answer if a["labels"]["alertname"] == "SLOBurnRate"]

    (posted,) = _until("the alert beyond the blast radius", burn_alerts, proc)
    assert posted["labels"]["region"] == "us-east" and posted["labels"]["severity"] == "warning"
    assert posted["annotations"]["cause"].startswith(
        "Beyond the expected blast radius of chaos experiment payments-latency"
    )
    assert f"`touch {tmp_path / 'chaos-off'}`" in posted["annotations"]["cause"]
    held = [a for a in signals.alerts() if a["kind"] == "burn_rate" and a["region"] == "eu-west"]
    assert len(held) == 1 and held[0]["silenced_by"]  # held by Stoic, never posted
    signals.close()
