"""Helpers shared by the Simian Army tests (imported by name: the folder is put on sys.path)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

# A child that idles for at most 300 s.
SLEEPER = "import time\nfor _ in range(3000):\n    time.sleep(0.1)\n"

# A tiny HTTP server on $STOIC_PORT answering 200 to every GET, for at most 300 s.
HTTP_SERVER = """
import http.server, os, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
s = http.server.HTTPServer(("127.0.0.1", int(os.environ["STOIC_PORT"])), H)
s.timeout = 0.2
end = time.monotonic() + 300
while time.monotonic() < end:
    s.handle_request()
"""


def pid_gone(pid: int) -> bool:
    """True when `pid` no longer runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    return state in ("Z", "X")


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll `predicate()` until true or `timeout` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# A guarded service in its own process: GET / calls the "recommendations" dependency once and answers
# how long it took and which level answered. It serves the fleet's fault board via install().
GUARDED_SERVICE = """
import http.server, json, os, time
from stoic.chaos import install
from stoic.guard import Dependency, Fallback
install()
cache = Fallback.value("cached", name="cache")
dep = Dependency("recommendations", timeout=None, breaker=None, fallbacks=[cache])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        t = time.perf_counter()
        r = dep.execute(lambda: "fresh")
        ms = (time.perf_counter() - t) * 1000
        body = json.dumps({"ms": ms, "source": r.source, "value": r.value}).encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *args):
        pass
s = http.server.HTTPServer(("127.0.0.1", int(os.environ["STOIC_PORT"])), H)
s.timeout = 0.2
end = time.monotonic() + 300
while time.monotonic() < end:
    s.handle_request()
"""


# A child with a family: `sh -c` running `sleep 444`, and a worker that ignores SIGTERM. On SIGTERM
# the child itself takes 0.3 s to shut down, then exits 0. Once all are up it writes the pids of the
# child, sh, sleep and worker, one line, to $FAMILY_PIDS. Everything ends within 444 s on its own.
FAMILY = """
import os, signal, subprocess, sys, time
out = os.environ["FAMILY_PIDS"]
sh = subprocess.Popen(["sh", "-c", 'sleep 444 & echo $! > "$0.sleep"; wait', out])
stubborn = "import signal, time\\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
worker = subprocess.Popen([sys.executable, "-c", stubborn + "for _ in range(4440): time.sleep(0.1)"])
def term(*_):
    time.sleep(0.3)
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
for _ in range(100):
    if os.path.exists(out + ".sleep") and open(out + ".sleep").read().strip():
        break
    time.sleep(0.05)
sleep = open(out + ".sleep").read().strip()
with open(out + ".tmp", "w") as f:
    f.write(f"{os.getpid()} {sh.pid} {sleep} {worker.pid}")
os.replace(out + ".tmp", out)
for _ in range(4440):
    time.sleep(0.1)
"""


def read_pids(path: Path, timeout: float = 10.0) -> list[int]:
    """The pids a FAMILY child wrote to `path` (waits until it has)."""
    assert wait_until(path.exists, timeout=timeout), f"{path} never appeared"
    return [int(p) for p in path.read_text().split()]
