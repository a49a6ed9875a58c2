"""Silences over HTTP on a real `stoic signals run` process: made with who and why, listed,
expired; bad bodies answer 400 naming the field, writes without the token 401."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stoic.chaos import free_port

from .test_run_cli import TOKEN, indicators, start, stop

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = start(tmp_path, indicators(tmp_path, port), port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def test_silences_are_made_listed_and_expired_over_http(server: str) -> None:
    body = {
        "matchers": ['team="shop"', 'region=~"eu-.*"'],
        "ends_at": time.time() + 3600,
        "created_by": "ana",
        "comment": "checkout migration, orders dip expected",
        "kind": "maintenance",
    }
    assert httpx.post(f"{server}/api/silences", json=body, timeout=10).status_code == 401
    made = httpx.post(f"{server}/api/silences", json=body, headers=AUTH, timeout=10)
    assert made.status_code == 201, made.text
    silence = made.json()
    assert silence["kind"] == "maintenance" and silence["created_by"] == "ana"
    listed = httpx.get(f"{server}/api/silences", params={"active": "1"}, timeout=10).json()
    assert [s["id"] for s in listed] == [silence["id"]]
    url = f"{server}/api/silences/{silence['id']}"
    gone = httpx.delete(url, params={"by": "ana"}, headers=AUTH, timeout=10)
    assert gone.status_code == 200 and gone.json()["expired_by"] == "ana"
    assert httpx.get(f"{server}/api/silences", params={"active": "1"}, timeout=10).json() == []
    missing = httpx.delete(f"{server}/api/silences/nope", params={"by": "ana"}, headers=AUTH, timeout=10)
    assert missing.status_code == 404 and missing.json()["field"] == "silence_id"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"matchers": ["team=shop"]}, "matchers", 'matchers: each must read name="value"'),
        ({"ends_at": "tomorrow"}, "ends_at", "ends_at: must be epoch seconds (a number), got 'tomorrow'"),
        ({"created_by": ""}, "created_by", "created_by: must be a non-empty string"),
        ({"kind": "experiment"}, "kind", "kind: must be one of silence, maintenance, got 'experiment'"),
        ({"why": "x"}, "why", "why: unknown field; allowed: matchers, starts_at, ends_at"),
    ],
)
def test_a_bad_silence_body_is_refused_naming_the_field(
    server: str, change: dict[str, object], field: str, message: str
) -> None:
    body = {"matchers": ['team="shop"'], "ends_at": time.time() + 60, "created_by": "ana", "comment": "x"}
    answer = httpx.post(f"{server}/api/silences", json={**body, **change}, headers=AUTH, timeout=10)
    assert answer.status_code == 400
    assert answer.json()["field"] == field and answer.json()["error"].startswith(message)
