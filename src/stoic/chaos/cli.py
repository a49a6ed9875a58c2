"""`stoic chaos ...`: run the army from a config file, read the audit log, flip the kill switch."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._errors import AuditError, ChaosConfigError
from .army import RunReport
from .audit import OUTCOMES, AuditLog, default_actor
from .board import FaultBoard
from .config import ChaosConfig, load_config
from .conformity import ConformityMonkey, verified_lines
from .fleet import Fleet
from .safety import KillSwitch
from .supervisor import Supervisor
from .targets import ProcessTarget, Target


def add_parser(subparsers: Any) -> None:
    """Register ``stoic chaos`` and its sub-commands."""
    chaos = subparsers.add_parser("chaos", help="the Simian Army: break things on purpose, safely")
    sub = chaos.add_subparsers(dest="chaos_command", metavar="ACTION", required=True)

    run = sub.add_parser("run", help="start the configured fleet (if any) and run the monkeys")
    run.add_argument("--config", required=True, type=Path, help="chaos TOML file")
    run.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    run.add_argument("--runs", type=int, default=None, help="stop after this many runs")
    run.add_argument("--once", action="store_true", help="one run, then exit")
    run.add_argument("--leashed", action="store_true", help="decide and audit, but do not kill")
    run.add_argument("--speed", type=float, default=None, help="compressed clock: chaos seconds per second")
    run.add_argument(
        "--actor",
        default=None,
        help="who or what starts this run, kept in every audit entry (default: user:$USER; "
        "e.g. schedule:nightly, experiment:zone-drill)",
    )
    run.set_defaults(handler=_run)

    log = sub.add_parser("log", help="show the audit log")
    where = log.add_mutually_exclusive_group(required=True)
    where.add_argument("--db", type=Path, help="audit SQLite file")
    where.add_argument("--config", type=Path, help="chaos TOML file (uses its audit_db)")
    log.add_argument("--limit", type=int, default=50)
    log.add_argument("--monkey", default=None)
    log.add_argument("--outcome", default=None, choices=OUTCOMES)
    log.add_argument("--json", action="store_true", help="one JSON object per line")
    log.add_argument("--chart", type=Path, default=None, help="also draw a timeline PNG (needs matplotlib)")
    log.set_defaults(handler=_log)

    ks = sub.add_parser("kill-switch", help="stop all chaos now (on), allow it again (off), or show it")
    ks.add_argument("state", choices=("on", "off", "status"))
    where = ks.add_mutually_exclusive_group(required=True)
    where.add_argument("--state-dir", type=Path, help="the chaos state directory")
    where.add_argument("--config", type=Path, help="chaos TOML file (uses its state_dir)")
    ks.add_argument("--reason", default="", help="why (kept in the switch file)")
    ks.set_defaults(handler=_kill_switch)

    faults = sub.add_parser("faults", help="show or clear the fleet-wide fault board")
    faults.add_argument("state", choices=("show", "clear"))
    where = faults.add_mutually_exclusive_group(required=True)
    where.add_argument("--state-dir", type=Path)
    where.add_argument("--config", type=Path)
    faults.set_defaults(handler=_faults)

    conf = sub.add_parser("conformity", help="check the conformity rules once and report findings")
    conf.add_argument("--config", required=True, type=Path)
    conf.add_argument(
        "--dependencies",
        default=None,
        help="dependency snapshots: a JSON file or an http(s) URL (a list, or {'dependencies': [...]})",
    )
    conf.set_defaults(handler=_conformity)

    from .experiment_cli import add_experiment_parsers

    add_experiment_parsers(sub)


def _fail(message: str) -> int:
    print(f"stoic chaos: error: {message}", file=sys.stderr)
    return 2


def _warn(message: str) -> None:
    print(f"stoic chaos: warning: {message}", file=sys.stderr)


def _actor(given: str | None) -> str:
    if given:
        return given
    user = os.environ.get("USER")
    return f"user:{user}" if user else default_actor()


def _state_dir(args: argparse.Namespace) -> Path:
    return args.state_dir if args.state_dir is not None else load_config(args.config).state_dir


def _target(cfg: ChaosConfig, supervisor: Supervisor | None) -> Target:
    if cfg.target_kind == "kubernetes":
        from .kubernetes import KubernetesTarget

        o = cfg.target_options
        return KubernetesTarget(
            o.get("namespace", "default"),
            o.get("selector", ""),
            kubeconfig=o.get("kubeconfig"),
            context=o.get("context"),
        )
    assert supervisor is not None
    return ProcessTarget(supervisor)


def _run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
    except ChaosConfigError as exc:
        return _fail(str(exc))
    if args.speed is not None:
        if not 0 < args.speed <= 100_000:
            return _fail(f"--speed must be in (0, 100000]; got {args.speed}")
        cfg.speed = args.speed
    if args.leashed:
        cfg.leashed = True
    runs = 1 if args.once else args.runs
    if runs is not None and runs < 1:
        return _fail(f"--runs must be >= 1; got {runs}")
    if args.duration is not None and args.duration <= 0:
        return _fail(f"--duration must be > 0 seconds; got {args.duration}")
    try:  # before any instance starts: no audit, no chaos
        audit = AuditLog(cfg.audit_db, actor=_actor(args.actor))
    except AuditError as exc:
        return _fail(str(exc))
    supervisor = None
    if cfg.target_kind == "processes":
        supervisor = Supervisor(
            log_dir=cfg.state_dir / "logs", env={"STOIC_FAULT_BOARD": str(cfg.board.path)}
        )
    try:
        if supervisor is not None and cfg.instances:
            cfg.start_instances(supervisor)
            print(f"started {len(supervisor.instances)} instances; waiting until healthy", flush=True)
            supervisor.wait_healthy(supervisor.instances, timeout=30)
        army = cfg.army(_target(cfg, supervisor), audit=audit)
        mode = "leashed (dry run)" if army.leashed else "armed"
        names = ", ".join(m.name for m in army.monkeys) or "no monkeys"
        print(f"chaos {mode}: {names}; schedule {army.schedule.describe()}; audit {cfg.audit_db}", flush=True)
        tty = sys.stdout.isatty()
        unaudited: list[str] = []

        def progress(report: RunReport) -> None:
            for error in report.errors:
                unaudited.append(error)
                print(("\n" if tty else "") + f"stoic chaos: error: {error}", file=sys.stderr, flush=True)
            alive = len(army.target.fleet().alive())
            clock = report_time(report)
            line = f"[run {report.number}] {clock} alive {alive}: {report.summary()}"
            if report.entries or not tty:
                print(("\r" if tty else "") + line, flush=True)
                for e in report.entries:
                    print(f"    {e.monkey} {e.outcome} {e.target or '-'}: {e.reason}", flush=True)
            else:
                print("\r" + line, end="", flush=True)

        try:
            army.run(interval=cfg.interval, duration=args.duration, runs=runs, progress=progress)
        except KeyboardInterrupt:
            army.stop()
            print("\nstopped", flush=True)
    except (ChaosConfigError, TimeoutError, RuntimeError) as exc:
        return _fail(str(exc))
    finally:
        audit.close()
        if supervisor is not None:
            supervisor.close()
    return 1 if unaudited else 0


def report_time(report: RunReport) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(report.at, UTC).strftime("%a %Y-%m-%d %H:%M:%SZ")


def _log(args: argparse.Namespace) -> int:
    try:
        db = args.db if args.db is not None else load_config(args.config).audit_db
    except ChaosConfigError as exc:
        return _fail(str(exc))
    if not Path(db).exists():
        return _fail(f"--db {db} does not exist")
    if args.limit < 1:
        return _fail(f"--limit must be >= 1; got {args.limit}")
    try:
        return _print_log(args, AuditLog(db, readonly=True))
    except AuditError as exc:
        return _fail(str(exc))


def _print_log(args: argparse.Namespace, audit: AuditLog) -> int:
    with audit:
        entries = audit.entries(args.limit, monkey=args.monkey, outcome=args.outcome)
        for e in reversed(entries):
            if args.json:
                print(json.dumps(e.to_dict()))
            else:
                target = e.target or "-"
                print(
                    f"{e.when:%Y-%m-%d %H:%M:%S} {e.monkey:<18} {e.outcome:<10} {target:<24} {e.reason}"
                    + (f" [{e.actor}]" if e.actor else "")
                )
        if args.chart is not None:
            from .chart import timeline

            timeline(audit.entries(None), args.chart)
            print(f"chart: {args.chart}")
    return 0


def _kill_switch(args: argparse.Namespace) -> int:
    try:
        switch = KillSwitch(_state_dir(args) / "kill-switch")
    except ChaosConfigError as exc:
        return _fail(str(exc))
    try:
        if args.state == "on":
            switch.engage(args.reason or "engaged from the command line")
        elif args.state == "off":
            switch.release()
    except OSError as exc:
        # the file existing is the switch: say what really happened, not just that a write failed
        on = switch.path is not None and switch.path.exists()  # what other processes see
        if args.state == "on" and on:
            print(f"kill switch ON ({switch.path})")
            _warn(f"chaos is stopped, but the reason could not be written to {switch.path}: {exc}")
            return 0
        state = "still ON: chaos stays stopped" if on else "NOT on: chaos may run"
        return _fail(
            f"could not turn the kill switch {args.state} at {switch.path}: {exc}; the switch is {state}. "
            "Fix the directory (space, permissions) and try again"
        )
    print(f"kill switch {'ON' if switch.engaged else 'off'} ({switch.path})")
    return 0


def _faults(args: argparse.Namespace) -> int:
    try:
        board = FaultBoard(_state_dir(args) / "faults.json")
    except ChaosConfigError as exc:
        return _fail(str(exc))
    if args.state == "clear":
        try:
            board.clear()
        except OSError as exc:
            return _fail(f"could not clear the fault board {board.path}: {exc}; its faults still apply")
    rules = board.rules()
    for r in rules:
        print(f"{r.monkey}: {r.describe()}")
    if not rules:
        print("no active faults")
    return 0


def _conformity(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
        deps = _load_dependencies(args.dependencies) if args.dependencies else []
    except (ChaosConfigError, ValueError, OSError) as exc:
        return _fail(str(exc))
    monkeys = [m for m in cfg.monkeys() if isinstance(m, ConformityMonkey)]
    monkey = monkeys[0] if monkeys else ConformityMonkey(owners=cfg.owners, notifier=cfg.notifier)
    monkey.dependencies = lambda: deps
    kube = cfg.target_kind == "kubernetes"
    fleet = _target(cfg, None).fleet() if kube else Fleet(_declared(cfg))
    audit = _audit_if_any(cfg.audit_db)
    try:
        facts = monkey.facts(fleet, audit)
    finally:
        if audit is not None:
            audit.close()
    findings = [f for rule in monkey.rules for f in rule(facts)]
    for line in verified_lines(facts):
        print(line)
    for f in findings:
        print(f"[{f.rule}] {f.subject} (owner {f.owner}): {f.message}")
    for owner, why in monkey.report(findings).items():
        print(f"could not tell {owner}: {why}", file=sys.stderr)
    print(f"{len(findings)} finding(s)")
    return 1 if findings else 0


def _audit_if_any(path: Path) -> AuditLog | None:
    """The audit log read-only when it exists (conformity reads passed experiments from it)."""
    if not Path(path).exists():
        return None
    try:
        return AuditLog(path, readonly=True)
    except AuditError as exc:
        _warn(f"passed experiments cannot be read: {exc}")
        return None


def _declared(cfg: ChaosConfig) -> list[Any]:
    from dataclasses import replace

    return [replace(s, owner=s.owner or cfg.owners.get(s.app)) for s in cfg.instances]


def _load_dependencies(source: str) -> Sequence[Mapping[str, Any]]:
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=5) as resp:
            data = json.loads(resp.read())
    else:
        data = json.loads(Path(source).read_text())
    if isinstance(data, dict):
        data = data.get("dependencies", data.get("circuits"))
    if not isinstance(data, list) or not all(isinstance(d, dict) and "name" in d for d in data):
        raise ValueError("--dependencies must hold a JSON list of dependency snapshots (each with a 'name')")
    return data


__all__ = ["add_parser"]
