"""`Probe`: steady traffic for an experiment run from the command line.

ChAP routes a share of production traffic; a service that has no traffic of its own at hand can be
probed instead. Each request gets a fresh request id (``x-request-id``, and ``{request_id}`` in the
body), carries the experiment's FIT header when it falls in the treatment cohort, and is observed in
its cohort: a 5xx answer, a timeout or a refused connection is an error.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

from ._errors import ChaosConfigError

METHODS = ("GET", "POST", "PUT")
#: requests in flight at most: a slow service is not buried under a growing backlog
MAX_IN_FLIGHT = 64


class Probe:
    """Sends `rate` requests per second to `url` for as long as `run` is asked to."""

    def __init__(
        self,
        url: str,
        *,
        headers_for: Callable[[str], Mapping[str, str]],
        observe: Callable[..., object],
        method: str = "GET",
        body: str | None = None,
        rate: float = 20.0,
        timeout: float = 5.0,
        request_id_header: str = "x-request-id",
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ChaosConfigError(f"--url must be an http(s) URL; got {url!r}")
        if method not in METHODS:
            raise ChaosConfigError(f"--method must be one of {', '.join(METHODS)}; got {method!r}")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.1 <= rate <= 1000:
            raise ChaosConfigError(f"--rate must be requests per second in [0.1, 1000]; got {rate!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 60:
            raise ChaosConfigError(f"--timeout must be seconds in (0, 60]; got {timeout!r}")
        self.url = url
        self.method = method
        self.body = body
        self.rate = float(rate)
        self.timeout = float(timeout)
        self.headers_for = headers_for
        self.observe = observe
        self.request_id_header = request_id_header
        self.sent = 0
        self.dropped = 0  # not sent because MAX_IN_FLIGHT were already waiting
        self._in_flight = threading.BoundedSemaphore(MAX_IN_FLIGHT)

    def _one(self, request_id: str) -> None:
        try:
            headers = {self.request_id_header: request_id, **self.headers_for(request_id)}
            data = None
            if self.body is not None:
                data = self.body.replace("{request_id}", request_id).encode()
                headers["content-type"] = "application/json"
            req = urllib.request.Request(self.url, data=data, headers=headers, method=self.method)
            start = time.monotonic()
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    resp.read(1 << 20)
                    ok = int(resp.status) < 500
            except urllib.error.HTTPError as exc:
                ok = exc.code < 500
            except (OSError, ValueError):  # refused, reset, timed out
                ok = False
            self.observe(request_id, ok=ok, latency=time.monotonic() - start)
        finally:
            self._in_flight.release()

    def run(self, duration: float, stop: Callable[[], bool] = lambda: False) -> int:
        """Send requests for `duration` seconds or until `stop()`; returns how many were sent."""
        interval = 1.0 / self.rate
        end = time.monotonic() + duration
        next_at = time.monotonic()
        with ThreadPoolExecutor(max_workers=MAX_IN_FLIGHT, thread_name_prefix="probe") as pool:
            for _ in range(int(duration * self.rate) + 1):  # bounded: one slot per planned request
                now = time.monotonic()
                if now >= end or stop():
                    break
                if next_at > now:
                    time.sleep(min(next_at - now, end - now))
                next_at += interval
                if not self._in_flight.acquire(blocking=False):
                    self.dropped += 1
                    continue
                self.sent += 1
                pool.submit(self._one, uuid.uuid4().hex)
        return self.sent


__all__ = ["METHODS", "Probe"]
