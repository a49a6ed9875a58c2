"""The chaos config file (TOML): loaded, validated with errors that name the field, and built."""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ._errors import ChaosConfigError
from ._monkey import Monkey
from .army import SimianArmy
from .audit import AuditLog
from .board import FaultBoard
from .chaos_monkey import AppSettings, ChaosMonkey
from .clock import Clock, CompressedClock, SystemClock
from .conformity import ConformityMonkey, Rule, has_fallback, has_owner, runs_in_zones
from .fleet import GROUPINGS
from .latency_monkey import LatencyMonkey
from .notify import LogNotifier, Notifier, WebhookNotifier
from .outages import ChaosGorilla, ChaosKong
from .safety import BlastRadius, KillSwitch, OutageCheck, url_outage
from .schedule import WEEKDAYS, Schedule
from .supervisor import Supervisor
from .targets import Target

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
#: keys that would let an app out of chaos; refused on purpose
_OPT_OUTS = ("enabled", "disabled", "opt_out", "optout", "exclude", "excluded", "skip")
TARGET_KINDS = ("processes", "kubernetes")
RULES = ("has_fallback", "runs_in_zones", "has_owner")


def parse_duration(value: object, name: str, *, allow_none: bool = False) -> float | None:
    """Seconds from a number or a string such as ``"500ms"``, ``"90s"``, ``"5m"``, ``"2h"``, ``"1d"``."""
    if allow_none and (value is None or value == "none" or value is False):
        return None
    if not isinstance(value, bool) and isinstance(value, int | float) and value >= 0:
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNITS[m.group(2)]
    extra = ' or "none"' if allow_none else ""
    raise ChaosConfigError(
        f'{name} must be seconds >= 0 or a duration like "500ms", "90s", "5m", "2h", "1d"{extra}; '
        f"got {value!r}"
    )


class _Table:
    """One TOML table with its dotted name, so every error says exactly which field is wrong."""

    def __init__(self, data: object, name: str, allowed: Sequence[str]) -> None:
        if not isinstance(data, dict):
            raise ChaosConfigError(f"{name or 'the config'} must be a table; got {type(data).__name__}")
        self.data: dict[str, Any] = data
        self.name = name
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            where = f"{name}." if name else ""
            raise ChaosConfigError(f"unknown field {where}{unknown[0]}; allowed: {', '.join(allowed)}")

    def path(self, key: str) -> str:
        return f"{self.name}.{key}" if self.name else key

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def text(self, key: str, default: str | None = None, choices: Sequence[str] | None = None) -> str | None:
        value = self.data.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise ChaosConfigError(f"{self.path(key)} must be a non-empty string; got {value!r}")
        if choices is not None and value not in choices:
            raise ChaosConfigError(f"{self.path(key)} must be one of {', '.join(choices)}; got {value!r}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise ChaosConfigError(f"{self.path(key)} must be true or false; got {value!r}")
        return value

    def number(self, key: str, default: float | None, lo: float, hi: float) -> float | None:
        value = self.data.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise ChaosConfigError(f"{self.path(key)} must be a number in [{lo:g}, {hi:g}]; got {value!r}")
        return float(value)

    def integer(self, key: str, default: int | None, lo: int, hi: int) -> int | None:
        value = self.data.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ChaosConfigError(f"{self.path(key)} must be an integer in [{lo}, {hi}]; got {value!r}")
        return value

    def duration(self, key: str, default: float | str | None, *, allow_none: bool = False) -> float | None:
        return parse_duration(self.data.get(key, default), self.path(key), allow_none=allow_none)

    def strings(self, key: str, default: Sequence[str]) -> list[str]:
        value = self.data.get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ChaosConfigError(f"{self.path(key)} must be a list of non-empty strings; got {value!r}")
        return list(value)

    def table(self, key: str, allowed: Sequence[str]) -> _Table | None:
        if key not in self.data:
            return None
        return _Table(self.data[key], self.path(key), allowed)


@dataclass(frozen=True)
class InstanceSpec:
    """One `[[instances]]` entry: what the `Supervisor` starts (``count`` copies)."""

    app: str
    region: str
    zone: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    port: int | None = None
    health_url: str | None = None
    restart_after: float | None = None
    owner: str | None = None
    count: int = 1

    # a declared instance counts as alive for conformity checks made before anything starts
    @property
    def alive(self) -> bool:
        return True

    @property
    def id(self) -> str:
        return f"{self.app}-{self.zone}"


@dataclass
class ChaosConfig:
    """A validated chaos config. `army(target)` builds the `SimianArmy`."""

    path: Path
    state_dir: Path
    audit_db: Path
    leashed: bool
    interval: float
    speed: float
    start: datetime | None
    seed: int | None
    schedule: Schedule
    limits: BlastRadius
    outage_url: str | None
    target_kind: str
    target_options: dict[str, str]
    instances: list[InstanceSpec]
    owners: dict[str, str]
    app_settings: dict[str, AppSettings]
    monkey_factories: list[Callable[[ChaosConfig], Monkey]]
    webhook: str | None = None

    @property
    def kill_switch(self) -> KillSwitch:
        return KillSwitch(self.state_dir / "kill-switch")

    @property
    def board(self) -> FaultBoard:
        return FaultBoard(self.state_dir / "faults.json")

    @property
    def notifier(self) -> Notifier:
        return WebhookNotifier(self.webhook) if self.webhook else LogNotifier()

    def clock(self) -> Clock:
        if self.speed == 1 and self.start is None:
            return SystemClock()
        return CompressedClock(speed=self.speed, start=self.start)

    def outage(self) -> OutageCheck | None:
        return url_outage(self.outage_url) if self.outage_url else None

    def monkeys(self) -> list[Monkey]:
        return [make(self) for make in self.monkey_factories]

    def army(self, target: Target, audit: AuditLog | None = None) -> SimianArmy:
        """The configured army against `target` (audit defaults to `audit_db`)."""
        return SimianArmy(
            target,
            self.monkeys(),
            audit=audit if audit is not None else AuditLog(self.audit_db),
            schedule=self.schedule,
            limits=self.limits,
            leashed=self.leashed,
            kill_switch=self.kill_switch,
            outage=self.outage(),
            clock=self.clock(),
            seed=self.seed,
        )

    def start_instances(self, supervisor: Supervisor) -> None:
        """Start every `[[instances]]` entry under `supervisor` (not waiting for health)."""
        for spec in self.instances:
            for _ in range(spec.count):
                supervisor.start(
                    spec.argv,
                    app=spec.app,
                    region=spec.region,
                    zone=spec.zone,
                    env=spec.env,
                    cwd=spec.cwd,
                    port=spec.port,
                    health_url=spec.health_url,
                    restart_after=spec.restart_after,
                    owner=spec.owner or self.owners.get(spec.app),
                )


def load_config(path: str | Path) -> ChaosConfig:
    """Read and validate a chaos TOML file; `ChaosConfigError` names the offending field."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ChaosConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ChaosConfigError(f"{path} is not valid TOML: {exc}") from None
    try:
        return parse_config(raw, base=path.parent, path=path)
    except ChaosConfigError as exc:
        raise ChaosConfigError(f"{path}: {exc}") from None


_TOP = ("state_dir", "audit_db", "leashed", "interval", "speed", "start", "seed", "schedule", "limits",
        "outage", "target", "instances", "apps", "monkeys")  # fmt: skip
_SCHEDULE = ("always", "start", "end", "weekdays", "timezone", "holidays")
_LIMITS = ("window", "max_instances", "max_zones", "max_regions", "max_share")
_MONKEYS = ("chaos", "latency", "gorilla", "kong", "conformity")


def parse_config(raw: Mapping[str, Any], base: Path = Path("."), path: Path | None = None) -> ChaosConfig:
    """Validate an already-parsed config mapping (relative paths resolve against `base`)."""
    top = _Table(dict(raw), "", _TOP)
    state_dir = base / (top.text("state_dir", "chaos-state") or "chaos-state")
    audit_name = top.text("audit_db")
    audit_db = base / audit_name if audit_name else state_dir / "audit.db"
    start = top.get("start")
    if start is not None:
        if isinstance(start, str):
            try:
                start = datetime.fromisoformat(start)
            except ValueError:
                raise ChaosConfigError(f"start must be an ISO date-time with offset; got {start!r}") from None
        if not isinstance(start, datetime) or start.tzinfo is None:
            raise ChaosConfigError(
                f"start must be a date-time with a UTC offset, e.g. 2026-11-23T09:00:00Z; got {start!r}"
            )
    outage = top.table("outage", ("url",))
    target = top.table("target", ("kind", "namespace", "selector", "kubeconfig", "context")) or _Table(
        {}, "target", ()
    )
    kind = target.text("kind", "processes", TARGET_KINDS) or "processes"
    options = {k: str(v) for k, v in target.data.items() if k != "kind"}
    if kind == "processes" and options:
        raise ChaosConfigError(f'target.{sorted(options)[0]} only applies to kind = "kubernetes"')

    apps_raw = top.get("apps", {})
    if not isinstance(apps_raw, dict):
        raise ChaosConfigError("apps must be a table of [apps.NAME] tables")
    owners: dict[str, str] = {}
    app_settings: dict[str, AppSettings] = {}
    chaos_table = top.table("monkeys", _MONKEYS)
    chaos_fields = ("grouping", "mean_time_between_kills", "min_time_between_kills", "schedule", "limits")
    chaos_defaults = chaos_table.table("chaos", chaos_fields) if chaos_table else None
    for app, body in apps_raw.items():
        name = f"apps.{app}"
        if isinstance(body, dict):
            for key in body:
                if key in _OPT_OUTS:
                    raise ChaosConfigError(
                        f"{name}.{key}: apps cannot opt out of chaos; they may shape it with grouping, "
                        "mean_time_between_kills, min_time_between_kills and schedule"
                    )
        t = _Table(
            body, name, ("owner", "grouping", "mean_time_between_kills", "min_time_between_kills", "schedule")
        )
        owner = t.text("owner")
        if owner:
            owners[app] = owner
        if any(
            k in t.data for k in ("grouping", "mean_time_between_kills", "min_time_between_kills", "schedule")
        ):
            d = chaos_defaults or _Table({}, "monkeys.chaos", ())
            app_settings[app] = AppSettings(
                grouping=t.text("grouping", d.text("grouping", "app"), GROUPINGS) or "app",
                mean_time_between_kills=t.duration(
                    "mean_time_between_kills", d.get("mean_time_between_kills", "2d"), allow_none=True
                ),
                min_time_between_kills=t.duration(
                    "min_time_between_kills", d.get("min_time_between_kills", "1h")
                )
                or 0.0,
                schedule=_schedule(t.table("schedule", _SCHEDULE)),
            )

    instances = [_instance(i, item) for i, item in enumerate(_list(top.get("instances", []), "instances"))]
    if kind == "kubernetes" and instances:
        raise ChaosConfigError('instances only apply to target kind = "processes"')

    factories: list[Callable[[ChaosConfig], Monkey]] = []
    webhook = None
    if chaos_table is not None:
        if chaos_defaults is not None:
            factories.append(_chaos_monkey(chaos_defaults, app_settings))
        lat = chaos_table.table("latency", ("delay", "kind", "rate", "dependencies", "apps", "duration",
                                            "mean_time_between", "in_process", "schedule"))  # fmt: skip
        if lat is not None:
            factories.append(_latency_monkey(lat))
        for key, cls, where in (("gorilla", ChaosGorilla, "zone"), ("kong", ChaosKong, "region")):
            o = chaos_table.table(key, (where, "mean_time_between", "min_time_between", "schedule", "limits"))
            if o is not None:
                factories.append(_outage_monkey(o, cls, where))
        conf = chaos_table.table("conformity", ("rules", "min_zones", "every", "webhook", "schedule"))
        if conf is not None:
            webhook = conf.text("webhook")
            if webhook and not webhook.startswith(("http://", "https://")):
                raise ChaosConfigError(f"monkeys.conformity.webhook must be an http(s) URL; got {webhook!r}")
            factories.append(_conformity_monkey(conf))

    url = outage.text("url") if outage else None
    if url and not url.startswith(("http://", "https://")):
        raise ChaosConfigError(f"outage.url must be an http(s) URL; got {url!r}")
    return ChaosConfig(
        path=path or base / "chaos.toml",
        state_dir=state_dir,
        audit_db=audit_db,
        leashed=top.flag("leashed", False),
        interval=top.duration("interval", 1.0) or 1.0,
        speed=top.number("speed", 1.0, 0.001, 100_000) or 1.0,
        start=start,
        seed=top.integer("seed", None, 0, 2**63 - 1),
        schedule=_schedule(top.table("schedule", _SCHEDULE)) or Schedule(),
        limits=_limits(top.table("limits", _LIMITS)) or BlastRadius(),
        outage_url=url,
        target_kind=kind,
        target_options=options,
        instances=instances,
        owners=owners,
        app_settings=app_settings,
        monkey_factories=factories,
        webhook=webhook,
    )


def _list(value: object, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise ChaosConfigError(f"{name} must be an array of tables ([[{name}]])")
    return value


def _schedule(t: _Table | None) -> Schedule | None:
    if t is None:
        return None
    if t.flag("always", False):
        if len(t.data) > 1:
            raise ChaosConfigError(f"{t.name}.always = true cannot be combined with other schedule fields")
        return Schedule.always()
    return Schedule.parse(
        start=t.text("start", "09:00") or "09:00",
        end=t.text("end", "15:00") or "15:00",
        weekdays=t.strings("weekdays", WEEKDAYS[:5]),
        timezone=t.text("timezone", "UTC") or "UTC",
        holidays=[str(d) for d in t.get("holidays", [])],
        field_prefix=t.name,
    )


def _limit(t: _Table, key: str, default: int | None) -> int | None:
    value = t.get(key, default)
    if value == "none":
        return None
    return t.integer(key, default, 0, 1_000_000) if value is not None else None


def _limits(t: _Table | None, base: BlastRadius | None = None) -> BlastRadius | None:
    if t is None:
        return None
    b = base or BlastRadius()
    share = t.get("max_share", b.max_share)
    try:
        return BlastRadius(
            window=t.duration("window", b.window) or b.window,
            max_instances=_limit(t, "max_instances", b.max_instances),
            max_zones=_limit(t, "max_zones", b.max_zones),
            max_regions=_limit(t, "max_regions", b.max_regions),
            max_share=None if share == "none" else share,
        )
    except ChaosConfigError as exc:  # name the table it came from (limits, monkeys.kong.limits, ...)
        raise ChaosConfigError(str(exc).replace("limits.", f"{t.name}.", 1)) from None


def _instance(i: int, item: object) -> InstanceSpec:
    t = _Table(item, f"instances[{i}]", ("app", "region", "zone", "argv", "env", "cwd", "port", "health_url",
                                           "restart_after", "owner", "count"))  # fmt: skip
    app = t.text("app")
    if not app:
        raise ChaosConfigError(f"instances[{i}].app is required")
    argv = t.strings("argv", [])
    if not argv:
        raise ChaosConfigError(f"instances[{i}].argv must be a non-empty list of strings")
    argv = [sys.executable if a == "{python}" else a for a in argv]
    env = t.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise ChaosConfigError(f"instances[{i}].env must be a table of strings")
    return InstanceSpec(
        app=app,
        region=t.text("region", "local") or "local",
        zone=t.text("zone", "local-a") or "local-a",
        argv=tuple(argv),
        env=dict(env),
        cwd=t.text("cwd"),
        port=t.integer("port", None, 0, 65535),
        health_url=t.text("health_url"),
        restart_after=t.duration("restart_after", None, allow_none=True),
        owner=t.text("owner"),
        count=t.integer("count", 1, 1, 100) or 1,
    )


def _chaos_monkey(t: _Table, apps: dict[str, AppSettings]) -> Callable[[ChaosConfig], Monkey]:
    grouping = t.text("grouping", "app", GROUPINGS) or "app"
    mean = t.duration("mean_time_between_kills", "2d", allow_none=True)
    gap = t.duration("min_time_between_kills", "1h") or 0.0
    schedule = _schedule(t.table("schedule", _SCHEDULE))
    limits = _limits(t.table("limits", _LIMITS))
    ChaosMonkey(grouping=grouping, mean_time_between_kills=mean, min_time_between_kills=gap)  # validate now
    return lambda cfg: ChaosMonkey(
        grouping=grouping,
        mean_time_between_kills=mean,
        min_time_between_kills=gap,
        apps=apps,
        schedule=schedule,
        limits=limits,
    )


def _latency_monkey(t: _Table) -> Callable[[ChaosConfig], Monkey]:
    kwargs: dict[str, Any] = {
        "delay": t.duration("delay", 0.5),
        "kind": t.text("kind", "delay", ("delay", "error", "timeout", "reject")),
        "rate": t.number("rate", 1.0, 0.000001, 1.0),
        "dependencies": t.strings("dependencies", ["*"]),
        "apps": t.strings("apps", ["*"]),
        "duration": t.duration("duration", "10m"),
        "mean_time_between": t.duration("mean_time_between", "1d", allow_none=True),
        "in_process": t.flag("in_process", False),
        "schedule": _schedule(t.table("schedule", _SCHEDULE)),
    }
    LatencyMonkey(**kwargs)  # validate now, not on the first run
    return lambda cfg: LatencyMonkey(board=cfg.board, **kwargs)


def _outage_monkey(
    t: _Table, cls: type[ChaosGorilla] | type[ChaosKong], where: str
) -> Callable[[ChaosConfig], Monkey]:
    place = t.text(where)
    mean = t.duration("mean_time_between", "7d" if cls is ChaosGorilla else "30d", allow_none=True)
    gap = t.duration("min_time_between", "1d" if cls is ChaosGorilla else "7d") or 0.0
    schedule = _schedule(t.table("schedule", _SCHEDULE))
    default_limits = cls().limits
    limits = _limits(t.table("limits", _LIMITS), default_limits) or default_limits

    def make(cfg: ChaosConfig) -> Monkey:
        return cls(place, mean_time_between=mean, min_time_between=gap, schedule=schedule, limits=limits)

    return make


def _conformity_monkey(t: _Table) -> Callable[[ChaosConfig], Monkey]:
    names = t.strings("rules", list(RULES))
    for n in names:
        if n not in RULES:
            raise ChaosConfigError(f"{t.path('rules')} entries must be one of {', '.join(RULES)}; got {n!r}")
    min_zones = t.integer("min_zones", 2, 1, 100) or 2
    every = t.duration("every", "1d") or 86400.0
    schedule = _schedule(t.table("schedule", _SCHEDULE))
    table: dict[str, Rule] = {"has_fallback": has_fallback, "runs_in_zones": runs_in_zones(min_zones),
                              "has_owner": has_owner}  # fmt: skip
    rules = [table[n] for n in names]
    return lambda cfg: ConformityMonkey(
        rules, notifier=cfg.notifier, owners=cfg.owners, every=every, schedule=schedule
    )


__all__ = ["ChaosConfig", "InstanceSpec", "load_config", "parse_config", "parse_duration"]
