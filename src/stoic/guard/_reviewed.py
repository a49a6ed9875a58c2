"""Marks the context of an asyncio guarded call while a review gate is active, so the tasks a
client library starts on its behalf (anyio's happy-eyeballs connection attempts, for one) count
as inside the call: they inherit the context, not the caller's stack."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

#: a `stoic.guard.review.Review` is active: only then are guarded calls marked
reviewing = [False]
inside: ContextVar[bool] = ContextVar("stoic_inside_guarded_call", default=False)


async def marked(fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`await fn(*args, **kwargs)` with the context marked as inside a guarded call."""
    token = inside.set(True)
    try:
        return await fn(*args, **kwargs)
    finally:
        inside.reset(token)
