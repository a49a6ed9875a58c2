"""One process of a small fleet: a WSGI service whose catalog follows a shared fault board.

Run as ``python _fleet_worker.py BOARD SECRET``; prints ``PORT <n>`` once it listens. ``GET /`` makes
one guarded call to each of ``ratings`` and ``reviews-eu`` and answers who answered each, as JSON.
Stopped by closing its stdin (or a signal).
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

from stoic.fit import FitWSGIMiddleware, HeaderCodec, catalog
from stoic.guard import BreakerPolicy, Dependency, Fallback, Registry


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    board, secret = sys.argv[1], sys.argv[2]
    catalog.follow(board, check_every=0.1)
    registry = Registry()
    deps = [
        Dependency(
            name, timeout=1.0, registry=registry, fallbacks=[Fallback.value("fallback", name="stand-in")],
            # an HTTP error answer (a status scenario's stand-in) is a failure, as a real 503 would be
            breaker=BreakerPolicy(failure_when=lambda answer: getattr(answer, "status", 200) >= 500),
        )
        for name in ("ratings", "reviews-eu")
    ]

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        body = {dep.name: dep.execute(lambda: "primary").value for dep in deps}
        body["halted"] = catalog.halted()
        start_response("200 OK", [("content-type", "application/json")])
        return [json.dumps(body).encode()]

    wrapped = FitWSGIMiddleware(app, HeaderCodec(secret), service="worker")
    server = make_server("127.0.0.1", 0, wrapped, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"PORT {server.server_port}", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    server.shutdown()


if __name__ == "__main__":
    main()
