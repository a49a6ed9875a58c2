"""Topology: where every process runs, and the order services try zones in."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from stoic.demo import PROCESSES, REGIONS, SERVICES, Topology


def build() -> Topology:
    ports = itertools.count(20000)
    return Topology.build(lambda: next(ports), fit_secret="s" * 32)


def test_every_zone_runs_every_process_plus_a_cache() -> None:
    topo = build()
    for zone in topo.zones:
        apps = {ep.app for ep in topo.endpoints if ep.zone == zone}
        assert set(PROCESSES) | {"evcache"} <= apps
    assert len(topo.endpoints_of("oca")) == len(REGIONS)
    assert len({ep.port for ep in topo.endpoints}) == len(topo.endpoints)
    assert {s for services in PROCESSES.values() for s in services} == {"edge", *SERVICES}


def test_service_urls_prefer_own_zone_then_the_region() -> None:
    topo = build()
    urls = topo.service_urls("manifest", "eu-west-1b")
    assert list(urls) == ["eu-west-1b", "eu-west-1a"]
    assert urls["eu-west-1b"] == f"{topo.endpoint('playback', 'eu-west-1b').url}/manifest"


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    topo = build()
    again = Topology.load(topo.save(tmp_path / "t.json"))
    assert again == topo


def test_unknown_names_are_reported_with_the_known_ones() -> None:
    topo = build()
    with pytest.raises(KeyError, match="us-east-1a"):
        topo.region_of("mars-1a")
    with pytest.raises(KeyError, match="personalisation"):
        topo.host_of("weather")
