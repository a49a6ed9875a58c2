"""`stoic cache`: start local cache zones, read their stats, warm a cold zone."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any

from ._backends import BACKENDS, node_factory, parse_address
from ._errors import CacheError

_BACKEND_CHOICES = sorted(BACKENDS)


def add_parser(subparsers: Any) -> None:
    """Register `stoic cache` and its sub-commands."""
    parser = subparsers.add_parser("cache", help="zone-replicated cache: serve, stats, warm",
                                   description="Zone-replicated cache over memcached or Valkey.")
    sub = parser.add_subparsers(dest="cache_command", metavar="ACTION", required=True)

    serve = sub.add_parser("serve", help="start local cache servers in zones and print their addresses")
    serve.add_argument("--backend", choices=["valkey", "memcached"], default="valkey",
                       help="valkey: embedded, no system package (default); memcached: the system binary")
    serve.add_argument("--zones", type=_bounded_int("--zones", 1, 26), default=3, help="zones (1..26)")
    serve.add_argument("--per-zone", type=_bounded_int("--per-zone", 1, 64), default=2,
                       help="servers per zone (1..64)")
    serve.add_argument("--memory-mb", type=_bounded_int("--memory-mb", 8, 65536), default=64,
                       help="memory per server in MiB (8..65536)")
    serve.add_argument("--for", dest="duration", type=_seconds("--for"), default=0.0,
                       help="stop after this many seconds (default: run until Ctrl-C)")
    serve.set_defaults(handler=_serve)

    for name, help_text, fn in (("stats", "items, hits, misses and memory of every server", _stats),
                                ("warm", "copy a warm zone into a cold one, with a progress line", _warm)):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--backend", choices=_BACKEND_CHOICES, default="valkey")
        cmd.add_argument("--zone", dest="zones", action="append", type=_zone_spec, required=True,
                         metavar="NAME=HOST:PORT[,HOST:PORT...]", help="one per zone")
        if name == "stats":
            cmd.add_argument("--json", action="store_true", help="print JSON instead of a table")
        else:
            cmd.add_argument("--source", required=True, help="the warm zone to copy from")
            cmd.add_argument("--target", required=True, help="the cold zone to fill")
            cmd.add_argument("--batch", type=_bounded_int("--batch", 1, 100_000), default=500,
                             help="keys per batch (1..100000)")
        cmd.set_defaults(handler=fn)


def _bounded_int(flag: str, low: int, high: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{flag} must be an integer in {low}..{high}, got {text!r}")
        return value

    return parse


def _seconds(flag: str) -> Any:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not 0 <= value <= 86400 * 365:
            raise argparse.ArgumentTypeError(f"{flag} must be a number of seconds >= 0, got {text!r}")
        return value

    return parse


def _zone_spec(text: str) -> tuple[str, list[str]]:
    name, sep, servers = text.partition("=")
    if not sep or not name or not servers:
        raise argparse.ArgumentTypeError(f"--zone must be NAME=HOST:PORT[,HOST:PORT...], got {text!r}")
    addresses = servers.split(",")
    for address in addresses:
        try:
            parse_address(address, f"--zone {name}")
        except CacheError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return name, addresses


def _serve(args: argparse.Namespace) -> int:
    from ._servers import EmbeddedValkey, LocalMemcached

    fleet_type = EmbeddedValkey if args.backend == "valkey" else LocalMemcached
    try:
        fleet = fleet_type(args.zones, args.per_zone, memory_mb=args.memory_mb)
    except CacheError as exc:
        print(f"stoic cache serve: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: done.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with fleet:
            for zone, addresses in fleet.zones.items():
                print(f"{zone}: {' '.join(addresses)}")
            flags = " ".join(f"--zone {z}={','.join(a)}" for z, a in fleet.zones.items())
            print(f"connect with: --backend {args.backend} {flags}", flush=True)
            done.wait(args.duration or None)
        print("stopped", flush=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _stats(args: argparse.Namespace) -> int:
    factory = node_factory(args.backend)
    rows: list[dict[str, Any]] = []
    for zone, addresses in args.zones:
        for address in addresses:
            node = factory(address, 1.0)
            row: dict[str, Any] = {"zone": zone, "server": address}
            try:
                row.update(up=True, **node.stats())
            except Exception as exc:
                row.update(up=False, error=f"{type(exc).__name__}: {exc}")
            finally:
                node.close()
            rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'zone':<12} {'server':<22} {'up':<4} {'items':>9} {'hits':>10} {'misses':>10} "
              f"{'memory':>10}")
        for r in rows:
            if r["up"]:
                memory = f"{r['memory_bytes'] / 1e6:.1f} MB"
                print(f"{r['zone']:<12} {r['server']:<22} {'yes':<4} {r['items']:>9} {r['hits']:>10} "
                      f"{r['misses']:>10} {memory:>10}")
            else:
                print(f"{r['zone']:<12} {r['server']:<22} {'no':<4} {r['error']}")
    return 0 if all(r["up"] for r in rows) else 1


def _warm(args: argparse.Namespace) -> int:
    from ._cache import ZonalCache

    zones = dict(args.zones)
    try:
        cache = ZonalCache(zones, args.target, backend=args.backend, timeout=1.0, registry=None)
    except CacheError as exc:
        print(f"stoic cache warm: {exc}", file=sys.stderr)
        return 2

    def progress(seen: int, estimate: int) -> None:
        print(f"\rwarming {args.target} from {args.source}: {seen}/{estimate} keys "
              f"({100 * seen // max(estimate, 1)}%)", end="", file=sys.stderr, flush=True)

    with cache:
        try:
            report = cache.warm(args.source, args.target, batch=args.batch, progress=progress)
        except CacheError as exc:
            print(f"stoic cache warm: {exc}", file=sys.stderr)
            return 2
    print(file=sys.stderr)
    print(report)
    return 0 if report.failed == 0 and not report.unreachable else 1
