"""Churn risk: each account against its own rhythm, problems by recency, own errors apart, plain
reasons, routing to the owning team, refusals that name the field, bounded memory."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stoic.signals import Account, ChurnRisk, Ownership, Signals, WebhookReceiver, load_accounts
from stoic.signals.churn import HISTORY_DAYS

from .conftest import Clock, Receiver

DAY = 86400.0
MONDAY = 1_767_571_200.0  # Monday 2026-01-05 00:00 UTC
LATER = MONDAY + 1000 * DAY  # "now" for histories fed as a backfill (observations may not lie ahead)


def orders_churn(**kwargs: object) -> ChurnRisk:
    return ChurnRisk(
        activity=("orders",),
        problems=("failed login",),
        own_errors=("bad password",),
        clock=lambda: LATER,
        **kwargs,  # type: ignore[arg-type]
    )


def feed_daily(
    churn: ChurnRisk,
    account: str,
    days: range,
    level: float | list[float],
    *,
    seed: int = 1,
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4),
) -> None:
    """Orders on the given weekdays of `days` (day 0 = MONDAY), around `level` (or level[day])."""
    rng = random.Random(seed)
    for d in days:
        mean = level[d] if isinstance(level, list) else level
        if d % 7 in weekdays and mean > 0:
            count = max(1, round(rng.gauss(mean, mean**0.5)))
            churn.observe(account, "orders", count, at=MONDAY + d * DAY + 10 * 3600.0)


def steady_peers(churn: ChurnRisk, days: range, n: int = 30) -> None:
    for i in range(n):
        feed_daily(churn, f"peer-{i}", days, 10.0, seed=100 + i)


# ---- counting --------------------------------------------------------------------------------
def test_count_n_adds_n(clock: Clock) -> None:
    signals = Signals(interval=1.0, day=60.0, clock=clock)
    signals.observe_start("eu-west", ok=False, account="acct-1", count=5)
    one_by_one = ChurnRisk(clock=clock)
    for _ in range(5):
        one_by_one.observe_start("acct-1", False)
    together = signals.churn.assess("acct-1")
    apart = one_by_one.assess("acct-1")
    assert together is not None and apart is not None
    assert list(together.reasons) == ["5 failed starts since today"]
    assert together.score == pytest.approx(apart.score)
    signals.close()


# ---- rhythm ----------------------------------------------------------------------------------
def test_a_weekly_customer_is_not_flagged_mid_week_but_is_when_it_stops() -> None:
    churn = orders_churn()
    steady_peers(churn, range(100))  # the business goes on
    feed_daily(churn, "weekly", range(84), 40.0, weekdays=(0,))  # every Monday for 12 weeks
    last_monday = 77
    for day in (last_monday + 2, last_monday + 3, last_monday + 5, last_monday + 7):  # Wed .. next Mon
        risk = churn.assess("weekly", at=MONDAY + day * DAY + 12 * 3600.0)
        assert risk is not None
        assert risk.score < churn.alert_at, (day, risk.reasons)
        assert not any(r.startswith("no orders") and v > 0.2 for r, v in risk.reasons.items()), risk.reasons
    # three Mondays missed: now it is flagged, and says so in words
    late = churn.assess("weekly", at=MONDAY + (last_monday + 22) * DAY + 12 * 3600.0)
    assert late is not None and late.score >= churn.alert_at, late
    assert late.kind in ("silent", "declining")
    assert "no orders for 22 days; it usually comes back every week" in late.reasons


def test_a_scheduled_buyer_that_skips_now_and_then_is_judged_by_its_misses_in_a_row() -> None:
    # A Monday buyer that skipped 2 of 26 Mondays: one more missed Monday is ordinary, two in a row
    # is worth a look, three in a row is alert-worthy (a schedule has no long tail of silences;
    # the renewal law fitted to its gaps alone kept one and waited a fourth Monday).
    churn = orders_churn()
    steady_peers(churn, range(200))
    mondays = [d for d in range(0, 26 * 7, 7) if d not in (35, 119)]
    for d in mondays:
        churn.observe("monday", "orders", 40, at=MONDAY + d * DAY + 10 * 3600.0)
    last = mondays[-1]

    def score(day: int) -> float:
        risk = churn.assess("monday", at=MONDAY + day * DAY + 12 * 3600.0)
        assert risk is not None
        return risk.score

    one, two, three = score(last + 9), score(last + 16), score(last + 23)
    assert one < 0.1 < two < churn.alert_at <= three, (one, two, three)


def test_a_monthly_buyer_is_not_flagged_mid_month() -> None:
    churn = orders_churn()
    steady_peers(churn, range(150))
    for month in range(5):
        churn.observe("monthly", "orders", 120, at=MONDAY + (month * 30 + 2) * DAY)
    mid_month = churn.assess("monthly", at=MONDAY + (4 * 30 + 2 + 16) * DAY)
    assert mid_month is not None
    assert mid_month.score < 0.2, mid_month.reasons


def test_a_holiday_everyone_takes_is_not_churn() -> None:
    churn = orders_churn()
    churn.add_accounts([Account(f"peer-{i}", segment="schools") for i in range(30)])
    closed = [0.0 if 84 <= d < 98 else 10.0 for d in range(98)]  # two weeks shut, all together
    for i in range(30):
        feed_daily(churn, f"peer-{i}", range(98), closed, seed=200 + i)
    top = churn.top(5, at=MONDAY + 98 * DAY)
    assert all(r.score < churn.alert_at for r in top), [(r.account, r.score, r.reasons) for r in top]


# ---- problems and own errors ---------------------------------------------------------------------
def test_own_errors_do_not_rank_and_the_business_s_errors_do() -> None:
    churn = orders_churn()
    days = range(70)
    steady_peers(churn, days)
    feed_daily(churn, "happy-integration", days, 10.0, seed=7)
    feed_daily(churn, "locked-out", days, 10.0, seed=8)
    now = MONDAY + 70 * DAY
    for d in (66, 67, 68, 69):  # its integration retries a bad password all day, every day
        churn.observe("happy-integration", "bad password", 400, at=MONDAY + d * DAY + 3600.0)
    for d in (68, 69):  # a login incident on our side
        churn.observe("locked-out", "failed login", 7, at=MONDAY + d * DAY + 3600.0)
    top = churn.top(5, at=now)
    assert top[0].account == "locked-out"
    assert top[0].reasons == {"14 failed logins since Saturday": pytest.approx(top[0].score)}
    assert "happy-integration" not in [r.account for r in top]
    (own,) = churn.own_side(5, at=now)
    assert own.account == "happy-integration" and own.kind == "own errors"
    assert list(own.reasons) == ["1,600 bad passwords in 7 days from its own side (not counted)"]
    assert own.next_step.startswith("Tell happy-integration their integration fails on their side")


# ---- decline, names and reasons ----------------------------------------------------------------
def test_a_decliner_is_flagged_first_with_its_name_and_a_plain_reason(tmp_path: Path) -> None:
    book = tmp_path / "accounts.csv"
    book.write_text(
        "id,name,segment,owner,value\n"
        "acct-17,Bakery Lund,retail,cs-north,12000\n"
        + "".join(f"peer-{i},Peer {i},retail,cs-north,1000\n" for i in range(30)),
        encoding="utf-8",
    )
    churn = orders_churn(accounts=book)
    days = range(84)
    steady_peers(churn, days)
    fading = [20.0 if d < 56 else 20.0 * max(0.15, 1 - (d - 56) / 20) for d in days]
    feed_daily(churn, "acct-17", days, fading, seed=3)
    (first,) = churn.top(1, at=MONDAY + 84 * DAY)
    assert (first.account, first.name, first.segment, first.owner, first.value) == (
        "acct-17",
        "Bakery Lund",
        "retail",
        "cs-north",
        12000.0,
    )
    assert first.kind == "declining" and first.score >= churn.alert_at
    reason = next(iter(first.reasons))
    pattern = r"orders down \d\d% over the last \d+ days against its own 8 weeks before"
    assert re.fullmatch(pattern, reason), reason
    assert first.next_step.startswith("Book a call with Bakery Lund this week")
    assert first.trend[0] > 3 * first.trend[-1]  # weekly totals, oldest first
    as_dict = first.to_dict()
    assert as_dict["name"] == "Bakery Lund" and as_dict["reasons"] == {
        k: round(v, 3) for k, v in first.reasons.items()
    }


# ---- routing ------------------------------------------------------------------------------------
def test_churn_alerts_reach_the_owning_team_with_the_list(receiver: Receiver) -> None:
    now = [MONDAY + 84 * DAY]
    churn = ChurnRisk(activity=("orders",), problems=("failed login",), clock=lambda: now[0])
    churn.add_accounts(
        [Account("acct-17", name="Bakery Lund", segment="retail", owner="cs-north", value=12000.0)]
        + [Account(f"peer-{i}", owner="cs-south") for i in range(30)]
    )
    days = range(84)
    steady_peers(churn, days)
    feed_daily(churn, "acct-17", days, [20.0 if d < 56 else 2.0 for d in days], seed=3)
    owners = Ownership.from_dict(
        {"teams": {"cs-north": {"receivers": ["cs-north-hook"]}, "sre": {"receivers": []}}, "default": "sre"}
    )
    now[0] = MONDAY + 84 * DAY
    signals = Signals(
        interval=60.0,
        ownership=owners,
        receivers=[WebhookReceiver("cs-north-hook", receiver.url)],
        churn=churn,
        clock=lambda: now[0],
    )
    try:
        (alert,) = signals.route_churn()
        assert alert.team == "cs-north" and alert.receivers == ("cs-north-hook",)
        assert signals.router.flush(timeout=10.0) == 0
    finally:
        signals.close()
    (body,) = receiver.bodies
    (sent,) = body["alerts"]
    assert sent["labels"]["alertname"] == "ChurnRisk" and sent["labels"]["team"] == "cs-north"
    assert sent["labels"]["accounts"] == "acct-17"
    summary = "1 accounts of cs-north at risk of churning, value at risk 12,000"
    assert sent["annotations"]["summary"] == summary
    line = sent["annotations"]["description"]
    assert line.startswith("Bakery Lund (acct-17, retail) risk ")
    assert "orders down 9" in line and "Next: Book a call with Bakery Lund this week" in line


def test_signals_routes_churn_once_per_period(clock: Clock, receiver: Receiver) -> None:
    # a new account with nothing but failed starts is a watch item (problems alone weigh at most
    # 0.25), so this team is alerted from 0.2
    churn = ChurnRisk(clock=clock, alert_at=0.2)
    owners = Ownership.from_dict({"teams": {"cs": {"receivers": ["cs-hook"]}}, "indicators": {"churn": "cs"}})
    signals = Signals(
        interval=1.0,
        day=60.0,
        ownership=owners,
        receivers=[WebhookReceiver("cs-hook", receiver.url)],
        churn=churn,
        churn_every=3600.0,
        clock=clock,
    )
    try:
        assert signals.evaluate() == []  # starts the period
        for _ in range(30):
            signals.observe_start("eu-west", ok=False, account="acct-9", count=2)
        clock.now += 1800.0
        assert not [a for a in signals.evaluate() if a.kind == "churn"]
        clock.now += 1800.0
        (alert,) = [a for a in signals.evaluate() if a.kind == "churn"]
        assert alert.team == "cs" and "acct-9" in alert.cause and "failed starts" in alert.cause
    finally:
        signals.close()


# ---- refusals -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ChurnRisk(activity=()), r"^activity: must name 1\.\.16 signals, got 0$"),
        (lambda: ChurnRisk(activity="orders"), r"^activity: must be a list of signal names, got 'orders'$"),
        (lambda: ChurnRisk(problems=["ok", ""]), r"^problems\[1\]: must be 1\.\.64 characters"),
        (lambda: ChurnRisk(activity=("x",), own_errors=("x",)), r"^own_errors: 'x' is declared twice"),
        (lambda: ChurnRisk(half_life=0), r"^half_life: must be > 0, got 0$"),
        (lambda: ChurnRisk(utc_offset=20), r"^utc_offset: must be <= 14, got 20$"),
        (lambda: ChurnRisk(alert_at=float("nan")), r"^alert_at: must be a finite number, got nan$"),
        (lambda: ChurnRisk(max_accounts=0), r"^max_accounts: must be between 1 and 10000000, got 0$"),
        (
            lambda: orders_churn().observe("a", "refunds"),
            r"^signal: must be a declared activity, problem or own error "
            r"\(orders, failed login, bad password\), got 'refunds'$",
        ),
        (lambda: orders_churn().observe("a", "orders", -1), r"^count: must be > 0, got -1$"),
        (lambda: orders_churn().observe("a", "orders", True), r"^count: must be a finite number, got True$"),
        (lambda: orders_churn().observe("", "orders"), r"^account: must be a non-empty string of at most"),
        (lambda: orders_churn().observe("a", "orders", at=1.7e12), r"^at: .*\(milliseconds\? divide by 1000"),
        (lambda: orders_churn().top(-1), r"^n: must be between 0 and 100000, got -1$"),
        (lambda: orders_churn().observe("a", "orders", at=LATER + 2 * DAY), r"^at: .* more than a day ahead"),
        (lambda: orders_churn().observe_start("a", True, count=-2), r"^count: must be >= 1, got -2$"),
        (lambda: orders_churn().alerts("cs"), r"^ownership: must be an Ownership, got str$"),  # type: ignore[arg-type]
        (lambda: ChurnRisk().observe_start("a", False, count=0), r"^count: must be >= 1, got 0$"),
        (lambda: Account("a", value=-5.0), r"^account\.value: must be >= 0, got -5\.0$"),
        (lambda: Account("a", owner=7), r"^account\.owner: must be a string of at most 100"),  # type: ignore[arg-type]
        (lambda: Signals(churn="churn"), r"^churn: must be a ChurnRisk, got str$"),  # type: ignore[arg-type]
        (lambda: Signals(churn_every=1.0), r"^churn_every: must be >= 60, got 1\.0$"),
        (
            lambda: orders_churn().add_accounts([Account("a"), Account("a")]),
            r"^accounts\[1\]\.id: 'a' appears twice \(also accounts\[0\]\)$",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_field(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("accounts.csv", "id,value\na,12\nb,lots\n", r"accounts\[1\]\.value: must be a number, got 'lots'"),
        ("accounts.csv", "id,region\na,eu\n", r"accounts\[0\]\.region: unknown field; allowed: id, name"),
        ("accounts.csv", "name\nA\n", r"header: must name an id column"),
        ("accounts.csv", "id,value\na,-3\n", r"accounts\[0\]\.value: must be >= 0, got -3\.0"),
        ("accounts.toml", "[[accounts]]\nid = 'a'\nvalue = 'x'\n", r"accounts\[0\]\.value: must be a finite"),
        ("accounts.toml", "[[accounts]]\nname = 'A'\n", r"accounts\[0\]\.id: required$"),
        ("accounts.toml", "[[customers]]\nid = 'a'\n", r"customers: unknown key; allowed: accounts$"),
        ("accounts.toml", "[[accounts]\n", r"not valid TOML"),
    ],
)
def test_bad_account_files_are_refused_naming_row_and_field(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=f"^{re.escape(name)}: {message}"):
        load_accounts(path)
    other = tmp_path / "accounts.json"
    other.write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match=r"^accounts: file must end in \.csv or \.toml, got .accounts\.json"):
        load_accounts(other)


def test_account_files_load_from_csv_and_toml(tmp_path: Path) -> None:
    csv = tmp_path / "book.csv"
    csv.write_text('id,name,segment,owner,value\nacct-1,Bakery Lund,retail,cs-north,"1,200"\nacct-2,,,,\n')
    toml = tmp_path / "book.toml"
    toml.write_text(
        "[[accounts]]\nid = 'acct-1'\nname = 'Bakery Lund'\n"
        "segment = 'retail'\nowner = 'cs-north'\nvalue = 1200\n"
    )
    expected = Account("acct-1", name="Bakery Lund", segment="retail", owner="cs-north", value=1200.0)
    assert load_accounts(csv) == [expected, Account("acct-2")]
    assert load_accounts(toml) == [expected]
    with pytest.raises(ValueError, match=r"^accounts: cannot read '.*missing\.csv'"):
        load_accounts(tmp_path / "missing.csv")


# ---- bounds -------------------------------------------------------------------------------------
def test_memory_is_bounded_per_account_and_in_accounts() -> None:
    churn = orders_churn(max_accounts=100)
    for i in range(500):
        churn.observe(f"acct-{i}", "orders", at=MONDAY + i * 60.0)
    assert len(churn) <= 100
    assert churn.assess("acct-499") is not None and churn.assess("acct-0") is None  # the longest silent went
    for d in range(3 * HISTORY_DAYS):
        churn.observe("acct-499", "orders", 3, at=MONDAY + d * DAY)
    ledger = churn._ledgers["acct-499"]
    assert len(ledger.activity["orders"].ring) == HISTORY_DAYS
    churn.observe("acct-499", "orders", at=MONDAY)  # older than the history kept: counted, not stored
    assert churn.dropped == 1
    with pytest.raises(ValueError, match=r"^accounts: at most max_accounts=100 can be described, got 101$"):
        churn.add_accounts([Account(f"x-{i}") for i in range(101)])


# ---- the docs -----------------------------------------------------------------------------------
def test_the_docs_example_prints_what_the_page_says() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "signals.md").read_text(encoding="utf-8")
    section = page[page.index("## Churn risk") :]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    shown = re.search(r"prints\n\n```\n(.*?)```", section, re.S)
    assert block is not None and shown is not None
    done = subprocess.run(
        [sys.executable, "-c", block.group(1)], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout == shown.group(1)
    assert done.stdout.startswith("Bakery Lund: ") and " declining: orders down " in done.stdout
    assert "Café Nord: own errors: " in done.stdout
