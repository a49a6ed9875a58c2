"""Audience: the services a signed header may reach, and the check each receiving service makes.

An audience is a list of service names or globs (`*` any run of characters, `?` one character),
compared case-insensitively: ``["edge", "ratings-*"]``. `"*"` admits every service.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase

from stoic.fit._errors import InvalidScenario
from stoic.fit._scenario import NAME

MAX_AUDIENCE = 64
_PATTERN = re.compile(r"[A-Za-z0-9_.:*?-]{1,64}")


def check_service(field: str, name: object) -> str:
    """A receiving service's own name, lower-cased; ValueError names `field` when it is not a name."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ValueError(
            f"{field}: must be this service's name, 1-64 letters, digits, '_', '.', ':' or '-', got {name!r}"
        )
    return name.lower()


def check_audience(field: str, value: object) -> tuple[str, ...]:
    """The audience patterns in `value` (one string or a list), lower-cased, in order, without repeats.

    Raises `InvalidScenario` (a ValueError) naming `field` and what is allowed.
    """
    if isinstance(value, str):
        items: list[object] = [value]
    elif isinstance(value, Iterable) and not isinstance(value, Mapping | bytes):
        items = list(itertools.islice(value, MAX_AUDIENCE + 1))  # bounded even for endless iterables
    else:
        raise InvalidScenario(field, f"must be a service name or a list of them, got {type(value).__name__}")
    if len(items) > MAX_AUDIENCE:
        raise InvalidScenario(field, f"must name at most {MAX_AUDIENCE} services")
    if not items:
        raise InvalidScenario(field, "must name at least one service ('*' for every service)")
    for item in items:
        if not isinstance(item, str) or not _PATTERN.fullmatch(item):
            raise InvalidScenario(
                field,
                "each entry must be a service name or glob of 1-64 letters, digits, '_', '.', ':', '-', "
                f"'*' or '?', got {item!r}",
            )
    return tuple(dict.fromkeys(str(item).lower() for item in items))


def admits(audience: Iterable[str], service: str) -> bool:
    """True if `service` (already lower-cased) is named by, or matches a glob of, `audience`."""
    return any(fnmatchcase(service, pattern) for pattern in audience)
