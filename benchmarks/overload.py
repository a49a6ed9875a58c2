"""A dependency pushed past its capacity, side by side: who still answers, and what the dependency suffers.

    python benchmarks/overload.py [--seconds S] [--workers W] [--work-ms MS]

The dependency is a TCP server on loopback, in its own process: it works on W requests at a time
(MS milliseconds each) and queues the rest, so its latency grows with its concurrency; its capacity
is W / MS requests per second. Each contender is driven open-loop (arrivals on a fixed schedule,
whatever the answers do) at 0.5x, 1x, 2x and 4x that capacity for S seconds, on a fresh connection.

Contenders: no limit (a 1 s timeout), a fixed asyncio.Semaphore(32) that callers queue on, Stoic's
adaptive limit with a fallback, aiobreaker, and tenacity retries (3 attempts, jittered backoff).
Columns: goodput (answers from the dependency per second), fallback answers, errors seen by the
callers, p50/p99 of every answer (fallbacks included; from the scheduled arrival), and the
dependency's own p99 (from when it read the request to its reply, queueing included).
Targets: at 2x and 4x Stoic answers every request (0 errors), keeps the dependency's p99 within 2x
of its unloaded p99 and its goodput within 10 % of capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import random
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiobreaker
import tenacity

from stoic.guard import AdaptiveBulkhead, Dependency, Fallback, Hedge, Registry

TIMEOUT = 1.0


# -- the dependency ---------------------------------------------------------------------------------

async def serve(workers: int, seconds: float, tail: float) -> None:
    """Lines `ID\\n` in, `ID\\n` out after the work (10x longer for a `tail` share of requests);
    `stats\\n` answers `stats P99_MS REQUESTS` since the last stats. A closed connection cancels
    its requests still queued."""
    gate = asyncio.Semaphore(workers)
    latencies: list[float] = []
    rng = random.Random(7)

    async def one(rid: bytes, writer: asyncio.StreamWriter) -> None:
        t0 = time.perf_counter()
        async with gate:
            await asyncio.sleep(seconds * 10 if rng.random() < tail else seconds)
        latencies.append(time.perf_counter() - t0)
        writer.write(rid + b"\n")

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks: set[asyncio.Task[None]] = set()
        try:
            while line := await reader.readline():
                if line == b"stats\n":
                    p99 = sorted(latencies)[int(0.99 * (len(latencies) - 1))] * 1000 if latencies else 0.0
                    writer.write(f"stats {p99:.1f} {len(latencies)}\n".encode())
                    latencies.clear()
                    continue
                task = asyncio.create_task(one(line.strip(), writer))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except ConnectionError:
            pass
        finally:
            for task in tasks:
                task.cancel()
            writer.close()

    server = await asyncio.start_server(connection, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until our parent goes


class Client:
    """One connection, many requests in flight, answers matched by id."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.waiting: dict[bytes, asyncio.Future[None]] = {}
        self.next_id = 0
        self.stats: asyncio.Future[tuple[float, int]] | None = None
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, port: int) -> Client:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def _read(self) -> None:
        while line := await self.reader.readline():
            key = line.strip()
            if key.startswith(b"stats ") and self.stats is not None:
                _, p99, served = key.split()
                self.stats.set_result((float(p99), int(served)))
                continue
            future = self.waiting.pop(key, None)
            if future is not None and not future.done():
                future.set_result(None)

    async def request(self) -> str:
        self.next_id += 1
        key = str(self.next_id).encode()
        future = asyncio.get_running_loop().create_future()
        self.waiting[key] = future
        self.writer.write(key + b"\n")
        try:
            await future
        finally:
            self.waiting.pop(key, None)  # cancelled: its answer, if it comes, is dropped
        return "ok"

    async def dependency_stats(self) -> tuple[float, int]:
        """(the dependency's p99 in ms, requests it finished) since the last call."""
        self.stats = asyncio.get_running_loop().create_future()
        self.writer.write(b"stats\n")
        value = await asyncio.wait_for(self.stats, 10)
        self.stats = None
        return value

    async def close(self) -> None:
        self.writer.close()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await self.task


# -- the contenders -----------------------------------------------------------------------------------

Call = Callable[[Client], Awaitable[str]]


def contenders() -> dict[str, Call]:
    async def no_limit(client: Client) -> str:
        return await asyncio.wait_for(client.request(), TIMEOUT)

    fixed = asyncio.Semaphore(32)

    async def fixed_semaphore(client: Client) -> str:
        async with asyncio.timeout(TIMEOUT):  # the wait for the semaphore counts against the timeout
            async with fixed:
                return await client.request()

    stoic = Dependency("overload", timeout=TIMEOUT, registry=Registry(),
                       bulkhead=AdaptiveBulkhead(initial=20),
                       fallbacks=[Fallback.value("cached", name="cached")])

    async def stoic_adaptive(client: Client) -> str:
        result = await stoic.aexecute(client.request)
        return "fallback" if result.level else "ok"

    breaker = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=datetime.timedelta(seconds=5))

    async def with_aiobreaker(client: Client) -> str:
        return await breaker.call_async(lambda: asyncio.wait_for(client.request(), TIMEOUT))  # type: ignore[no-any-return]

    retrying = tenacity.AsyncRetrying(stop=tenacity.stop_after_attempt(3), reraise=True,
                                      wait=tenacity.wait_exponential_jitter(initial=0.05, max=0.5))

    async def with_tenacity(client: Client) -> str:
        async def attempt() -> str:
            return await asyncio.wait_for(client.request(), TIMEOUT)

        return await retrying(attempt)

    return {"no limit": no_limit, "fixed semaphore(32)": fixed_semaphore,
            "stoic adaptive + fallback": stoic_adaptive, "aiobreaker": with_aiobreaker,
            "tenacity retries": with_tenacity}


async def drive(call: Call, port: int, rate: float, seconds: float) -> dict[str, float]:
    """Open loop: one call every 1/rate s for `seconds`; then wait for the stragglers."""
    client = await Client.connect(port)
    await client.dependency_stats()  # forget what came before
    answers: list[float] = []
    counts = {"ok": 0, "fallback": 0, "error": 0}
    loop = asyncio.get_running_loop()

    async def one(due: float) -> None:
        try:
            counts[await call(client)] += 1
        except Exception:  # every failure the caller sees counts as one error
            counts["error"] += 1
            return
        answers.append(loop.time() - due)

    tasks = []
    start = loop.time()
    total = int(rate * seconds)
    for i in range(total):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.wait(tasks, timeout=30)
    dep_p99, served = await client.dependency_stats()
    await client.close()
    answers.sort()

    def pct(q: float) -> float:
        return answers[int(q * (len(answers) - 1))] * 1000 if answers else float("nan")

    return {"goodput": counts["ok"] / seconds, "fallback": counts["fallback"], "errors": counts["error"],
            "p50": pct(0.5), "p99": pct(0.99), "dep_p99": dep_p99, "calls": total, "served": served}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds of load per row (default 4)")
    parser.add_argument("--workers", type=int, default=16, help="requests worked on at once (default 16)")
    parser.add_argument("--work-ms", type=int, default=40, help="milliseconds per request (default 40)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tail", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.workers, args.work_ms / 1000, args.tail))
        return
    capacity = args.workers * 1000 / args.work_ms
    server = subprocess.Popen([sys.executable, __file__, "--serve", "--workers", str(args.workers),
                               "--work-ms", str(args.work_ms)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdin is not None
    port = int(server.stdout.readline())
    print(f"dependency: {args.workers} workers x {args.work_ms} ms = capacity {capacity:.0f} req/s; "
          f"{args.seconds:g} s per row; load average {os.getloadavg()[0]:.2f}")
    try:
        asyncio.run(run_all(port, capacity, args.seconds))
    finally:
        server.stdin.close()
        server.wait(timeout=10)
    tail = subprocess.Popen([sys.executable, __file__, "--serve", "--workers", "100000", "--work-ms", "10",
                             "--tail", "0.05"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert tail.stdout is not None and tail.stdin is not None
    try:
        asyncio.run(run_tail(int(tail.stdout.readline()), args.seconds))
    finally:
        tail.stdin.close()
        tail.wait(timeout=10)


async def run_tail(port: int, seconds: float) -> None:
    """Hedging: a dependency with room to spare, 10 ms per request but 100 ms for 5 % of them."""
    print("\nhedging: 10 ms median, 5 % of requests 10x slower, 200 req/s, no capacity limit")
    plain = Dependency("tail-plain", timeout=TIMEOUT, registry=Registry())
    hedged = Dependency("tail-hedged", timeout=TIMEOUT, registry=Registry(), hedge=Hedge())
    header = f"{'contender':<26} {'p50 ms':>7} {'p99 ms':>8} {'extra load':>10} {'hedges won':>10}"
    print(header)
    print("-" * len(header))
    rows = {}
    for name, dep in (("stoic, no hedge", plain), ("stoic, hedge at p90", hedged)):
        async def call(client: Client, dep: Dependency = dep) -> str:
            await dep.acall(client.request)
            return "ok"

        await drive(call, port, 200, 1.0)  # fill the rolling window the hedge delay is read from
        row = rows[name] = await drive(call, port, 200, seconds)
        won = (dep.snapshot()["hedges"] or {}).get("won", "-")
        print(f"{name:<26} {row['p50']:>7.1f} {row['p99']:>8.1f} {row['served'] / row['calls'] - 1:>10.1%} "
              f"{won!s:>10}", flush=True)
    ratio = rows["stoic, no hedge"]["p99"] / rows["stoic, hedge at p90"]["p99"]
    print(f"client p99 cut {ratio:.1f}x (target >= 3x at <= 10 % extra load)")


async def run_all(port: int, capacity: float, seconds: float) -> None:
    calls = contenders()
    header = (f"{'load':>5} {'contender':<26} {'goodput/s':>9} {'of cap':>6} {'fallback':>8} {'errors':>7} "
              f"{'p50 ms':>7} {'p99 ms':>8} {'dep p99 ms':>10}")
    print(header)
    print("-" * len(header))
    unloaded: float | None = None
    for factor in (0.5, 1.0, 2.0, 4.0):
        for name, call in calls.items():
            row = await drive(call, port, capacity * factor, seconds)
            if unloaded is None:
                unloaded = row["dep_p99"]
            print(f"{factor:>4g}x {name:<26} {row['goodput']:>9.0f} {row['goodput'] / capacity:>6.0%} "
                  f"{row['fallback']:>8.0f} {row['errors']:>7.0f} {row['p50']:>7.1f} {row['p99']:>8.1f} "
                  f"{row['dep_p99']:>10.1f}", flush=True)
            await asyncio.sleep(1.5)  # let the dependency drain what the last contender left queued
        print()
    print(f"unloaded dependency p99 (0.5x, no limit): {unloaded:.1f} ms; target for stoic at 2x/4x: "
          f"dep p99 <= {2 * (unloaded or 0):.1f} ms, goodput >= 90% of capacity, 0 errors")


if __name__ == "__main__":
    main()
