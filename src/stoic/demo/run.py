"""`run_demo`: start the platform, run a compressed day of viewers under the Simian Army, report."""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stoic.chaos import AuditLog, FaultBoard

from ._fleet_guard import FleetGuardView
from ._progress import ProgressLine
from .drill import ChaosEvent, Drill, Strike, default_strikes
from .platform import Platform
from .report import Report, percentile
from .viewers import DailyPattern, PlayRecord, Viewers

MIN_DURATION = 20.0
MAX_DURATION = 3600.0


@dataclass(frozen=True)
class DemoOptions:
    """How to run the demo; every field is checked here, with a message naming it."""

    duration: float = 120.0
    seed: int = 1
    out: Path = Path("out/demo")
    chaos: bool = True
    dashboard: int | None = None
    peak: float = 12.0  # enough starts a bucket for a region gone for two buckets to be plain
    members: int = 200  # few enough that viewers come back within a run, so snapshots exist
    start_hour: float = 6.0  # the clock hour the compressed day starts at
    strikes: Sequence[Strike] | None = None  # None: the standard drill

    def __post_init__(self) -> None:
        if (
            isinstance(self.duration, bool)
            or not isinstance(self.duration, int | float)
            or not MIN_DURATION <= self.duration <= MAX_DURATION
        ):
            raise ValueError(
                f"duration: must be {MIN_DURATION:g}..{MAX_DURATION:g} seconds, got {self.duration!r}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise ValueError(f"seed: must be an integer in 0..{2**32 - 1}, got {self.seed!r}")
        if self.dashboard is not None and (
            isinstance(self.dashboard, bool)
            or not isinstance(self.dashboard, int)
            or not 1 <= self.dashboard <= 65535
        ):
            raise ValueError(f"dashboard: must be a TCP port in 1..65535, got {self.dashboard!r}")
        if (
            isinstance(self.peak, bool)
            or not isinstance(self.peak, int | float)
            or not 0.5 <= self.peak <= 100
        ):
            raise ValueError(f"peak: must be 0.5..100 stream starts per second, got {self.peak!r}")
        if (
            isinstance(self.members, bool)
            or not isinstance(self.members, int)
            or not 10 <= self.members <= 100_000
        ):
            raise ValueError(f"members: must be an integer in 10..100000, got {self.members!r}")
        if (
            isinstance(self.start_hour, bool)
            or not isinstance(self.start_hour, int | float)
            or not 0 <= self.start_hour < 24
        ):
            raise ValueError(f"start_hour: must be a clock hour in [0, 24), got {self.start_hour!r}")
        if self.strikes is not None and not all(isinstance(s, Strike) for s in self.strikes):
            raise ValueError("strikes: must be a list of stoic.demo.Strike")


def check_port_free(port: int) -> None:
    """Raise a clear error when something already listens on loopback `port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ValueError(f"dashboard: port {port} is not free on 127.0.0.1 ({exc.strerror})") from None


def _signals(duration: float) -> Any:
    """A `stoic.signals.Signals` on a compressed day, or None when the extra is not installed."""
    try:
        from stoic.signals import Signals
    except ImportError:
        return None
    interval = duration / 48  # a compressed half hour per bucket: 48 per day, whatever the duration
    return Signals(interval=interval, day=duration, time_scale=86400.0 / duration, lookback=10 * interval)


class _Errors:
    """Errors of a part the plays do not depend on (the signals): they must not stop the run, and
    must not vanish either. The first of each kind is said at once; all are counted for the
    report."""

    def __init__(self, part: str, progress: ProgressLine) -> None:
        self.part, self.progress = part, progress
        self.seen: Counter[str] = Counter()

    @contextlib.contextmanager
    def caught(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:  # reported and counted, never dropped
            what = f"{self.part}: {type(exc).__name__}: {exc}"
            if not self.seen[what]:
                self.progress.say(what)
            self.seen[what] += 1


def _learn_earlier_days(signals: Any, viewers: Viewers, start: float, days: int = 7) -> None:
    """Stream starts by region over the compressed week before this run, drawn from the same
    daily pattern: the platform was watched before today (as a service learns its backfill), so
    the detectors know the evening's fall and what each region usually carries."""
    from stoic.signals.indicators import SPS

    interval = signals.interval
    first = math.floor(start / interval)  # the first live bucket
    per_region: dict[str, Counter[int]] = {region: Counter() for region in viewers.regions}
    for at, region in viewers.earlier_days(days):
        per_region[region][math.floor((start + at) / interval)] += 1
    buckets = range(first - round(days * viewers.pattern.duration / interval), first)
    for region, starts in per_region.items():
        signals.learn_history(SPS, region, [(i * interval, starts[i] / interval) for i in buckets])


@contextlib.contextmanager
def _dashboard(
    port: int | None,
    fleet: FleetGuardView,
    signals: Any,
    audit: AuditLog,
    scenarios: _ActiveScenarios,
    progress: ProgressLine,
) -> Iterator[None]:
    if port is None:
        yield
        return
    try:
        import uvicorn

        from stoic.web import create_app
    except ImportError as exc:
        progress.say(f"dashboard unavailable ({exc}); carrying on without it")
        yield
        return
    fleet.start()
    app = create_app(fleet, signals=signals, chaos_log=audit, scenarios=scenarios, title="Stoic demo")
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
    thread.start()
    progress.say(f"dashboard: http://127.0.0.1:{port}/")
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(5.0)
        fleet.stop()


class _ActiveScenarios:
    """The drill's FIT scenarios, shaped for the dashboard's scenario list (read-only)."""

    def __init__(self, drill: Drill | None) -> None:
        self._drill = drill

    @property
    def scenarios(self) -> list[Any]:
        return self._drill.fit_scenarios() if self._drill is not None else []


class _Live:
    """What the progress line shows, updated as plays finish."""

    def __init__(self) -> None:
        self.records: list[PlayRecord] = []
        self.lock = threading.Lock()

    def add(self, rec: PlayRecord) -> None:
        with self.lock:
            self.records.append(rec)

    def line(self, now: float, duration: float, pattern: DailyPattern, active: list[ChaosEvent]) -> str:
        with self.lock:
            recs = list(self.records)
        ok = [r for r in recs if r.ok]
        recent = [r for r in ok if r.at >= now - 5.0]
        lat = [r.latency * 1000 for r in recent]
        degraded = sum(1 for r in recent if any(s != "primary" for s in r.sources.values()))
        hour = pattern.hour(min(now, duration))
        chaos = ", ".join(f"{e.kind} {e.target}" for e in active) or "calm"
        return (
            f"[{min(now, duration):5.1f}/{duration:.0f}s {int(hour):02d}:{int(hour % 1 * 60):02d}] "
            f"plays {len(recs)} failed {len(recs) - len(ok)} | SPS {len(recent) / 5:.1f} "
            f"| p99 {percentile(lat, 0.99):.0f} ms | fallback {degraded / len(recent) if recent else 0:.0%} "
            f"| {chaos}"
        )


def run_demo(options: DemoOptions, progress: ProgressLine | None = None) -> Report:
    """Run the demo end to end and write its report into `options.out`; returns the `Report`."""
    progress = progress or ProgressLine()
    if options.dashboard is not None:
        check_port_free(options.dashboard)
    out = Path(options.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out: {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    for old in (out / "chaos").glob("audit.sqlite*"):  # each run audits its own chaos only
        old.unlink()
    board = FaultBoard(out / "chaos" / "faults.json")
    board.clear()
    board.kill_switch_path.unlink(missing_ok=True)  # a new run starts armed; throwing it is per run
    audit = AuditLog(out / "chaos" / "audit.sqlite")
    signals = _signals(options.duration)
    pattern = DailyPattern(options.duration, peak=options.peak, start_hour=options.start_hour)
    live = _Live()
    platform = Platform(out / "platform", fault_board=board.path)
    drill: Drill | None = None
    viewers: Viewers | None = None
    started = time.monotonic()
    live_from = 0.0  # the epoch second the load starts at
    signals_errors = _Errors("stoic.signals", progress)
    try:
        platform.start(progress=lambda up, total: progress.update(f"starting the platform: {up}/{total} up"))
        startup = time.monotonic() - started
        progress.say(
            f"platform up: {len(platform.instances)} processes in {len(platform.topology.zones)} zones"
            f" of {len(platform.topology.regions)} regions, {startup:.1f}s"
        )
        processes = {ep.id: ep.url for ep in platform.topology.endpoints if ep.app not in ("evcache",)}
        fleet = FleetGuardView(processes)

        def on_event(event: ChaosEvent) -> None:
            progress.say(
                f"  {event.at:5.1f}s  {event.description}: {event.outcome}"
                + (f" ({', '.join(event.victims)})" if event.victims else "")
                + (f" - {event.reason}" if event.reason and not event.victims else "")
            )
            if signals is not None:
                region = event.target if event.kind == "chaos-kong" else None
                with signals_errors.caught():
                    signals.add_event(
                        "chaos", target=event.target, description=event.description, region=region
                    )

        def on_start(rec: PlayRecord) -> None:
            live.add(rec)
            if drill is not None:
                drill.observe(rec)  # every strike's verdict is judged on the plays
            if signals is not None:
                with signals_errors.caught():
                    # by the region that served it: an evacuated region's SPS falls, the other's rises
                    signals.observe_start(rec.region or rec.home, ok=rec.ok, account=rec.user_id)

        def on_play(rec: PlayRecord) -> None:
            if signals is not None and rec.watched > 0:
                with signals_errors.caught():
                    signals.observe_playback(
                        rec.region or rec.home, watched_s=rec.watched, rebuffer_s=rec.rebuffer
                    )

        if options.chaos:
            progress.say(f"kill switch: touch {board.kill_switch_path} to stop all chaos at once")
            strikes = (
                list(options.strikes)
                if options.strikes is not None
                else default_strikes(platform, options.seed)
            )
            drill = Drill(
                platform,
                strikes,
                options.duration,
                audit=audit,
                board=board,
                seed=options.seed,
                on_event=on_event,
            )
        viewers = Viewers(
            platform.edges,
            platform.topology.regions,
            pattern,
            seed=options.seed,
            members=options.members,
            fit_headers=drill.fit_headers if drill else None,
            on_start=on_start,
            on_play=on_play,
        )
        if signals is not None:  # the load starts on a bucket's edge: every bucket it fills is whole
            time.sleep(-time.time() % signals.interval)
        live_from = time.time()
        if signals is not None:
            with signals_errors.caught():
                _learn_earlier_days(signals, viewers, live_from)
        with _dashboard(options.dashboard, fleet, signals, audit, _ActiveScenarios(drill), progress):
            asyncio.run(_drive(viewers, drill, live, pattern, options.duration, progress))
    finally:
        progress.final()
        if drill is not None:
            drill.stop()
        platform.close()
        audit.close()
    alerts: list[dict[str, Any]] = []
    if signals is not None:
        with signals_errors.caught():
            signals.evaluate()
            alerts = list(signals.alerts())
        with signals_errors.caught():
            signals.close()
    report = Report(
        list(viewers.records) if viewers else [],
        list(drill.events) if drill else [],
        pattern,
        options.duration,
        options.seed,
        alerts=alerts,
        skipped=viewers.skipped if viewers else 0,
        startup_seconds=startup,
        started_at=live_from,
        errors=dict(signals_errors.seen),
    )
    report.write(out)
    return report


async def _drive(
    viewers: Viewers,
    drill: Drill | None,
    live: _Live,
    pattern: DailyPattern,
    duration: float,
    progress: ProgressLine,
) -> None:
    t0 = time.monotonic()
    if drill is not None:
        drill.start(t0)

    async def tick() -> None:
        while True:
            now = time.monotonic() - t0
            progress.update(live.line(now, duration, pattern, drill.active() if drill else []))
            await asyncio.sleep(0.5)

    ticker = asyncio.create_task(tick())
    try:
        await viewers.run(duration, t0=t0, linger=min(8.0, max(3.0, duration / 10)))
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
