"""A bulkhead's permits: one token per free slot, the callers waiting for one, and permits owed.

Taking and giving back a permit is a `list.pop()` / `list.append()` on `tokens` (atomic under the
GIL), so the call path needs no lock. The lock here is only for waiting (sync callers on a
condition, coroutines on futures) and for resizing; it is not the breaker's lock, so a call waiting
for room never holds up a verdict.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque


class Permits:
    """The permits of one bounded bulkhead (`limit` calls in flight, waiting up to `max_wait_s`)."""

    __slots__ = ("_async_waiting", "_cond", "_lock", "_sync_waiting", "debt", "held", "limit", "max_wait_s",
                 "tokens", "waiting")

    def __init__(self, limit: int, max_wait: float) -> None:
        self.tokens = [1] * limit  # resized in place: decorated functions hold this list
        self.waiting = 0  # sync + async waiters, read without the lock when a permit comes back
        self.limit = limit
        self.max_wait_s = max_wait
        self.debt = 0  # permits to take back as they come home (the bulkhead was made smaller)
        # limit + debt, kept with them: the calls in flight are `held - len(tokens)`, which the call
        # paths read on every call of an adaptive bulkhead (one attribute, not two and a sum)
        self.held = limit
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._sync_waiting = 0
        self._async_waiting: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    @property
    def in_use(self) -> int:
        return self.held - len(self.tokens)

    @property
    def queued(self) -> int:
        """Coroutines waiting for a permit."""
        return len(self._async_waiting)

    def wait(self) -> bool:
        """Wait up to `max_wait_s` for a permit on this thread; True when one was taken."""
        # real time, not the dependency's clock: a blocked thread cannot see a manual clock move
        deadline = time.monotonic() + self.max_wait_s
        with self._lock:
            self._sync_waiting += 1
            self.waiting += 1
            try:
                while True:
                    try:
                        self.tokens.pop()
                        return True
                    except IndexError:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            return False
                        self._cond.wait(left)
            finally:
                self._sync_waiting -= 1
                self.waiting -= 1

    async def await_one(self, within: float | None) -> bool:
        """Wait for a permit without blocking the event loop: up to `max_wait_s`, and never past
        `within` seconds (the call's own deadline, which counts the wait). True when one was taken."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.max_wait_s if within is None else min(self.max_wait_s, within))
        while True:
            try:
                self.tokens.pop()
                return True
            except IndexError:
                left = deadline - loop.time()
                if left <= 0:
                    return False
            future: asyncio.Future[None] = loop.create_future()
            entry = (loop, future)
            with self._lock:
                self._async_waiting.append(entry)
                self.waiting += 1
            try:
                await asyncio.wait_for(future, left)
            except TimeoutError:
                pass
            finally:
                with self._lock:
                    self.waiting -= 1
                    if entry in self._async_waiting:
                        self._async_waiting.remove(entry)

    def give_back(self) -> None:
        """Return a permit (repaying what is owed first) and wake one waiter, if any."""
        self.tokens.append(1)
        if self.debt:
            self.collect()
        if self.waiting:
            self.wake_one()

    def wake_one(self) -> None:
        with self._lock:
            if self._sync_waiting:
                self._cond.notify()
            elif self._async_waiting:
                loop, future = self._async_waiting.popleft()
                loop.call_soon_threadsafe(_wake, future)

    def resize(self, limit: int) -> None:
        """A new limit, in place. A smaller bulkhead takes permits back as calls in flight return
        them; a larger one wakes as many waiters as it adds permits."""
        with self._lock:
            change = limit - self.limit
            self.limit = limit
            if change < 0:
                self.debt -= change
                self.held = limit + self.debt
                self._collect()
                return
            forgiven = min(change, self.debt)
            self.debt -= forgiven
            added = change - forgiven
            self.held = limit + self.debt
            self.tokens.extend([1] * added)
        for _ in range(min(added, self.waiting)):
            self.wake_one()

    def collect(self) -> None:
        """Take back the permits owed, as far as they are free."""
        with self._lock:
            self._collect()

    def _collect(self) -> None:
        tokens = self.tokens
        while self.debt:
            try:
                tokens.pop()
            except IndexError:
                break
            self.debt -= 1
            self.held -= 1


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
