"""Outage replay: a recorded history of guard events, played again against proposed settings.

`EventRecorder` is a listener that writes each event as one JSON line with its time
(`{"at": 1719.52, "dependency": "ratings", "outcome": "timeout", "latency": 0.8}`). `replay()`
plays those calls again, at their recorded times and with their recorded outcomes and latencies,
through a real `Dependency` with the breaker and bulkhead under test, on a virtual clock: an
hour of outage replays in seconds, and the same file always gives the same figures.

A call the recording refused (short-circuited or rejected) never reached the dependency, so
what it would have answered is unknown: it is replayed as the dependency's last recorded answer.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from ._clock import ManualClock, VirtualTimeLoop
from ._dependency import Dependency
from ._errors import ConfigError
from ._events import Event, Outcome
from ._policies import BreakerPolicy, Bulkhead, Fallback

CALLS = ("success", "failure", "timeout", "rejected", "short_circuited")  # outcomes that were calls
_ANSWERS = ("success", "failure", "timeout")  # the ones that reached the dependency


class EventRecorder:
    """A listener that writes every event as a JSON line to `out`, stamped with `clock()` seconds.

    >>> import io
    >>> out = io.StringIO()
    >>> EventRecorder(out, clock=lambda: 12.5)(Event("ratings", Outcome.TIMEOUT, 0.8))
    >>> out.getvalue()
    '{"at": 12.5, "dependency": "ratings", "outcome": "timeout", "latency": 0.8, "source": "primary"}\\n'
    """

    def __init__(self, out: TextIO, clock: Callable[[], float] = time.time) -> None:
        self.out = out
        self.clock = clock
        self._lock = threading.Lock()  # events come from every thread: one line each, never interleaved

    def __call__(self, event: Event) -> None:
        record: dict[str, Any] = {"at": self.clock(), "dependency": event.dependency,
                                  "outcome": event.outcome.label, "latency": event.latency,
                                  "source": event.source}
        if event.state is not None:
            record["state"] = event.state
        line = json.dumps(record) + "\n"
        with self._lock:
            self.out.write(line)


@dataclass(frozen=True, slots=True)
class Recorded:
    """One recorded call: when, which dependency, what happened, how long it took."""

    at: float
    dependency: str
    outcome: str
    latency: float


def read_events(lines: Iterable[str], source: str = "events") -> list[Recorded]:
    """The calls in a JSON-lines event history (other events, such as fallbacks and state changes,
    are skipped). A malformed line raises ConfigError naming `source`, the line and the field."""
    calls: list[Recorded] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not a JSON object ({exc.msg})") from None
        if not isinstance(record, dict):
            raise ConfigError(f"{where}: must be a JSON object, got {type(record).__name__}")
        outcome = record.get("outcome")
        if outcome not in (*CALLS, "slow", "fallback_success", "fallback_failure", "retry", "state_change",
                           "injected"):
            raise ConfigError(f"{where}: outcome must be one of {', '.join(CALLS)} (or another guard "
                              f"event, skipped), got {outcome!r}")
        if outcome not in CALLS:
            continue
        at, latency, name = record.get("at"), record.get("latency", 0.0), record.get("dependency")
        for key, value in (("at", at), ("latency", latency)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value != value or value < 0:
                raise ConfigError(f"{where}: {key} must be a number >= 0 (seconds), got {value!r}")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: dependency must be a non-empty string, got {name!r}")
        calls.append(Recorded(float(at), name, str(outcome), float(latency)))  # type: ignore[arg-type]
    calls.sort(key=lambda c: c.at)
    return calls


@dataclass
class Replayed:
    """What one configuration would have done with the recorded calls."""

    label: str
    requests: int = 0
    answered: int = 0  # by the dependency
    failed: int = 0  # reached the dependency and failed or timed out
    short_circuited: int = 0  # shed by the breaker
    rejected: int = 0  # shed by the bulkhead
    opened: int = 0  # times the breaker opened
    states: list[str] = field(default_factory=list)

    @property
    def shed(self) -> int:
        return self.short_circuited + self.rejected


class _Recorded(Exception):
    """The recorded failure, raised again."""


def replay(calls: list[Recorded], label: str, breaker: BreakerPolicy | None, bulkhead: Bulkhead | None,
           timeout: float | None) -> Replayed:
    """Play `calls` through a dependency with these settings, on a virtual clock."""
    clock = ManualClock()
    loop = VirtualTimeLoop(clock)
    try:
        return loop.run_until_complete(_play(calls, label, breaker, bulkhead, timeout, clock))
    finally:
        loop.close()
        asyncio.set_event_loop(None)


async def _play(calls: list[Recorded], label: str, breaker: BreakerPolicy | None, bulkhead: Bulkhead | None,
                deadline: float | None, clock: ManualClock) -> Replayed:
    result = Replayed(label)
    dep = Dependency("replay", timeout=deadline, breaker=breaker, bulkhead=bulkhead, registry=None,
                     clock=clock, fallbacks=[Fallback.value(None, name="shed")])

    def heard(event: Event) -> None:
        if event.outcome is Outcome.STATE_CHANGE and event.state is not None:
            result.states.append(event.state)
            result.opened += event.state == "open"

    dep.listen(heard)
    loop = asyncio.get_running_loop()
    start = loop.time()
    first = calls[0].at if calls else 0.0
    last_answer = Recorded(0.0, "", "success", 0.0)
    tasks: list[asyncio.Task[None]] = []

    async def one(recorded: Recorded) -> None:
        async def dependency() -> None:
            await asyncio.sleep(recorded.latency)
            if recorded.outcome == "failure":
                raise _Recorded("failed, as recorded")
            if recorded.outcome == "timeout":
                raise TimeoutError("timed out, as recorded")

        answer = await dep.aexecute(dependency)
        if answer.level == 0:
            result.answered += 1
        elif answer.outcome is Outcome.SHORT_CIRCUITED:
            result.short_circuited += 1
        elif answer.outcome is Outcome.REJECTED:
            result.rejected += 1
        else:
            result.failed += 1

    for recorded in calls:
        if recorded.outcome in _ANSWERS:
            last_answer = recorded
        else:  # refused in the recording: what the dependency would have said is its last answer
            recorded = Recorded(recorded.at, recorded.dependency, last_answer.outcome, last_answer.latency)
        delay = start + (recorded.at - first) - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        result.requests += 1
        tasks.append(asyncio.ensure_future(one(recorded)))
    await asyncio.gather(*tasks)
    return result


_BULKHEAD_KEYS = ("max_concurrent", "adaptive", "timeout")


def parse_config(text: str) -> tuple[str, BreakerPolicy, Bulkhead | None, float | None]:
    """A configuration to replay, as `key=value,...`: BreakerPolicy fields (numbers), plus
    `max_concurrent=N` (a semaphore bulkhead), `adaptive=gradient|aimd` and `timeout=SECONDS`.
    ConfigError names the key and what is allowed."""
    from ._policies import AdaptiveBulkhead, SemaphoreBulkhead

    numeric = [f for f in BreakerPolicy.__dataclass_fields__
               if f not in ("failure_on", "ignore", "failure_when")]
    breaker: dict[str, Any] = {}
    bulkhead: Bulkhead | None = None
    timeout: float | None = 1.0
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(f"--config: {part!r} must be key=value")
        if key not in (*numeric, *_BULKHEAD_KEYS):
            raise ConfigError(f"--config: unknown key {key!r}; allowed: "
                              f"{', '.join((*numeric, *_BULKHEAD_KEYS))}")
        if key == "adaptive":
            bulkhead = AdaptiveBulkhead(algorithm=value.strip())  # type: ignore[arg-type]
            continue
        try:
            number = float(value) if "." in value or "e" in value.lower() else int(value)
        except ValueError:
            raise ConfigError(f"--config: {key} must be a number, got {value!r}") from None
        if key == "max_concurrent":
            bulkhead = SemaphoreBulkhead(max_concurrent=number)  # type: ignore[arg-type]
        elif key == "timeout":
            timeout = float(number)
        else:
            breaker[key] = number
    return text, BreakerPolicy(**breaker), bulkhead, timeout
