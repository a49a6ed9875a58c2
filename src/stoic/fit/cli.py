"""`stoic fit sign|verify|catalog`: make a signed failure-plan header (for curl), check one, or
change the fleet-wide catalogue on the fault board (add, remove, list, halt, resume).

The secret is read from an environment variable (never from the command line, where `ps` shows it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from typing import Any

from stoic.fit._board import BOARD_ENV
from stoic.fit._catalog import Catalog
from stoic.fit._codec import DEFAULT_MAX_TTL, HeaderCodec
from stoic.fit._errors import FitWarning, InvalidHeader, InvalidScenario
from stoic.fit._identity import RequestIdentity
from stoic.fit._scenario import KINDS, Scenario

SECRET_ENV = "STOIC_FIT_SECRET"


def add_parser(subparsers: Any) -> None:
    """Add the `fit` sub-command to the `stoic` command."""
    parser = subparsers.add_parser("fit", help="sign or verify a failure-injection header")
    parser.add_argument(
        "--secret-env", default=SECRET_ENV, metavar="NAME",
        help=f"environment variable holding the secret(s), comma-separated (default {SECRET_ENV})",
    )
    actions = parser.add_subparsers(dest="fit_action", metavar="ACTION", required=True)

    sign = actions.add_parser("sign", help="print a signed header value")
    sign.add_argument("dependencies", nargs="+", help="dependency names to fail ('*' for all)")
    sign.add_argument("--kind", default="error", choices=KINDS)
    _answer_options(sign)
    sign.add_argument("--percent", type=float, default=100.0, help="share of requests, (0, 100]")
    sign.add_argument("--user", action="append", dest="user_ids", metavar="USER_ID", help="repeatable")
    sign.add_argument("--device", action="append", dest="devices", metavar="DEVICE", help="repeatable")
    sign.add_argument("--name", default="cli", help="scenario name")
    sign.add_argument(
        "--audience", action="append", required=True, metavar="SERVICE",
        help="a service (name or glob, '*' for all) that may honour the header; repeatable or "
        "comma-separated; receivers ignore headers that do not name them",
    )
    sign.add_argument(
        "--ttl", type=float, default=300.0,
        help=f"header lifetime in seconds, (0, {DEFAULT_MAX_TTL:g}] (the receivers' default max_ttl)",
    )
    sign.add_argument("--request-id", help="sign for this request id (percentage decisions use it)")
    sign.add_argument("--curl", action="store_true", help="print as a curl -H argument")
    sign.set_defaults(handler=_sign)

    verify = actions.add_parser("verify", help="check a header value and print what it carries")
    verify.add_argument("value", help="the header value")
    verify.add_argument(
        "--service", metavar="NAME",
        help="check the audience as this receiving service would (default: only show it)",
    )
    verify.add_argument(
        "--allow-no-audience", action="store_true", help="with --service: accept a header without an audience"
    )
    verify.set_defaults(handler=_verify)

    catalog = actions.add_parser(
        "catalog", help="the fleet-wide catalogue on the fault board: add, remove, list, halt, resume"
    )
    catalog.add_argument(
        "--board", default=None, metavar="PATH",
        help=f"the fault board file every process follows (default ${BOARD_ENV})",
    )
    steps = catalog.add_subparsers(dest="catalog_action", metavar="STEP", required=True)
    add = steps.add_parser("add", help="switch a scenario on in every process following the board")
    add.add_argument("name", help="scenario name (it also seeds the percentage split)")
    add.add_argument("dependencies", nargs="+", help="dependency names or globs ('*' for all)")
    add.add_argument("--kind", default="error", choices=KINDS)
    _answer_options(add)
    add.add_argument("--percent", type=float, default=100.0, help="share of requests, (0, 100]")
    add.add_argument("--user", action="append", dest="user_ids", metavar="USER_ID", help="repeatable")
    add.add_argument("--device", action="append", dest="devices", metavar="DEVICE", help="repeatable")
    add.add_argument("--ttl", type=float, default=600.0, help="seconds until it switches itself off")
    remove = steps.add_parser("remove", help="switch a scenario off")
    remove.add_argument("name")
    steps.add_parser("list", help="print the board's scenarios and whether failures are halted (JSON)")
    steps.add_parser("clear", help="switch every scenario off")
    halt = steps.add_parser("halt", help="halt all failures: engage the chaos kill switch")
    halt.add_argument("--reason", default="", help="why (shown by the kill switch)")
    steps.add_parser("resume", help="release the kill switch")
    catalog.set_defaults(handler=_catalog)


def _answer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--delay", type=float, default=0.0, help="seconds (for --kind delay; first, for the others)"
    )
    parser.add_argument("--status", type=int, help="HTTP error status, [400, 599] (for --kind status)")
    parser.add_argument("--retry-after", type=float, help="Retry-After seconds (for --kind status)")
    parser.add_argument("--result", help="the stand-in answer, as JSON (for --kind result)")


def _result(args: argparse.Namespace) -> dict[str, Any]:
    """The answer options as Scenario keywords (`result` only when given, so its absence is named)."""
    fields: dict[str, Any] = {"status": args.status, "retry_after": args.retry_after}
    if args.result is not None:
        try:
            fields["result"] = json.loads(args.result)
        except ValueError as exc:
            example = '{"rows": []}'
            raise InvalidScenario("result", f"--result must be JSON, such as '{example}'; {exc}") from None
    return fields


def _codec(args: argparse.Namespace, ttl: float = 60.0) -> HeaderCodec:
    raw = os.environ.get(args.secret_env, "")
    if not raw:
        raise ValueError(f"--secret-env: environment variable {args.secret_env} is not set")
    # the receivers' default max_ttl, so a header signed here is one every default receiver accepts
    return HeaderCodec([s for s in raw.split(",") if s], ttl=ttl, max_ttl=DEFAULT_MAX_TTL)


def _sign(args: argparse.Namespace) -> int:
    try:
        if not 0 < args.ttl <= DEFAULT_MAX_TTL:
            raise ValueError(
                f"--ttl: must be a number of seconds in (0, {DEFAULT_MAX_TTL:g}] (receivers refuse longer "
                f"lifetimes by default, max_ttl={DEFAULT_MAX_TTL:g}), got {args.ttl:g}"
            )
        audience = [name.strip() for given in args.audience for name in given.split(",")]
        # a warning (percent below 1) is told in the command's own words, not as a Python traceback line
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", FitWarning)
            scenario = Scenario(
                args.name, args.dependencies, args.kind, delay=args.delay, percent=args.percent,
                user_ids=args.user_ids, devices=args.devices, **_result(args),
            )
        for warning in caught:
            print(f"stoic fit sign: warning: {warning.message}", file=sys.stderr)
        identity = None if args.request_id is None else RequestIdentity(args.request_id)
        codec = _codec(args, args.ttl)
        value = codec.sign([scenario], identity=identity, audience=audience)
    except (InvalidScenario, ValueError) as exc:
        print(f"stoic fit sign: {exc}", file=sys.stderr)
        return 2
    print(f"-H '{codec.header}: {value}'" if args.curl else value)
    return 0


def _verify(args: argparse.Namespace) -> int:
    try:
        signed = _codec(args).verify(
            args.value, service=args.service, allow_no_audience=args.allow_no_audience
        )
    except InvalidHeader as exc:
        print(f"ignored: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"stoic fit verify: {exc}", file=sys.stderr)
        return 2
    identity = signed.identity
    print(json.dumps({
        "issued_at": signed.issued_at,
        "expires_at": signed.expires_at,
        "audience": None if signed.audience is None else list(signed.audience),
        "identity": None if identity is None else {
            "request_id": identity.request_id, "user_id": identity.user_id, "device": identity.device,
        },
        "scenarios": [s.to_dict() for s in signed.scenarios],
    }, indent=2))
    return 0


def _catalog(args: argparse.Namespace) -> int:
    action = args.catalog_action
    try:
        catalog = Catalog(registry=None)
        catalog.follow(args.board)  # the board given, else $STOIC_FAULT_BOARD; neither is an error
        if action == "add":
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", FitWarning)
                scenario = Scenario(
                    args.name, args.dependencies, args.kind, delay=args.delay, percent=args.percent,
                    user_ids=args.user_ids, devices=args.devices, ttl=args.ttl, **_result(args),
                )
            for warning in caught:
                print(f"stoic fit catalog: warning: {warning.message}", file=sys.stderr)
            catalog.add(scenario)
            print(f"added {scenario!r} to {catalog.board}")
        elif action == "remove":
            if not catalog.remove(args.name):
                print(
                    f"stoic fit catalog: name: no scenario called {args.name!r} on the board", file=sys.stderr
                )
                return 1
            print(f"removed {args.name}")
        elif action == "clear":
            catalog.clear()
            print("cleared")
        elif action == "halt":
            catalog.halt(args.reason)
            print(f"halted: no scenario injects anything while {catalog.board} has its kill switch on")
        elif action == "resume":
            catalog.resume()
            print("resumed")
        else:
            print(json.dumps(catalog.status(), indent=2))
    except (InvalidScenario, ValueError, TypeError, OSError) as exc:
        print(f"stoic fit catalog {action}: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m stoic.fit ...`: the same as `stoic fit ...`."""
    parser = argparse.ArgumentParser(prog="stoic")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["fit", *(sys.argv[1:] if argv is None else argv)])
    return int(args.handler(args))
