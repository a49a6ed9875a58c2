"""`stoic signals ...`: the weekly report, a simulated week, alerts and churn from a history file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Register `stoic signals` and its sub-commands."""
    parser = subparsers.add_parser(
        "signals",
        help="leading indicators, alerts, weekly report, churn risk",
        description="Leading indicators, alerts, weekly report and churn risk.",
    )
    sub = parser.add_subparsers(dest="signals_command", metavar="ACTION", required=True)

    report = sub.add_parser("report", help="write the weekly HTML report from a history database")
    report.add_argument("--db", required=True, help="SQLite history file written by Signals(db=...)")
    report.add_argument("--out", required=True, help="HTML file to write, e.g. week.html")
    report.add_argument("--days", type=float, default=7.0, help="days to cover (default 7)")
    report.add_argument(
        "--end",
        type=float,
        default=None,
        help="unix time the report ends at (default: the newest data in --db)",
    )
    report.add_argument("--title", default="Stoic", help="name shown in the page title")
    report.add_argument(
        "--indicators", default=None, help="indicators file: render the weekly view it declares ([weekly])"
    )
    report.set_defaults(handler=_report)

    simulate = sub.add_parser("simulate", help="fill a history database with a simulated week")
    simulate.add_argument("--db", required=True, help="SQLite history file to create (must not exist)")
    simulate.add_argument("--days", type=int, default=7, help="days to simulate, 2..28 (default 7)")
    simulate.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    simulate.set_defaults(handler=_simulate)

    alerts = sub.add_parser("alerts", help="print the alerts of the last days as JSON lines")
    alerts.add_argument("--db", required=True, help="SQLite history file")
    alerts.add_argument("--days", type=float, default=7.0, help="days to look back from the newest data")
    alerts.set_defaults(handler=_alerts)

    check = sub.add_parser("check", help="validate an indicators file (TOML)")
    check.add_argument("file", help="indicators file, e.g. indicators.toml")
    check.set_defaults(handler=_check)

    run = sub.add_parser(
        "run", help="run an indicators file: pull, judge, alert, serve ingest, dashboard and /metrics"
    )
    run.add_argument("file", help="indicators file, e.g. indicators.toml")
    run.add_argument("--listen", default=None, help="HOST:PORT to serve on (default: service.listen)")
    run.set_defaults(handler=_run)


def _fail(message: str) -> int:
    print(f"stoic signals: {message}", file=sys.stderr)
    return 2


def _open(db: str) -> Any:
    from stoic.signals.history import History

    if not Path(db).is_file():
        raise FileNotFoundError(db)
    return History(db)


def _report(args: argparse.Namespace) -> int:
    from stoic.signals.report import weekly_report

    if not 0 < args.days <= 90:
        return _fail(f"--days: must be between 0 and 90, got {args.days:g}")
    config = None
    if args.indicators is not None:
        from stoic.signals.config import ConfigError, load

        try:
            config = load(args.indicators)
        except ConfigError as exc:
            return _fail(f"--indicators: {exc}")
    try:
        history = _open(args.db)
    except FileNotFoundError:
        return _fail(f"--db: no such file {args.db!r}")
    with history:
        end = args.end if args.end is not None else history.latest()
        if end is None:
            return _fail(f"--db: {args.db!r} holds no indicator data yet")
        end = end + 1.0 if args.end is None else end
        page = weekly_report(history, end=end, days=args.days, title=args.title, config=config)
    out = Path(args.out)
    if not out.parent.is_dir():
        return _fail(f"--out: directory {str(out.parent)!r} does not exist")
    out.write_text(page, encoding="utf-8")
    print(f"wrote {out} ({len(page) // 1024} KiB)")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from stoic.signals.simulate import simulate_week

    if not 2 <= args.days <= 28:
        return _fail(f"--days: must be between 2 and 28, got {args.days}")
    if Path(args.db).exists():
        return _fail(f"--db: {args.db!r} already exists; choose a new file")
    summary = simulate_week(args.db, days=args.days, seed=args.seed, progress=True)
    print(
        f"wrote {args.db}: {summary['days']} days, {summary['regions']} regions, "
        f"{summary['anomalies']} injected incidents"
    )
    return 0


def _alerts(args: argparse.Namespace) -> int:
    try:
        history = _open(args.db)
    except FileNotFoundError:
        return _fail(f"--db: no such file {args.db!r}")
    with history:
        end = (history.latest() or 0.0) + 1.0
        for alert in history.alerts(end - args.days * 86400.0, end):
            print(json.dumps(alert))
    return 0


def _check(args: argparse.Namespace) -> int:
    from stoic.signals.config import ConfigError, load

    try:
        config = load(args.file)
    except ConfigError as exc:
        return _fail(f"{args.file}: {exc}")
    for i, spec in enumerate(config.indicators):
        if spec.source == "file" and not config.path(spec.file).is_file():
            return _fail(f"{args.file}: indicators[{i}].file: no such file {str(config.path(spec.file))!r}")
    names = ", ".join(spec.name for spec in config.indicators)
    receivers = len(config.alertmanagers) + len(config.webhooks)
    print(f"{args.file}: ok: {len(config.indicators)} indicators ({names}), {receivers} receivers")
    if not receivers:
        print(f"{args.file}: note: no [receivers]; alerts are kept in history and shown, not sent")
    return 0


def _run(args: argparse.Namespace) -> int:
    import dataclasses
    import os

    from stoic.signals.config import ConfigError, load
    from stoic.signals.ingest import IngestError
    from stoic.signals.prometheus import PrometheusError

    try:
        config = load(args.file)
        if args.listen is not None:
            from stoic.signals.config import listen_address

            host, port = listen_address(args.listen)
            config = dataclasses.replace(config, listen_host=host, listen_port=port)
    except (ConfigError, ValueError) as exc:
        return _fail(f"{args.file}: {exc}" if isinstance(exc, ConfigError) else f"--listen: {exc}")
    import uvicorn

    from stoic.signals.metrics import SignalsCollector
    from stoic.signals.service import SignalsService
    from stoic.web import create_app

    url = f"http://{config.listen_host}:{config.listen_port}/"
    service = SignalsService(config, generator_url=url)
    try:
        service.start()
    except (IngestError, PrometheusError) as exc:
        service.close()
        return _fail(str(exc))
    token = os.environ.get(config.token_env) or None
    app = create_app(signals=service, token=token, title="Stoic signals")
    app.state.metrics.register(SignalsCollector(service))
    from stoic.signals.silences_api import routes as silence_routes

    app.router.routes[:0] = silence_routes(service, token)  # GET/POST /api/silences, DELETE one
    writes = f"ingest token from ${config.token_env}" if token else f"ingest refused: set ${config.token_env}"
    served = f"{len(config.indicators)} indicators; {writes}"
    print(f"stoic signals: {url} ({served})", file=sys.stderr, flush=True)
    try:
        uvicorn.run(
            app,
            host=config.listen_host,
            port=config.listen_port,
            log_level="warning",
            timeout_graceful_shutdown=2,
        )
    finally:
        service.close()
    return 0
