"""A generated B2B ordering shop run through `stoic.signals`: three weeks of its own indicators,
500 customer accounts with ten weeks of orders, two real incidents, one noisy blip and one churn
cluster, taken the way a shop feeds Stoic (backfill files at start, then live pushes).

`run_shop(directory)` writes the indicators file, the backfill files and the accounts file,
starts a `SignalsService` with a clock set to the start of the report week, pushes the week
hour by hour through `service.ingest`, and returns the running service with what was planted.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from stoic.signals.config import load
from stoic.signals.service import SignalsService

END = datetime(2026, 11, 23, tzinfo=UTC).timestamp()  # a Monday: the report week ends here
DAY = 86400.0
WEEK_START = END - 7 * DAY
METRICS_FROM = END - 21 * DAY  # three weeks of the shop's own indicators
ORDERS_FROM = END - 70 * DAY  # ten weeks of orders per account (the churn model's baseline)
STEP = 300.0
REGIONS = ("eu", "us")
ACCOUNTS = 500
# the churn cluster: cafés in the north that a new competitor took, fading over a week
CHURNERS = {f"acct-{i:03d}": name for i, name in zip(range(7, 500, 61), (
    "Café Nord", "Café Lumen", "Café Birke", "Café Polar", "Café Fjord", "Café Tundra", "Café Aurora",
    "Café Skog",
), strict=False)}  # fmt: skip
SAVED = ("acct-250", "Hotel Meridian")  # silent before the week, ordering again within it
# incident 1: a payments deploy breaks checkout in eu for 90 minutes
CHECKOUT_FROM, CHECKOUT_TO = END - 5 * DAY + 10 * 3600, END - 5 * DAY + 11.5 * 3600
DEPLOY_AT = CHECKOUT_FROM - 300
# incident 2: logins fail in us from the evening before the week into its first morning
LOGIN_FROM, LOGIN_TO = WEEK_START - 4 * 3600, WEEK_START + 4 * 3600
BLIP_AT = END - 4 * DAY + 3 * 3600  # one bad five minutes, unexplained: noise

INDICATORS = """
[service]
history = "shop.db"
keep_days = 90

[weekly]
title = "Northwind Supplies"
merge_gap = "15m"
noise_under = "30m"

[churn]
accounts = "accounts.csv"
alert_at = 0.5

[[indicators]]
name = "orders"
source = "file"
file = "orders.csv"
kind = "count"
labels = ["region"]
direction = "down"
team = "shop"
interval = "5m"
tile = true
tile_label = "Orders"
summary = "Orders in {region} are {value:.3g}/s, expected {expected:.3g}/s"

[[indicators]]
name = "checkout_errors"
source = "file"
file = "checkout_errors.csv"
kind = "ratio"
labels = ["region"]
direction = "up"
slo = 0.995
team = "payments"
interval = "5m"
tile = true
tile_label = "Checkout errors"
summary = "Checkout errors in {region} are {value:.1%}, expected {expected:.1%}"
next_step = "Check the payment provider's status, then roll back the last payments deploy."

[[indicators]]
name = "login_success"
source = "file"
file = "login_success.csv"
kind = "ratio"
labels = ["region"]
direction = "down"
slo = 0.99
team = "identity"
interval = "5m"
tile_label = "Logins that succeed"
summary = "Logins in {region} succeed {value:.1%}, expected {expected:.1%}"
next_step = "Check the identity provider and the session store in the region."

[[indicators]]
name = "capacity_headroom"
source = "file"
file = "capacity_headroom.csv"
kind = "gauge"
unit = "%"
labels = ["region"]
direction = "down"
severity = "warning"
team = "platform"
interval = "5m"
tile = true
tile_stat = "min"
tile_label = "Lowest capacity headroom"

[[indicators]]
name = "account_orders"
source = "file"
file = "account_orders.csv"
kind = "gauge"
unit = "orders"
labels = ["account"]
max_series = 1000
expire_after = "30d"
direction = "down"
severity = "info"
team = "customer-success"
interval = "1d"
churn = "activity"
tile_label = "orders"
"""


@dataclass(frozen=True, slots=True)
class Shop:
    """The running service and what was planted in it."""

    service: SignalsService
    directory: Path
    indicators: Path


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method: fine for the small daily means of one account, bounded by the mean
    limit, k, p = math.exp(-mean), 0, 1.0
    for k in range(int(10 * mean) + 20):
        p *= rng.random()
        if p <= limit:
            return k
    return k


def _daily(t: float) -> float:
    """Business hours: busiest at 13:00 UTC, quiet at night, weekends at 60 %."""
    hour = (t % DAY) / 3600.0
    shape = 0.35 + 0.65 * math.exp(-(((hour - 13.0) / 4.0) ** 2))
    weekday = datetime.fromtimestamp(t, UTC).weekday()
    return shape * (0.6 if weekday >= 5 else 1.0)


def _metrics(rng: random.Random, t: float) -> Iterator[tuple[str, str, float]]:
    """(indicator, region, value) of the shop's own indicators for the 5 minutes at `t`."""
    growth = 1.04 if t >= WEEK_START else 1.0  # this week sold 4 % more
    for region, base in zip(REGIONS, (0.5, 0.3), strict=True):
        orders = base * growth * _daily(t) * rng.uniform(0.95, 1.05)
        errors = 0.002 + rng.uniform(-0.0003, 0.0003)
        logins = 0.997 + rng.uniform(-0.0005, 0.0005)
        headroom = 40.0 - 15.0 * _daily(t) + rng.uniform(-0.5, 0.5)
        if region == "eu" and CHECKOUT_FROM <= t < CHECKOUT_TO:
            errors, orders = 0.12 + rng.uniform(-0.005, 0.005), orders * 0.6
        if region == "us" and LOGIN_FROM <= t < LOGIN_TO:
            logins = 0.85 + rng.uniform(-0.005, 0.005)
        if region == "us" and BLIP_AT <= t < BLIP_AT + STEP:
            errors = 0.08
        yield "orders", region, orders
        yield "checkout_errors", region, errors
        yield "login_success", region, logins
        yield "capacity_headroom", region, headroom


def _accounts(rng: random.Random) -> list[dict[str, object]]:
    kinds = ("Bakery", "Bistro", "Deli", "Canteen", "Hotel", "Kiosk", "Restaurant")
    towns = ("Lund", "Malmö", "Umeå", "Luleå", "Kiruna", "Gävle", "Visby", "Borås", "Växjö", "Kalmar")
    rows = []
    for i in range(ACCOUNTS):
        account = f"acct-{i:03d}"
        north = i % 2 == 0
        row = {
            "id": account,
            "name": f"{kinds[i % len(kinds)]} {towns[(i // len(kinds)) % len(towns)]} {i}",
            "segment": "restaurants" if i % 3 else "hotels",
            "owner": "cs-north" if north else "cs-south",
            "value": float(rng.randrange(2_000, 60_000, 500)),
            "rate": rng.uniform(1.0, 4.0),
        }
        if account in CHURNERS:
            row.update(name=CHURNERS[account], segment="cafés", owner="cs-north", rate=rng.uniform(2.5, 4.0))
        if account == SAVED[0]:
            row.update(name=SAVED[1], segment="hotels", owner="cs-south", rate=3.0, value=48_000.0)
        rows.append(row)
    return rows


def _account_orders(rng: random.Random, row: dict[str, object], day_start: float) -> float:
    day = round((day_start - ORDERS_FROM) / DAY)  # 0..69
    rate = float(row["rate"])  # type: ignore[arg-type]
    if row["id"] in CHURNERS:
        rate *= 1.0 if day < 49 else max(0.0, 1.0 - (day - 48) / 7.0)  # gone from day 56
    if row["id"] == SAVED[0]:
        rate = 0.0 if 52 <= day <= 63 else (7.0 if day >= 64 else rate)
    weekday = datetime.fromtimestamp(day_start, UTC).weekday()
    return float(_poisson(rng, rate * (0.5 if weekday >= 5 else 1.0)))


def write_files(directory: Path, seed: int = 5) -> tuple[Path, list[dict[str, object]]]:
    """The indicators file, the backfill files up to the week's start and the accounts file."""
    rng = random.Random(seed)
    accounts = _accounts(rng)
    (directory / "indicators.toml").write_text(INDICATORS, encoding="utf-8")
    with (directory / "accounts.csv").open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["id", "name", "segment", "owner", "value"])
        for a in accounts:
            out.writerow([a["id"], a["name"], a["segment"], a["owner"], a["value"]])
    files = {
        name: (directory / f"{name}.csv").open("w", newline="", encoding="utf-8")
        for name in ("orders", "checkout_errors", "login_success", "capacity_headroom")
    }
    writers = {name: csv.writer(f) for name, f in files.items()}
    for w in writers.values():
        w.writerow(["at", "value", "region"])
    for n in range(round((WEEK_START - METRICS_FROM) / STEP)):
        t = METRICS_FROM + n * STEP
        for name, region, value in _metrics(rng, t):
            writers[name].writerow([t, f"{value:.6g}", region])
    for f in files.values():
        f.close()
    with (directory / "account_orders.csv").open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["at", "value", "account"])
        for d in range(round((WEEK_START - ORDERS_FROM) / DAY)):
            day_start = ORDERS_FROM + d * DAY
            for a in accounts:
                out.writerow([day_start, _account_orders(rng, a, day_start), a["id"]])
    return directory / "indicators.toml", accounts


def run_shop(directory: Path, seed: int = 5) -> Shop:
    """Start the service on the backfill at the week's start, then push the week live, an hour
    at a time (the deploy before incident 1 is sent as a context event)."""
    path, accounts = write_files(directory, seed)
    rng = random.Random(seed + 1)
    clock = _Clock(WEEK_START + 1.0)
    service = SignalsService(load(path), clock=clock)
    service.start(background=False)
    for hour in range(7 * 24):
        begin = WEEK_START + hour * 3600.0
        clock.now = begin + 3600.0 + 1.0
        batch: list[dict[str, object]] = []
        for n in range(12):
            t = begin + n * STEP
            for name, region, value in _metrics(rng, t):
                labels = {"region": region}
                batch.append({"type": "metric", "name": name, "labels": labels, "value": value, "at": t})
        if begin <= DEPLOY_AT < begin + 3600.0:
            batch.append({
                "type": "event", "kind": "deploy", "target": "payments-api", "region": "eu", "at": DEPLOY_AT,
                "description": "Deploy of payments-api 4.2 in eu",
            })  # fmt: skip
        service.ingest({"observations": batch})
        if hour % 24 == 23:  # the day's orders per account, sent when the day closes
            day_start = begin - 23 * 3600.0
            orders = [
                {
                    "type": "metric",
                    "name": "account_orders",
                    "labels": {"account": a["id"]},
                    "value": _account_orders(rng, a, day_start),
                    "at": day_start + DAY / 2,
                }
                for a in accounts
            ]
            service.ingest({"observations": orders})
    clock.now = END + 600.0  # the day's last pushes are judged: the churn list is up to date
    service.evaluate()
    return Shop(service, directory, path)
