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


def _ranged(flag: str, low: float, high: float, integer: bool = False) -> Any:
    kind = "an integer" if integer else "a number"

    def parse(text: str) -> float:
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            value = -1
        if not low <= value <= high:
            bounds = f"[{int(low)}, {int(high)}]" if integer else f"[{low:g}, {high:g}]"
            raise argparse.ArgumentTypeError(f"{flag}: must be {kind} in {bounds}, got {text!r}")
        return value

    return parse


def _url(text: str) -> str:
    from ._merge import check_urls

    try:
        check_urls([text])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--{exc}") from None
    return text


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
        "--view",
        choices=("operator", "support"),
        default="operator",
        help="operator: everything, with the FIT controls (default); support: read-only, no write API",
    )
    parser.add_argument(
        "--merge",
        type=_url,
        nargs="+",
        metavar="URL",
        help="merge the /hystrix.stream of these processes into this dashboard's (Turbine-style)",
    )
    parser.add_argument(
        "--stale-after",
        type=_ranged("--stale-after", 0.5, 300),
        default=10.0,
        help="with --merge: seconds after which a silent process stops counting (default 10)",
    )
    parser.add_argument(
        "--max-streams",
        type=_ranged("--max-streams", 1, 100_000, integer=True),
        default=100,
        help="live streams (page and /hystrix.stream) served at once; more get 503 (default 100)",
    )
    parser.add_argument(
        "--max-connections",
        type=_ranged("--max-connections", 1, 1_000_000, integer=True),
        default=1000,
        help="open client connections; at the cap the oldest idle or half-sent one is closed (default 1000)",
    )
    parser.add_argument(
        "--header-timeout",
        type=_ranged("--header-timeout", 0.1, 300),
        default=10.0,
        help="seconds a client has to send its request headers (default 10)",
    )
    parser.add_argument(
        "--allow-host",
        type=_host,
        action="append",
        default=[],
        metavar="NAME",
        help="also serve requests for this Host name (repeatable; '*.example.com' for subdomains, "
        "'*' for any); loopback names are always served",
    )
    parser.add_argument(
        "--guard-config",
        metavar="FILE",
        default=None,
        help="build the dependencies of this guard TOML (stoic.guard.loader; STOIC_GUARD__* "
        "overrides apply) into the registry the dashboard serves; not with --merge",
    )
    parser.set_defaults(handler=run)


def _load_guard_config(path: str, merging: bool) -> str | None:
    """Build the file's dependencies into the process registry; the problem, naming the key, or None."""
    if merging:
        return "--guard-config: not with --merge (the dashboard then shows the merged processes)"
    from stoic.guard import ConfigError, registry
    from stoic.guard.loader import load

    try:
        load(path, env=os.environ, registry=registry)
    except ConfigError as exc:
        return f"--guard-config: {exc}"
    return None


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

    from stoic.web import HystrixMerge, ServerLimits, create_app, server_config

    from ._edge import LOOPBACK_HOSTS
    from ._http import token_problem
    from ._server import RESERVED_DESCRIPTORS, descriptor_room

    # A token the operator supplied is a secret they already hold: say where it came from, never
    # what it is. Only a generated one is printed, since there is no other way to learn it.
    token: str | None
    if args.view == "support":
        if args.token is not None:
            message = "stoic web: --token: the support view takes no token (it has no write API)"
            print(message, file=sys.stderr, flush=True)
            return 2
        token, origin = None, "none: the support view is read-only"
    elif args.token is not None:
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
    room = descriptor_room(args.max_connections)
    if room < args.max_connections:
        print(
            f"stoic web: --max-connections: must be at most {room} here (the open-file limit less "
            f"{RESERVED_DESCRIPTORS} kept for the server itself), got {args.max_connections}",
            file=sys.stderr,
            flush=True,
        )
        return 2
    hosts = [*LOOPBACK_HOSTS, *args.allow_host]
    if args.host not in ("0.0.0.0", "::", ""):
        hosts.append(args.host)  # the address it is bound to is a name it can be reached by
    if args.guard_config is not None:
        problem = _load_guard_config(args.guard_config, bool(args.merge))
        if problem is not None:
            print(f"stoic web: {problem}", file=sys.stderr, flush=True)
            return 2
    sources = {} if args.merge else _optional_sources()
    try:
        app = create_app(
            token=token,
            interval=args.interval,
            allowed_hosts=hosts,
            view=args.view,
            max_streams=args.max_streams,
            merge=HystrixMerge(args.merge, stale_after=args.stale_after) if args.merge else None,
            **sources,
        )
        limits = ServerLimits(header_timeout=args.header_timeout, max_connections=args.max_connections)
    except ValueError as exc:
        print(f"stoic web: {exc}", file=sys.stderr, flush=True)
        return 2
    merged = f", merging {len(args.merge)} streams" if args.merge else ""
    print(
        f"stoic web: http://{args.host}:{args.port}/  ({args.view} view{merged}; write token: {origin})",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.Server(server_config(app, args.host, args.port, limits)).run()
    return 0
