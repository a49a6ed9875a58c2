"""A thread-safe list of callbacks, each added with its own unsubscribe handle."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class Listeners(Generic[F]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fns: list[F] = []

    def add(self, fn: F) -> Callable[[], None]:
        """Register `fn`; the returned function removes it again (at most once)."""
        with self._lock:
            self._fns.append(fn)

        def unsubscribe() -> None:
            with self._lock:
                if fn in self._fns:
                    self._fns.remove(fn)

        return unsubscribe

    def snapshot(self) -> list[F]:
        """The callbacks now, to call without holding any lock."""
        with self._lock:
            return list(self._fns)
