"""The `stoic` command line: one sub-command per part, each registered by its own module."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# sub-command -> module exposing `add_parser(subparsers)`; imported lazily so `stoic simulate`
# never pays for (or requires) the web or cache extras.
COMMANDS = {
    "simulate": "stoic.guard.simulate",
    "chaos": "stoic.chaos.cli",
    "cache": "stoic.cache.cli",
    "signals": "stoic.signals.cli",
    "web": "stoic.web.cli",
    "fit": "stoic.fit.cli",
    "demo": "stoic.demo.cli",
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stoic",
                                     description="Keep services answering while dependencies fail.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = argv[0] if argv and argv[0] in COMMANDS else None
    for name, module_name in COMMANDS.items():
        if wanted is not None and name != wanted:
            sub.add_parser(name)
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            sub.add_parser(name, help=f"(unavailable: {exc})")
            continue
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.error(f"'{args.command}' is not available in this installation")
    try:
        return int(handler(args) or 0)
    except BrokenPipeError:  # output piped into `head` and friends: stop quietly
        sys.stderr.close()
        return 141
