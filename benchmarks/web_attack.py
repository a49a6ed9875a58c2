"""`/healthz` while clients hold connections open with half-sent headers (a slowloris), against
`stoic web` with its connection limits and against the same app on plain uvicorn, side by side.

Run: .venv/bin/python benchmarks/web_attack.py [--attackers 3000] [--probes 40]

Each server runs in its own process on 127.0.0.1 with the same open-file limit (2048). The attack
opens `--attackers` connections, each sending an unfinished request header, and keeps them open;
meanwhile `/healthz` is asked `--probes` times, one at a time, each with a 5 s timeout. Printed per
server: answered probes, the median and worst `/healthz` latency, and how many attacking
connections the server still held at the end. Everything is bounded by the probe count and its
timeouts.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from stoic.chaos import free_port

PARTIAL = b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
FILE_LIMIT = 2048  # the server's descriptors: fewer than the attackers, as on a real host under attack
TARGET_MS = 100.0

PLAIN = r"""
import sys, uvicorn
from stoic.guard import Registry
from stoic.web import create_app
uvicorn.run(create_app(Registry()), host="127.0.0.1", port=int(sys.argv[1]), log_level="critical")
"""


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, FILE_LIMIT))


def _start(kind: str, port: int) -> subprocess.Popen[bytes]:
    if kind == "stoic web":
        stoic = str(Path(sys.executable).parent / "stoic")
        command = [stoic, "web", "--port", str(port), "--token", "x" * 32]
    else:
        command = [sys.executable, "-c", PLAIN, str(port)]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_limit
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{kind} did not start on port {port}")


def _held(sockets: list[socket.socket]) -> int:
    still = 0
    for sock in sockets:
        sock.setblocking(False)
        try:
            still += sock.recv(1) != b""
        except BlockingIOError:
            still += 1
        except OSError:
            pass
    return still


def run(kind: str, attackers: int, probes: int) -> tuple[int, float, float, int]:
    port = free_port()
    process = _start(kind, port)
    sockets: list[socket.socket] = []
    try:
        for _ in range(attackers):
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=2)
                sock.sendall(PARTIAL)
                sockets.append(sock)
            except OSError:
                break  # the listen queue is full: the attack is as large as it can get
        times: list[float] = []
        for _ in range(probes):
            start = time.perf_counter()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200:
                    times.append((time.perf_counter() - start) * 1000)
            time.sleep(0.05)
        held = _held(sockets)
    finally:
        for sock in sockets:
            sock.close()
        process.kill()
        process.wait(10)
    if not times:
        return 0, float("nan"), float("nan"), held
    return len(times), statistics.median(times), max(times), held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attackers", type=int, default=3000)
    parser.add_argument("--probes", type=int, default=40)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.attackers + 256)), hard))
    print(f"/healthz under {args.attackers} half-sent requests, server open-file limit {FILE_LIMIT}")
    print(f"{'server':<28} {'answered':>9} {'median ms':>10} {'worst ms':>9} {'attackers held':>15}")
    rows = {}
    for kind in ("plain uvicorn", "stoic web"):
        answered, median, worst, held = rows[kind] = run(kind, args.attackers, args.probes)
        print(f"{kind:<28} {answered:>5}/{args.probes:<3} {median:>10.1f} {worst:>9.1f} {held:>15}")
    answered, median, _, _ = rows["stoic web"]
    met = answered == args.probes and median < TARGET_MS
    verdict = "met" if met else "missed"
    print(f"target: stoic web answers every /healthz, median < {TARGET_MS:.0f} ms ... {verdict}")


if __name__ == "__main__":
    main()
