"""`stoic chaos experiment run | list | show` and `stoic chaos plan`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ._errors import AuditError, ChaosConfigError
from .audit import AuditEntry, AuditLog
from .experiment import VERDICTS, Experiment, Hypothesis, verdicts, verified_fallbacks
from .plan import plan
from .safety import KillSwitch
from .stop import StopConditions

#: exit codes of `experiment run`: 0 passed, 1 failed or aborted, 2 bad input, 3 inconclusive
_EXIT = {"passed": 0, "failed": 1, "aborted": 1, "inconclusive": 3}
SECRET_ENV = "STOIC_FIT_SECRET"


def add_experiment_parsers(sub: Any) -> None:
    """Register ``experiment`` and ``plan`` under ``stoic chaos``."""
    exp = sub.add_parser("experiment", help="fail a dependency for a share of requests and judge the KPIs")
    actions = exp.add_subparsers(dest="experiment_command", metavar="ACTION", required=True)

    run = actions.add_parser("run", help="run one experiment against a service, with probe traffic")
    _where(run)
    run.add_argument("--name", required=True, help="the experiment's name (also its FIT scenario's)")
    run.add_argument("--dependency", action="append", required=True, help="dependency to fail (repeatable)")
    run.add_argument("--kind", default="error", choices=("error", "delay", "timeout", "reject"))
    run.add_argument("--delay", type=float, default=0.0, help="seconds added when --kind delay")
    run.add_argument("--share", type=float, default=0.01, help="treatment share of requests, in (0, 0.5]")
    run.add_argument("--duration", type=float, default=60.0, help="seconds (unless aborted first)")
    run.add_argument(
        "--hypothesis",
        action="append",
        default=None,
        help="KPI:TOLERANCE, repeatable (default error_rate:0.01 and p99_latency:0.5)",
    )
    run.add_argument("--min-samples", type=int, default=20, help="requests per cohort before judging")
    run.add_argument("--alpha", type=float, default=0.05, help="significance of the final verdict")
    run.add_argument("--abort-alpha", type=float, default=0.001, help="significance needed to abort")
    run.add_argument("--url", required=True, help="where the probe sends its requests")
    run.add_argument("--method", default="GET", choices=("GET", "POST", "PUT"))
    run.add_argument("--body", default=None, help="request body; {request_id} is replaced per request")
    run.add_argument("--rate", type=float, default=20.0, help="probe requests per second")
    run.add_argument("--timeout", type=float, default=5.0, help="seconds per probe request")
    run.add_argument(
        "--audience",
        action="append",
        required=True,
        help="service names (or globs) that honour the FIT header, repeatable: a header they ignore "
        "would leave the treatment unharmed and the experiment passed for nothing",
    )
    run.add_argument("--actor", default=None, help="who runs it, kept in the audit log (default user:$USER)")
    run.set_defaults(handler=_run)

    shows = (("list", "the experiments' starts and verdicts"), ("show", "one experiment's entries"))
    for name, what in shows:
        p = actions.add_parser(name, help=f"show {what}")
        if name == "show":
            p.add_argument("name")
        _where(p)
        p.add_argument("--limit", type=int, default=50)
        p.add_argument("--json", action="store_true", help="one JSON object per line")
        p.set_defaults(handler=_list)

    pl = sub.add_parser("plan", help="one FIT experiment per guarded dependency, most worth running first")
    pl.add_argument(
        "--guard",
        action="append",
        required=True,
        help="a service's /guard URL or a JSON file of dependency snapshots (repeatable)",
    )
    _where(pl, required=False)
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(handler=_plan)


def _where(parser: argparse.ArgumentParser, required: bool = True) -> None:
    where = parser.add_mutually_exclusive_group(required=required)
    where.add_argument("--config", type=Path, help="chaos TOML file (its audit_db, kill switch and [stop])")
    where.add_argument("--state-dir", type=Path, help="chaos state directory (audit.db, kill-switch)")


def _places(args: argparse.Namespace) -> tuple[Path, KillSwitch, StopConditions | None]:
    from .config import load_config

    if args.config is not None:
        cfg = load_config(args.config)
        return cfg.audit_db, cfg.kill_switch, cfg.stop
    return args.state_dir / "audit.db", KillSwitch(args.state_dir / "kill-switch"), None


def _run(args: argparse.Namespace) -> int:
    from stoic.fit import HeaderCodec, InvalidScenario, Scenario

    from .cli import _actor, _fail
    from .probe import Probe

    secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        return _fail(f"${SECRET_ENV} must hold the FIT secret the services verify headers with")
    try:
        db, switch, stop = _places(args)
        hypotheses = [Hypothesis.parse(h) for h in args.hypothesis or ["error_rate:0.01", "p99_latency:0.5"]]
        fault = Scenario(args.name, args.dependency, args.kind, delay=args.delay)
        codec = HeaderCodec(secret, audience=args.audience)
        audit = AuditLog(db, actor=_actor(args.actor))
    except (ChaosConfigError, InvalidScenario, ValueError, AuditError) as exc:
        return _fail(str(exc))
    try:
        exp = Experiment(
            args.name,
            fault,
            hypotheses,
            share=args.share,
            duration=args.duration,
            min_samples=args.min_samples,
            alpha=args.alpha,
            abort_alpha=args.abort_alpha,
            audit=audit,
            kill_switch=switch,
            stop=stop,
            codec=codec,
        )
        probe = Probe(
            args.url,
            headers_for=exp.headers,
            observe=exp.observe,
            method=args.method,
            body=args.body,
            rate=args.rate,
            timeout=args.timeout,
        )
        exp.start_background()
    except (ChaosConfigError, AuditError, RuntimeError) as exc:
        audit.close()
        return _fail(str(exc))
    print(f"experiment {exp.name}: {exp.describe()}", flush=True)
    try:
        probe.run(exp.duration + exp.check_every, stop=lambda: exp.verdict is not None)
        verdict = exp.wait(exp.check_every * 4 + 5.0) or exp.abort("the probe ended before a verdict")
    except KeyboardInterrupt:
        verdict = exp.abort("interrupted from the command line")
    finally:
        audit.close()
    print(f"{probe.sent} requests sent ({exp.samples()[0]} treatment, {exp.samples()[1]} control)")
    for c in verdict.checks:
        print(f"  {c.describe()}")
    print(verdict.summary())
    return _EXIT[verdict.outcome]


def _open(args: argparse.Namespace) -> AuditLog:
    db, _, _ = _places(args)
    if not Path(db).exists():
        raise ChaosConfigError(f"audit log {db} does not exist: no experiment has run with it")
    return AuditLog(db, readonly=True)


def _list(args: argparse.Namespace) -> int:
    from .cli import _fail

    if args.limit < 1:
        return _fail(f"--limit must be >= 1; got {args.limit}")
    try:
        with _open(args) as audit:
            entries = verdicts(audit, args.limit, getattr(args, "name", None))
    except (ChaosConfigError, AuditError) as exc:
        return _fail(str(exc))
    if getattr(args, "name", None) and not entries:
        return _fail(f"no experiment called {args.name!r} in the audit log")
    for e in reversed(entries):
        print(json.dumps(e.to_dict()) if args.json else _line(e))
    return 0


def _line(e: AuditEntry) -> str:
    marker = e.outcome.upper() if e.outcome in VERDICTS else e.outcome
    actor = f" [{e.actor}]" if e.actor else ""
    return f"{e.when:%Y-%m-%d %H:%M:%S} {e.target:<28} {marker:<12} {e.reason}{actor}"


def _plan(args: argparse.Namespace) -> int:
    from .cli import _fail, _load_dependencies

    snapshots: list[Any] = []
    try:
        for source in args.guard:
            snapshots.extend(_load_dependencies(source))
        verified = {}
        if args.config is not None or args.state_dir is not None:
            db, _, _ = _places(args)
            if Path(db).exists():
                with AuditLog(db, readonly=True) as audit:
                    verified = verified_fallbacks(audit)
    except (ChaosConfigError, AuditError, ValueError, OSError) as exc:
        return _fail(f"--guard: {exc}" if not isinstance(exc, ChaosConfigError | AuditError) else str(exc))
    planned = plan(snapshots, verified)
    for p in planned:
        if args.json:
            print(json.dumps(p.to_dict()))
        else:
            levels = f" -> {', '.join(p.fallbacks)}" if p.fallbacks else ""
            print(f"{p.rank:>3}. {p.dependency} ({p.owner}, {p.requests} requests{levels}): {p.status}")
            print(f"     {p.command()}")
    if not planned:
        print("no guarded dependencies in the snapshots", file=sys.stderr)
    return 0


__all__ = ["add_experiment_parsers"]
