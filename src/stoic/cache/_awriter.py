"""asyncio writes: the latch a caller awaits, and one bounded writer task per remote zone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from ._azone import AsyncZone
from ._latch import Latch, LatchSpec, Policy
from ._metrics import CacheMetrics
from ._writer import WRITES

AsyncWrite = Callable[[AsyncZone], Awaitable[tuple[bool, str]]]


class AsyncLatch:
    """`Latch` for asyncio: the same outcomes and counts, awaited.

    `await latch.wait(timeout)` returns True as soon as the policy is met, False once it can no
    longer be met or at the timeout; `await latch.wait_all(timeout)` waits for every zone.
    """

    __slots__ = ("_changed", "_latch")

    def __init__(self, spec: LatchSpec, local: tuple[bool, str] | None = None) -> None:
        self._latch = Latch(spec, local)
        self._changed: asyncio.Event | None = None  # made by the first wait: most latches see none

    def report(self, zone: str, ok: bool, outcome: str) -> None:
        """Record `zone`'s outcome (the first one counts) and wake the waiters."""
        self._latch.report(zone, ok, outcome)
        if self._changed is not None:
            self._changed.set()

    async def _until(self, predicate: Callable[[], bool], timeout: float | None) -> bool:  # noqa: ASYNC109
        if predicate():
            return True
        changed = self._changed = self._changed or asyncio.Event()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                # Each pass consumes at least one report, so it runs at most once per zone.
                for _ in range(len(self._latch.zones) + 1):
                    changed.clear()
                    if predicate():
                        return True
                    await changed.wait()
        return predicate()

    async def wait(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109  # Latch.wait's shape
        """True once the policy is met; False once it cannot be, or at the timeout."""
        await self._until(self._latch._decided, timeout)
        return self._latch.ok

    async def wait_all(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """True once every zone has answered; False at the timeout."""
        return await self._until(self._latch._all_answered, timeout)

    @property
    def operation(self) -> str:
        return self._latch.operation

    @property
    def policy(self) -> Policy:
        return self._latch.policy

    @property
    def zones(self) -> list[str]:
        return self._latch.zones

    @property
    def required(self) -> int:
        return self._latch.required

    @property
    def succeeded(self) -> int:
        return self._latch.succeeded

    @property
    def failed_zones(self) -> list[str]:
        return self._latch.failed_zones

    @property
    def pending_zones(self) -> list[str]:
        return self._latch.pending_zones

    @property
    def results(self) -> dict[str, str]:
        return self._latch.results

    @property
    def ok(self) -> bool:
        return self._latch.ok

    def __repr__(self) -> str:
        return repr(self._latch).replace("<Latch", "<AsyncLatch", 1)


class AsyncJob(NamedTuple):
    operation: str
    latch: AsyncLatch
    work: AsyncWrite


async def apply_async(zone: AsyncZone, work: AsyncWrite) -> tuple[bool, str]:
    """Apply a write to `zone`; an error is an outcome, never raised."""
    try:
        return await work(zone)
    except Exception as exc:
        return False, f"error: {type(exc).__name__}: {exc}"


class AsyncZoneWriter:
    """One task draining a queue of at most `capacity` writes for `zone`, in order.

    A full queue drops the write for this zone at once ("dropped"): the caller never waits on a
    slow or dead remote zone. The task starts with the first write (it needs a running loop).
    """

    def __init__(self, zone: AsyncZone, capacity: int, metrics: CacheMetrics) -> None:
        self.zone = zone
        self._capacity = capacity
        self._metrics = metrics
        self._counts = metrics.acks(zone.name, WRITES)
        self._queue: asyncio.Queue[AsyncJob | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def submit(self, job: AsyncJob) -> None:
        if self._queue.qsize() >= self._capacity:
            self._metrics.count(job.operation, self.zone.name, "dropped")
            job.latch.report(self.zone.name, False, "dropped")
            return
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run(), name=f"stoic-cache-writer-{self.zone.name}")
        self._queue.put_nowait(job)

    async def _run(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                if job is None:
                    return
                ok, outcome = await apply_async(self.zone, job.work)
                self._counts[job.operation][ok]()
                job.latch.report(self.zone.name, ok, outcome)
            finally:
                self._queue.task_done()

    async def drained(self) -> None:
        """Return once every queued write is done."""
        await self._queue.join()

    async def close(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Finish queued writes (up to `timeout` seconds), then stop the task."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            self._task.cancel()
