"""The registry of named dependencies: one place to list, snapshot and listen to them all."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._dependency import Dependency
    from ._events import Event


class Registry:
    """Named dependencies of one process. A new dependency with a taken name replaces the old one.

    >>> r = Registry()
    >>> r.names()
    []
    """

    def __init__(self) -> None:
        self._by_name: dict[str, Dependency] = {}
        self._lock = threading.Lock()
        self.listeners: list[Callable[[Event], None]] = []  # shared with every member, read on the hot path

    def add(self, dependency: Dependency) -> None:
        with self._lock:
            self._by_name[dependency.name] = dependency

    def remove(self, dependency: Dependency) -> None:
        with self._lock:
            if self._by_name.get(dependency.name) is dependency:
                del self._by_name[dependency.name]

    def get(self, name: str) -> Dependency:
        """The dependency called `name`; KeyError names the known ones."""
        try:
            return self._by_name[name]
        except KeyError:
            known = ", ".join(sorted(self._by_name)) or "none"
            raise KeyError(f"no dependency named {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def all(self) -> list[Dependency]:
        with self._lock:
            return [self._by_name[n] for n in sorted(self._by_name)]

    def snapshot(self) -> list[dict[str, Any]]:
        """Every dependency's `snapshot()`, sorted by name."""
        return [d.snapshot() for d in self.all()]

    def listen(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Call `listener(event)` for every event of every member; returns an unsubscribe."""
        self.listeners.append(listener)

        def unsubscribe() -> None:
            self.listeners.remove(listener)
            self._refresh()

        self._refresh()
        return unsubscribe

    def _refresh(self) -> None:
        for dependency in self.all():
            dependency.refresh_observed()

    def clear(self) -> None:
        with self._lock:
            self._by_name.clear()


registry = Registry()
