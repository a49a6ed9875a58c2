"""The chaos config file (TOML): read once into validated settings, with errors that name the field.

Every table is declared once, as a map from each key to the reader that turns its TOML value into a
setting. A table's keys are its readers' keys, so a key is spelled in one place; the values then go
into the settings objects that validate them (`AppSettings`, `BlastRadius`, `Schedule`, the monkeys).
A value not given inherits: an app's from ``[monkeys.chaos]``, a monkey's ``limits`` from the army's
``[limits]``, and the rest from the library's defaults.
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ._errors import ChaosConfigError
from ._monkey import Monkey
from .army import SimianArmy
from .audit import AuditLog
from .board import FAULT_KINDS, FaultBoard
from .chaos_monkey import AppSettings, ChaosMonkey
from .clock import Clock, CompressedClock, SystemClock
from .conformity import (
    ConformityMonkey,
    Rule,
    calls_guarded,
    fallback_verified,
    has_fallback,
    has_owner,
    runs_in_zones,
)
from .fleet import GROUPINGS
from .latency_monkey import LatencyMonkey
from .notify import LogNotifier, Notifier, WebhookNotifier
from .outages import ChaosGorilla, ChaosKong
from .safety import BlastRadius, KillSwitch, OutageCheck, url_outage
from .schedule import Schedule
from .stop import PrometheusSignals, StopConditions
from .supervisor import Supervisor
from .targets import Target

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
#: keys that would let an app out of chaos; refused on purpose
_OPT_OUTS = ("enabled", "disabled", "opt_out", "optout", "exclude", "excluded", "skip")
TARGET_KINDS = ("processes", "kubernetes")


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


# -- readers: (TOML value, dotted field name) -> setting ---------------------------------------------

Reader = Callable[[Any, str], Any]


def _text(choices: tuple[str, ...] | None = None) -> Reader:
    def read(value: Any, name: str) -> str:
        if not isinstance(value, str) or not value:
            raise ChaosConfigError(f"{name} must be a non-empty string; got {value!r}")
        if choices is not None and value not in choices:
            raise ChaosConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
        return value

    return read


def _url(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ChaosConfigError(f"{name} must be an http(s) URL; got {value!r}")
    return value


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ChaosConfigError(f"{name} must be true or false; got {value!r}")
    return value


def _number(lo: float, hi: float) -> Reader:
    def read(value: Any, name: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise ChaosConfigError(f"{name} must be a number in [{lo:g}, {hi:g}]; got {value!r}")
        return float(value)

    return read


def _integer(lo: int, hi: int) -> Reader:
    def read(value: Any, name: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ChaosConfigError(f"{name} must be an integer in [{lo}, {hi}]; got {value!r}")
        return value

    return read


def _duration(*, allow_none: bool = False) -> Reader:
    return lambda value, name: parse_duration(value, name, allow_none=allow_none)


def _strings(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ChaosConfigError(f"{name} must be a list of non-empty strings; got {value!r}")
    return list(value)


def _none_or(read: Reader) -> Reader:
    """A limit that ``"none"`` switches off."""
    return lambda value, name: None if value == "none" else read(value, name)


def _passed(value: Any, name: str) -> Any:
    """Handed to a settings object that checks it and names the field itself."""
    return value


def _table(data: Any, name: str, readers: Mapping[str, Reader]) -> dict[str, Any]:
    """The keys given in one TOML table, each read by its reader; an unknown key is an error."""
    if not isinstance(data, dict):
        raise ChaosConfigError(f"{name or 'the config'} must be a table; got {type(data).__name__}")
    unknown = sorted(set(data) - set(readers))
    if unknown:
        where = f"{name}." if name else ""
        raise ChaosConfigError(f"unknown field {where}{unknown[0]}; allowed: {', '.join(readers)}")
    return {key: readers[key](value, f"{name}.{key}" if name else key) for key, value in data.items()}


def _schedule(data: Any, name: str) -> Schedule:
    given = _table(data, name, _SCHEDULE)
    if given.pop("always", False):
        if given:
            raise ChaosConfigError(f"{name}.always = true cannot be combined with other schedule fields")
        return Schedule.always()
    return Schedule.parse(**given, field_prefix=name)


def _limits(data: Any, name: str) -> dict[str, Any]:
    # only the keys given: the rest are inherited from the army's limits when the settings are built
    return _table(data, name, _LIMITS)


def _start(value: Any, name: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ChaosConfigError(f"{name} must be an ISO date-time with offset; got {value!r}") from None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ChaosConfigError(
            f"{name} must be a date-time with a UTC offset, e.g. 2026-11-23T09:00:00Z; got {value!r}"
        )
    return value


def _positive(seconds: float | None, name: str) -> float:
    if not seconds:
        raise ChaosConfigError(f"{name} must be a duration > 0; got {seconds!r}")
    return seconds


def _env(value: Any, name: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ChaosConfigError(f"{name} must be a table of strings")
    return dict(value)


def _rules(value: Any, name: str) -> list[str]:
    for rule in _strings(value, name):
        if rule not in _RULES:
            raise ChaosConfigError(f"{name} entries must be one of {', '.join(_RULES)}; got {rule!r}")
    return list(value)


# -- the tables: every key of the file, each named once --------------------------------------------

_SCHEDULE: dict[str, Reader] = {
    "always": _flag,
    "start": _text(),
    "end": _text(),
    "weekdays": _strings,
    "timezone": _text(),
    "holidays": lambda value, name: [str(d) for d in value] if isinstance(value, list) else value,
}
_LIMITS: dict[str, Reader] = {
    "window": _duration(),
    "max_instances": _none_or(_integer(0, 1_000_000)),
    "max_zones": _none_or(_integer(0, 1_000_000)),
    "max_regions": _none_or(_integer(0, 1_000_000)),
    "max_share": _none_or(_passed),  # BlastRadius checks the range
}
#: what an app may shape (the fields of `AppSettings`); ``[monkeys.chaos]`` sets them for every app
_SHAPE: dict[str, Reader] = {
    "grouping": _text(GROUPINGS),
    "mean_time_between_kills": _duration(allow_none=True),
    "min_time_between_kills": _duration(),
    "schedule": _schedule,
}
_APP: dict[str, Reader] = {"owner": _text(), **_SHAPE}
_CHAOS: dict[str, Reader] = {**_SHAPE, "limits": _limits}
_LATENCY: dict[str, Reader] = {
    "delay": _duration(),
    "kind": _text(FAULT_KINDS),
    "rate": _number(0.000001, 1.0),
    "dependencies": _strings,
    "apps": _strings,
    "duration": _duration(),
    "mean_time_between": _duration(allow_none=True),
    "in_process": _flag,
    "schedule": _schedule,
}
_OUTAGE_MONKEY: dict[str, Reader] = {
    "mean_time_between": _duration(allow_none=True),
    "min_time_between": _duration(),
    "schedule": _schedule,
    "limits": _limits,
}
_RULES: dict[str, Callable[[int], Rule]] = {
    "has_fallback": lambda zones: has_fallback,
    "runs_in_zones": runs_in_zones,
    "has_owner": lambda zones: has_owner,
    "fallback_verified": lambda zones: fallback_verified,
    "calls_guarded": lambda zones: calls_guarded,
}
_CONFORMITY: dict[str, Reader] = {
    "rules": _rules,
    "min_zones": _integer(1, 100),
    "every": _duration(),
    "webhook": _url,
    "schedule": _schedule,
}
_MONKEYS: dict[str, Reader] = {
    "chaos": lambda data, name: _table(data, name, _CHAOS),
    "latency": lambda data, name: _table(data, name, _LATENCY),
    "gorilla": lambda data, name: _table(data, name, {"zone": _text(), **_OUTAGE_MONKEY}),
    "kong": lambda data, name: _table(data, name, {"region": _text(), **_OUTAGE_MONKEY}),
    "conformity": lambda data, name: _table(data, name, _CONFORMITY),
}
_INSTANCE: dict[str, Reader] = {
    "app": _text(),
    "region": _text(),
    "zone": _text(),
    "argv": _strings,
    "env": _env,
    "cwd": _text(),
    "port": _integer(0, 65535),
    "health_url": _text(),
    "restart_after": _duration(allow_none=True),
    "owner": _text(),
    "count": _integer(1, 100),
}
_TARGET: dict[str, Reader] = {
    "kind": _text(TARGET_KINDS),
    "namespace": lambda value, name: str(value),
    "selector": lambda value, name: str(value),
    "kubeconfig": lambda value, name: str(value),
    "context": lambda value, name: str(value),
}


def _apps(data: Any, name: str) -> dict[str, dict[str, Any]]:
    if not isinstance(data, dict):
        raise ChaosConfigError(f"{name} must be a table of [{name}.NAME] tables")
    out = {}
    for app, body in data.items():
        where = f"{name}.{app}"
        for key in body if isinstance(body, dict) else ():
            if key in _OPT_OUTS:
                raise ChaosConfigError(
                    f"{where}.{key}: apps cannot opt out of chaos; they may shape it with {', '.join(_SHAPE)}"
                )
        out[app] = _table(body, where, _APP)
    return out


def _instances(data: Any, name: str) -> list[InstanceSpec]:
    if not isinstance(data, list):
        raise ChaosConfigError(f"{name} must be an array of tables ([[{name}]])")
    specs = []
    for i, item in enumerate(data):
        where = f"{name}[{i}]"
        given = _table(item, where, _INSTANCE)
        if "app" not in given:
            raise ChaosConfigError(f"{where}.app is required")
        if not given.get("argv"):
            raise ChaosConfigError(f"{where}.argv must be a non-empty list of strings")
        given["argv"] = tuple(sys.executable if a == "{python}" else a for a in given["argv"])
        specs.append(InstanceSpec(**given))
    return specs


_STOP: dict[str, Reader] = {
    "prometheus": _url,
    "alerts": _strings,
    "burn_rate_query": _text(),
    "max_burn_rate": _number(0.000001, 1_000_000),
    "error_budget_query": _text(),
    "min_error_budget": _number(0.0, 1.0),
    "timeout": lambda value, name: _positive(parse_duration(value, name), name),
}


def _stop(data: Any, name: str) -> StopConditions | None:
    """``[stop]``: the conditions that halt every monkey and experiment, read from Prometheus."""
    given = _table(data, name, _STOP)
    pairs = (("max_burn_rate", "burn_rate_query"), ("min_error_budget", "error_budget_query"))
    for threshold, query in pairs:
        if threshold in given and query not in given:
            raise ChaosConfigError(f"{name}.{threshold} needs {name}.{query} (the PromQL that measures it)")
        if query in given and threshold not in given:
            raise ChaosConfigError(f"{name}.{query} needs {name}.{threshold} (the threshold to stop at)")
    if not any(k in given for k in ("alerts", "max_burn_rate", "min_error_budget")):
        if not given:
            return None
        raise ChaosConfigError(f"{name} needs alerts, max_burn_rate or min_error_budget")
    if "prometheus" not in given:
        raise ChaosConfigError(f"{name}.prometheus is required: the http(s) URL of the Prometheus to read")
    source = PrometheusSignals(
        given["prometheus"],
        burn_rate=given.get("burn_rate_query"),
        error_budget=given.get("error_budget_query"),
        timeout=given.get("timeout", 2.0),
    )
    return StopConditions(
        source,
        alerts=given.get("alerts", ()),
        max_burn_rate=given.get("max_burn_rate"),
        min_error_budget=given.get("min_error_budget"),
    )


_TOP: dict[str, Reader] = {
    "state_dir": _text(),
    "audit_db": _text(),
    "leashed": _flag,
    "interval": lambda value, name: _positive(parse_duration(value, name), name),
    "speed": _number(0.001, 100_000),
    "start": _start,
    "seed": _integer(0, 2**63 - 1),
    "schedule": _schedule,
    "limits": _limits,
    "outage": lambda data, name: _table(data, name, {"url": _url}),
    "stop": _stop,
    "target": lambda data, name: _table(data, name, _TARGET),
    "instances": _instances,
    "apps": _apps,
    "monkeys": lambda data, name: _table(data, name, _MONKEYS),
}


# -- the validated config ------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstanceSpec:
    """One `[[instances]]` entry: what the `Supervisor` starts (``count`` copies)."""

    app: str
    argv: tuple[str, ...]
    region: str = "local"
    zone: str = "local-a"
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
    members: list[Monkey]  # the configured monkeys, built (and so validated) when the file is read
    webhook: str | None = None
    stop: StopConditions | None = None  # [stop]: halts every monkey and experiment while one holds

    @property
    def kill_switch(self) -> KillSwitch:
        return KillSwitch(self.state_dir / "kill-switch")

    @property
    def board(self) -> FaultBoard:
        return _board(self.state_dir)

    @property
    def notifier(self) -> Notifier:
        return _notifier(self.webhook)

    def clock(self) -> Clock:
        if self.speed == 1 and self.start is None:
            return SystemClock()
        return CompressedClock(speed=self.speed, start=self.start)

    def outage(self) -> OutageCheck | None:
        return url_outage(self.outage_url) if self.outage_url else None

    def monkeys(self) -> list[Monkey]:
        return list(self.members)

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
            stop=self.stop,
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


def parse_config(raw: Mapping[str, Any], base: Path = Path("."), path: Path | None = None) -> ChaosConfig:
    """Validate an already-parsed config mapping (relative paths resolve against `base`)."""
    top = _table(dict(raw), "", _TOP)
    state_dir = base / top.get("state_dir", "chaos-state")
    target = top.get("target", {})
    kind = target.pop("kind", "processes")
    if kind == "processes" and target:
        raise ChaosConfigError(f'target.{sorted(target)[0]} only applies to kind = "kubernetes"')
    instances = top.get("instances", [])
    if kind == "kubernetes" and instances:
        raise ChaosConfigError('instances only apply to target kind = "processes"')
    limits = _blast_radius(top.get("limits"), "limits", BlastRadius())
    apps = top.get("apps", {})
    owners = {app: given.pop("owner") for app, given in apps.items() if "owner" in given}
    monkeys = top.get("monkeys", {})
    webhook = monkeys.get("conformity", {}).get("webhook")
    shape = monkeys.get("chaos", {})
    defaults = _app_settings(shape, "monkeys.chaos", AppSettings())
    app_settings = {
        app: _app_settings(given, f"apps.{app}", defaults) for app, given in apps.items() if given
    }
    return ChaosConfig(
        path=path or base / "chaos.toml",
        state_dir=state_dir,
        audit_db=base / top["audit_db"] if "audit_db" in top else state_dir / "audit.db",
        leashed=top.get("leashed", False),
        interval=top.get("interval", 1.0),
        speed=top.get("speed", 1.0),
        start=top.get("start"),
        seed=top.get("seed"),
        schedule=top.get("schedule", Schedule()),
        limits=limits,
        outage_url=top.get("outage", {}).get("url"),
        target_kind=kind,
        target_options=target,
        instances=instances,
        owners=owners,
        app_settings=app_settings,
        members=_monkeys(monkeys, limits, defaults, app_settings, state_dir, owners),
        webhook=webhook,
        stop=top.get("stop"),
    )


def _blast_radius(given: dict[str, Any] | None, name: str, base: BlastRadius) -> BlastRadius:
    if given is None:
        return base
    try:
        return replace(base, **given)  # BlastRadius validates; keys not given keep `base`'s values
    except ChaosConfigError as exc:  # name the table it came from (limits, monkeys.kong.limits, ...)
        raise ChaosConfigError(str(exc).replace("limits.", f"{name}.", 1)) from None


def _app_settings(given: dict[str, Any], name: str, base: AppSettings) -> AppSettings:
    shape = {k: v for k, v in given.items() if k in _SHAPE}
    try:
        return replace(base, **shape)  # AppSettings validates; keys not given keep `base`'s values
    except ChaosConfigError as exc:
        raise ChaosConfigError(f"{name}: {exc}") from None


def _monkeys(
    tables: dict[str, dict[str, Any]],
    limits: BlastRadius,
    defaults: AppSettings,
    apps: dict[str, AppSettings],
    state_dir: Path,
    owners: dict[str, str],
) -> list[Monkey]:
    """The configured monkeys, in a fixed order; their own limits inherit from the army's."""

    def own_limits(key: str) -> BlastRadius | None:
        given = tables[key].pop("limits", None)
        return None if given is None else _blast_radius(given, f"monkeys.{key}.limits", limits)

    out: list[Monkey] = []
    if "chaos" in tables:
        out.append(ChaosMonkey.from_settings(defaults, apps=apps, limits=own_limits("chaos")))
    if "latency" in tables:
        out.append(LatencyMonkey(board=_board(state_dir), **tables["latency"]))
    for key, cls in (("gorilla", ChaosGorilla), ("kong", ChaosKong)):
        if key in tables:
            mine = own_limits(key)
            given: dict[str, Any] = dict(tables[key])
            if mine is not None:  # else the monkey's own defaults, still inside the army's limits
                given["limits"] = mine
            out.append(cls(**given))
    if "conformity" in tables:
        c = dict(tables["conformity"])
        zones = c.pop("min_zones", 2)
        default = ["has_fallback", "runs_in_zones", "has_owner", "calls_guarded"]
        rules = [_RULES[n](zones) for n in c.pop("rules", default)]
        notifier = _notifier(c.pop("webhook", None))
        out.append(ConformityMonkey(rules, notifier=notifier, owners=owners, **c))
    return out


def _board(state_dir: Path) -> FaultBoard:
    return FaultBoard(state_dir / "faults.json")


def _notifier(webhook: str | None) -> Notifier:
    return WebhookNotifier(webhook) if webhook else LogNotifier()


__all__ = ["ChaosConfig", "InstanceSpec", "load_config", "parse_config", "parse_duration"]
