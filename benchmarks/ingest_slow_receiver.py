"""How long `Signals.ingest()` takes while a receiver never answers, next to no receiver at all.

Run: .venv/bin/python benchmarks/ingest_slow_receiver.py [--regions 30] [--seconds 240] [--rounds 3]

Each scenario feeds the same compressed traffic through `ingest()` (one body per simulated second,
one `sps` metric per region): a learnt baseline, then every region drops by 60 %, so one alert per
region is routed in the same evaluation. "dead receiver" points every alert at a loopback socket
that accepts connections and never replies (each POST waits its 2 s timeout); "no receiver" routes
nowhere. Ingest only writes notifications to the outbox, so both columns should match: the
worker, not the caller, waits on the receiver. The run is bounded: a fixed number of ingests, and
closing each Signals waits at most 0.5 s for the stuck worker. The scenarios alternate for
`--rounds` rounds and each figure is the median over rounds, so the drift of a shared machine
falls on both columns alike.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import socket
import statistics
import threading
import time

from stoic.signals import Ownership, Signals, WebhookReceiver


class _Clock:
    def __init__(self) -> None:
        self.now = 1_764_028_800.0

    def __call__(self) -> float:
        return self.now


class _Silent:
    """Accepts TCP connections on 127.0.0.1 and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while len(self.held) < 1000:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for conn in self.held:
            conn.close()
        self.thread.join(timeout=5)


def run(receiver_url: str | None, regions: int, seconds: int) -> dict[str, float]:
    clock = _Clock()
    names = [f"r{i:02d}" for i in range(regions)]
    receivers = [WebhookReceiver("pager", receiver_url)] if receiver_url else []
    owners = Ownership.from_dict({"teams": {"ops": {"receivers": ["pager"]}}, "default": "ops"})
    signals = Signals(interval=1.0, day=60.0, ownership=owners, receivers=receivers, clock=clock)
    rng = random.Random(3)
    drop_at = seconds - 30
    latencies: list[float] = []
    around_drop: list[float] = []
    for second in range(seconds):
        factor = 0.4 if second >= drop_at else 1.0
        body = {
            "observations": [
                {"type": "metric", "name": "sps", "region": r, "value": factor * rng.gauss(100.0, 2.0)}
                for r in names
            ]
        }
        t0 = time.perf_counter()
        signals.ingest(body)
        elapsed = time.perf_counter() - t0
        latencies.append(elapsed)
        if second >= drop_at:
            around_drop.append(elapsed)
        clock.now += 1.0
    routed = sum(1 for a in signals.alerts() if a["status"] == "firing")
    attempts = len(signals.deliveries())
    waiting = signals.router.outbox.undelivered()
    t0 = time.perf_counter()
    signals.close(timeout=0.5)
    closing = time.perf_counter() - t0
    latencies.sort()
    return {
        "ingests": len(latencies),
        "alerts": routed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "max_ms": 1000 * latencies[-1],
        "drop_max_ms": 1000 * max(around_drop),
        "attempts": attempts,
        "waiting": waiting,
        "close_s": closing,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", type=int, default=30)
    parser.add_argument("--seconds", type=int, default=240)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    regions = max(1, min(args.regions, 200))
    seconds = max(60, min(args.seconds, 2000))
    rounds = max(1, min(args.rounds, 20))
    silent = _Silent()
    runs: dict[str, list[dict[str, float]]] = {"no receiver": [], "dead receiver": []}
    try:
        for _ in range(rounds):
            runs["no receiver"].append(run(None, regions, seconds))
            runs["dead receiver"].append(run(silent.url, regions, seconds))
    finally:
        silent.close()
    results = {
        name: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for name, rs in runs.items()
    }
    print(
        f"ingest() latency, {regions} regions, {seconds} ingests, every region drops for the last 30; "
        f"median of {rounds} rounds"
    )
    rows = [
        ("ingests", "ingests", "{:.0f}"),
        ("alerts firing at the end", "alerts", "{:.0f}"),
        ("ingest p50 (ms)", "p50_ms", "{:.2f}"),
        ("ingest p99 (ms)", "p99_ms", "{:.2f}"),
        ("ingest max (ms)", "max_ms", "{:.2f}"),
        ("max while alerts fire (ms)", "drop_max_ms", "{:.2f}"),
        ("notifications in the outbox", "waiting", "{:.0f}"),
        ("delivery attempts finished", "attempts", "{:.0f}"),
        ("close() (s)", "close_s", "{:.2f}"),
    ]
    print(f"{'':28} {'no receiver':>14} {'dead receiver':>14}")
    for label, key, fmt in rows:
        print(
            f"{label:28} {fmt.format(results['no receiver'][key]):>14} "
            f"{fmt.format(results['dead receiver'][key]):>14}"
        )


if __name__ == "__main__":
    main()
