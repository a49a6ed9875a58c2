"""Indicators in and out: ingest validation, series and alerts from a real `stoic.signals.Signals`."""

from __future__ import annotations

import math
import time
from typing import Any

import httpx
import pytest

from stoic.fit import Catalog
from stoic.guard import Registry
from stoic.signals import Signals
from stoic.web import create_app

from .conftest import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _history(now: float, drop_after: int = 100, count: int = 118) -> list[dict[str, Any]]:
    """Ten minutes of stream starts in 5 s buckets with a daily-like wave, then a 50 % drop."""
    start = now - count * 5
    out = []
    for i in range(count):
        t = start + i * 5
        wave = 800 + 200 * math.sin(2 * math.pi * (t % 300) / 300)
        out.append(
            {
                "type": "metric",
                "name": "sps",
                "region": "eu-west",
                "at": t,
                "value": wave * (0.5 if i >= drop_after else 1.0),
            }
        )
    return out


@pytest.fixture
def url(serve: Any, signals: Signals) -> str:
    server = serve(create_app(Registry(), signals=signals, scenarios=Catalog(), token=TOKEN, interval=0.1))
    return str(server.url)


def test_ingest_then_series_and_alerts(url: str) -> None:
    body = {"observations": _history(time.time())}
    accepted = httpx.post(f"{url}/api/indicators", json=body, headers=AUTH)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json() == {"accepted": len(body["observations"])}

    view = httpx.get(f"{url}/api/indicators?window=600").json()
    sps = [s for s in view["series"] if s["indicator"] == "sps" and s["region"] == "eu-west"]
    assert len(sps) == 1
    points = [p for p in sps[0]["points"] if p["value"] is not None]
    assert len(points) > 50
    assert any(p["expected"] is not None and p["lower"] is not None for p in points), "expected band present"

    alerts = httpx.get(f"{url}/api/alerts").json()
    firing = [a for a in alerts if a["status"] == "firing" and a["indicator"] == "sps"]
    assert firing, alerts
    assert "below expected" in firing[0]["summary"]
    state = httpx.get(f"{url}/api/state").json()
    assert state["alerts"] == alerts
    assert state["indicators"]["series"][0]["indicator"] == "sps"


def test_window_longer_than_the_history_is_clamped(url: str) -> None:
    # Signals keeps 2 "days" of 5 s buckets here (600 s); asking for a week still answers.
    assert httpx.get(f"{url}/api/indicators?window=604800").status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (
            {"observations": [{"type": "metric", "name": "sps", "value": "fast"}]},
            400,
            "observations[0].value",
        ),
        ({"observations": [{"type": "teleport"}]}, 400, "observations[0].type"),
        ({"observations": []}, 400, "observations"),
        ({"nothing": 1}, 400, "nothing"),
        ([1, 2, 3], 400, "body"),
    ],
)
def test_bad_ingest_bodies_name_the_field(
    url: str, signals: Signals, body: Any, status: int, field: str
) -> None:
    response = httpx.post(f"{url}/api/indicators", json=body, headers=AUTH)
    assert response.status_code == status, response.text
    assert response.json()["field"] == field
    assert response.json()["error"]
    assert signals.view(window=600)["series"] == [], "nothing from a bad body is recorded"


def test_ingest_needs_the_token(url: str, signals: Signals) -> None:
    body = {"observations": [{"type": "metric", "name": "sps", "value": 10.0}]}
    assert httpx.post(f"{url}/api/indicators", json=body).status_code == 401
    assert signals.view(window=600)["series"] == []


def test_signals_paths_are_aliases(url: str) -> None:
    body = {"observations": [{"type": "metric", "name": "sps", "region": "us-east", "value": 5.0}]}
    assert httpx.post(f"{url}/api/signals/ingest", json=body, headers=AUTH).json() == {"accepted": 1}
    assert httpx.post(f"{url}/api/signals/ingest", json=body).status_code == 401
    assert httpx.get(f"{url}/api/signals?window=600").json()["interval"] == 5.0
