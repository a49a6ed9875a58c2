"""The fleet-wide FIT catalogue: how soon every process sees a change and the kill switch, and what
following the board costs a request.

    python benchmarks/fit_board.py [--followers N] [--rounds R] [--check-every S]

N follower processes each follow one fault board (`Catalog.follow`) and ask their catalog every 2 ms,
as a busy service's requests would; each reports the moment (CLOCK_MONOTONIC, shared by every process
on the host) it first sees a scenario added, removed, the kill switch thrown and released. The table
shows, per change, the delay from the write to the last process that saw it. Target: halt-all within
1 s in every process (the default check_every is 0.1 s, so about 0.1 s is expected).

The second table is the per-request price: `Catalog.matching` for one request on a catalog of this
process only, against one following the board (one clock read, and a `stat` of the board and of the
kill switch every check_every).
"""

from __future__ import annotations

import argparse
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stoic.fit import Catalog, RequestIdentity, Scenario

FOLLOWER = """
import sys, time
from stoic.fit import catalog
catalog.follow(sys.argv[1], check_every=float(sys.argv[2]))
print("ready", flush=True)
seen = (False, False)
end = time.monotonic() + 600
while time.monotonic() < end:
    now = (catalog.get("probe") is not None, catalog.halted())
    if now != seen:
        print(f"{int(now[0])}{int(now[1])} {time.monotonic()}", flush=True)
        seen = now
    time.sleep(0.002)
"""
CHANGES = ("add", "halt", "resume", "remove")


def propagation(followers: int, rounds: int, check_every: float) -> dict[str, list[float]]:
    board = Path(tempfile.mkdtemp()) / "faults.json"
    console = Catalog(board=board, registry=None)
    procs = [
        subprocess.Popen([sys.executable, "-c", FOLLOWER, str(board), str(check_every)],
                         stdout=subprocess.PIPE, text=True)
        for _ in range(followers)
    ]
    delays: dict[str, list[float]] = {change: [] for change in CHANGES}
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for _ in range(rounds):
            for change, state in zip(CHANGES, ("10", "11", "10", "00"), strict=True):
                written = time.monotonic()
                if change == "add":
                    console.add(Scenario("probe", "ratings"))
                elif change == "halt":
                    console.halt("benchmark")
                elif change == "resume":
                    console.resume()
                else:
                    console.remove("probe")
                last = 0.0
                for proc in procs:
                    assert proc.stdout is not None
                    ready, _, _ = select.select([proc.stdout], [], [], 10.0)
                    line = proc.stdout.readline().split() if ready else []
                    if not line or line[0] != state:
                        raise RuntimeError(f"a follower did not see {change} within 10 s: {line}")
                    last = max(last, float(line[1]))
                delays[change].append(last - written)
                time.sleep(0.05)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)
    return delays


def per_request(calls: int) -> tuple[float, float]:
    board = Path(tempfile.mkdtemp()) / "faults.json"
    local = Catalog(registry=None)
    following = Catalog(board=board, registry=None)
    for catalog in (local, following):
        catalog.add(Scenario("probe", "ratings", percent=50))
    identity = RequestIdentity("req-1")
    out = []
    for catalog in (local, following):
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter_ns()
            for _ in range(calls):
                catalog.matching(identity)
            best = min(best, (time.perf_counter_ns() - start) / calls)
        out.append(best)
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--check-every", type=float, default=0.1)
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()

    delays = propagation(args.followers, args.rounds, args.check_every)
    print(f"fleet-wide catalogue: {args.followers} processes, {args.rounds} rounds, "
          f"check_every {args.check_every:g} s")
    print(f"{'change':<8} {'median ms':>10} {'max ms':>8} {'target ms':>10} {'max/target':>11}")
    for change in CHANGES:
        values = [d * 1000 for d in delays[change]]
        target = 1000.0
        print(f"{change:<8} {statistics.median(values):>10.0f} {max(values):>8.0f} {target:>10.0f} "
              f"{max(values) / target:>10.2f}x")

    local, following = per_request(args.calls)
    print()
    print(f"{'catalog.matching per request':<32} {'ns':>8} {'ratio':>7}")
    print(f"{'this process only':<32} {local:>8.0f} {1.0:>6.2f}x")
    print(f"{'following the fault board':<32} {following:>8.0f} {following / local:>6.2f}x")


if __name__ == "__main__":
    main()
