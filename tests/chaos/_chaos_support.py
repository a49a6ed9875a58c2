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
