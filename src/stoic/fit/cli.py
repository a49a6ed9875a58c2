"""`stoic fit sign|verify`: make a signed failure-plan header (for curl), or check one.

The secret is read from an environment variable (never from the command line, where `ps` shows it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from typing import Any

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
    sign.add_argument("--delay", type=float, default=0.0, help="seconds (for --kind delay)")
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
                user_ids=args.user_ids, devices=args.devices,
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


def main(argv: list[str] | None = None) -> int:
    """`python -m stoic.fit ...`: the same as `stoic fit ...`."""
    parser = argparse.ArgumentParser(prog="stoic")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["fit", *(sys.argv[1:] if argv is None else argv)])
    return int(args.handler(args))
