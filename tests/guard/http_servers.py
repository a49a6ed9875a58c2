"""Real HTTP downstreams for the guard's integration tests: uvicorn on 127.0.0.1, in a thread."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class Downstream:
    """A scriptable HTTP service. `GET /answer` replies with the next scripted answer (the last
    one repeats); every request is recorded as (method, path, time.monotonic()).

    An answer is (status, headers, body) or ("sleep", seconds): wait, then answer 200.
    """

    def __init__(self) -> None:
        self.script: list[tuple[Any, ...]] = [(200, {}, b"ok")]
        self.hits: list[tuple[str, str, float]] = []
        self.lock = threading.Lock()

    def answer(self, *answers: tuple[Any, ...]) -> None:
        with self.lock:
            self.script = list(answers)
            self.hits.clear()

    def count(self, path: str = "/answer") -> int:
        with self.lock:
            return sum(1 for _, p, _ in self.hits if p == path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http", "served with lifespan off"
        with self.lock:
            self.hits.append((scope["method"], scope["path"], time.monotonic()))
            answer = self.script[0] if len(self.script) == 1 else self.script.pop(0)
        if answer[0] == "sleep":
            await asyncio.sleep(answer[1])
            answer = (200, {}, b"late")
        status, headers, body = answer
        raw = [(k.lower().encode(), str(v).encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", str(len(body)).encode()), *raw]})
        await send({"type": "http.response.body", "body": body})


class Server:
    """`app` under uvicorn on a free 127.0.0.1 port, in a background thread."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start within 10 s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.server.force_exit = True  # a request still sleeping must not hold the shutdown
        self.thread.join(timeout=10)
        self.sock.close()
        assert not self.thread.is_alive(), "uvicorn did not stop within 10 s"
