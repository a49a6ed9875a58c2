"""Churn risk: decayed per-account scores, top-N with reasons, bounded."""

from __future__ import annotations

import pytest

from stoic.signals import ChurnRisk, Signals

from .conftest import Clock


def test_ranks_repeated_failures_first_with_reasons(clock: Clock) -> None:
    churn = ChurnRisk(half_life=3600.0, clock=clock)
    for _ in range(4):
        churn.observe_start("alice", ok=False)
    for _ in range(3):
        churn.observe_playback("bob", watched_s=60.0, rebuffer_s=10.0)
    churn.observe_start("carol", ok=False)
    churn.observe_start("dave", ok=True)  # a good start costs nothing
    churn.observe_playback("erin", watched_s=600.0, rebuffer_s=1.0)  # 0.2 % rebuffering: fine
    top = churn.top(10)
    assert [r.account for r in top] == ["alice", "bob", "carol"]
    assert top[0].score == pytest.approx(4.0)
    assert top[0].reasons == {"failed start": pytest.approx(4.0)}
    assert top[1].reasons == {"rebuffering": pytest.approx(1.5)}
    assert top[0].to_dict()["account"] == "alice"


def test_old_trouble_decays(clock: Clock) -> None:
    churn = ChurnRisk(half_life=3600.0, clock=clock)
    for _ in range(4):
        churn.observe("old", "failed start")
    clock.now += 3 * 3600.0  # three half-lives: 4 -> 0.5
    churn.observe("new", "failed start")
    top = churn.top(2)
    assert [r.account for r in top] == ["new", "old"]
    assert top[1].score == pytest.approx(0.5)
    assert top[1].last_seen == clock.now - 3 * 3600.0


def test_bounded_memory_keeps_the_most_at_risk(clock: Clock) -> None:
    churn = ChurnRisk(max_accounts=100, clock=clock)
    for _ in range(5):
        churn.observe("vip", "failed start")
    for i in range(500):
        churn.observe(f"acct-{i}", "rebuffering")
    assert len(churn) <= 100
    assert churn.top(1)[0].account == "vip"


def test_signals_feeds_churn_from_starts_and_view(clock: Clock) -> None:
    signals = Signals(interval=1.0, day=60.0, clock=clock)
    signals.observe_start("eu-west", ok=False, account="acct-1")
    signals.observe_start("eu-west", ok=False, account="acct-1")
    signals.observe_playback("eu-west", watched_s=10.0, rebuffer_s=5.0, account="acct-2")
    assert [r["account"] for r in signals.view(60.0)["churn"]] == ["acct-1", "acct-2"]  # type: ignore[index]
