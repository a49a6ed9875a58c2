"""Churn risk for any business: each account against its own history, in plain words.

Three kinds of signal, each declared by the caller:

- **activity** (orders, logins, sessions, plays): counted per day and compared with the account's
  own usual level and rhythm. A silence is judged against the gaps the account usually leaves (a
  weekly buyer is not missed on Tuesday, a monthly one not mid-month), and one that ended lately
  still counts as evidence of a fall until the activity since takes it back; a decline by a one-sided
  CUSUM of its days against its own usual level, with its own week-to-week swing as the noise,
  so a steady fade gathers evidence week after week. Both are discounted by what its peers
  (same segment) did over the same days, so a holiday or a seasonal dip that hits everyone is not
  churn.
- **problems** (errors, failed starts, failed logins, rebuffering, slow pages): judged against
  the account's own usual problem level. Alone they are a watch item, weighted by recency (they
  halve every `half_life`); a bad experience within the last 4 weeks also makes a fall in the
  same account's activity weigh more, since it gives the customer a reason to leave.
- **own errors** (a client-error class such as bad credentials): shown, never scored as risk.

Each view gives a p-value, read as decades of surprise. The score is in [0, 1): how sure the
strongest activity view is that something is wrong (its p-value times the number of views;
nothing for what happens one time in ten, half at one in a thousand; its odds up to tripled by
a bad experience in the last 4 weeks), combined with the recent problems (at most 0.25) as
`1 - (1 - activity) * (1 - problems)`. Every score carries its reasons
as sentences and a next step. Memory is bounded: a fixed ring of days per account and signal, and
at most `max_accounts` accounts.
"""

from __future__ import annotations

import csv
import heapq
import itertools
import math
import re
import threading
import time
import tomllib
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from stoic.signals import _validate
from stoic.signals.alerts import Alert, alert_id
from stoic.signals.ownership import Ownership

DAY = 86400.0
HISTORY_DAYS = 168  # 24 weeks: a monthly buyer's rhythm; 8 weeks watched for a fall, 16 before them
BASELINE_DAYS = 56  # "its own last 8 weeks"
MIN_HISTORY_DAYS = 28  # younger accounts have no usual level to fall from
# A fall is watched for over the last 2 to 8 weeks (as many as the history leaves after its usual
# level); one that began less than a week ago is not a trend (a silent week is judged as silence).
MIN_DECLINE_WEEKS = 2
MAX_DECLINE_WEEKS = 8
MIN_DECLINE_DAYS = 7
MIN_BASE_WEEKS = 4  # weeks of usual level it takes to judge a fall against
DISPERSION_WEEKS = 16  # weeks before a fall that show how much its weekly totals swing
# The falls looked for, as shares of the usual level: to 70 %, the least worth a call (a fade gathers
# evidence early), and to half (a steep fall or a stop gathers it fast).
DECLINE_RATIOS = (0.7, 0.5)
PROBLEM_DAYS = 63  # problems kept per day: the last week against the 8 before
MIN_PEERS = 20  # a segment with fewer described accounts is judged against everyone
# No rhythm is trusted to be more regular than gaps of a gamma law of this shape (gaps vary by
# half their mean): calendars slip, holidays move, a daily buyer skips a day now and then.
MAX_REGULARITY = 4.0
TRUST_GAPS = 20  # gaps it takes to trust half of an account's apparent regularity
SCHEDULE_MIN_DAYS = 5  # a schedule's shortest period (a daily buyer's weekends are no misses)
SCHEDULE_MIN_GAPS = 6  # gaps it takes to see a schedule at all
SCHEDULE_SLACK = 0.2  # how late (or early) an order on schedule may come, as a share of its period
SCHEDULE_SHARE = 0.8  # the share of gaps that must be whole periods, give or take the slack
MIN_EXPECTED = 3.0  # fewer expected events than this say nothing about a decline (silence still does)
MIN_ACTIVE_DAYS = 2.0  # a decline window must usually hold at least this many active days
MIN_DROP = 0.2  # a smaller fall is ordinary ebb and flow, however sure
# Bad experiences alone are a watch item: they weigh at most what a fall in activity seen one time
# in a hundred does, so an account that had a bad day but buys as usual ranks below one whose
# orders are surely fading. They make the same account's activity evidence weigh more instead:
# sure ones multiply the odds that a fall in its activity means it is leaving by PROBLEM_ODDS.
PROBLEM_WEIGHT = 0.25
PROBLEM_ODDS = 3.0
# A bad experience stays a reason to leave for 4 weeks, long enough for a fall in activity it
# caused to show (a week of it is the least the decline view speaks on).
MEMORY_DAYS = 28
# What each active day after a silence takes back from it, in decades: an account fallen to half
# (the steeper fall looked for) is half as likely to be active on a day.
RENEWAL = math.log10(1.0 / min(DECLINE_RATIOS))
ORDINARY = 1.0  # decades of evidence that are ordinary (one in ten): a weekend, a slow week
SURE = 2.0  # decades of evidence beyond the ordinary (p = 0.001) that count as "half sure"
QUIET = 0.1  # below this score an account with own errors is listed with them, not as a churn risk
MAX_SIGNALS = 16
MAX_COUNT = 1e9
MAX_ACCOUNT_FILE = 50 * 1024 * 1024

DEFAULT_ACTIVITY = ("plays",)
DEFAULT_PROBLEMS = ("failed start", "rebuffering")

_SIGNAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,63}$")
_FIELDS = ("id", "name", "segment", "owner", "value")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


# ---- accounts ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Account:
    """Who an account is: `id` as the events name it, a display `name`, its `segment` (peers
    are judged together), the `owner` team (churn alerts go to its receivers) and its `value`
    (e.g. yearly revenue; shown as value at risk).

    >>> Account("acct-17", name="Bakery Lund", segment="retail", owner="cs-north", value=1200.0).name
    'Bakery Lund'
    """

    id: str
    name: str = ""
    segment: str = ""
    owner: str = ""
    value: float = 0.0

    def __post_init__(self) -> None:
        _validate.text("account.id", self.id, max_len=200)
        _validate.text("account.name", self.name, max_len=200, required=False)
        _validate.text("account.segment", self.segment, max_len=100, required=False)
        _validate.text("account.owner", self.owner, max_len=100, required=False)
        object.__setattr__(self, "value", _validate.number("account.value", self.value, low=0.0, high=1e15))

    @property
    def label(self) -> str:
        """The name a person would use: the display name, else the id."""
        return self.name or self.id


def load_accounts(path: str | Path) -> list[Account]:
    """Accounts from a CSV file (header `id,name,segment,owner,value`; only `id` is required) or
    a TOML file (`[[accounts]]` tables with the same keys). Errors name the file, the row and
    the field, e.g. `accounts.csv: accounts[3].value: must be >= 0, got -5.0`."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_ACCOUNT_FILE:
            raise ValueError(f"{p.name}: larger than {MAX_ACCOUNT_FILE // 2**20} MiB")
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"accounts: cannot read {str(p)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{p.name}: must be UTF-8 text") from None
    if p.suffix.lower() == ".toml":
        rows = _toml_rows(p.name, text)
    elif p.suffix.lower() == ".csv":
        rows = _csv_rows(p.name, text)
    else:
        raise ValueError(f"accounts: file must end in .csv or .toml, got {p.name!r}")
    return [_account(p.name, i, row) for i, row in enumerate(rows)]


def _toml_rows(name: str, text: str) -> list[Mapping[str, object]]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{name}: not valid TOML ({exc})") from None
    extra = set(doc) - {"accounts"}
    if extra:
        raise ValueError(f"{name}: {sorted(extra)[0]}: unknown key; allowed: accounts")
    rows = doc.get("accounts", [])
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"{name}: accounts: must be an array of tables ([[accounts]])")
    return rows


def _csv_rows(name: str, text: str) -> list[Mapping[str, object]]:
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    if "id" not in header:
        raise ValueError(f"{name}: header: must name an id column (allowed: {', '.join(_FIELDS)})")
    rows: list[Mapping[str, object]] = []
    for row in reader:
        if None in row:
            raise ValueError(f"{name}: accounts[{len(rows)}]: more cells than the header has columns")
        clean: dict[str, object] = {k: v for k, v in row.items() if v not in (None, "")}
        if "value" in clean:
            try:
                clean["value"] = float(str(clean["value"]).replace("_", "").replace(",", ""))
            except ValueError:
                raise ValueError(
                    f"{name}: accounts[{len(rows)}].value: must be a number, got {row['value']!r}"
                ) from None
        rows.append(clean)
    return rows


def _account(name: str, index: int, row: Mapping[str, object]) -> Account:
    where = f"accounts[{index}]"
    extra = set(row) - set(_FIELDS)
    if extra:
        raise ValueError(f"{name}: {where}.{sorted(extra)[0]}: unknown field; allowed: {', '.join(_FIELDS)}")
    if "id" not in row:
        raise ValueError(f"{name}: {where}.id: required")
    try:
        return Account(
            row["id"],  # type: ignore[arg-type]  # checked by Account
            name=row.get("name", ""),  # type: ignore[arg-type]
            segment=row.get("segment", ""),  # type: ignore[arg-type]
            owner=row.get("owner", ""),  # type: ignore[arg-type]
            value=row.get("value", 0.0),  # type: ignore[arg-type]
        )
    except ValueError as exc:
        raise ValueError(f"{name}: {where}.{str(exc).removeprefix('account.')}") from None


# ---- one account's risk ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AccountRisk:
    """One account's churn risk now.

    `score` is in [0, 1); `reasons` maps each reason, in plain words, to its share of the score;
    `kind` is "silent", "declining", "troubled" (problems weigh most), "own errors" (its problems
    come from its own side and nothing else is wrong: not a churn risk) or "steady"; `trend`
    holds the main activity's weekly totals, oldest first, the current week last.
    """

    account: str
    score: float
    reasons: dict[str, float]
    last_seen: float
    name: str = ""
    segment: str = ""
    owner: str = ""
    value: float = 0.0
    kind: str = ""
    next_step: str = ""
    trend: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "account": self.account,
            "name": self.name,
            "segment": self.segment,
            "owner": self.owner,
            "value": self.value,
            "score": round(self.score, 3),
            "kind": self.kind,
            "reasons": {k: round(v, 3) for k, v in self.reasons.items()},
            "next_step": self.next_step,
            "trend": [round(x, 3) for x in self.trend],
            "last_seen": self.last_seen,
        }


# ---- per-account memory ------------------------------------------------------------------------
class _Days:
    """Per-day totals in a ring of `size` days; `newest` is the newest day index written."""

    __slots__ = ("newest", "ring", "size")

    def __init__(self, size: int, day: int) -> None:
        self.size = size
        self.ring = array("d", bytes(8 * size))
        self.newest = day

    def add(self, day: int, amount: float) -> bool:
        """Add `amount` on `day`; False if the day is older than the ring holds."""
        if day > self.newest:
            for d in range(max(self.newest + 1, day - self.size + 1), day + 1):
                self.ring[d % self.size] = 0.0
            self.newest = day
        elif day <= self.newest - self.size:
            return False
        self.ring[day % self.size] += amount
        return True

    def span(self, first: int, last: int) -> list[float]:
        """Totals for days first..last (inclusive), 0 for days outside the ring."""
        lo, hi = max(first, self.newest - self.size + 1), min(last, self.newest)
        if hi < lo:
            return [0.0] * max(0, last - first + 1)
        a, b = lo % self.size, hi % self.size
        inside = self.ring[a : b + 1].tolist() if a <= b else [*self.ring[a:], *self.ring[: b + 1]]
        return [0.0] * (lo - first) + inside + [0.0] * (last - hi)


@dataclass(slots=True)
class _Ledger:
    first_day: int
    last_seen: float
    last_active: dict[str, int] = field(default_factory=dict)  # activity -> last day with any
    activity: dict[str, _Days] = field(default_factory=dict)
    problems: dict[str, _Days] = field(default_factory=dict)
    own: dict[str, _Days] = field(default_factory=dict)
    version: int = 0
    cached: tuple[int, int, AccountRisk | None] | None = None  # (version, hour, risk)


@dataclass(frozen=True, slots=True)
class _Peers:
    """One group's daily totals of one activity over the ring, as a prefix sum (index 0 = the
    ring's first day), and the group's size."""

    first: int
    prefix: list[float]
    accounts: int

    def total(self, a: int, b: int) -> float:
        """Sum over days a..b (inclusive, absolute day indices; clipped to what is known)."""
        a, b = max(a, self.first), min(b, self.first + len(self.prefix) - 2)
        if b < a:
            return 0.0
        return self.prefix[b - self.first + 1] - self.prefix[a - self.first]


@dataclass(frozen=True, slots=True)
class _Trouble:
    """One problem an account had more of than usual: its sentence, how sure a bad experience
    lately is (for the watch list) and how sure one within MEMORY_DAYS is (it weighs the
    account's activity evidence)."""

    text: str
    watch: float
    remembered: float


# ---- the model --------------------------------------------------------------------------------
class ChurnRisk:
    """Per-account churn risk from declared activity, problems and own errors.

    ```python
    churn = ChurnRisk(activity=("orders",), problems=("failed login",), own_errors=("bad password",))
    churn.add_account(Account("acct-17", name="Bakery Lund", segment="retail", owner="cs-north"))
    churn.observe("acct-17", "orders", count=12)
    churn.top(10)            # [AccountRisk, ...] most at risk first, with reasons and a next step
    ```

    `half_life` (seconds) is how fast problems fade; `utc_offset` (hours) where the business's
    day starts; `alert_at` the score from which an account is alerted to its owner; at most
    `max_accounts` are tracked (when full, those silent the longest are forgotten first).
    """

    def __init__(
        self,
        *,
        activity: Iterable[str] = DEFAULT_ACTIVITY,
        problems: Iterable[str] = DEFAULT_PROBLEMS,
        own_errors: Iterable[str] = (),
        accounts: Iterable[Account] | str | Path | None = None,
        half_life: float = 3 * DAY,
        max_accounts: int = 100_000,
        rebuffer_threshold: float = 0.05,
        utc_offset: float = 0.0,
        alert_at: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.activity = _signals("activity", activity, required=True)
        self.problems = _signals("problems", problems)
        self.own_errors = _signals("own_errors", own_errors)
        names = [*self.activity, *self.problems, *self.own_errors]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"own_errors: {twice[0]!r} is declared twice; each signal has one kind")
        self.half_life = _validate.number("half_life", half_life, low=0.0, low_open=True, high=365 * DAY)
        self.max_accounts = _validate.integer("max_accounts", max_accounts, low=1, high=10_000_000)
        self.rebuffer_threshold = _validate.number(
            "rebuffer_threshold", rebuffer_threshold, low=0.0, high=1.0
        )
        self.utc_offset = _validate.number("utc_offset", utc_offset, low=-12.0, high=14.0)
        self.alert_at = _validate.number("alert_at", alert_at, low=0.0, low_open=True, high=1.0)
        self.clock = clock
        self._lock = threading.Lock()
        self._ledgers: dict[str, _Ledger] = {}
        self._directory: dict[str, Account] = {}
        self._segments: dict[str, int] = {}  # segment -> accounts described in it
        self._groups: dict[tuple[str, str], _Days] = {}  # (activity, segment or "") -> daily totals
        self._peers: dict[tuple[int, str, str], _Peers] = {}  # cached per day
        self._firing: dict[str, Alert] = {}  # team -> its churn digest
        self.dropped = 0  # observations older than the history kept
        if accounts is not None:
            self.add_accounts(load_accounts(accounts) if isinstance(accounts, str | Path) else accounts)

    # ---- accounts ------------------------------------------------------------------------------
    def add_account(self, account: Account) -> None:
        """Add or replace what is known about one account."""
        self.add_accounts([account])

    def add_accounts(self, accounts: Iterable[Account]) -> None:
        """Add or replace accounts (e.g. from `load_accounts`); all or nothing."""
        new = list(accounts)
        seen: dict[str, int] = {}
        for i, a in enumerate(new):
            if not isinstance(a, Account):
                raise ValueError(f"accounts[{i}]: must be an Account, got {type(a).__name__}")
            if a.id in seen:
                raise ValueError(f"accounts[{i}].id: {a.id!r} appears twice (also accounts[{seen[a.id]}])")
            seen[a.id] = i
        with self._lock:
            fresh = {a.id for a in new} - set(self._directory)
            if len(self._directory) + len(fresh) > self.max_accounts:
                raise ValueError(
                    f"accounts: at most max_accounts={self.max_accounts} can be described, "
                    f"got {len(self._directory) + len(fresh)}"
                )
            for a in new:
                self._directory[a.id] = a
            self._segments = {}
            for a in self._directory.values():
                self._segments[a.segment] = self._segments.get(a.segment, 0) + 1
            self._peers.clear()  # segments may have moved

    def account(self, account_id: str) -> Account:
        """What is known about `account_id` (an id with no description is its own name)."""
        with self._lock:
            return self._directory.get(account_id) or Account(account_id)

    # ---- recording -----------------------------------------------------------------------------
    def observe(self, account: str, signal: str, count: float = 1, *, at: float | None = None) -> None:
        """Count `count` of a declared `signal` (activity, problem or own error) for `account`."""
        _validate.text("account", account, max_len=200)
        kind = self._kind(signal)
        count = _validate.number("count", count, low=0.0, low_open=True, high=MAX_COUNT)
        now = self.clock() if at is None else self._past("at", at)
        day = self._day(now)
        with self._lock:
            ledger = self._ledgers.get(account)
            if ledger is None:
                if len(self._ledgers) >= self.max_accounts:
                    self._forget(now)
                ledger = self._ledgers[account] = _Ledger(day, now)
            store = {"activity": ledger.activity, "problem": ledger.problems, "own": ledger.own}[kind]
            days = store.get(signal)
            if days is None:
                size = HISTORY_DAYS if kind == "activity" else PROBLEM_DAYS
                days = store[signal] = _Days(size, day)
            if not days.add(day, count):
                self.dropped += 1
                return
            ledger.first_day = min(ledger.first_day, day)
            ledger.last_seen = max(ledger.last_seen, now)
            ledger.version += 1
            if kind == "activity":
                ledger.last_active[signal] = max(ledger.last_active.get(signal, day), day)
                segment = self._directory.get(account, Account(account)).segment
                for group in {(signal, ""), (signal, segment)}:
                    totals = self._groups.get(group)
                    if totals is None:
                        totals = self._groups[group] = _Days(HISTORY_DAYS, day)
                    totals.add(day, count)

    def observe_start(self, account: str, ok: bool, *, at: float | None = None, count: int = 1) -> None:
        """`count` stream starts: successful ones are the activity "plays", failed ones the
        problem "failed start" (each only when declared)."""
        count = _validate.integer("count", count, low=1)
        signal = "plays" if ok else "failed start"
        if signal in self.activity or signal in self.problems:
            self.observe(account, signal, count, at=at)

    def observe_playback(
        self, account: str, watched_s: float, rebuffer_s: float, *, at: float | None = None
    ) -> None:
        """A session with at least `rebuffer_threshold` of its time rebuffering is the problem
        "rebuffering" (when declared)."""
        watched_s = _validate.number("watched_s", watched_s, low=0.0, high=_validate.MAX_VALUE)
        rebuffer_s = _validate.number("rebuffer_s", rebuffer_s, low=0.0, high=_validate.MAX_VALUE)
        total = watched_s + rebuffer_s
        if "rebuffering" in self.problems and total > 0 and rebuffer_s / total >= self.rebuffer_threshold:
            self.observe(account, "rebuffering", at=at)

    def _kind(self, signal: object) -> str:
        if signal in self.activity:
            return "activity"
        if signal in self.problems:
            return "problem"
        if signal in self.own_errors:
            return "own"
        declared = ", ".join([*self.activity, *self.problems, *self.own_errors])
        raise ValueError(
            f"signal: must be a declared activity, problem or own error ({declared}), got {signal!r}"
        )

    def _past(self, field: str, at: object) -> float:
        # one wild timestamp far ahead would roll every ring forward and erase the history
        t = _validate.epoch(field, at)
        now = self.clock()
        if t > now + DAY:
            raise ValueError(f"{field}: {t!r} is more than a day ahead of now ({now:.0f}); check the clock")
        return t

    def _day(self, t: float) -> int:
        return math.floor((t + self.utc_offset * 3600.0) / DAY)

    def _forget(self, now: float) -> None:
        # the tenth silent the longest goes in one pass, so forgetting is amortised
        drop = max(1, len(self._ledgers) // 10)
        for name in heapq.nsmallest(drop, self._ledgers, key=lambda k: self._ledgers[k].last_seen):
            del self._ledgers[name]

    def __len__(self) -> int:
        return len(self._ledgers)

    # ---- reading -------------------------------------------------------------------------------
    def top(self, n: int = 10, *, at: float | None = None, min_score: float = 0.0) -> list[AccountRisk]:
        """The `n` accounts most at risk now, highest score first (own-error accounts excluded)."""
        n = _validate.integer("n", n, low=0, high=self.max_accounts)
        min_score = _validate.number("min_score", min_score, low=0.0, high=1.0)
        ranked = [r for r in self.assess_all(at=at) if r.kind != "own errors" and r.score > min_score]
        return heapq.nlargest(n, ranked, key=lambda r: (r.score, r.value))

    def own_side(self, n: int = 10, *, at: float | None = None) -> list[AccountRisk]:
        """Accounts whose problems come from their own side (declared own errors), most first."""
        n = _validate.integer("n", n, low=0, high=self.max_accounts)
        own = [r for r in self.assess_all(at=at) if r.kind == "own errors"]
        return heapq.nlargest(n, own, key=lambda r: sum(r.reasons.values()))

    def assess(self, account: str, *, at: float | None = None) -> AccountRisk | None:
        """One account's risk now (None when nothing was observed for it)."""
        now = self.clock() if at is None else _validate.epoch("at", at)
        with self._lock:
            ledger = self._ledgers.get(account)
            return None if ledger is None else self._assess(account, ledger, now)

    def assess_all(self, *, at: float | None = None) -> list[AccountRisk]:
        """Every tracked account's risk now (unordered)."""
        now = self.clock() if at is None else _validate.epoch("at", at)
        with self._lock:
            out = [self._assess(name, ledger, now) for name, ledger in self._ledgers.items()]
        return [r for r in out if r is not None]

    def _assess(self, name: str, ledger: _Ledger, now: float) -> AccountRisk | None:
        hour = math.floor(now / 3600.0)
        if ledger.cached is not None and ledger.cached[:2] == (ledger.version, hour):
            return ledger.cached[2]
        risk = self._judge(name, ledger, now)
        ledger.cached = (ledger.version, hour, risk)
        return risk

    def _judge(self, name: str, ledger: _Ledger, now: float) -> AccountRisk:
        account = self._directory.get(name) or Account(name)
        today = self._day(now)
        seen: list[tuple[float, str, str]] = []  # (decades of evidence, reason, kind)
        for signal, days in ledger.activity.items():
            seen += self._activity(account, signal, days, ledger, today)
        # Silence and decline, of each activity, are views of one loss and far from independent:
        # the strongest p-value counts, times the number of views that could have spoken.
        views = 2 * len(ledger.activity)
        strongest = max((d for d, _, _ in seen), default=0.0)
        # A bad experience makes a fall in the same account's activity more alarming (the customer
        # has a reason to leave): as sure as the problems are, up to PROBLEM_ODDS times the odds
        # that its activity evidence means churn. What is ordinary stays ordinary, so an account
        # that had a bad day and buys as usual is judged by its problems alone (PROBLEM_WEIGHT).
        troubles = self._problems(ledger, now, today)
        remembered = 1.0 - math.prod(1.0 - t.remembered for t in troubles)
        odds = 1.0 + (PROBLEM_ODDS - 1.0) * remembered
        alone = _sure(strongest - math.log10(views)) if seen else 0.0
        activity_risk = _sure(strongest - math.log10(views), odds) if seen else 0.0
        found = [(_sure(d), text, kind) for d, text, kind in seen]  # each reason's own confidence
        problem_risk = PROBLEM_WEIGHT * (1.0 - math.prod(1.0 - t.watch for t in troubles))
        own_reasons = self._own(ledger, today)
        score = 1.0 - (1.0 - activity_risk) * (1.0 - problem_risk)
        scored = [(risk, text) for risk, text, _ in found if risk > 0.0]
        # a problem's part: its own weight on the watch list, and its share of what it added to
        # the activity evidence
        total = sum(t.remembered for t in troubles)
        for t in troubles:
            part = PROBLEM_WEIGHT * t.watch + (activity_risk - alone) * t.remembered / max(total, 1e-9)
            if part > 0.0:
                scored.append((part, t.text))
        reasons = {text: risk for risk, text in sorted(scored, reverse=True)}
        kind = "steady"
        if scored:
            kind = "troubled" if problem_risk > activity_risk else max(found)[2]
        if own_reasons and score < QUIET:
            # nothing else is wrong: its errors are its own, a matter for support, not churn
            kind = "own errors"
        own_total = sum(c for c, _ in own_reasons)
        for count, text in own_reasons:
            reasons[text] = 0.0 if kind != "own errors" else count / max(own_total, 1.0)
        main = next((s for s in self.activity if s in ledger.activity), None)
        trend = self._trend(ledger.activity[main], today) if main is not None else ()
        return AccountRisk(
            name,
            score,
            reasons,
            ledger.last_seen,
            account.name,
            account.segment,
            account.owner,
            account.value,
            kind,
            _next_step(kind, account, reasons, main),
            trend,
        )

    # ---- activity: silence and decline -----------------------------------------------------------
    def _activity(
        self, account: Account, signal: str, days: _Days, ledger: _Ledger, today: int
    ) -> list[tuple[float, str, str]]:
        known = today - max(ledger.first_day, today - HISTORY_DAYS)
        if known < MIN_HISTORY_DAYS:
            return []
        first = today - HISTORY_DAYS
        own = days.span(first, today - 1)  # complete days only
        prefix = [0.0, *itertools.accumulate(own)]

        def own_total(a: int, b: int) -> float:
            a, b = max(a, first), min(b, today - 1)
            return 0.0 if b < a else prefix[b - first + 1] - prefix[a - first]

        peers = self._peers_for(signal, account.segment, today)
        out: list[tuple[float, str, str]] = []
        silence = self._silence(account, signal, own, first, ledger, today, peers, own_total)
        if silence is not None:
            out.append(silence)
        decline = self._decline(signal, known, today, own, peers, own_total)
        if decline is not None:
            out.append(decline)
        return out

    def _silence(
        self,
        account: Account,
        signal: str,
        own: list[float],
        first: int,
        ledger: _Ledger,
        today: int,
        peers: _Peers,
        own_total: Callable[[int, int], float],
    ) -> tuple[float, str, str] | None:
        last = ledger.last_active.get(signal)
        if last is None:
            return None
        ends = [*(first + i for i, v in enumerate(own) if v > 0 and first + i < last), last]
        gaps = [b - a for a, b in itertools.pairwise(ends)]  # gaps[k] ends on ends[k + 1]
        if len(gaps) < 2:
            return None
        best: tuple[float, str, str] | None = None
        silent = today - last  # whole days since the last active one (0: active today)
        if silent > 0:
            effective, factor = self._effective(silent, today, peers, own_total)
            decades = _gap_decades(gaps, effective)
            if decades > 0.0:
                text = f"no {signal} for {silent} days; {_rhythm(gaps)}"
                if factor < 0.8:
                    text += f" (its peers were {1 - factor:.0%} quieter too, which is discounted)"
                best = (decades, text, "silent")
        # A silence that ended lately still counts, as evidence of a fall to half its activity
        # (the steeper fall looked for), less what the activity since takes back. Its end refutes
        # a stop, not a fall: an account at half its activity is half as likely to be active on
        # any day, so a silent day is worth log((1 - q / 2) / (1 - q)) against its usual share q
        # of active days, and each active day since takes back log 2 (RENEWAL decades). One
        # order after a long silence takes back one day's worth; its ordinary days, all of it.
        # Each silence is judged against the gaps it left before it, and never as more surprising
        # than they make it (the less alarmed view wins). Every silence that ended over the last
        # 8 weeks is a look of its own: the strongest counts, less one per look, as a rare gap
        # now and then is no fall.
        ratio = min(DECLINE_RATIOS)
        ended_lately = [g for g, e in zip(gaps, ends[1:], strict=True) if e >= today - BASELINE_DAYS]
        looks = math.log10(max(sum(1 for g in ended_lately if g >= 2), 1))  # a gap of 1 is no silence
        for k in range(len(gaps) - 1, 1, -1):
            ended = ends[k + 1]
            if ended < today - BASELINE_DAYS:
                break
            since = len(ends) - (k + 1)  # active days from the one that ended it on
            floor = (best[0] if best is not None else ORDINARY) + since * RENEWAL + looks
            before = gaps[:k]
            share = len(before) / (sum(before) + 1.0)  # active days per day (a miss is possible)
            effective, factor = self._effective(gaps[k], ended, peers, own_total)
            fall = (effective - 1.0) * math.log10((1.0 - ratio * share) / (1.0 - share))
            as_long = sum(1 for g in before if g >= effective)
            if fall <= floor or (as_long and (as_long + 0.5) / (len(before) + 1.0) > 10.0**-floor):
                continue  # an ordinary gap for it, or too short to outweigh the activity since
            decades = min(_gap_decades(before, effective), fall)
            if decades <= floor:
                continue
            # Its amounts since may refute the fall better than its active days do (an account
            # that came back ordering twice its usual is not at half of it): the stronger counts.
            # A pause, then its usual level, explains the silence as well as a fall does: once the
            # activity since favours that beyond the ordinary, the silence is taken back whole.
            back = max(since * RENEWAL, _amounts_back(own, first, ledger.first_day, ends[k], ended, ratio))
            if back >= ORDINARY or decades - back - looks <= (best[0] if best is not None else ORDINARY):
                continue
            days, until = ("day" if since == 1 else "days"), self._ago(ended, today)
            text = f"no {signal} for {gaps[k]} days until {until}, then on {since} {days} only"
            text += f"; {_rhythm(before)}"  # its rhythm before that silence
            if factor < 0.8:
                text += f" (its peers were {1 - factor:.0%} quieter too, which is discounted)"
            best = (decades - back - looks, text, "silent")
        return best

    def _effective(
        self, silent: int, day: int, peers: _Peers, own_total: Callable[[int, int], float]
    ) -> tuple[float, float]:
        """`silent` whole days without activity up to `day` as the silence they stand for, and how
        busy the peers were over them (1: as usual). Days count as silent only as far as the peers
        were busy: a shutdown week counts nothing."""
        span = min(silent - 1, BASELINE_DAYS)
        factor = _peer_factor(peers, own_total, day - span, day - 1) if span > 0 else 1.0
        return (silent - 1 - span) + span * factor + 1.0, factor

    def _decline(
        self,
        signal: str,
        known: int,
        today: int,
        own: list[float],
        peers: _Peers,
        own_total: Callable[[int, int], float],
    ) -> tuple[float, str, str] | None:
        # A one-sided CUSUM, day by day over the last (up to) 8 weeks: each day adds the
        # log-likelihood ratio of "fallen to a share of its usual level" against "its usual level"
        # (a quasi-Poisson law with its own week-to-week swing), and the sum never drops below
        # zero. A fade that goes on adds evidence week after week; a quiet week of an account that
        # has them now and then adds little (its swing is wide) and the next ordinary week takes it
        # back. Under its usual level the sum passes h nats with probability at most e^-h, so it
        # reads as a p-value.
        weeks = min(known, len(own)) // 7
        # a young account gives its usual level the weeks first, up to 8, and watches the rest
        watched = min(MAX_DECLINE_WEEKS, max(MIN_DECLINE_WEEKS, weeks - BASELINE_DAYS // 7))
        base_weeks = min(weeks - watched, BASELINE_DAYS // 7)
        if base_weeks < MIN_BASE_WEEKS:
            return None
        split = len(own) - 7 * watched  # own[split:] are the days watched, oldest first
        baseline = own[split - 7 * base_weeks : split]
        # its usual day: the usual week spread over the weekdays as its own weeks were
        usual = [sum(baseline[j::7]) / base_weeks for j in range(7)]
        if sum(usual) <= 0.0:
            return None
        dispersion = _dispersion(own[len(own) - 7 * weeks : split][-7 * DISPERSION_WEEKS :])
        base = (today - 7 * watched - 7 * base_weeks, today - 7 * watched - 1)
        days: list[tuple[float, float, float]] = []  # (seen, expected, peers' factor), oldest first
        for k in range(watched - 1, -1, -1):
            start = today - 7 * (k + 1)
            factor = _peer_factor(peers, own_total, start, start + 6, base=base)
            first = len(own) - 7 * (k + 1)
            days += [(own[first + j], usual[j] * factor, factor) for j in range(7)]
        # one CUSUM per fall looked for, each a look of its own: the strongest, less one per look
        runs = [_cusum(days, ratio, dispersion, 7 * base_weeks) for ratio in DECLINE_RATIOS]
        evidence, run, run_seen, run_expected, run_factor = max(runs)
        evidence -= math.log(len(DECLINE_RATIOS))
        if run < MIN_DECLINE_DAYS or run_expected < MIN_EXPECTED:
            return None
        drop = 1.0 - run_seen / run_expected
        if drop < MIN_DROP:
            return None
        # days it is usually active on fewer than MIN_ACTIVE_DAYS times over the run say nothing
        # about a decline (a monthly buyer's quiet month); silence judges those
        if sum(1 for v in baseline if v > 0) * run / len(baseline) < MIN_ACTIVE_DAYS:
            return None
        decades = evidence / math.log(10.0)
        if decades <= 0.0:
            return None
        factor = run_factor / run
        text = f"{signal} down {drop:.0%} over the last {run} days against its own {base_weeks} weeks before"
        if factor < 0.8:
            text += f" (its peers fell {1 - factor:.0%}, which is discounted)"
        return decades, text, "declining"

    def _peers_for(self, signal: str, segment: str, today: int) -> _Peers:
        # a segment is its own peer group once it is big enough to have a usual level
        big = segment and self._segments.get(segment, 0) >= MIN_PEERS
        group = (signal, segment) if big else (signal, "")
        key = (today, *group)
        peers = self._peers.get(key)
        if peers is None:
            if len(self._peers) > 64:
                self._peers.clear()
            first = today - HISTORY_DAYS
            totals = self._groups.get(group)
            days = totals.span(first, today - 1) if totals is not None else [0.0] * HISTORY_DAYS
            peers = self._peers[key] = _Peers(first, [0.0, *itertools.accumulate(days)], 0)
        return peers

    # ---- problems and own errors ---------------------------------------------------------------
    def _problems(self, ledger: _Ledger, now: float, today: int) -> list[_Trouble]:
        """Each problem the account had more of than it usually has, with two surenesses: of a
        bad experience lately (by recency, for the watch list) and of one within MEMORY_DAYS
        (a reason to leave that a later fall in activity may show)."""
        out = []
        frac = (now + self.utc_offset * 3600.0) / DAY - today  # how far into today we are
        for signal, days in ledger.problems.items():
            recent = days.span(today - 13, today)
            # a problem counts by its age (mid-day for past days): 1 today, a half after `half_life`
            weights = [0.5 ** (max(13 - i + frac - 0.5, 0.0) / (self.half_life / DAY)) for i in range(14)]
            weighted = sum(c * w for c, w in zip(recent, weights, strict=True))
            before = days.span(today - PROBLEM_DAYS + 1, today - 14)
            usual_rate = sum(before) / len(before)  # the account's own everyday level of this problem
            week = recent[-7:]
            count = sum(week)
            watch = 0.0
            if count >= 1:  # every bad experience counts a little: unlike a quiet week, it is never ordinary
                watch = _sure(_excess_decades(weighted, usual_rate * sum(weights)) + ORDINARY)
            month = sum(days.span(today - MEMORY_DAYS + 1, today))
            earlier = days.span(today - PROBLEM_DAYS + 1, today - MEMORY_DAYS)
            usual = sum(earlier) / len(earlier) * MEMORY_DAYS
            # over a month a stray failure is ordinary: only a clear excess is a reason to leave
            remembered = _sure(_excess_decades(month, usual))
            if count >= 1:
                since = today - 6 + next(i for i, c in enumerate(week) if c > 0)
                text = f"{_count(count)} {_plural(signal, count)} since {self._when(since, today)}"
            else:
                text = f"{_count(month)} {_plural(signal, month)} in the last {MEMORY_DAYS // 7} weeks"
            if watch > 0.0 or remembered > 0.0:
                out.append(_Trouble(text, watch, remembered))
        return out

    def _own(self, ledger: _Ledger, today: int) -> list[tuple[float, str]]:
        out = []
        for signal, days in ledger.own.items():
            count = sum(days.span(today - 6, today))
            if count >= 1:
                what = f"{_count(count)} {_plural(signal, count)} in 7 days from its own side (not counted)"
                out.append((count, what))
        return out

    def _ago(self, day: int, today: int) -> str:
        return "today" if day == today else "yesterday" if day == today - 1 else f"{today - day} days ago"

    def _when(self, day: int, today: int) -> str:
        if day == today:
            return "today"
        if day == today - 1:
            return "yesterday"
        return _WEEKDAYS[(day + 3) % 7]  # day 0 (1970-01-01) was a Thursday

    def _trend(self, days: _Days, today: int) -> tuple[float, ...]:
        # eight whole weeks ending with the current (partial) day, as weekly totals
        values = days.span(today - 55, today)
        return tuple(sum(values[i : i + 7]) for i in range(0, 56, 7))

    # ---- alerts --------------------------------------------------------------------------------
    def alerts(self, ownership: Ownership, *, n: int = 50, at: float | None = None) -> list[Alert]:
        """One digest alert per owning team listing its accounts at or above `alert_at` (of the
        `n` most at risk), with reasons and next steps; and a resolve for a team whose list
        emptied. Each call starts a new episode for a team with accounts, so a receiver gets the
        current list (`Signals.route_churn` routes them, once a day by default)."""
        now = self.clock() if at is None else _validate.epoch("at", at)
        if not isinstance(ownership, Ownership):
            raise ValueError(f"ownership: must be an Ownership, got {type(ownership).__name__}")
        listed = [r for r in self.top(n, at=now) if r.score >= self.alert_at]
        by_team: dict[str, list[AccountRisk]] = {}
        for r in listed:
            team = ownership.team(r.owner) if r.owner else ownership.team_for(indicator="churn")
            by_team.setdefault(team.name, []).append(r)
        changed: list[Alert] = []
        with self._lock:
            for team_name, risks in sorted(by_team.items()):
                alert = _digest(team_name, ownership.team(team_name).receivers, risks, now)
                self._firing[team_name] = alert
                changed.append(alert)
            for team_name in sorted(set(self._firing) - set(by_team)):
                changed.append(self._firing.pop(team_name).resolved(now))
        return changed


# ---- helpers ----------------------------------------------------------------------------------
def _signals(field: str, values: Iterable[str], *, required: bool = False) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise ValueError(f"{field}: must be a list of signal names, got {values!r}")
    out = tuple(values)
    if (required and not out) or len(out) > MAX_SIGNALS:
        raise ValueError(f"{field}: must name {1 if required else 0}..{MAX_SIGNALS} signals, got {len(out)}")
    for i, v in enumerate(out):
        if not isinstance(v, str) or not _SIGNAL.match(v):
            raise ValueError(
                f"{field}[{i}]: must be 1..64 characters of A-Z a-z 0-9 space _ . - "
                f"starting with a letter or digit, got {v!r}"
            )
    return out


def _peer_factor(
    peers: _Peers,
    own_total: Callable[[int, int], float],
    a: int,
    b: int,
    *,
    base: tuple[int, int] | None = None,
) -> float:
    """How busy the account's peers (the account itself left out) were over days a..b against
    their usual: the 8 weeks before by default (the same weekdays), or the days `base`."""
    if base is None:
        weeks = range(1, 9)
        usual = sum(peers.total(a - 7 * k, b - 7 * k) - own_total(a - 7 * k, b - 7 * k) for k in weeks) / 8
        length_ratio = 1.0
    else:
        usual = peers.total(*base) - own_total(*base)
        length_ratio = (b - a + 1) / (base[1] - base[0] + 1)
        usual *= length_ratio
    now = peers.total(a, b) - own_total(a, b)
    if usual <= 0.0 or now < 0.0:
        return 1.0
    return min(max(now / usual, 0.0), 2.0)


def _cusum(
    days: list[tuple[float, float, float]], ratio: float, dispersion: float, base_days: int
) -> tuple[float, int, float, float, float]:
    """A one-sided CUSUM of (seen, expected, peers' factor) days, oldest first, for a fall to
    `ratio` of the usual level: (evidence in nats, days in its run, seen, expected and summed
    factor over the run). Each day adds the quasi-Poisson log-likelihood ratio; the sum restarts
    at zero whenever it would go below."""
    evidence, run, seen_sum, expected_sum, factor_sum = 0.0, 0, 0.0, 0.0, 0.0
    fall, keep = (1.0 - ratio) / dispersion, math.log(ratio) / dispersion
    for seen, expected, factor in days:
        step = expected * fall + seen * keep
        if evidence + step <= 0.0:
            evidence, run, seen_sum, expected_sum, factor_sum = 0.0, 0, 0.0, 0.0, 0.0
            continue
        evidence += step
        run += 1
        seen_sum, expected_sum, factor_sum = seen_sum + seen, expected_sum + expected, factor_sum + factor
    # its usual level is itself measured over base_days days: that doubt widens the noise
    return evidence / (1.0 + run / base_days), run, seen_sum, expected_sum, factor_sum


def _dispersion(days: list[float]) -> float:
    """Variance over mean of the 7-day totals of `days` (newest last), whichever weekday a week
    starts on: how widely an account's weeks swing, as a multiple of independent events' swing.

    A week's total is its active days times what each brings, so it swings at least as much as
    the count of active days does, times the usual day's amount. That count is trusted to be
    steady only as far as the weeks seen show: after n weeks without a miss, a miss is still as
    likely as one in n + 1 (Laplace's rule), so a weekly buyer whose weeks each held one order so
    far may still skip one without it being a decline.
    """
    n = len(days) // 7
    sizes = [v for v in days if v > 0]
    if n < 2 or not sizes:
        return 1.0
    amount = [0.0, *itertools.accumulate(days)]
    active = [0, *itertools.accumulate(1 if v > 0 else 0 for v in days)]
    swing = count_swing = 0.0
    phases = 0
    for phase in range(7):  # a late order must not swing the weeks more when it crosses a boundary
        ends = range(len(days) - phase, 6, -7)
        weeks = len(ends)
        totals = [amount[e] - amount[e - 7] for e in ends]
        counts = [active[e] - active[e - 7] for e in ends]
        m, c = sum(totals) / weeks, sum(counts) / weeks
        if weeks >= 2 and m > 0.0 and c > 0.0:
            swing += _variance(totals, m) / m
            count_swing += _variance(counts, c) / c
            phases += 1
    if not phases:
        return 1.0
    size = sum(sizes) / len(sizes)
    floor = _variance(sizes, size) / size + size * max(count_swing / phases, 1.0 / (n + 1))
    return max(swing / phases, floor, 1.0)


def _variance(values: Sequence[float], mean: float) -> float:
    """The sample variance of `values` around their `mean` (0 for a single value)."""
    if len(values) < 2:
        return 0.0
    return max(math.fsum(v * v for v in values) - len(values) * mean * mean, 0.0) / (len(values) - 1)


def _amounts_back(own: list[float], first: int, born: int, began: int, ended: int, ratio: float) -> float:
    """Decades of evidence against a fall to `ratio` of its usual amounts in what an account did
    from day `ended` (the end of a silence) to yesterday: each day the quasi-Poisson
    log-likelihood ratio of its amount, against its usual day over the 8 weeks up to day `began`
    (the last active day before the silence) and that time's week-to-week swing. `own` holds its
    complete days from day `first`; the account was first seen on day `born`."""
    start = max(began - BASELINE_DAYS + 1, born, first) - first
    usual_days = own[start : began - first + 1]
    usual = sum(usual_days) / len(usual_days)
    since = own[ended - first :]
    if usual <= 0.0 or not since:
        return 0.0
    evidence = len(since) * usual * (1.0 - ratio) + sum(since) * math.log(ratio)
    return max(-evidence / _dispersion(usual_days), 0.0) / math.log(10.0)


def _gap_decades(gaps: list[int], effective: float) -> float:
    """Decades of surprise at a silence of `effective` days (see `ChurnRisk._effective`) for an
    account that left `gaps` between its active days before."""
    # Two views of its gaps, and the less alarmed one wins. Seen: the share of the gaps it
    # left that were at least this long (a weekly buyer on Tuesday is within its rhythm).
    # Expected: for an account on a schedule, its orders missed in a row; for any other, a
    # renewal process fitted to its gaps.
    n = len(gaps)
    longer = sum(1 for g in gaps if g >= effective)
    seen_p = (longer + 0.5) / (n + 1.0) if longer else 0.0
    expected_p = _scheduled_p(gaps, effective)
    if expected_p is None:
        expected_p = _renewal_p(gaps, effective)
    return -math.log10(min(max(seen_p, expected_p, 1e-300), 1.0))


def _renewal_p(gaps: list[int], effective: float) -> float:
    """P(a silence of `effective` days) for a renewal process whose gaps follow a gamma law with
    the gaps' mean and spread: a regular buyer (gaps alike) is missed sooner than an irregular
    one, whose gaps are as random as a Poisson process's. Few gaps earn little trust: the shape
    is pulled towards 1 (no rhythm) and the mean gap taken one standard error longer."""
    # The law is fitted to the days skipped between two active days (a gap less one): a daily
    # buyer's gaps of 1, 1, 3 look regular, but the days it skips come at random. Its mean is
    # matched to the geometric law (the memoryless law of whole days), whose tail is longer
    # than a continuous one's when days are skipped rarely. An account that has not skipped a
    # day yet is taken to skip half a day per gap seen: a miss is possible, however rare.
    n = len(gaps)
    skips = [g - 1 for g in gaps]
    mean = sum(skips) / n
    spread = sum((g - mean) ** 2 for g in skips) / (n - 1)
    shape = min(max(mean * mean / max(spread, 1e-9), 1.0), MAX_REGULARITY) if mean > 0 else 1.0
    shape = 1.0 + (shape - 1.0) * n / (n + TRUST_GAPS)
    mean = max(mean, 0.5 / n) * (1.0 + 1.0 / math.sqrt(n * shape))
    mean = 1.0 / math.log1p(1.0 / mean)
    return _gamma_survival(shape, shape * (effective - 1.0) / mean)


def _scheduled_p(gaps: list[int], effective: float) -> float | None:
    """P(a silence of `effective` days) for an account that buys on a schedule (every week, every
    month: nearly every gap a whole number of periods, give or take a day or a fifth of one), or
    None for one that does not. A scheduled order is missed now and then, independently: its
    share of misses q, with half a miss granted so none is ever certain, makes m orders missed in
    a row as likely as q ** m. (A renewal law fitted to such gaps keeps a tail for silences that
    a schedule does not have: three Mondays missed by a Monday buyer are rarer than that.)"""
    period = sorted(gaps)[len(gaps) // 2]
    if period < SCHEDULE_MIN_DAYS or len(gaps) < SCHEDULE_MIN_GAPS:
        return None
    slack = max(1, round(SCHEDULE_SLACK * period))
    periods = [max(1, round(g / period)) for g in gaps]
    late = [abs(g - k * period) for g, k in zip(gaps, periods, strict=True)]
    if sum(1 for d in late if d <= slack) < SCHEDULE_SHARE * len(gaps):
        return None
    q = (sum(periods) - len(gaps) + 0.5) / (sum(periods) + 1.0)
    missed = math.floor((effective - 1.0 - slack) / period)  # orders due whose latest usual day passed
    return q**missed if missed > 0 else 1.0


def _gamma_survival(a: float, x: float) -> float:
    """P(X >= x) for X ~ Gamma(shape a, scale 1): the regularised upper incomplete gamma."""
    if x <= 0.0:
        return 1.0
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:  # the series for the lower part converges here
        term = total = 1.0 / a
        for n in range(1, 500):
            term *= x / (a + n)
            total += term
            if term < total * 1e-12:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    # Lentz's continued fraction for the upper part
    tiny = 1e-300
    b = x + 1.0 - a
    c, d = 1.0 / tiny, 1.0 / b
    h = d
    for n in range(1, 500):
        an = -n * (n - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        step = d * c
        h *= step
        if abs(step - 1.0) < 1e-12:
            break
    return math.exp(log_front) * h


def _excess_decades(seen: float, usual: float) -> float:
    """Decades of surprise at `seen` problems where `usual` were expected (Poisson, by the
    square-root transform; half a problem is always expected, so a first one is no certainty)."""
    expected = usual + 0.5
    if seen <= expected:
        return 0.0
    return _normal_decades(2.0 * (math.sqrt(seen) - math.sqrt(expected)))


def _normal_decades(z: float) -> float:
    """-log10 of the normal upper tail beyond z (decades of surprise), finite for any z."""
    z = min(z, 37.0)
    return -math.log10(max(0.5 * math.erfc(z / math.sqrt(2.0)), 1e-300))


def _sure(decades: float, odds: float = 1.0) -> float:
    """Decades of evidence as a confidence in [0, 1): nothing up to ORDINARY decades, half at
    SURE decades more, never saturating. Its odds grow in proportion to the decades beyond the
    ordinary; `odds` multiplies them (what else is known about the account)."""
    beyond = odds * max(decades - ORDINARY, 0.0)
    return beyond / (beyond + SURE)


def _rhythm(gaps: list[int]) -> str:
    typical = sorted(gaps)[len(gaps) // 2]
    if typical <= 1:
        return "it is usually active every day"
    if typical <= 3:
        return f"it is usually active every {typical} days"
    if 5 <= typical <= 9:
        return "it usually comes back every week"
    if 25 <= typical <= 35:
        return "it usually comes back every month"
    return f"it usually comes back within {max(gaps)} days"


def _count(x: float) -> str:
    return f"{x:,.0f}" if x >= 1 else f"{x:.2g}"


def _plural(signal: str, count: float) -> str:
    if round(count) == 1 or signal.endswith("s") or signal.endswith("ing"):
        return signal
    return signal + "s"


def _next_step(kind: str, account: Account, reasons: Mapping[str, float], main: str | None) -> str:
    who = account.label
    what = main or "activity"
    if kind == "silent":
        return f"Contact {who} within a day: its {what} stopped; ask what changed and what blocks them."
    if kind == "declining":
        return f"Book a call with {who} this week: its {what} are falling; ask what changed and offer help."
    if kind == "troubled":
        worst = next(iter(reasons), "the problems")
        return f"Tell {who} about the fix for {worst.split(' since ')[0]} and check their {what} next week."
    if kind == "own errors":
        return f"Tell {who} their integration fails on their side ({next(iter(reasons))}); no churn risk."
    return ""


def _digest(team: str, receivers: tuple[str, ...], risks: list[AccountRisk], now: float) -> Alert:
    value = sum(r.value for r in risks)
    lines = []
    for r in risks:
        who = r.name or r.account
        why = "; ".join(k for k, v in r.reasons.items() if v > 0) or "no reason recorded"
        meta = ", ".join(x for x in (r.account if r.name else "", r.segment) if x)
        lines.append(f"{who} ({meta}) risk {r.score:.2f}: {why}. Next: {r.next_step}".replace(" ()", ""))
    at_risk = f", value at risk {value:,.0f}" if value else ""
    return Alert(
        id=alert_id("churn", team),
        kind="churn",
        status="firing",
        severity="warning",
        indicator="churn",
        region="global",
        team=team,
        receivers=receivers,
        summary=f"{len(risks)} accounts of {team} at risk of churning{at_risk}",
        cause="\n".join(lines),
        next_step=f"{team}: contact each account listed today, top first; each line says why and what to do.",
        starts_at=now,
        value=float(len(risks)),
        labels={"alertname": "ChurnRisk", "accounts": ",".join(r.account for r in risks)[:2000]},
    )

