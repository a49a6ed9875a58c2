"""Per-call overhead of the guard, side by side with its peers, in one run.

    python benchmarks/overhead.py [--calls N] [--repeat R] [--chart out.png]

Each row is the best of R rounds of N calls of a function that returns at once, so the figure is the
price of the protection itself. Ratios compare with the bare call and with the peer doing the same job.
Targets: sync breaker + semaphore + fallback + metrics <= 1.0 us, <= 0.25x pyresilience's equivalent and
faster than the fastest peer's breaker alone; asyncio with a deadline <= 2.5 us; the same with an adaptive
limit, a hedge set but not firing, or under a travelling deadline within 0.3 us of it; one listener attached
<= 1.5x the same without, through the decorator and through call(); thread-isolated sync
with a deadline <= 30 us and no slower than ThreadPoolExecutor. The last table is the httpx integration
against a bare httpx call to a keep-alive HTTP server on loopback (the guard's share of a real request).
Runs pinned to one CPU, so a thread handoff costs a context switch, not a cross-CPU wake-up (see _cpu.py).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import gc
import http.server
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiobreaker
import circuitbreaker
import httpx
import pybreaker
import pyresilience as pr
import tenacity
from purgatory import AsyncCircuitBreakerFactory
from pyresilience.logging import MetricsCollector

from _cpu import one_cpu
from stoic.guard import (
    AdaptiveBulkhead,
    Dependency,
    Fallback,
    Hedge,
    Registry,
    SemaphoreBulkhead,
    ThreadPoolBulkhead,
    deadline,
)
from stoic.guard.httpx import GuardedTransport


def work(x: int) -> int:
    return x + 1


async def awork(x: int) -> int:
    return x + 1


def under_deadline(fn: Callable[[int], Any]) -> Callable[[int], Any]:
    """`fn` itself (no frame added), measured inside a request deadline (entered once per round,
    outside the timing)."""
    fn.scope = lambda: deadline(3600.0)  # type: ignore[attr-defined]
    return fn


def _scope(fn: Callable[[int], Any]) -> contextlib.AbstractContextManager[Any]:
    make = getattr(fn, "scope", None)
    return make() if make is not None else contextlib.nullcontext()


def measure(fn: Callable[[int], Any], calls: int, repeat: int) -> float:
    """Best ns/call over `repeat` rounds."""
    best = float("inf")
    for _ in range(repeat):
        with _scope(fn):
            gc.disable()
            t0 = time.perf_counter_ns()
            for i in range(calls):
                fn(i)
            elapsed = time.perf_counter_ns() - t0
            gc.enable()
        best = min(best, elapsed / calls)
    return best


def ameasure(fn: Callable[[int], Awaitable[Any]], calls: int, repeat: int) -> float:
    async def rounds() -> float:
        best = float("inf")
        for _ in range(repeat):
            with _scope(fn):
                gc.disable()
                t0 = time.perf_counter_ns()
                for i in range(calls):
                    await fn(i)
                elapsed = time.perf_counter_ns() - t0
                gc.enable()
            best = min(best, elapsed / calls)
        return best

    return asyncio.run(rounds())


def sync_cases() -> dict[str, Callable[[int], Any]]:
    reg = Registry()
    stoic_dep = Dependency("bench", timeout=1.0, bulkhead=SemaphoreBulkhead(max_concurrent=100),
                           fallbacks=[Fallback.value(0, name="generic")], registry=reg)
    stoic_plain = Dependency("bench-breaker-only", timeout=None, bulkhead=None, registry=reg)
    pyb = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
    cb_decorated = circuitbreaker.circuit(failure_threshold=5, recovery_timeout=30)(work)
    pyres = pr.resilient(
        circuit_breaker=pr.CircuitBreakerConfig(failure_threshold=5, recovery_timeout=5.0),
        bulkhead=pr.BulkheadConfig(max_concurrent=100),
        fallback=pr.FallbackConfig(handler=0),
        listeners=[MetricsCollector()],
    )(work)
    pyres_cb = pr.resilient(circuit_breaker=pr.CircuitBreakerConfig(failure_threshold=5))(work)
    ten = tenacity.retry(stop=tenacity.stop_after_attempt(3), reraise=True)(work)
    stoic_decorated = stoic_dep(work)
    heard = Registry()  # the same stack, with one listener on its registry (a metrics exporter, say)
    heard.listen(lambda event: None)
    stoic_heard = Dependency("bench-heard", timeout=1.0, bulkhead=SemaphoreBulkhead(max_concurrent=100),
                             fallbacks=[Fallback.value(0, name="generic")], registry=heard)
    stoic_heard_decorated = stoic_heard(work)
    stoic_adaptive = Dependency("bench-adaptive", timeout=1.0, bulkhead=AdaptiveBulkhead(initial=100),
                                fallbacks=[Fallback.value(0, name="generic")], registry=reg)
    return {
        "bare call": work,
        "stoic breaker only": lambda i: stoic_plain.call(work, i),
        "stoic breaker+semaphore+fallback+metrics": lambda i: stoic_dep.call(work, i),
        "stoic same, as decorator": stoic_decorated,
        "stoic same, as decorator, one listener": stoic_heard_decorated,
        "stoic same, call(), one listener": lambda i: stoic_heard.call(work, i),
        "stoic same, adaptive limit": lambda i: stoic_adaptive.call(work, i),
        "stoic same, under a travelling deadline": under_deadline(lambda i: stoic_dep.call(work, i)),
        "pybreaker (breaker only)": lambda i: pyb.call(work, i),
        "circuitbreaker (breaker only)": cb_decorated,
        "pyresilience breaker only": pyres_cb,
        "pyresilience breaker+bulkhead+fallback+metrics": pyres,
        "tenacity retry (no breaker)": ten,
    }


def async_cases() -> dict[str, Callable[[int], Awaitable[Any]]]:
    reg = Registry()
    stoic_dep = Dependency("abench", timeout=1.0, bulkhead=SemaphoreBulkhead(max_concurrent=100),
                           fallbacks=[Fallback.value(0, name="generic")], registry=reg)
    aio = aiobreaker.CircuitBreaker(fail_max=5)
    purg = AsyncCircuitBreakerFactory(default_threshold=5)
    purg_decorated = purg("bench")(awork)
    pyres = pr.resilient(
        timeout=pr.TimeoutConfig(seconds=1.0),
        circuit_breaker=pr.CircuitBreakerConfig(failure_threshold=5),
        bulkhead=pr.BulkheadConfig(max_concurrent=100),
        fallback=pr.FallbackConfig(handler=0),
    )(awork)

    async def wait_for(i: int) -> int:
        return await asyncio.wait_for(awork(i), 1.0)

    async def with_timeout(i: int) -> int:
        async with asyncio.timeout(1.0):
            return await awork(i)

    stoic_adaptive = Dependency("abench-adaptive", timeout=1.0, bulkhead=AdaptiveBulkhead(initial=100),
                                fallbacks=[Fallback.value(0, name="generic")], registry=reg)
    stoic_hedged = Dependency("abench-hedged", timeout=1.0, bulkhead=SemaphoreBulkhead(max_concurrent=100),
                              fallbacks=[Fallback.value(0, name="generic")], registry=reg, hedge=Hedge())
    return {
        "bare await": awork,
        "asyncio.wait_for (deadline only)": wait_for,
        "asyncio.timeout (deadline only)": with_timeout,
        "stoic deadline+breaker+semaphore+fallback+metrics": lambda i: stoic_dep.acall(awork, i),
        "stoic same, adaptive limit": lambda i: stoic_adaptive.acall(awork, i),
        "stoic same, hedge set (not firing)": lambda i: stoic_hedged.acall(awork, i),
        "stoic same, under a travelling deadline": under_deadline(lambda i: stoic_dep.acall(awork, i)),
        "aiobreaker (breaker only)": lambda i: aio.call_async(awork, i),
        "purgatory (breaker only)": purg_decorated,
        "pyresilience deadline+breaker+bulkhead+fallback": pyres,
    }


def thread_cases() -> tuple[dict[str, Callable[[int], Any]], Callable[[], None]]:
    reg = Registry()
    stoic_dep = Dependency("tbench", timeout=1.0, bulkhead=ThreadPoolBulkhead(workers=4),
                           fallbacks=[Fallback.value(0, name="generic")], registry=reg)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)
    pyres = pr.resilient(
        timeout=pr.TimeoutConfig(seconds=1.0, pool_size=4),
        circuit_breaker=pr.CircuitBreakerConfig(failure_threshold=5),
        fallback=pr.FallbackConfig(handler=0),
    )(work)

    def cleanup() -> None:
        pool.shutdown()
        stoic_dep.close()

    return {
        "bare call": work,
        "ThreadPoolExecutor submit+result(timeout)": lambda i: pool.submit(work, i).result(1.0),
        "stoic thread pool+deadline+breaker+fallback+metrics": lambda i: stoic_dep.call(work, i),
        "pyresilience thread timeout+breaker+fallback": pyres,
    }, cleanup


class _Ok(http.server.BaseHTTPRequestHandler):
    """Answers every GET with 200 and two bytes, keeping the connection open."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed ACK

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


def http_cases() -> tuple[dict[str, Callable[[int], Any]], Callable[[], None]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/"
    bare = httpx.Client()
    guarded = httpx.Client(transport=GuardedTransport(timeout=1.0, registry=Registry(),
                                                      fallbacks=[Fallback(lambda request: None)]))
    # the same without a network: what the guard itself costs, apart from the loopback's noise
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"ok")

    local = httpx.Client(transport=httpx.MockTransport(answer))
    local_guarded = httpx.Client(transport=GuardedTransport(httpx.MockTransport(answer), timeout=1.0,
                                                            registry=Registry()))

    def cleanup() -> None:
        for client in (bare, guarded, local, local_guarded):
            client.close()
        server.shutdown()
        server.server_close()

    return {
        "bare httpx.Client.get": lambda i: bare.get(url),
        "httpx.Client + stoic GuardedTransport": lambda i: guarded.get(url),
        "bare httpx.Client.get, in-process transport": lambda i: local.get("http://svc/"),
        "same + stoic GuardedTransport": lambda i: local_guarded.get("http://svc/"),
    }, cleanup


PEER_BREAKERS = ("pybreaker (breaker only)", "circuitbreaker (breaker only)", "pyresilience breaker only")


def report(title: str, rows: dict[str, float], stoic_key: str, peer_key: str | None) -> None:
    print(f"\n{title}")
    base = next(iter(rows.values()))
    ours = rows[stoic_key]
    print(f"  {'case':52} {'ns/call':>10} {'x bare':>8} {'x stoic':>8}")
    for name, ns in rows.items():
        print(f"  {name:52} {ns:10.0f} {ns / base:8.1f} {ns / ours:8.2f}")
    if peer_key:
        print(f"  -> stoic / {peer_key}: {ours / rows[peer_key]:.3f}x")


def chart(path: str, groups: list[tuple[str, dict[str, float]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(groups), 1, figsize=(9, 2.2 + 2.6 * len(groups)))
    for ax, (title, rows) in zip(axes, groups, strict=True):
        names = list(rows)[::-1]
        values = [rows[n] / 1000 for n in names]
        colours = ["#2b7a78" if n.startswith("stoic") else "#9aa5b1" for n in names]
        ax.barh(names, values, color=colours)
        ax.set_xscale("log")
        ax.set_title(title, loc="left", fontsize=10)
        ax.set_xlabel("microseconds per call (log scale, lower is better)")
        for y, val in enumerate(values):
            ax.text(val, y, f" {val:.2f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"\nchart: {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000, help="calls per round (>= 1000)")
    parser.add_argument("--repeat", type=int, default=7, help="rounds per case, best kept (>= 1)")
    parser.add_argument("--chart", help="also write a PNG bar chart here")
    parser.add_argument("--all-cpus", action="store_true", help="do not pin to one CPU (see _cpu.py)")
    args = parser.parse_args()
    if args.calls < 1000 or args.repeat < 1:
        parser.error("--calls must be >= 1000 and --repeat >= 1")
    with one_cpu(not args.all_cpus) as mode:
        print(f"python {sys.version.split()[0]}, {args.calls} calls x best of {args.repeat}; {mode}")
        return run(args)


def run(args: argparse.Namespace) -> int:

    # Rounds go round-robin over the cases, so a slow spell on a shared machine hits every case
    # alike instead of one case's every round; the best round of each case is kept.
    sync = sync_cases()
    asynchronous = async_cases()
    threaded, cleanup = thread_cases()
    requests, http_cleanup = http_cases()
    sync_rows: dict[str, float] = dict.fromkeys(sync, float("inf"))
    async_rows: dict[str, float] = dict.fromkeys(asynchronous, float("inf"))
    thread_rows: dict[str, float] = dict.fromkeys(threaded, float("inf"))
    http_rows: dict[str, float] = dict.fromkeys(requests, float("inf"))
    for r in range(args.repeat):
        print(f"\r  round {r + 1}/{args.repeat}", end="", file=sys.stderr, flush=True)
        for name, fn in sync.items():
            sync_rows[name] = min(sync_rows[name], measure(fn, args.calls, 1))
        for name, afn in asynchronous.items():
            async_rows[name] = min(async_rows[name], ameasure(afn, args.calls, 1))
        for name, fn in threaded.items():
            thread_rows[name] = min(thread_rows[name], measure(fn, max(1000, args.calls // 10), 1))
        for name, fn in requests.items():
            http_rows[name] = min(http_rows[name], measure(fn, max(500, args.calls // 100), 1))
    cleanup()
    http_cleanup()
    print(file=sys.stderr)

    report("sync (semaphore isolation)", sync_rows, "stoic breaker+semaphore+fallback+metrics",
           "pyresilience breaker+bulkhead+fallback+metrics")
    report("asyncio", async_rows, "stoic deadline+breaker+semaphore+fallback+metrics",
           "pyresilience deadline+breaker+bulkhead+fallback")
    report("sync (thread isolation)", thread_rows, "stoic thread pool+deadline+breaker+fallback+metrics",
           "pyresilience thread timeout+breaker+fallback")
    report("httpx on loopback (sync, keep-alive)", http_rows, "httpx.Client + stoic GuardedTransport", None)
    added = http_rows["httpx.Client + stoic GuardedTransport"] - http_rows["bare httpx.Client.get"]
    own = (http_rows["same + stoic GuardedTransport"]
           - http_rows["bare httpx.Client.get, in-process transport"])
    print(f"  -> the guard adds {added / 1000:.1f} us per loopback request; its own cost, "
          f"without a network: {own / 1000:.1f} us")
    fastest = min(PEER_BREAKERS, key=sync_rows.__getitem__)
    targets = [
        ("sync guard <= 1.0 us", sync_rows["stoic breaker+semaphore+fallback+metrics"] <= 1000),
        ("sync guard <= 0.25x pyresilience", sync_rows["stoic breaker+semaphore+fallback+metrics"]
         <= 0.25 * sync_rows["pyresilience breaker+bulkhead+fallback+metrics"]),
        (f"sync guard faster than the fastest peer's breaker alone ({fastest}: "
         f"{sync_rows['stoic breaker+semaphore+fallback+metrics'] / sync_rows[fastest]:.2f}x)",
         sync_rows["stoic breaker+semaphore+fallback+metrics"] < sync_rows[fastest]),
        ("asyncio with deadline <= 2.5 us",
         async_rows["stoic deadline+breaker+semaphore+fallback+metrics"] <= 2500),
        ("thread-isolated with deadline <= 30 us",
         thread_rows["stoic thread pool+deadline+breaker+fallback+metrics"] <= 30_000),
        ("thread-isolated no slower than ThreadPoolExecutor",
         thread_rows["stoic thread pool+deadline+breaker+fallback+metrics"]
         <= thread_rows["ThreadPoolExecutor submit+result(timeout)"]),
    ]
    for rows, plain in ((sync_rows, "stoic breaker+semaphore+fallback+metrics"),
                        (async_rows, "stoic deadline+breaker+semaphore+fallback+metrics")):
        for name in rows:
            if name.startswith("stoic same, ") and "decorator" not in name and "listener" not in name:
                targets.append((f"{'async' if rows is async_rows else 'sync'} {name[len('stoic same, '):]} "
                                f"<= plain + 0.3 us ({(rows[name] - rows[plain]) / 1000:+.2f} us)",
                                rows[name] <= rows[plain] + 300))
    for name, plain in (("stoic same, as decorator, one listener", "stoic same, as decorator"),
                        ("stoic same, call(), one listener", "stoic breaker+semaphore+fallback+metrics")):
        ratio = sync_rows[name] / sync_rows[plain]
        targets.append((f"sync {name[len('stoic same, '):]} <= 1.5x without ({ratio:.2f}x)", ratio <= 1.5))
    print("\ntargets")
    for name, ok in targets:
        print(f"  {'met ' if ok else 'MISS'} {name}")
    if args.chart:
        chart(args.chart, [("sync", sync_rows), ("asyncio", async_rows), ("thread isolation", thread_rows),
                           ("httpx on loopback", http_rows)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
