"""Live dashboard streams at scale: one state computed per interval and fanned out, next to the state
computed for each subscriber.

Run: .venv/bin/python benchmarks/web_streams.py [--subscribers 200] [--dependencies 30] [--seconds 10]

A dashboard process with `--dependencies` guarded dependencies (real calls, real registry) serves
`--subscribers` SSE clients for `--seconds`, once through `/api/stream` (shared feed: one state per
interval for everyone) and once through a route that computes the state for each subscriber on its
own, as a dashboard without fan-out does. Meanwhile `/healthz` is asked every 0.2 s. Printed per
column: the median and worst `/healthz` latency, the median seconds between two frames a client
gets (the interval is 1 s), and the states computed per second. Each scenario runs in a fresh
server process on 127.0.0.1; everything is bounded by `--seconds`.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import selectors
import socket
import statistics
import subprocess
import sys
import time

import httpx

SERVER = r"""
import asyncio, sys, time
import uvicorn
from starlette.responses import StreamingResponse
from starlette.routing import Route
from stoic.fit import Catalog
from stoic.guard import Dependency, Registry
from stoic.web import create_app
from stoic.web._handlers import sources, state
from stoic.web._http import sse_frame

port, dependencies = int(sys.argv[1]), int(sys.argv[2])
registry = Registry()
for i in range(dependencies):
    dep = Dependency(f"dependency-{i:02d}", registry=registry, owner=f"team-{i % 6}")
    for _ in range(50):
        dep.call(lambda: "ok")
app = create_app(registry, scenarios=Catalog(), interval=1.0, max_streams=100_000)
computed = 0

async def per_subscriber(request):
    src = sources(request)
    async def frames():
        global computed
        for _ in range(600):
            computed += 1
            yield sse_frame(await state(src, 3600.0), event="state")
            await asyncio.sleep(src.interval)
    return StreamingResponse(frames(), media_type="text/event-stream")

async def count(request):
    from starlette.responses import JSONResponse
    return JSONResponse({"computed": computed})

app.router.routes.insert(0, Route("/per-subscriber", per_subscriber))
app.router.routes.insert(0, Route("/computed", count))
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", backlog=4096, timeout_graceful_shutdown=1)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(path: str, subscribers: int, dependencies: int, seconds: float) -> dict[str, float]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(dependencies)])
    url = f"http://127.0.0.1:{port}"
    socks: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start within 30 s")
            time.sleep(0.1)
        selector = selectors.DefaultSelector()
        arrivals: dict[int, list[float]] = {}
        for _ in range(subscribers):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
            socks.append(sock)
            arrivals[sock.fileno()] = []
        healthz: list[float] = []
        next_probe = time.monotonic()
        start = time.monotonic()
        end = start + seconds
        while time.monotonic() < end:
            for key, _ in selector.select(timeout=0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                with contextlib.suppress(BlockingIOError):
                    data = sock.recv(1 << 20)
                    arrivals[sock.fileno()].extend([time.monotonic()] * data.count(b"event: state"))
            if time.monotonic() >= next_probe:
                began = time.monotonic()
                httpx.get(f"{url}/healthz", timeout=30)
                healthz.append(time.monotonic() - began)
                next_probe = time.monotonic() + 0.2
        gaps = [b - a for times in arrivals.values() for a, b in itertools.pairwise(times)]
        computed = httpx.get(f"{url}/computed", timeout=30).json()["computed"]
        return {
            "healthz_median_ms": 1000 * statistics.median(healthz),
            "healthz_worst_ms": 1000 * max(healthz),
            "frame_gap_s": statistics.median(gaps) if gaps else float("nan"),
            # The shared feed computes one state per interval while anyone listens.
            "states_per_s": (computed if path != "/api/stream" else seconds * bool(subscribers)) / seconds,
        }
    finally:
        for sock in socks:
            sock.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--dependencies", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    idle = _run("/api/stream", 0, args.dependencies, args.seconds)
    shared = _run("/api/stream", args.subscribers, args.dependencies, args.seconds)
    each = _run("/per-subscriber", args.subscribers, args.dependencies, args.seconds)
    setup = f"{args.subscribers} SSE subscribers, {args.dependencies} dependencies, {args.seconds:g} s"
    print(f"{setup}, 1 s interval")
    print("(ratio: per subscriber / shared feed; 'no streams' is the same server with nobody subscribed)\n")
    print(f"{'':24}{'no streams':>12}{'shared feed':>14}{'per subscriber':>16}{'ratio':>8}")
    rows = [
        ("/healthz median (ms)", "healthz_median_ms", "{:.1f}"),
        ("/healthz worst (ms)", "healthz_worst_ms", "{:.1f}"),
        ("frame gap median (s)", "frame_gap_s", "{:.2f}"),
        ("states computed / s", "states_per_s", "{:.1f}"),
    ]
    for label, key, fmt in rows:
        a, b = shared[key], each[key]
        ratio = b / a if a else float("nan")
        print(f"{label:24}{fmt.format(idle[key]):>12}{fmt.format(a):>14}{fmt.format(b):>16}{ratio:>7.1f}x")


if __name__ == "__main__":
    main()
