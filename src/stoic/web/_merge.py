"""Several processes' Hystrix streams merged into one, as Netflix's Turbine does.

Each process's `/hystrix.stream` reports only itself (`reportingHosts` 1). `HystrixMerge` reads
the streams of many processes at once and keeps each one's latest report per command; the merged
stream has one object per command and thread pool in which:

- counts, in-flight calls and pool sizes are summed over the processes;
- `errorPercentage` is recomputed from the summed counts;
- latency percentiles and means are averaged, weighted by each process's request count (exact
  percentiles of the union cannot be rebuilt from percentiles; Turbine approximates the same way);
- `isCircuitBreakerOpen` is true when any process has its breaker open;
- `reportingHosts` counts the processes reporting the command (a merged upstream counts for as
  many hosts as it reports);
- configuration (`propertyValue_*`), names and groups come from the first process.

A process whose report is older than `stale_after` seconds (it stopped, or its stream broke and has
not come back) no longer counts. A broken stream is reconnected with a backoff of 0.5 s doubling to
5 s. A merge is also a guard source: `create_app(merge=...)` shows the merged commands as tiles.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("stoic.web")

MAX_UPSTREAMS = 1000
MAX_LINE_BYTES = 1 << 20  # no Hystrix object comes near this; a longer line means a wrong URL
MAX_OBJECTS = 5000  # per upstream: commands and thread pools
_FIRST = ("type", "name", "group", "threadPool")
_LATENCY = ("latencyExecute", "latencyTotal")
_MEANS = ("latencyExecute_mean", "latencyTotal_mean")


def check_urls(urls: Any) -> tuple[str, ...]:
    """`urls` as a tuple of http(s) URLs; ValueError naming `merge` otherwise."""
    if isinstance(urls, str) or not isinstance(urls, Iterable):
        raise ValueError(f"merge: must be a list of http(s) URLs, got {type(urls).__name__}")
    out = []
    for url in urls:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"merge: must be an http(s) URL such as http://10.0.0.5:8700/hystrix.stream, got {url!r}"
            )
        if url not in out:
            out.append(url)
    if not 1 <= len(out) <= MAX_UPSTREAMS:
        raise ValueError(f"merge: must name 1 to {MAX_UPSTREAMS} streams, got {len(out)}")
    return tuple(out)


class _Upstream:
    """One process's stream: its latest object per (type, name), and how the connection is doing."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latest: dict[tuple[str, str], tuple[dict[str, Any], float]] = {}
        self.connected = False
        self.error: str | None = None
        self.last_seen: float | None = None
        self.bad_lines = 0


def _hosts(obj: dict[str, Any]) -> int:
    hosts = obj.get("reportingHosts")
    return hosts if isinstance(hosts, int) and not isinstance(hosts, bool) and hosts > 0 else 1


def _weight(obj: dict[str, Any]) -> float:
    requests = obj.get("requestCount")
    return float(requests) if isinstance(requests, int | float) and requests > 0 else 0.0


def _at(obj: dict[str, Any], key: str, pct: str) -> float:
    table = obj.get(key)
    value = table.get(pct) if isinstance(table, dict) else None
    return float(value) if isinstance(value, int | float) else 0.0


def merge_hystrix(objects: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One Hystrix object from the same command's (or thread pool's) objects of several processes."""
    first = objects[0]
    merged: dict[str, Any] = dict(first)
    weights = [_weight(o) for o in objects]
    pairs = list(zip(objects, weights, strict=True))
    total_weight = sum(weights)
    if total_weight == 0:
        weights = [1.0] * len(objects)
        total_weight = float(len(objects))
    for key, value in first.items():
        if key in _FIRST or key.startswith("propertyValue_"):
            continue
        if key in _LATENCY and isinstance(value, dict):
            merged[key] = {
                pct: round(sum(w * _at(o, key, pct) for o, w in pairs) / total_weight)
                for pct in value
            }
        elif key in _MEANS:
            merged[key] = round(
                sum(w * float(o.get(key) or 0) for o, w in pairs) / total_weight
            )
        elif key == "currentTime":
            merged[key] = max(int(o.get(key) or 0) for o in objects)
        elif key == "reportingHosts":
            merged[key] = sum(_hosts(o) for o in objects)
        elif key == "isCircuitBreakerOpen":
            merged[key] = any(o.get(key) is True for o in objects)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            merged[key] = sum(
                o.get(key) or 0
                for o in objects
                if isinstance(o.get(key), int | float) and not isinstance(o.get(key), bool)
            )
    merged["reportingHosts"] = sum(_hosts(o) for o in objects)
    if first.get("type") == "HystrixCommand":
        requests = merged.get("requestCount") or 0
        merged["errorPercentage"] = round(100 * (merged.get("errorCount") or 0) / requests) if requests else 0
    return merged


def _snapshot(command: dict[str, Any]) -> dict[str, Any]:
    """A guard-style snapshot (what the tiles read) from a merged `HystrixCommand`."""
    latency = command.get("latencyExecute") or {}
    thread = command.get("propertyValue_executionIsolationStrategy") == "THREAD"
    per_host = command.get("propertyValue_executionIsolationSemaphoreMaxConcurrentRequests") or 0
    hosts = _hosts(command)
    timeout_ms = command.get("propertyValue_executionTimeoutInMilliseconds") or 0
    window_ms = command.get("propertyValue_metricsRollingStatisticalWindowInMilliseconds") or 10000
    name = str(command.get("name", "unknown"))
    group = command.get("group")
    return {
        "name": name,
        "owner": group if isinstance(group, str) and group != name else None,
        "state": "open" if command.get("isCircuitBreakerOpen") else "closed",
        "isolation": "thread" if thread else "semaphore",
        "timeout": timeout_ms / 1000 if timeout_ms else None,
        "has_fallback": True,
        "requests": command.get("requestCount", 0),
        "error_percentage": float(command.get("errorPercentage", 0)),
        "counts": {
            "success": command.get("rollingCountSuccess", 0),
            "failure": command.get("rollingCountFailure", 0),
            "timeout": command.get("rollingCountTimeout", 0),
            "rejected": (command.get("rollingCountThreadPoolRejected", 0) or 0)
            + (command.get("rollingCountSemaphoreRejected", 0) or 0),
            "short_circuited": command.get("rollingCountShortCircuited", 0),
            "fallback_success": command.get("rollingCountFallbackSuccess", 0),
            "fallback_failure": command.get("rollingCountFallbackFailure", 0),
        },
        "fallbacks": {},
        "latency_ms": {
            "p50": latency.get("50", 0),
            "p90": latency.get("90", 0),
            "p99": latency.get("99", 0),
            "p999": latency.get("99.5", 0),
            "max": latency.get("100", 0),
            "mean": command.get("latencyExecute_mean", 0),
        },
        "concurrent": command.get("currentConcurrentExecutionCount", 0),
        "max_concurrent": per_host * hosts if per_host else None,
        "window_s": window_ms / 1000,
        "hosts": hosts,
    }


class HystrixMerge:
    """Reads the `/hystrix.stream` of every URL in `urls` and merges them (see the module docstring).

    `stale_after`: seconds after which a process's last report stops counting (0.5..300, default 10).
    Start it with `await merge.start()` (`create_app(merge=...)` does this in the app's lifespan).

    >>> HystrixMerge(["http://10.0.0.5:8700/hystrix.stream", "http://10.0.0.6:8700/hystrix.stream"]).urls[1]
    'http://10.0.0.6:8700/hystrix.stream'
    >>> HystrixMerge(["ftp://x"])
    Traceback (most recent call last):
    ...
    ValueError: merge: must be an http(s) URL such as http://10.0.0.5:8700/hystrix.stream, got 'ftp://x'
    """

    def __init__(self, urls: Iterable[str], *, stale_after: float = 10.0) -> None:
        self.urls = check_urls(urls)
        number = isinstance(stale_after, int | float) and not isinstance(stale_after, bool)
        if not number or not 0.5 <= stale_after <= 300:
            raise ValueError(
                f"HystrixMerge.stale_after: must be a number in [0.5, 300] seconds, got {stale_after!r}"
            )
        self.stale_after = float(stale_after)
        self._upstreams = [_Upstream(url) for url in self.urls]
        self._lock = threading.Lock()  # the readers write on the loop; snapshot() reads on any thread
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start reading every stream (in the running event loop)."""
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._follow(u), name=f"merge {u.url}") for u in self._upstreams]

    async def stop(self) -> None:
        """Stop reading; the last reports are kept until they go stale."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _follow(self, upstream: _Upstream) -> None:
        import httpx

        backoff = 0.5
        timeout = httpx.Timeout(5.0, read=max(30.0, 3 * self.stale_after))
        async with httpx.AsyncClient(timeout=timeout) as client:
            while True:  # until stop() cancels it; every failed round waits its backoff
                try:
                    headers = {"Accept": "text/event-stream"}
                    async with client.stream("GET", upstream.url, headers=headers) as reply:
                        if reply.status_code != 200:
                            raise ConnectionError(f"answered {reply.status_code}")
                        upstream.connected, upstream.error = True, None
                        backoff = 0.5
                        await self._read(upstream, reply.aiter_bytes())
                    upstream.error = "the stream ended"
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    upstream.error = f"{type(exc).__name__}: {exc}"
                upstream.connected = False
                await asyncio.sleep(backoff)
                backoff = min(5.0, backoff * 2)

    async def _read(self, upstream: _Upstream, chunks: Any) -> None:
        buffer = b""
        async for chunk in chunks:
            buffer += chunk
            if len(buffer) > MAX_LINE_BYTES and b"\n" not in buffer[-len(chunk) :]:
                raise ValueError(f"a line longer than {MAX_LINE_BYTES} bytes: is this a /hystrix.stream?")
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.startswith(b"data:"):
                    self._take(upstream, line[5:])

    def _take(self, upstream: _Upstream, raw: bytes) -> None:
        try:
            obj = json.loads(raw)
        except ValueError:
            upstream.bad_lines += 1
            return
        if not isinstance(obj, dict) or not all(isinstance(obj.get(k), str) for k in ("type", "name")):
            upstream.bad_lines += 1
            return
        key = (obj["type"], obj["name"])
        now = time.monotonic()
        with self._lock:
            if key not in upstream.latest and len(upstream.latest) >= MAX_OBJECTS:
                upstream.bad_lines += 1
                return
            upstream.latest[key] = (obj, now)
            upstream.last_seen = time.time()

    def objects(self) -> list[dict[str, Any]]:
        """The merged Hystrix objects (commands first, then thread pools, each sorted by name)."""
        fresh_after = time.monotonic() - self.stale_after
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        with self._lock:
            for upstream in self._upstreams:
                for key, (obj, seen) in list(upstream.latest.items()):
                    if seen < fresh_after:
                        del upstream.latest[key]  # stale: that process stopped reporting it
                        continue
                    groups.setdefault(key, []).append(obj)
        order = sorted(groups, key=lambda k: (k[0] != "HystrixCommand", k[0], k[1]))
        return [merge_hystrix(groups[k]) for k in order]

    def status(self) -> list[dict[str, Any]]:
        """Per stream: its URL, whether it is connected, the last error, when it last reported."""
        with self._lock:
            return [
                {
                    "url": u.url,
                    "connected": u.connected,
                    "error": u.error,
                    "last_seen": u.last_seen,
                    "objects": len(u.latest),
                    "bad_lines": u.bad_lines,
                }
                for u in self._upstreams
            ]

    # --- the GuardSource protocol: the merged commands as dependency tiles ---
    def snapshot(self) -> list[dict[str, Any]]:
        """Guard-style snapshots of the merged commands (each with `hosts`)."""
        return [_snapshot(o) for o in self.objects() if o.get("type") == "HystrixCommand"]

    def get(self, name: str) -> None:
        """Always None: a merged command has no breaker here to control."""
        return None
