"""The indicators file: what a team watches, where it comes from, who owns it, where alerts go.

A TOML file (read with the standard library's `tomllib`) with four tables:

```toml
[service]                 # optional: where `stoic signals run` listens and keeps history
listen = "127.0.0.1:9470"
history = "signals.db"
keep_days = 30

[prometheus]              # needed when an indicator has source = "prometheus"
url = "http://127.0.0.1:9090"

[receivers]               # where alerts go
alertmanager = ["http://127.0.0.1:9093"]

[[indicators]]            # one table per indicator
name = "checkout_errors"
source = "prometheus"
query = 'sum by (region) (rate(http_errors_total[1m])) / sum by (region) (rate(http_requests_total[1m]))'
labels = ["region"]
kind = "ratio"
direction = "up"
team = "payments"
```

`load(path)` and `parse(text)` return a validated `SignalsConfig`; every mistake raises
`ConfigError` (a ValueError) whose message starts with the key (`indicators[0].kind`) and names
the allowed values.
"""

from __future__ import annotations

import re
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from stoic.signals import _validate
from stoic.signals.silences import Silence, make_silence

SOURCES = ("prometheus", "push", "file")
KINDS = ("count", "ratio", "gauge", "latency")
DIRECTIONS = ("up", "down", "both")
SEVERITIES = ("critical", "warning", "info")
UNITS = {"count": "per second", "ratio": "ratio", "gauge": "", "latency": "seconds"}
# Placeholders every summary template may use, besides the indicator's own labels.
TEMPLATE_FIELDS = ("indicator", "value", "expected", "change", "unit", "team", "since", "labels")
# Labels Stoic sets on every alert itself: a dimension may not take these names.
RESERVED_LABELS = ("alertname", "team", "severity", "indicator")
DEFAULT_SUMMARY = "{indicator} {labels} is {value:.4g} {unit}, expected {expected:.4g}, since {since}"
DEFAULT_NEXT_STEP = "Open the runbook and the owning team's dashboard for the labels named in this alert."

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$")
_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,63}$")
_TOP = ("service", "prometheus", "receivers", "indicators", "weekly", "churn", "silences", "maintenance")
_SERVICE = ("listen", "history", "keep_days", "token_env")
_PROMETHEUS = ("url", "timeout", "backfill")
_RECEIVERS = ("alertmanager", "webhooks", "resend", "timeout", "slack")
_INDICATOR = (
    "name", "source", "query", "file", "labels", "max_series", "expire_after", "direction", "kind",
    "unit", "team", "slo", "severity", "summary", "next_step", "runbook_url", "interval", "lateness",
    "tile", "tile_label", "tile_stat", "churn", "events",
)  # fmt: skip
# The weekly view: its sections, in the order they print, and how incidents are counted.
WEEKLY_SECTIONS = ("leadership", "operations", "support", "customers")
_WEEKLY = ("title", "sections", "merge_gap", "noise_under")
# How a tile sums up an indicator's week: total (a count's events), mean, max, min or last value.
TILE_STATS = ("total", "mean", "max", "min", "last")
# What an indicator labelled by `account` tells the churn model about each account.
CHURN_ROLES = ("activity", "problem", "own_error")
_CHURN = ("accounts", "utc_offset", "alert_at", "top")


class ConfigError(ValueError):
    """A bad indicators file; `field` is the key (`indicators[2].kind`), the message names the
    allowed values."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class IndicatorSpec:
    """One declared indicator.

    - `name`: a-z 0-9 _ (the `indicator` label of its alerts).
    - `source`: "prometheus" (polled with `query` every `interval`), "push" (ingest API) or
      "file" (CSV or JSON lines read at start from `file`).
    - `labels`: the dimensions of one series (e.g. region, status); at most `max_series` label
      sets are tracked, and a set silent for `expire_after` seconds is forgotten.
    - `kind`: count (per second, never negative), ratio (0..1), gauge (any number) or latency
      (seconds, never negative); `direction`: which moves alert ("up", "down", "both").
    - `events`: for a count, whether each unit is one event (an order, a login, a request), so
      its noise is never taken below independent events' and a stretch of quiet intervals is
      judged as one (an hour without orders where one or two a minute are usual). False for a
      count of bytes or of anything that comes in batches.
    - `slo`: for a ratio, the objective (0.999): burn-rate alerts fire when the bad fraction
      (the value for direction "up", 1 - value for "down") burns the error budget too fast.
    - `team`, `severity`, `summary` (a template), `next_step`, `runbook_url`: what an alert says
      and who it is for.
    - `interval`: seconds per point; `lateness`: how long after a point's interval data for it
      is still taken (later data is refused).
    """

    name: str
    source: str
    kind: str
    team: str
    query: str = ""
    file: str = ""
    labels: tuple[str, ...] = ()
    max_series: int = 100
    expire_after: float = 86400.0
    direction: str = "both"
    unit: str = ""
    slo: float | None = None
    severity: str = "critical"
    summary: str = DEFAULT_SUMMARY
    next_step: str = DEFAULT_NEXT_STEP
    runbook_url: str = ""
    interval: float = 60.0
    lateness: float = 60.0
    tile: bool = False
    tile_label: str = ""
    tile_stat: str = ""
    churn: str = ""
    events: bool = False

    @property
    def title(self) -> str:
        """What the weekly view calls this indicator: `tile_label`, else its name."""
        return self.tile_label or self.name.replace("_", " ")


@dataclass(frozen=True, slots=True)
class WeeklyConfig:
    """The `[weekly]` table: what the weekly view shows.

    - `title`: the business's name at the top of the page.
    - `sections`: which audiences get a section, in print order (leadership, operations,
      support, customers); a section with nothing to say is left out anyway.
    - `merge_gap`: critical alerts closer than this (seconds) are one incident.
    - `noise_under`: an incident shorter than this with no known cause and nobody noting it is
      counted as noise, not as a real incident.
    """

    title: str = "Stoic"
    sections: tuple[str, ...] = WEEKLY_SECTIONS
    merge_gap: float = 900.0
    noise_under: float = 1800.0


@dataclass(frozen=True, slots=True)
class ChurnConfig:
    """The `[churn]` table: `accounts` (a CSV or TOML file of who each account is), `utc_offset`
    (hours; where the business's day starts), `alert_at` (the score from which an account is
    at risk) and `top` (how many accounts are kept in each snapshot and listed)."""

    accounts: str = ""
    utc_offset: float = 0.0
    alert_at: float = 0.5
    top: int = 50


@dataclass(frozen=True, slots=True)
class SignalsConfig:
    """A whole indicators file, validated."""

    indicators: tuple[IndicatorSpec, ...]
    listen_host: str = "127.0.0.1"
    listen_port: int = 9470
    history: str = "signals.db"
    keep_days: float = 30.0
    token_env: str = "STOIC_SIGNALS_TOKEN"
    prometheus_url: str = ""
    prometheus_timeout: float = 10.0
    backfill: float = 14 * 86400.0
    alertmanagers: tuple[str, ...] = ()
    webhooks: tuple[str, ...] = ()
    slack: tuple[str, ...] = ()  # Slack-compatible incoming webhooks: one text per alert
    resend: float = 60.0
    receiver_timeout: float = 5.0
    base: Path = field(default_factory=Path.cwd)  # relative paths are read from here
    weekly: WeeklyConfig = field(default_factory=WeeklyConfig)
    churn: ChurnConfig = field(default_factory=ChurnConfig)
    silences: tuple[Silence, ...] = ()  # [[silences]] and [[maintenance]] windows

    def indicator(self, name: str) -> IndicatorSpec:
        for spec in self.indicators:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def path(self, value: str) -> Path:
        """`value` (a path from the file) resolved against the file's directory."""
        p = Path(value)
        return p if p.is_absolute() else self.base / p


def load(path: str | Path) -> SignalsConfig:
    """Read and validate an indicators file; ConfigError names the key at fault."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("file", f"file: cannot read {str(p)!r} ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ConfigError("file", f"file: {str(p)!r} is not UTF-8 text") from None
    return parse(text, base=p.resolve().parent)


def parse(text: str, *, base: Path | None = None) -> SignalsConfig:
    """Validate the TOML `text` of an indicators file."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("file", f"file: not valid TOML ({exc})") from None
    try:
        return _config(raw, base or Path.cwd())
    except ConfigError:
        raise
    except ValueError as exc:  # from _validate: the message starts with the key
        raise ConfigError(str(exc).split(":", 1)[0], str(exc)) from None


def duration(key: str, value: object, *, low: float, high: float) -> float:
    """Seconds from a number or a string such as "90s", "5m", "1h", "14d"; ValueError names `key`."""
    seconds: float
    if isinstance(value, str):
        m = _DURATION.match(value.strip())
        if m is None:
            raise ValueError(f"{key}: must be seconds or a duration such as 30s, 5m, 1h, 14d, got {value!r}")
        seconds = float(m.group(1)) * _SCALE[m.group(2)]
    else:
        seconds = _validate.number(key, value)
    if not low <= seconds <= high:
        raise ValueError(f"{key}: must be between {low:g} s and {high:g} s, got {value!r}")
    return seconds


def _table(key: str, value: object, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}: must be a table, got {type(value).__name__}")
    for k in value:
        if k not in allowed:
            where = f"{key}." if key else ""
            raise ConfigError(f"{where}{k}", f"{where}{k}: unknown key; allowed: {', '.join(allowed)}")
    return value


def _url(key: str, value: object) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{key}: must be an http:// or https:// URL, got {value!r}")
    return str(value).rstrip("/")


def _urls(key: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or len(value) > 20:
        raise ValueError(f"{key}: must be a URL or a list of at most 20 URLs, got {value!r}")
    return tuple(_url(f"{key}[{i}]", v) for i, v in enumerate(value))


def _config(raw: Mapping[str, Any], base: Path) -> SignalsConfig:
    _table("", raw, _TOP)
    service = _table("service", raw.get("service", {}), _SERVICE)
    prom = _table("prometheus", raw.get("prometheus", {}), _PROMETHEUS)
    recv = _table("receivers", raw.get("receivers", {}), _RECEIVERS)
    host, port = listen_address(service.get("listen", "127.0.0.1:9470"))
    items = raw.get("indicators")
    if not isinstance(items, list) or not 1 <= len(items) <= 1000:
        raise ValueError(
            "indicators: must be 1..1000 [[indicators]] tables, "
            f"got {'none' if items is None else repr(items)[:60]}"
        )
    indicators = tuple(_indicator(f"indicators[{i}]", item) for i, item in enumerate(items))
    seen: set[str] = set()
    for i, spec in enumerate(indicators):
        if spec.name in seen:
            raise ValueError(f"indicators[{i}].name: {spec.name!r} is declared twice; names must be unique")
        seen.add(spec.name)
    prometheus_url = _url("prometheus.url", prom["url"]) if "url" in prom else ""
    if not prometheus_url:
        for i, spec in enumerate(indicators):
            if spec.source == "prometheus":
                raise ValueError(
                    f"prometheus.url: required because indicators[{i}] ({spec.name}) "
                    'has source = "prometheus"'
                )
    churn = _churn_table(raw.get("churn", {}), indicators)
    return SignalsConfig(
        weekly=_weekly_table(raw.get("weekly", {})),
        churn=churn,
        silences=_silence_tables(raw),
        indicators=indicators,
        listen_host=host,
        listen_port=port,
        history=_validate.text("service.history", service.get("history", "signals.db"), max_len=1000),
        keep_days=_validate.number("service.keep_days", service.get("keep_days", 30), low=1.0, high=3650.0),
        token_env=_validate.text(
            "service.token_env", service.get("token_env", "STOIC_SIGNALS_TOKEN"), max_len=100
        ),
        prometheus_url=prometheus_url,
        prometheus_timeout=duration("prometheus.timeout", prom.get("timeout", 10.0), low=0.1, high=300.0),
        backfill=duration("prometheus.backfill", prom.get("backfill", "14d"), low=0.0, high=90 * 86400.0),
        alertmanagers=_urls("receivers.alertmanager", recv.get("alertmanager", [])),
        webhooks=_urls("receivers.webhooks", recv.get("webhooks", [])),
        slack=_urls("receivers.slack", recv.get("slack", [])),
        # Alertmanager's client contract: re-send a firing alert every 30 s to 3 min
        resend=duration("receivers.resend", recv.get("resend", 60.0), low=30.0, high=180.0),
        receiver_timeout=duration("receivers.timeout", recv.get("timeout", 5.0), low=0.1, high=60.0),
        base=base,
    )


def _weekly_table(value: object) -> WeeklyConfig:
    t = _table("weekly", value, _WEEKLY)
    sections = t.get("sections", list(WEEKLY_SECTIONS))
    if not isinstance(sections, list) or not 1 <= len(sections) <= len(WEEKLY_SECTIONS):
        raise ValueError(
            f"weekly.sections: must be a list of 1..{len(WEEKLY_SECTIONS)} of "
            f"{', '.join(WEEKLY_SECTIONS)}, got {sections!r}"
        )
    chosen = tuple(
        _validate.choice(f"weekly.sections[{i}]", s, WEEKLY_SECTIONS) for i, s in enumerate(sections)
    )
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"weekly.sections: each section once, got {sections!r}")
    return WeeklyConfig(
        title=_validate.text("weekly.title", t.get("title", "Stoic"), max_len=100),
        sections=chosen,
        merge_gap=duration("weekly.merge_gap", t.get("merge_gap", "15m"), low=0.0, high=86400.0),
        noise_under=duration("weekly.noise_under", t.get("noise_under", "30m"), low=0.0, high=86400.0),
    )


def churn_signal(spec: IndicatorSpec) -> str:
    """The name a churn reason gives `spec` ("no orders for 9 days"): its `tile_label` when the
    churn model can take it (letters, digits, space, _ . -), else its name with spaces."""
    label = spec.tile_label
    if label and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.\-]{0,63}", label):
        return label
    return spec.name.replace("_", " ")


def _churn_table(value: object, indicators: tuple[IndicatorSpec, ...]) -> ChurnConfig:
    t = _table("churn", value, _CHURN)
    named: dict[str, int] = {}
    for i, spec in enumerate(indicators):
        if spec.churn:
            signal = churn_signal(spec)
            if signal in named:
                raise ValueError(
                    f"indicators[{i}].tile_label: churn reasons would call it {signal!r}, as "
                    f"indicators[{named[signal]}]; give each churn indicator its own label"
                )
            named[signal] = i
    accounts = t.get("accounts", "")
    if accounts != "":
        accounts = _validate.text("churn.accounts", accounts, max_len=1000)
    if t and not any(s.churn == "activity" for s in indicators):
        raise ValueError(
            'churn: needs at least one indicator with churn = "activity" (and "account" in its labels)'
        )
    return ChurnConfig(
        accounts=accounts,
        utc_offset=_validate.number("churn.utc_offset", t.get("utc_offset", 0.0), low=-12.0, high=14.0),
        alert_at=_validate.number("churn.alert_at", t.get("alert_at", 0.5), low=0.0, low_open=True, high=1.0),
        top=_validate.integer("churn.top", t.get("top", 50), low=1, high=1000),
    )


def listen_address(value: object) -> tuple[str, int]:
    """(host, port) from "HOST:PORT"; ValueError names service.listen."""
    host, _, port = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"service.listen: must be HOST:PORT (port 0..65535), got {value!r}")
    return host.strip("[]"), int(port)


def _indicator(key: str, item: object) -> IndicatorSpec:
    t = _table(key, item, _INDICATOR)
    for required in ("name", "source", "kind", "team"):
        if required not in t:
            raise ValueError(f"{key}.{required}: required")
    name = _validate.name(f"{key}.name", t["name"])
    source = _validate.choice(f"{key}.source", t["source"], SOURCES)
    kind = _validate.choice(f"{key}.kind", t["kind"], KINDS)
    query = file = ""
    if source == "prometheus":
        query = _validate.text(f"{key}.query", t.get("query"), max_len=10_000)
    elif "query" in t:
        raise ValueError(
            f'{key}.query: only for source = "prometheus", this indicator\'s source is {source!r}'
        )
    if source == "file":
        file = _validate.text(f"{key}.file", t.get("file"), max_len=1000)
    elif "file" in t:
        raise ValueError(f"{key}.file: only for source = \"file\", this indicator's source is {source!r}")
    labels = t.get("labels", [])
    if not isinstance(labels, list) or len(labels) > 16:
        raise ValueError(f"{key}.labels: must be a list of at most 16 label names, got {labels!r}")
    for i, label in enumerate(labels):
        if not isinstance(label, str) or not _LABEL.match(label) or label.startswith("__"):
            raise ValueError(
                f"{key}.labels[{i}]: must be a label name ([a-zA-Z_][a-zA-Z0-9_]*, "
                f"not starting with __), got {label!r}"
            )
        if label in RESERVED_LABELS:
            raise ValueError(
                f"{key}.labels[{i}]: {label!r} is set by Stoic on every alert; "
                f"reserved: {', '.join(RESERVED_LABELS)}"
            )
    if len(set(labels)) != len(labels):
        raise ValueError(f"{key}.labels: each label name once, got {labels!r}")
    slo = t.get("slo")
    if slo is not None:
        if kind != "ratio":
            raise ValueError(
                f'{key}.slo: only for kind = "ratio" (the bad fraction burns the budget), got kind {kind!r}'
            )
        slo = _validate.number(f"{key}.slo", slo, low=0.0, low_open=True, high=0.99999)
    interval = duration(f"{key}.interval", t.get("interval", 60.0), low=1.0, high=86400.0)
    runbook = t.get("runbook_url", "")
    tile = t.get("tile", False)
    if not isinstance(tile, bool):
        raise ValueError(f"{key}.tile: must be true or false, got {tile!r}")
    events = t.get("events", False)
    if not isinstance(events, bool):
        raise ValueError(f"{key}.events: must be true or false, got {events!r}")
    if events and kind != "count":
        raise ValueError(f'{key}.events: only for kind = "count" (a number of events), got kind {kind!r}')
    churn = t.get("churn", "")
    if churn != "":
        churn = _validate.choice(f"{key}.churn", churn, CHURN_ROLES)
        if "account" not in labels:
            raise ValueError(
                f'{key}.churn: needs "account" among the labels (one series per account), got {labels!r}'
            )
        if kind not in ("count", "gauge"):
            raise ValueError(
                f"{key}.churn: only for kind count or gauge (events per account), got kind {kind!r}"
            )
    spec = IndicatorSpec(
        name=name,
        source=source,
        kind=kind,
        team=_validate.text(f"{key}.team", t["team"], max_len=100),
        query=query,
        file=file,
        labels=tuple(labels),
        max_series=_validate.integer(f"{key}.max_series", t.get("max_series", 100), low=1, high=10_000),
        expire_after=duration(
            f"{key}.expire_after", t.get("expire_after", "1d"), low=interval, high=90 * 86400.0
        ),
        direction=_validate.choice(f"{key}.direction", t.get("direction", "both"), DIRECTIONS),
        unit=_validate.text(f"{key}.unit", t.get("unit", UNITS[kind]), max_len=40, required=False),
        slo=slo,
        severity=_validate.choice(f"{key}.severity", t.get("severity", "critical"), SEVERITIES),
        summary=_validate.text(f"{key}.summary", t.get("summary", DEFAULT_SUMMARY), max_len=500),
        next_step=_validate.text(f"{key}.next_step", t.get("next_step", DEFAULT_NEXT_STEP), max_len=1000),
        runbook_url=_url(f"{key}.runbook_url", runbook) if runbook else "",
        interval=interval,
        lateness=duration(f"{key}.lateness", t.get("lateness", interval), low=0.0, high=7 * 86400.0),
        tile=tile,
        tile_label=_validate.text(f"{key}.tile_label", t.get("tile_label", ""), max_len=60, required=False),
        tile_stat=_validate.choice(
            f"{key}.tile_stat", t.get("tile_stat", "total" if kind == "count" else "mean"), TILE_STATS
        ),
        churn=churn,
        events=events,
    )
    _check_template(f"{key}.summary", spec)
    return spec


def _check_template(key: str, spec: IndicatorSpec) -> None:
    """Render the summary once with sample values, so a typo fails at check time, not at 3 am."""
    allowed = (*TEMPLATE_FIELDS, *spec.labels)
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(spec.summary) if f is not None]
    except ValueError as exc:
        raise ValueError(
            f"{key}: not a valid template ({exc}); write {{{{ and }}}} for literal braces"
        ) from None
    for n in names:
        if n not in allowed:
            raise ValueError(f"{key}: unknown placeholder {{{n}}}; allowed: {', '.join(allowed)}")
    sample: dict[str, Any] = dict.fromkeys(spec.labels, "x")
    sample.update(indicator=spec.name, value=0.5, expected=0.25, change=1.0, unit=spec.unit, team=spec.team)
    sample.update(since="12:00 UTC", labels="{}")
    try:
        spec.summary.format(**sample)
    except (ValueError, TypeError, IndexError) as exc:
        raise ValueError(
            f"{key}: the template does not render ({exc}); value, expected and change are numbers"
        ) from None


_SILENCE = ("matchers", "starts_at", "ends_at", "created_by", "comment")


def _silence_tables(raw: Mapping[str, Any]) -> tuple[Silence, ...]:
    """`[[silences]]` and `[[maintenance]]`: matchers, starts_at and ends_at (TOML date-times,
    RFC 3339 strings or epoch seconds), created_by and comment, all required."""
    out: list[Silence] = []
    for kind, table in (("silence", "silences"), ("maintenance", "maintenance")):
        items = raw.get(table, [])
        if not isinstance(items, list) or len(items) > 200:
            raise ValueError(f"{table}: must be at most 200 [[{table}]] tables, got {repr(items)[:60]}")
        for i, item in enumerate(items):
            key = f"{table}[{i}]"
            t = _table(key, item, _SILENCE)
            for k in _SILENCE:
                if k not in t:
                    raise ValueError(f"{key}.{k}: required; a {kind} needs {', '.join(_SILENCE)}")
            try:
                silence = make_silence(
                    t["matchers"],
                    starts_at=_when(f"{key}.starts_at", t["starts_at"]),
                    ends_at=_when(f"{key}.ends_at", t["ends_at"]),
                    created_by=t["created_by"],
                    comment=t["comment"],
                    kind=kind,
                    silence_id=f"{table}-{i}",
                )
            except ValueError as exc:
                text = str(exc)
                raise ValueError(text if text.startswith(key) else f"{key}.{text}") from None
            out.append(silence)
    return tuple(out)


def _when(key: str, value: object) -> float:
    """Epoch seconds from a TOML date-time (with an offset), an RFC 3339 string or a number."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"{key}: must be an RFC 3339 time such as 2026-01-05T02:00:00Z, got {value!r}"
            ) from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{key}: needs a UTC offset (2026-01-05T02:00:00Z), got {value.isoformat()!r}")
        return value.timestamp()
    return _validate.epoch(key, value)
