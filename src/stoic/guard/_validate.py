"""Validation at construction: every error names the field and the allowed range."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._errors import ConfigError


def number(owner: str, field: str, value: object, *, low: float, high: float = float("inf"),
           low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{owner}.{field} must be a number, got {value!r}")
    ok_low = value > low if low_open else value >= low
    if not ok_low or value > high or value != value:
        lo = f"({low}" if low_open else f"[{low}"
        raise ConfigError(f"{owner}.{field} must be in {lo}, {high}], got {value!r}")
    return float(value)


def integer(owner: str, field: str, value: object, *, low: int, high: int = 2**31) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{owner}.{field} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{owner}.{field} must be in [{low}, {high}], got {value!r}")
    return value


def exceptions(owner: str, field: str, value: object) -> tuple[type[BaseException], ...]:
    items = value if isinstance(value, tuple | list) else (value,)
    for item in items:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise ConfigError(f"{owner}.{field} must be exception classes, got {item!r}")
    return tuple(items)


def predicate(owner: str, field: str, value: object) -> Callable[[Any], Any] | None:
    """A callable taking one value (a returned result, an error), or None."""
    if value is not None and not callable(value):
        raise ConfigError(f"{owner}.{field} must be a function of one value or None, got {value!r}")
    return value
