"""`stoic simulate`: the fallback chain under a failing primary, on a virtual clock.

Every request goes through a real `Dependency` (breaker, bulkhead, deadline, fallbacks, metrics) as
an asyncio task; only time is simulated (an event loop on a manual clock), so requests overlap as
they would in production, 50,000 of them take a few seconds, and the result is repeatable.

    stoic simulate --requests 50000 --failure-rate 0.4 --hit-rate 0.85

With `--replay FILE` it plays a recorded event history instead (JSON lines, as `EventRecorder`
writes them) against each `--config` (a proposed breaker and bulkhead), and prints what each would
have answered, failed and shed:

    stoic simulate --replay outage.jsonl --config "error_rate=0.3,min_calls=10" --config "max_concurrent=8"
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ._clock import ManualClock, VirtualTimeLoop
from ._dependency import Dependency
from ._errors import ConfigError, DependencyFailed
from ._policies import BreakerPolicy, Bulkhead, Fallback, SemaphoreBulkhead
from ._registry import Registry
from ._replay import parse_config, read_events, replay


@dataclass(frozen=True)
class Scenario:
    requests: int = 50_000
    failure_rate: float = 0.4
    hit_rate: float = 0.85
    rate: float = 500.0  # requests per second of virtual time
    seed: int = 7


@dataclass
class Outcome:
    answered_by: Counter[str]
    failures: int
    latencies_ms: list[float]
    breaker_opened: int

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


class RemoteMiss(LookupError):
    """The snapshot cache had no entry for this user."""


def run(scenario: Scenario) -> Outcome:
    """Play `scenario.requests` requests through a personalisation dependency and its fallbacks."""
    clock = ManualClock()
    loop = VirtualTimeLoop(clock)
    try:
        return loop.run_until_complete(_play(scenario, clock))
    finally:
        loop.close()


async def _play(scenario: Scenario, clock: ManualClock) -> Outcome:
    rng = random.Random(scenario.seed)

    async def primary(user: int) -> list[str]:
        await asyncio.sleep(rng.lognormvariate(-3.9, 0.5))  # ~20 ms median, ~65 ms p99
        if rng.random() < scenario.failure_rate:
            raise ConnectionError("personalisation: 503")
        return [f"row-{user % 7}"]

    async def snapshot(user: int) -> list[str]:
        await asyncio.sleep(0.001)
        if rng.random() >= scenario.hit_rate:
            raise RemoteMiss(user)
        return [f"cached-row-{user % 7}"]

    def generic(user: int) -> list[str]:
        return ["popular-in-region"]

    dependency = Dependency(
        "personalisation",
        timeout=0.25,
        breaker=BreakerPolicy(),
        bulkhead=SemaphoreBulkhead(max_concurrent=100),
        fallbacks=[Fallback(snapshot, name="snapshot", timeout=0.05), Fallback(generic, name="generic")],
        registry=Registry(),
        clock=clock,
    )
    opened = 0

    def on_event(event: Any) -> None:
        nonlocal opened
        opened += event.state == "open"

    dependency.listen(on_event)
    answered: Counter[str] = Counter()
    latencies: list[float] = []
    failures = 0

    async def request(user: int) -> None:
        nonlocal failures
        try:
            result = await dependency.aexecute(primary, user)
        except DependencyFailed:
            failures += 1
            return
        answered[result.source] += 1
        latencies.append(result.latency * 1000)

    in_flight: set[asyncio.Task[None]] = set()
    for user in range(scenario.requests):  # Poisson arrivals at `rate` per second
        await asyncio.sleep(rng.expovariate(scenario.rate))
        task = asyncio.ensure_future(request(user))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    await asyncio.gather(*in_flight)
    return Outcome(answered, failures, latencies, opened)


def render(title: str, scenario: Scenario, outcome: Outcome) -> str:
    total = scenario.requests
    lines = [
        f"{title}: {total:,} requests, primary failing {scenario.failure_rate:.0%}, "
        f"snapshot hit rate {scenario.hit_rate:.0%}",
        f"  {'answered by':14} {'requests':>9} {'share':>8}",
    ]
    for source in ("primary", "snapshot", "generic"):
        n = outcome.answered_by.get(source, 0)
        lines.append(f"  {source:14} {n:9,} {n / total:8.2%}")
    lines.append(f"  {'user-visible failures':22} {outcome.failures:,}")
    p50, p99 = outcome.percentile(0.5), outcome.percentile(0.99)
    lines.append(f"  {'latency p50 / p99':22} {p50:.1f} ms / {p99:.1f} ms")
    lines.append(f"  {'breaker opened':22} {outcome.breaker_opened} times")
    return "\n".join(lines)


def _fraction(name: str) -> Any:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number in [0, 1], got {text!r}") from None
        if not 0.0 <= value <= 1.0:
            raise argparse.ArgumentTypeError(f"{name} must be in [0, 1], got {value}")
        return value

    return parse


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--requests must be a whole number in [1, 10000000], got {text!r}") from None
    if not 1 <= value <= 10_000_000:
        raise argparse.ArgumentTypeError(f"--requests must be in [1, 10000000], got {value}")
    return value


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("simulate", description=__doc__,
                                   help="the fallback chain under a failing primary (virtual clock)")
    parser.add_argument("--requests", type=_count, default=50_000, help="requests to play (default 50000)")
    parser.add_argument("--failure-rate", type=_fraction("--failure-rate"), default=0.4,
                        help="share of primary calls that fail, 0..1 (default 0.4)")
    parser.add_argument("--hit-rate", type=_fraction("--hit-rate"), default=0.85,
                        help="share of snapshot lookups that hit, 0..1 (default 0.85)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--replay", metavar="FILE", help="replay a recorded event history (JSON lines)")
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE,...",
                        help="with --replay: a configuration to try (repeatable); keys are BreakerPolicy "
                             "fields, max_concurrent, adaptive (gradient|aimd) and timeout")
    parser.add_argument("--dependency",
                        help="with --replay: the dependency to replay (default: the only one)")
    parser.set_defaults(handler=main)


def replay_main(args: argparse.Namespace) -> int:
    """`--replay`: the recorded calls against the defaults and each `--config`."""
    try:
        with open(args.replay, encoding="utf-8") as history:
            calls = read_events(history, args.replay)
        configs: list[tuple[str, BreakerPolicy, Bulkhead | None, float | None]] = [
            ("defaults", BreakerPolicy(), SemaphoreBulkhead(), 1.0)]
        configs += [parse_config(text) for text in args.config]
    except OSError as exc:
        print(f"stoic simulate: --replay: cannot read {args.replay!r}: {exc.strerror}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"stoic simulate: {exc}", file=sys.stderr)
        return 2
    names = sorted({c.dependency for c in calls})
    if args.dependency is not None:
        if args.dependency not in names:
            print(f"stoic simulate: --dependency {args.dependency!r} is not in {args.replay}; it has: "
                  f"{', '.join(names) or 'no calls'}", file=sys.stderr)
            return 2
        calls = [c for c in calls if c.dependency == args.dependency]
    elif len(names) > 1:
        print(f"stoic simulate: {args.replay} records {len(names)} dependencies; choose one with "
              f"--dependency ({', '.join(names)})", file=sys.stderr)
        return 2
    span = calls[-1].at - calls[0].at if calls else 0.0
    print(f"replaying {len(calls):,} calls to {', '.join(names) or 'nothing'} over {span:.1f} s")
    print(f"  {'configuration':48} {'answered':>9} {'failed':>7} {'shed':>7} {'(breaker':>9} "
          f"{'bulkhead)':>9} {'opened':>6}")
    for label, breaker, bulkhead, timeout in configs:
        done = replay(calls, label, breaker, bulkhead, timeout)
        print(f"  {label[:48]:48} {done.answered:9,} {done.failed:7,} {done.shed:7,} "
              f"{done.short_circuited:9,} {done.rejected:9,} {done.opened:6}")
    return 0


def main(args: argparse.Namespace) -> int:
    if args.replay is not None:
        return replay_main(args)
    if args.config or args.dependency:
        print("stoic simulate: --config and --dependency go with --replay FILE", file=sys.stderr)
        return 2
    failing = Scenario(args.requests, args.failure_rate, args.hit_rate, seed=args.seed)
    healthy = Scenario(args.requests, 0.0, args.hit_rate, seed=args.seed)
    for title, scenario in (("failing primary", failing), ("healthy primary", healthy)):
        t0 = time.perf_counter()
        outcome = run(scenario)
        print(render(title, scenario, outcome))
        print(f"  ({time.perf_counter() - t0:.2f} s of real time)\n")
    return 0
