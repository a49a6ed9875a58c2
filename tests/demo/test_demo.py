"""A shortened `stoic demo`: real platform, real viewers, a real zone kill and a real region kill."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from stoic.chaos import free_port
from stoic.demo import DemoOptions, Report, Strike, run_demo
from stoic.demo._progress import ProgressLine

ZONE_APPS = ("account", "discovery", "edge", "evcache", "playback")


class DashboardWatcher(threading.Thread):
    """Polls the demo's dashboard while the demo runs (bounded by `deadline`)."""

    def __init__(self, port: int, deadline: float) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}"
        self.deadline = deadline
        self.dependencies: list[dict[str, Any]] = []
        self.chaos: list[dict[str, Any]] = []

    def run(self) -> None:
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < self.deadline and not (self.dependencies and self.chaos):
                try:
                    deps = client.get(f"{self.url}/api/dependencies").json()
                    chaos = client.get(f"{self.url}/api/chaos").json()
                except (httpx.HTTPError, ValueError):
                    deps, chaos = [], []
                if any(d["name"].startswith("edge-") for d in deps):
                    self.dependencies = deps
                if chaos:
                    self.chaos = chaos if isinstance(chaos, list) else chaos.get("events", [])
                time.sleep(0.5)


def plays_during(report: Report, kind: str) -> list[Any]:
    event = next(e for e in report.events if e.kind == kind)
    impact = report.impact(event)
    return report.window(impact.start, impact.end)


def test_zero_failed_plays_through_a_zone_kill_and_a_region_kill(tmp_path: Path) -> None:
    port = free_port()
    watcher = DashboardWatcher(port, time.monotonic() + 60.0)
    watcher.start()
    options = DemoOptions(
        duration=30.0,
        seed=5,
        out=tmp_path,
        peak=5.0,
        start_hour=13.0,  # afternoon into the evening peak: both outages meet real traffic
        dashboard=port,
        strikes=[Strike("chaos-gorilla", 0.12, "us-east-1b"), Strike("chaos-kong", 0.42, "eu-west")],
    )
    report = run_demo(options, progress=ProgressLine(enabled=False))
    watcher.join(5.0)

    failures = [f"{r.status}: {r.error}" for r in report.failed]
    assert failures == [], failures
    assert report.plays >= 40

    gorilla, kong = report.events
    assert gorilla.outcome == "terminated"
    assert sorted(gorilla.victims) == [f"{app}-us-east-1b" for app in ZONE_APPS]
    assert kong.outcome == "terminated"
    assert len(kong.victims) == 11 and all("eu-west" in v for v in kong.victims)
    assert gorilla.ends is not None and kong.ends is not None  # every victim replaced and healthy again

    # the zone kill: us-east viewers whose turn fell on the dead zone's edge were answered by the other zone
    in_zone_outage = plays_during(report, "chaos-gorilla")
    us_east = [r for r in in_zone_outage if r.home == "us-east"]
    assert us_east and all(r.ok for r in in_zone_outage)
    assert any(r.sources.get("edge") == "other-zone" for r in us_east), [r.sources for r in us_east]

    # the region kill: eu-west viewers were steered to us-east's edges and played there
    in_region_outage = plays_during(report, "chaos-kong")
    eu_west = [r for r in in_region_outage if r.home == "eu-west"]
    assert eu_west and all(r.ok for r in in_region_outage)
    crossed = [r for r in eu_west if r.sources.get("edge") == "other-region-edge"]
    assert crossed and all(r.region == "us-east" for r in crossed)
    assert report.impact(kong).fallbacks.get("edge: other-region-edge", 0) == len(
        [r for r in in_region_outage if r.sources.get("edge") == "other-region-edge"]
    )

    # the report on disk says the same
    summary = (tmp_path / "report.txt").read_text()
    assert f"plays: {report.plays} started, {report.plays} ok, 0 user-visible failures" in summary
    assert "Chaos Kong takes down region eu-west -> terminated" in summary
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["failed"] == 0 and [e["kind"] for e in data["events"]] == ["chaos-gorilla", "chaos-kong"]
    assert (tmp_path / "sps.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sum(1 for _ in (tmp_path / "plays.jsonl").open()) == report.plays

    # the dashboard served the fleet's circuits and the chaos audit log while the demo ran
    names = {d["name"] for d in watcher.dependencies}
    assert "edge-us-east-1a/personalisation" in names and "edge-eu-west-1b/region-eu-west" in names
    assert any("chaos-gorilla" in json.dumps(e) for e in watcher.chaos)


def test_a_calm_day_pages_nobody(tmp_path: Path) -> None:
    """No chaos, a whole compressed day including the fall after midnight: the detectors know the
    day's shape from the platform's earlier days and raise nothing."""
    options = DemoOptions(duration=40.0, seed=3, out=tmp_path, peak=5.0, chaos=False)
    report = run_demo(options, progress=ProgressLine(enabled=False))

    assert report.plays >= 40 and not report.failed
    assert report.alerts == [], [a.get("summary") for a in report.alerts]
    assert "alerts:" not in (tmp_path / "report.txt").read_text()
