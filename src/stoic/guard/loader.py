"""Dependencies from configuration: a mapping, a TOML file, environment variables.

One table per dependency; its keys are `Dependency`'s settings and each policy is a sub-table
whose keys are the policy's own fields. Exception classes and functions (`failure_on`, `ignore`,
`retry_on`, `failure_when`, `retry_when`, `retry_after`, a fallback's `fn`) are given by dotted
name ("httpx.HTTPError", "myservice.rules.is_5xx").

```toml
[dependencies.ratings]
timeout = 0.5
owner = "catalogue"

[dependencies.ratings.breaker]
error_rate = 0.25
failure_on = ["httpx.HTTPError", "TimeoutError"]

[dependencies.ratings.bulkhead]
kind = "semaphore"            # semaphore | pool | adaptive, then that kind's own fields
max_concurrent = 20

[dependencies.ratings.retry]
attempts = 2

[[dependencies.ratings.fallbacks]]
fn = "myservice.ratings.average"
name = "average"
```

`load("guard.toml")` builds every dependency; `STOIC_GUARD__RATINGS__TIMEOUT=0.8` or
`STOIC_GUARD__RATINGS__BREAKER__ERROR_RATE=0.3` (read when `env` is given) override one setting
of a declared dependency, the value read as a TOML value (`0.8`, `"aimd"`, `["a.B"]`) or else as
text. A mistake raises `ConfigError` naming the key (`dependencies.ratings.breaker.error_rate`) and
what is allowed; nothing is built until everything is valid.

    >>> deps = build({"search": {"timeout": 0.3, "breaker": {"min_calls": 5}}}, registry=None)
    >>> deps["search"].timeout, deps["search"].breaker_policy.min_calls
    (0.3, 5)
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
import tomllib
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from ._dependency import Dependency
from ._errors import ConfigError
from ._policies import (
    AdaptiveBulkhead,
    BreakerPolicy,
    Fallback,
    Retry,
    RetryBudget,
    SemaphoreBulkhead,
    ThreadPoolBulkhead,
)
from ._registry import Registry
from ._registry import registry as default_registry

__all__ = ["build", "load", "settings"]

ENV_PREFIX = "STOIC_GUARD__"
BULKHEADS: dict[str, type[Any]] = {
    "semaphore": SemaphoreBulkhead,
    "pool": ThreadPoolBulkhead,
    "adaptive": AdaptiveBulkhead,
}
_TOP = ("timeout", "owner", "breaker", "bulkhead", "retry", "fallbacks")
_SETTINGS = ("timeout", "breaker", "bulkhead", "retry", "fallbacks")  # what configure() takes
_IMPORTS: ContextVar[bool] = ContextVar("stoic_guard_loader_imports", default=True)
_EXCEPTION_FIELDS = ("failure_on", "ignore", "retry_on")
_FUNCTION_FIELDS = ("failure_when", "retry_when", "retry_after", "fn")


def load(
    path: str | Path, *, env: Mapping[str, str] | None = None, registry: Registry | None = default_registry
) -> dict[str, Dependency]:
    """Every dependency of the TOML file's `[dependencies]` table, with `env` overrides."""
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    unknown = sorted(set(document) - {"dependencies"})
    if unknown:
        raise ConfigError(f"{path}: unknown table {unknown[0]!r}; the file has one table, [dependencies]")
    tables = document.get("dependencies", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"dependencies: must be a table of dependency tables, got {tables!r}")
    return build(_overridden(tables, env or {}), registry=registry)


def build(
    tables: Mapping[str, Any], *, registry: Registry | None = default_registry
) -> dict[str, Dependency]:
    """A `Dependency` per entry of `tables` (name -> its settings), all validated before any is built."""
    if not isinstance(tables, Mapping):
        raise ConfigError(f"dependencies: must be a mapping of name -> settings, got {tables!r}")
    planned: dict[str, tuple[dict[str, Any], str | None]] = {}
    for name, table in tables.items():
        key = f"dependencies.{name}"
        if not isinstance(table, Mapping):
            raise ConfigError(f"{key}: must be a table of settings, got {table!r}")
        _known(key, table, _TOP)
        owner = table.get("owner")
        if owner is not None and not isinstance(owner, str):
            raise ConfigError(f"{key}.owner: must be a team name (text), got {owner!r}")
        planned[str(name)] = (settings({k: v for k, v in table.items() if k != "owner"}, key), owner)
    built = {}
    for name, (kwargs, owner) in planned.items():
        try:
            built[name] = Dependency(name, owner=owner, registry=registry, **kwargs)
        except ConfigError as exc:
            raise ConfigError(f"dependencies.{name}: {exc}") from None
    return built


def settings(table: Mapping[str, Any], key: str = "settings", *, imports: bool = True) -> dict[str, Any]:
    """The `configure()` keywords that `table` declares (the keys it leaves out are not returned,
    so they keep their current value). `key` prefixes every error message. With `imports=False`
    dotted names resolve only in modules this process has already loaded (for settings that arrive
    over the network: they may name classes and functions, never cause an import)."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{key}: must be a table of settings ({', '.join(_SETTINGS)}), got {table!r}")
    _known(key, table, _SETTINGS)
    token = _IMPORTS.set(imports)
    try:
        return _settings(table, key)
    finally:
        _IMPORTS.reset(token)


def _settings(table: Mapping[str, Any], key: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "timeout" in table:
        timeout = table["timeout"]
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)):
            raise ConfigError(f"{key}.timeout: must be seconds (a number) or none, got {timeout!r}")
        out["timeout"] = timeout
    if "breaker" in table:
        out["breaker"] = _policy(f"{key}.breaker", BreakerPolicy, table["breaker"])
    if "bulkhead" in table:
        out["bulkhead"] = _bulkhead(f"{key}.bulkhead", table["bulkhead"])
    if "retry" in table:
        out["retry"] = _retry(f"{key}.retry", table["retry"])
    if "fallbacks" in table:
        out["fallbacks"] = _fallbacks(f"{key}.fallbacks", table["fallbacks"])
    return out


# ---- one policy at a time ----------------------------------------------------------------------
def _policy(key: str, cls: type[Any], table: object, skip: tuple[str, ...] = ()) -> Any:
    """`cls` built from `table`, or None for `false` (no such policy)."""
    if table is False:
        return None
    if not isinstance(table, Mapping):
        raise ConfigError(
            f"{key}: must be a table of {cls.__name__} fields (or false for none), got {table!r}"
        )
    fields = tuple(f.name for f in dataclasses.fields(cls) if f.name not in skip)
    _known(key, {k: v for k, v in table.items() if k not in skip}, fields)
    kwargs = {name: _value(f"{key}.{name}", name, value) for name, value in table.items() if name not in skip}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    except TypeError as exc:  # a field given a value its type cannot take
        raise ConfigError(f"{key}: {exc}") from None


def _bulkhead(key: str, table: object) -> Any:
    if table is False or not isinstance(table, Mapping):
        return _policy(key, SemaphoreBulkhead, table)
    kind = table.get("kind", "semaphore")
    if kind not in BULKHEADS:
        raise ConfigError(f"{key}.kind: must be one of {', '.join(BULKHEADS)}, got {kind!r}")
    return _policy(key, BULKHEADS[kind], table, skip=("kind",))


def _retry(key: str, table: object) -> Any:
    if not isinstance(table, Mapping) or "budget" not in table:
        return _policy(key, Retry, table)
    budget = table["budget"]
    retry = _policy(key, Retry, {k: v for k, v in table.items() if k != "budget"})
    return dataclasses.replace(retry, budget=_policy(f"{key}.budget", RetryBudget, budget))


def _fallbacks(key: str, levels: object) -> list[Fallback]:
    if not isinstance(levels, list):
        raise ConfigError(f"{key}: must be a list of tables with fn (a dotted name), name and timeout")
    return [_policy(f"{key}[{i}]", Fallback, level) for i, level in enumerate(levels)]


def _value(key: str, name: str, value: object) -> object:
    if name in _EXCEPTION_FIELDS:
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{key}: must be a list of exception classes by dotted name, got {value!r}")
        classes = tuple(_resolve(f"{key}[{i}]", v) for i, v in enumerate(value))
        for i, cls in enumerate(classes):
            if not (isinstance(cls, type) and issubclass(cls, BaseException)):
                raise ConfigError(f"{key}[{i}]: {value[i]!r} is not an exception class")
        return classes
    if name in _FUNCTION_FIELDS:
        if value is None:
            return None
        fn = _resolve(key, value)
        if not callable(fn):
            raise ConfigError(f"{key}: {value!r} is not callable")
        return fn
    return value


def _resolve(key: str, dotted: object) -> Any:
    """The object a dotted name points at; a bare name is a builtin ("TimeoutError")."""
    if not isinstance(dotted, str) or not dotted or dotted.startswith(".") or dotted.endswith("."):
        raise ConfigError(f"{key}: must be a dotted name such as 'httpx.HTTPError', got {dotted!r}")
    module_name, _, attribute = dotted.rpartition(".")
    module_name = module_name or "builtins"
    if not _IMPORTS.get():
        loaded = sys.modules.get(module_name)
        if loaded is None:
            raise ConfigError(f"{key}: {module_name!r} is not loaded in this process ({dotted!r})")
        module = loaded
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"{key}: cannot import {module_name!r} for {dotted!r} ({exc})") from None
    found: Callable[..., Any] | type | None = getattr(module, attribute, None)
    if found is None:
        raise ConfigError(f"{key}: {module.__name__} has no {attribute!r} ({dotted!r})")
    return found


def _known(key: str, table: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for name in table:
        if name not in allowed:
            raise ConfigError(f"{key}.{name}: unknown setting; allowed: {', '.join(allowed)}")


# ---- environment overrides -----------------------------------------------------------------------
def _overridden(tables: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """`tables` with every `STOIC_GUARD__NAME__KEY[__FIELD]` variable of `env` applied (NAME is the
    dependency's name upper-cased, other characters than letters and digits as `_`)."""
    names = {_env_name(n): n for n in tables}
    out = {n: dict(t) if isinstance(t, dict) else t for n, t in tables.items()}
    for variable, text in sorted(env.items()):
        if not variable.startswith(ENV_PREFIX):
            continue
        parts = variable[len(ENV_PREFIX) :].split("__")
        if len(parts) not in (2, 3) or not all(parts):
            shapes = f"{ENV_PREFIX}NAME__SETTING or {ENV_PREFIX}NAME__POLICY__FIELD"
            raise ConfigError(f"{variable}: must be {shapes}")
        name = names.get(parts[0])
        if name is None:
            known = ", ".join(sorted(names)) or "none"
            raise ConfigError(
                f"{variable}: no declared dependency is called {parts[0]!r} (declared: {known})"
            )
        table = out[name]
        if not isinstance(table, dict):
            continue  # reported by build()
        value = _env_value(text)
        setting = parts[1].lower()
        if len(parts) == 2:
            table[setting] = value
        else:
            policy = table.get(setting)
            table[setting] = {**(policy if isinstance(policy, dict) else {}), parts[2].lower(): value}
    return out


def _env_name(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).upper()


def _env_value(text: str) -> object:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
