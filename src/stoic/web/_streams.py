"""Live streams computed once and fanned out: one producer per feed, any number of subscribers.

A feed (the dashboard state for one window, or the Hystrix stream at one delay) is produced once
per interval by one task while anyone listens, and every subscriber gets that same frame. So the
cost of a round does not grow with the audience, and a slow source delays the frames, not the
server. The number of subscribers across all feeds is capped: past the cap a stream request gets
503 with `Retry-After` instead of a connection the server cannot afford.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ._http import error

log = logging.getLogger("stoic.web")

Produce = Callable[[], Awaitable[str]]
RETRY_MS = 2000
# A subscriber that has seen no new frame for this long gets a comment line, so proxies and
# browsers can tell a quiet stream from a dead one.
PING_AFTER = 15.0


class _Feed:
    """The latest frame of one feed, and the task that refreshes it while anyone listens."""

    def __init__(self, key: Hashable, produce: Produce, interval: float, owner: Streams) -> None:
        self.key = key
        self.produce = produce
        self.interval = interval
        self.owner = owner
        self.frame: str | None = None
        self.round = 0
        self.changed = asyncio.Event()
        self.listeners = 0
        self.task: asyncio.Task[None] | None = None

    def join(self) -> None:
        self.listeners += 1
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run(), name=f"stoic-feed-{self.key}")

    def leave(self) -> None:
        self.listeners -= 1

    async def _run(self) -> None:
        try:
            while self.listeners > 0:
                started = time.monotonic()
                try:
                    frame = await self.produce()
                except Exception:
                    # The producers catch their sources' failures; this is the last line, so one
                    # bad round costs a ping, never the feed.
                    log.exception("stoic web: producing the %s feed failed", self.key)
                    frame = ": producer failed; see the server log\n\n"
                self.frame = frame
                self.round += 1
                woken, self.changed = self.changed, asyncio.Event()
                woken.set()
                await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))
        finally:
            # No await between the loop's last check and here: nobody can join in between.
            self.task = None
            if self.listeners <= 0:
                self.owner.feeds.pop(self.key, None)

    async def frames(self, lifetime: float) -> AsyncIterator[str]:
        yield f"retry: {RETRY_MS}\n\n"
        # The frame on hand was computed before this subscriber came: it may miss a change the
        # subscriber just made, so its first frame is the next round's.
        seen = self.round
        deadline = time.monotonic() + lifetime
        for _ in range(int(lifetime / min(self.interval, PING_AFTER)) + 2):
            if self.round == seen:
                changed = self.changed
                try:
                    await asyncio.wait_for(changed.wait(), timeout=min(PING_AFTER, max(1.0, lifetime)))
                except TimeoutError:
                    yield ": ping\n\n"
                    if time.monotonic() > deadline:
                        return
                    continue
            seen = self.round
            if self.frame:
                yield self.frame
            if time.monotonic() > deadline:
                return


class _Subscription(StreamingResponse):
    """An SSE reply holding one subscriber slot until the connection ends, however it ends."""

    def __init__(self, feed: _Feed, lifetime: float) -> None:
        super().__init__(
            feed.frames(lifetime),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"},
        )
        self.feed = feed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.feed.leave()
            self.feed.owner.subscribers -= 1


class Streams:
    """Every live feed of one app, and the cap on how many subscribers they serve together."""

    def __init__(self, max_subscribers: int, lifetime: float) -> None:
        self.max_subscribers = max_subscribers
        self.lifetime = lifetime
        self.subscribers = 0
        self.feeds: dict[Hashable, _Feed] = {}

    def retry_after(self) -> int:
        """Seconds a refused client should wait: about when the oldest streams start to end."""
        return max(1, min(30, int(self.lifetime / 10)))

    def subscribe(self, key: Hashable, produce: Produce, interval: float) -> Any:
        """The SSE reply for feed `key` (made by `produce` every `interval` s), or a 503 at the cap."""
        if self.subscribers >= self.max_subscribers:
            wait = self.retry_after()
            return error(
                503,
                f"at most {self.max_subscribers} live streams are served at once "
                f"(create_app(max_streams=...), stoic web --max-streams); retry in {wait} s",
                "streams",
                headers={"Retry-After": str(wait)},
            )
        feed = self.feeds.get(key)
        if feed is None:
            feed = self.feeds[key] = _Feed(key, produce, interval, self)
        self.subscribers += 1
        feed.join()
        return _Subscription(feed, self.lifetime)

    async def close(self) -> None:
        """Stop every feed (at shutdown)."""
        for feed in list(self.feeds.values()):
            task = feed.task
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
