"""`stoic web`: serve the dashboard for this process's guard registry."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from typing import Any

TOKEN_ENV = "STOIC_WEB_TOKEN"


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"--port: must be an integer in [1, 65535], got {text!r}")
    return port


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.05 <= value <= 60:
        raise argparse.ArgumentTypeError(
            f"--interval: must be a number of seconds in [0.05, 60], got {text!r}"
        )
    return value


def _token(text: str) -> str:
    from ._http import token_problem

    problem = token_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"--token: {problem}")  # never the value: it is a secret
    return text


def _host(text: str) -> str:
    from ._edge import host_problem

    problem = host_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"--allow-host: {problem}")
    return text


def add_parser(subparsers: Any) -> None:
    """Register `stoic web` on the top-level parser."""
    parser = subparsers.add_parser(
        "web", help="serve the dashboard", description="Serve the Stoic dashboard for this process."
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8700, help="TCP port (default 8700)")
    parser.add_argument(
        "--token",
        type=_token,
        default=None,
        help=f"bearer token for the write APIs (default: ${TOKEN_ENV}, else a random one printed at start)",
    )
    parser.add_argument("--interval", type=_interval, default=1.0, help="seconds between live updates")
    parser.add_argument(
        "--allow-host",
        type=_host,
        action="append",
        default=[],
        metavar="NAME",
        help="also serve requests for this Host name (repeatable; '*.example.com' for subdomains, "
        "'*' for any); loopback names are always served",
    )
    parser.set_defaults(handler=run)


def _optional_sources() -> dict[str, Any]:
    sources: dict[str, Any] = {}
    try:
        from stoic.signals import Signals  # the signals extra is optional
    except ImportError:
        pass
    else:
        from stoic.guard import registry

        signals = Signals()
        signals.watch(registry)  # breaker changes and fallback answers become context for alerts
        sources["signals"] = signals
    return sources


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    import uvicorn  # keeps `stoic --help` fast

    from stoic.web import create_app

    from ._edge import LOOPBACK_HOSTS
    from ._http import token_problem

    # A token the operator supplied is a secret they already hold: say where it came from, never
    # what it is. Only a generated one is printed, since there is no other way to learn it.
    if args.token is not None:
        token, origin = args.token, "from --token"
    elif os.environ.get(TOKEN_ENV):
        token, origin = os.environ[TOKEN_ENV], f"from ${TOKEN_ENV}"
        problem = token_problem(token)
        if problem is not None:
            print(f"stoic web: {TOKEN_ENV}: {problem}", file=sys.stderr, flush=True)
            return 2
    else:
        token = secrets.token_urlsafe(18)
        origin = token
    hosts = [*LOOPBACK_HOSTS, *args.allow_host]
    if args.host not in ("0.0.0.0", "::", ""):
        hosts.append(args.host)  # the address it is bound to is a name it can be reached by
    try:
        app = create_app(token=token, interval=args.interval, allowed_hosts=hosts, **_optional_sources())
    except ValueError as exc:
        print(f"stoic web: {exc}", file=sys.stderr, flush=True)
        return 2
    print(f"stoic web: http://{args.host}:{args.port}/  (write token: {origin})", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=2)
    return 0
