"""Silences, maintenance windows and experiment silences, delivered (or not) to a real loopback
webhook receiver: a silenced page is recorded and shown but never sent, and is sent when the
silence ends while it still fires; a running chaos experiment holds back only what it is
expected to cause, and anything beyond its blast radius breaks through naming it."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from stoic.chaos import AuditLog, Experiment, Hypothesis, KillSwitch
from stoic.fit import Scenario
from stoic.signals import BurnRateRule, Signals, WebhookReceiver
from stoic.signals.config import ConfigError, parse
from stoic.signals.grouping import Grouping
from stoic.signals.ownership import Ownership
from stoic.signals.service import SignalsService
from stoic.signals.silences import Matcher, Silences

from .conftest import Clock, Receiver

PAGE = BurnRateRule(3600.0, 300.0, 14.4, "page")
TICKET = BurnRateRule(3600.0, 300.0, 14.4, "ticket")  # the same windows, at warning severity


def _signals(clock: Clock, receiver: Receiver, rule: BurnRateRule = PAGE, db: Path | None = None) -> Signals:
    teams = {"playback-team": {"receivers": ["hook"]}}
    return Signals(
        interval=1.0,
        day=60.0,
        time_scale=60.0,  # 1 h -> 60 s, 5 min -> 5 s
        burn_rules=(rule,),
        clock=clock,
        db=db,
        ownership=Ownership.from_dict({"teams": teams, "default": "playback-team"}),
        receivers=[WebhookReceiver("hook", receiver.url, timeout=30.0)],
        grouping=Grouping(group_wait=0.0),
    )


def _seconds(signals: Signals, clock: Clock, n: int, error_ratio: float, regions: tuple[str, ...]) -> None:
    bad = round(100 * error_ratio)
    for _ in range(n):
        for region in regions:
            signals.observe_start(region, ok=True, count=100 - bad)
            if bad:
                signals.observe_start(region, ok=False, count=bad)
        clock.now += 1.0
        signals.evaluate()


def _burns(receiver: Receiver) -> list[dict[str, Any]]:
    alerts = [a for body in receiver.bodies for a in body["alerts"]]  # type: ignore[attr-defined]
    return [a for a in alerts if a["labels"]["alertname"] == "SLOBurnRate"]


def test_a_silenced_page_is_recorded_and_shown_but_sent_only_when_the_silence_ends(
    clock: Clock, receiver: Receiver, tmp_path: Path
) -> None:
    signals = _signals(clock, receiver, db=tmp_path / "signals.db")
    made = signals.silence(
        ['region="eu-west"', 'alertname=~"SLO.*"'],
        ends_at=clock.now + 3600.0,
        created_by="ana",
        comment="card provider incident, tracked in the bridge",
    )
    _seconds(signals, clock, 60, 0.0, ("eu-west",))
    _seconds(signals, clock, 5, 0.5, ("eu-west",))
    assert signals.router.flush(60.0) == 0
    assert _burns(receiver) == []  # held back
    firing = [a for a in signals.alerts() if a["kind"] == "burn_rate"]
    assert len(firing) == 1 and firing[0]["silenced_by"] == made["id"]  # visible, and says why
    assert [s["alert_id"] for s in signals.silenced()] == [firing[0]["id"]]
    with sqlite3.connect(tmp_path / "signals.db") as db:  # recorded in history
        assert db.execute("SELECT COUNT(*) FROM alerts WHERE kind = 'burn_rate'").fetchone()[0] == 1
    signals.expire_silence(str(made["id"]), by="ana")
    _seconds(signals, clock, 1, 0.5, ("eu-west",))
    assert signals.router.flush(60.0) == 0
    notes = _burns(receiver)
    assert [n["status"] for n in notes] == ["firing"]  # still firing when the silence ended: sent now
    signals.close()


def test_a_silence_made_through_the_api_survives_a_restart(
    clock: Clock, receiver: Receiver, tmp_path: Path
) -> None:
    first = _signals(clock, receiver, db=tmp_path / "signals.db")
    made = first.silence(['team="playback-team"'], ends_at=clock.now + 600, created_by="ana", comment="drill")
    first.close()
    second = _signals(clock, receiver, db=tmp_path / "signals.db")
    assert [s["id"] for s in second.list_silences(active_only=True)] == [made["id"]]
    second.close()


def test_bad_silences_name_the_field(clock: Clock, receiver: Receiver) -> None:
    signals = _signals(clock, receiver)
    with pytest.raises(ValueError, match=r'^matchers: each must read name="value" with one of =, !=, =~, !~'):
        signals.silence(["region=eu-west"], ends_at=clock.now + 60, created_by="ana", comment="x")
    with pytest.raises(ValueError, match=r"^matcher.value: not a valid regular expression"):
        signals.silence(['region=~"eu-("'], ends_at=clock.now + 60, created_by="ana", comment="x")
    with pytest.raises(ValueError, match=r"^matchers: at least one is needed"):
        signals.silence([], ends_at=clock.now + 60, created_by="ana", comment="x")
    with pytest.raises(ValueError, match=r"^ends_at: must be after starts_at and at most 31 days later"):
        signals.silence(
            ['team="a"'], ends_at=clock.now - 60, created_by="a", comment="x", starts_at=clock.now
        )
    with pytest.raises(ValueError, match=r"^created_by: must be a non-empty string"):
        signals.silence(['team="a"'], ends_at=clock.now + 60, created_by="", comment="x")
    with pytest.raises(ValueError, match=r"^kind: must be one of silence, maintenance, experiment, got 'mu'"):
        signals.silence(['team="a"'], ends_at=clock.now + 60, created_by="ana", comment="x", kind="mu")
    with pytest.raises(KeyError, match=r"silence_id: no silence 'nope'"):
        signals.expire_silence("nope", by="ana")
    signals.close()


def test_matchers_follow_alertmanager() -> None:
    labels = {"team": "payments", "region": "eu-west"}
    assert Matcher.parse('region=~"eu-.*"').matches(labels)
    assert not Matcher.parse('region=~"eu"').matches(labels)  # anchored, as in Alertmanager
    assert Matcher.parse('zone=""').matches(labels)  # a missing label reads as empty
    assert Matcher.parse('team!~"pay.*"').matches({"team": "search"})
    assert Matcher.parse('team!="payments"').to_alertmanager() == {
        "name": "team",
        "value": "payments",
        "isRegex": False,
        "isEqual": False,
    }
    silences = Silences(clock=lambda: 1_764_064_800.0)
    assert silences.silencing(labels) is None


MAINTENANCE = """
[service]
history = "{db}"
[receivers]
webhooks = ["{url}"]
[[maintenance]]
matchers = ['indicator="payment_errors"']
starts_at = 2025-11-25T00:00:00Z
ends_at = 2025-11-25T06:00:00Z
created_by = "ops:ana"
comment = "card provider maintenance CHG-812"
[[indicators]]
name = "payment_errors"
source = "push"
kind = "ratio"
direction = "up"
slo = 0.999
team = "payments"
"""


def test_an_announced_maintenance_holds_its_pages_and_is_named_as_the_cause(
    clock: Clock, receiver: Receiver, tmp_path: Path
) -> None:
    config = parse(MAINTENANCE.format(db=tmp_path / "signals.db", url=receiver.url))
    assert [s.kind for s in config.silences] == ["maintenance"]
    service = SignalsService(config, clock=clock)
    for ratio in [0.0005] * 70 + [0.05] * 30:  # errors during the window: 50x the budget
        point = {"type": "metric", "name": "payment_errors", "value": ratio, "at": clock.now}
        service.ingest({"observations": [point]})
        clock.now += 60.0
    assert service.router.flush(60.0) == 0
    assert receiver.bodies == []  # not one page
    (alert,) = [a for a in service.alerts() if a["kind"] == "burn_rate"]
    assert alert["silenced_by"] == "maintenance-0"
    announced = "Announced maintenance: card provider maintenance CHG-812 (by ops:ana)."
    assert str(alert["cause"]).startswith(announced)
    service.close()


def test_bad_maintenance_tables_name_the_key(tmp_path: Path) -> None:
    good = MAINTENANCE.format(db=tmp_path / "s.db", url="http://127.0.0.1:1/")
    with pytest.raises(ConfigError, match=r"^maintenance\[0\]\.ends_at: needs a UTC offset"):
        parse(good.replace("ends_at = 2025-11-25T06:00:00Z", "ends_at = 2025-11-25T06:00:00"))
    with pytest.raises(ConfigError, match=r"^maintenance\[0\]\.comment: required"):
        parse(good.replace('comment = "card provider maintenance CHG-812"', ""))
    with pytest.raises(ConfigError, match=r"^maintenance\[0\]\.who: unknown key; allowed: matchers, "):
        parse(good.replace('created_by = "ops:ana"', 'created_by = "ops:ana"\nwho = "x"'))
    with pytest.raises(ConfigError, match=r'^maintenance\[0\]\.matchers: each must read name="value"'):
        parse(good.replace("""matchers = ['indicator="payment_errors"']""", "matchers = ['indicator']"))


def _experiment(signals: Signals, clock: Clock, tmp_path: Path) -> Experiment:
    return Experiment(
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
        clock=clock,
    )


def test_an_experiment_silences_its_blast_radius_and_what_goes_beyond_breaks_through(
    clock: Clock, receiver: Receiver, tmp_path: Path
) -> None:
    signals = _signals(clock, receiver, TICKET)  # warnings: what the experiment may cause
    _seconds(signals, clock, 60, 0.0, ("eu-west", "us-east"))
    experiment = _experiment(signals, clock, tmp_path)
    experiment.start()
    (silence,) = signals.list_silences(active_only=True)
    assert silence["kind"] == "experiment" and silence["comment"] == "chaos experiment payments-latency"
    assert silence["matchers"] == ['region=~"eu\\-west"'] and silence["max_severity"] == "warning"
    assert silence["created_by"] == "user:ada" and silence["ends_at"] == clock.now + 600.0
    _seconds(signals, clock, 5, 0.5, ("eu-west", "us-east"))
    assert signals.router.flush(60.0) == 0
    notes = _burns(receiver)
    assert [n["labels"]["region"] for n in notes] == ["us-east"]  # eu-west is held, us-east is not
    cause = notes[0]["annotations"]["cause"]
    assert cause.startswith(
        "Beyond the expected blast radius of chaos experiment payments-latency "
        '(region=~"eu\\-west", severity up to warning): stop it with '
        f"`touch {tmp_path / 'chaos-off'}`."
    )
    held = [a for a in signals.alerts() if a["region"] == "eu-west" and a["kind"] == "burn_rate"]
    assert held[0]["silenced_by"] == silence["id"]
    experiment.abort("enough")  # over early: what follows is not the experiment's
    assert signals.list_silences(active_only=True) == []
    _seconds(signals, clock, 1, 0.5, ("eu-west", "us-east"))
    assert signals.router.flush(60.0) == 0
    assert sorted(n["labels"]["region"] for n in _burns(receiver)) == ["eu-west", "us-east"]
    signals.close()


def test_a_page_above_the_expected_severity_breaks_through_an_experiment(
    clock: Clock, receiver: Receiver, tmp_path: Path
) -> None:
    signals = _signals(clock, receiver, PAGE)  # critical: above what the experiment expects
    _seconds(signals, clock, 60, 0.0, ("eu-west",))
    _experiment(signals, clock, tmp_path).start()
    _seconds(signals, clock, 5, 0.5, ("eu-west",))
    assert signals.router.flush(60.0) == 0
    (note,) = _burns(receiver)
    assert note["labels"]["region"] == "eu-west" and note["labels"]["severity"] == "critical"
    beyond = "Beyond the expected blast radius of chaos experiment payments-latency"
    assert beyond in note["annotations"]["cause"]
    signals.close()


def test_a_running_service_is_an_experiment_context_too(
    clock: Clock, receiver: Receiver, tmp_path: Path
) -> None:
    config = parse(MAINTENANCE.format(db=tmp_path / "s.db", url=receiver.url))
    service = SignalsService(config, clock=clock)
    experiment = Experiment(
        "payments-latency",
        Scenario("payments-latency", "payments", "delay", delay=0.2),
        [Hypothesis("error_rate", 0.01)],
        duration=300.0,
        audit=AuditLog(),
        context=service,
        regions=["eu-west"],
        actor="user:ada",
        clock=clock,
    )
    experiment.start()
    kinds = {s["kind"]: s for s in service.list_silences(active_only=True)}
    assert set(kinds) == {"maintenance", "experiment"}
    assert kinds["experiment"]["ends_at"] == clock.now + 300.0
    events = service.view()["events"]
    assert [e["description"][:35] for e in events] == ["experiment payments-latency started"]
    service.close()


def test_a_maintenance_window_expired_early_stays_expired_after_a_restart(
    clock: Clock, receiver: Receiver, tmp_path: Path
) -> None:
    config = parse(MAINTENANCE.format(db=tmp_path / "s.db", url=receiver.url))
    first = SignalsService(config, clock=clock)
    assert [s["id"] for s in first.list_silences(active_only=True)] == ["maintenance-0"]
    first.expire_silence("maintenance-0", by="ops:ana")
    first.close()
    clock.now += 60.0
    second = SignalsService(config, clock=clock)
    assert second.list_silences(active_only=True) == []
    (kept,) = second.list_silences()
    assert kept["expired_by"] == "ops:ana"
    second.close()


def test_a_slack_receiver_from_the_file_gets_the_page_as_text(
    clock: Clock, receiver: Receiver, tmp_path: Path
) -> None:
    body = MAINTENANCE.replace('webhooks = ["{url}"]', 'slack = ["{url}"]').split("[[maintenance]]")[0]
    body += MAINTENANCE.split('comment = "card provider maintenance CHG-812"')[1]
    service = SignalsService(parse(body.format(db=tmp_path / "s.db", url=receiver.url)), clock=clock)
    for ratio in [0.0005] * 70 + [0.05] * 30:
        point = {"type": "metric", "name": "payment_errors", "value": ratio, "at": clock.now}
        service.ingest({"observations": [point]})
        clock.now += 60.0
    assert service.router.flush(60.0) == 0
    assert all(set(sent) == {"text"} for sent in receiver.bodies)  # the drop alert is a text too
    (burn,) = [str(sent["text"]) for sent in receiver.bodies if "SLO" in str(sent["text"])]
    assert burn.startswith("*[CRITICAL] payment_errors is burning the 99.900% SLO error budget")
    service.close()


def test_a_fit_scenario_silences_its_blast_radius_until_it_expires(
    clock: Clock, receiver: Receiver
) -> None:
    signals = _signals(clock, receiver, TICKET)
    scenario = Scenario("checkout-errors", "payments", "error", percent=5.0, expires_at=clock.now + 900.0)
    made = signals.silence_scenario(scenario, created_by="user:ada", regions=["eu-west"])
    assert made["comment"] == "FIT scenario checkout-errors" and made["ends_at"] == clock.now + 900.0
    assert made["kill_switch"] == "removing FIT scenario checkout-errors"
    (event,) = signals.view()["events"]
    assert event["kind"] == "fit" and event["target"] == "payments"
    assert event["description"] == "FIT scenario checkout-errors added: error on payments for 5% of requests"
    with pytest.raises(ValueError, match=r"^scenario.expires_at: scenario forever never ends"):
        signals.silence_scenario(Scenario("forever", "payments", "error"), created_by="user:ada")
    with pytest.raises(ValueError, match=r"^scenario: must be a stoic.fit.Scenario, got dict"):
        signals.silence_scenario({"name": "x"}, created_by="user:ada")
    signals.close()
