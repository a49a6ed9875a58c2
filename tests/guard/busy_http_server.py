"""An HTTP service for the adaptive-limit tests that refuses fast when overloaded, run in its own
process: `python busy_http_server.py CAPACITY MILLISECONDS`.

`GET /work` takes MILLISECONDS while at most CAPACITY requests are inside; past that it answers
503 at once (as a service shedding load does). `GET /missing` is a 404 and `GET /bad` a 400, at
once. `GET /stats` answers {"busy": N, "peak": N, "served": N} and starts counting afresh;
`POST /scale?capacity=N` changes the capacity (the service scaled out). It prints its port, then
serves on 127.0.0.1 until stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class BusyService:
    def __init__(self, capacity: int, seconds: float) -> None:
        self.capacity = capacity
        self.seconds = seconds
        self.inside = 0
        self.busy = 0
        self.peak = 0
        self.served = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http", "served with lifespan off"
        path, method = scope["path"], scope["method"]
        if path == "/work":
            status, body = await self.work()
        elif path == "/stats":
            status, body = 200, json.dumps({"busy": self.busy, "peak": self.peak, "served": self.served})
            self.busy = self.peak = self.served = 0
        elif path == "/scale" and method == "POST":
            query = urllib.parse.parse_qs(scope["query_string"].decode())
            self.capacity = int(query["capacity"][0])
            status, body = 200, json.dumps({"capacity": self.capacity})
        elif path == "/bad":
            status, body = 400, "bad request"
        else:
            status, body = 404, "no such thing"
        data = body.encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})

    async def work(self) -> tuple[int, str]:
        self.inside += 1
        self.peak = max(self.peak, self.inside)
        try:
            if self.inside > self.capacity:
                self.busy += 1
                return 503, "too busy"
            await asyncio.sleep(self.seconds)
            self.served += 1
            return 200, "ok"
        finally:
            self.inside -= 1


def main(capacity: int, millis: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(BusyService(capacity, millis / 1000), log_level="warning", lifespan="off",
                            access_log=False, timeout_graceful_shutdown=1, backlog=512)
    server = uvicorn.Server(config)

    def stop_when_stdin_closes() -> None:
        sys.stdin.read()  # until the test closes our stdin
        server.should_exit = True

    threading.Thread(target=stop_when_stdin_closes, daemon=True).start()
    print(sock.getsockname()[1], flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
