"""`stoic demo`: the streaming platform under the Simian Army, with a report at the end."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def _number(name: str, low: float, high: float, kind: type = float) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            message = f"{name} must be {what} in {low:g}..{high:g}, got {text!r}"
            raise argparse.ArgumentTypeError(message) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{name} must be in {low:g}..{high:g}, got {text}")
        return value

    return parse


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `stoic demo`."""
    from .run import MAX_DURATION, MIN_DURATION, DemoOptions

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="run the streaming platform under the Simian Army and report",
        description="Start a small streaming platform (edge + 7 services, 2 regions x 2 zones), play a "
        "compressed day of viewers while Chaos Monkey, Latency Monkey, Chaos Gorilla, Chaos Kong "
        "and FIT scenarios strike, then report plays, failures, fallbacks, latency and SPS.",
    )
    parser.add_argument(
        "--duration",
        type=_number("--duration", MIN_DURATION, MAX_DURATION),
        default=120.0,
        help=f"seconds of traffic, standing for 24 h ({MIN_DURATION:g}..{MAX_DURATION:g}; default 120)",
    )
    parser.add_argument(
        "--seed",
        type=_number("--seed", 0, 2**32 - 1, int),
        default=1,
        help="seed for viewers and chaos targets (default 1)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("out/demo"),
        help="directory for the report, chart, plays and logs (default ./out/demo)",
    )
    parser.add_argument("--no-chaos", action="store_true", help="run the same traffic without any chaos")
    parser.add_argument(
        "--dashboard",
        type=_number("--dashboard", 1, 65535, int),
        metavar="PORT",
        default=None,
        help="serve the web dashboard on 127.0.0.1:PORT while the demo runs",
    )
    parser.add_argument(
        "--peak",
        type=_number("--peak", 0.5, 100),
        default=DemoOptions.peak,
        help=f"stream starts per second at the evening peak (0.5..100; default {DemoOptions.peak:g})",
    )
    parser.set_defaults(handler=main)
    return parser


def main(args: argparse.Namespace) -> int:
    from .run import DemoOptions, run_demo

    try:
        options = DemoOptions(
            duration=args.duration,
            seed=args.seed,
            out=args.out,
            chaos=not args.no_chaos,
            dashboard=args.dashboard,
            peak=args.peak,
        )
        report = run_demo(options)
    except ValueError as exc:
        print(f"stoic demo: error: {exc}", file=sys.stderr)
        return 2
    except (TimeoutError, RuntimeError) as exc:  # the platform did not come up
        print(f"stoic demo: failed: {exc} (process logs: {args.out / 'platform' / 'logs'})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stoic demo: interrupted; every process was stopped", file=sys.stderr)
        return 130
    print(report.summary())
    out = args.out
    print(f"\nreport: {out / 'report.txt'}  chart: {out / 'sps.png'}  plays: {out / 'plays.jsonl'}")
    return 0 if not report.failed else 1
