"""Breaker transitions of services in other processes, from their `/guard` endpoints.

`Signals.watch(registry)` hears the breakers of its own process. A service in another process
serves its registry's snapshot at `GET /guard` (`{"dependencies": [{"name", "state",
"requests", "fallbacks", ...}]}`); `GuardWatch` polls such endpoints and reports each breaker
transition as a `breaker` context event, with the share of calls the dependency's fallbacks
answered, so alerts can name it in their cause chain:
`The circuit breaker for payments opened; fallbacks answered 41% of its 1200 calls`.

The first poll of an endpoint only learns the states; an endpoint that does not answer is
retried at the next poll and its breakers keep their last known state.

```python
from stoic.signals import Signals
from stoic.signals.guardwatch import GuardWatch

signals = Signals()
watch = GuardWatch(["http://127.0.0.1:9481"], signals.add_event, interval=2.0)
watch.poll()          # one pass (a closed port answers nothing: no event, no error)
watch.close()
signals.close()
```
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from stoic.signals import _validate

log = logging.getLogger("stoic.signals.guardwatch")
_VERBS = {"open": "opened", "closed": "closed", "half_open": "is half-open", "forced_open": "was forced open"}


class GuardWatch:
    """Polls `/guard` of each base URL every `interval` seconds (`start()`), or once (`poll()`);
    `add_event` has the shape of `Signals.add_event`."""

    def __init__(
        self,
        urls: Sequence[str],
        add_event: Callable[..., Any],
        *,
        interval: float = 2.0,
        timeout: float = 1.0,
    ) -> None:
        if isinstance(urls, str) or not 1 <= len(urls) <= 100:
            raise ValueError(f"urls: must be a list of 1..100 base URLs, got {urls!r}")
        for i, url in enumerate(urls):
            parts = urlsplit(url) if isinstance(url, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"urls[{i}]: must be an http:// or https:// URL, got {url!r}")
        self.urls = [u.rstrip("/") for u in urls]
        self.interval = _validate.number("interval", interval, low=0.2, high=3600.0)
        self.timeout = _validate.number("timeout", timeout, low=0.05, high=60.0)
        self._add_event = add_event
        self._states: dict[tuple[str, str], str] = {}  # (url, dependency) -> breaker state
        self._client = httpx.Client(timeout=self.timeout)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> int:
        """One pass over every endpoint; returns how many transitions were reported."""
        reported = 0
        for url in self.urls:
            try:
                body = self._client.get(f"{url}/guard").json()
                deps = body.get("dependencies", []) if isinstance(body, dict) else []
            except (httpx.HTTPError, ValueError) as exc:
                log.debug("%s/guard: %s", url, exc)
                continue
            for snap in deps if isinstance(deps, list) else []:
                if not isinstance(snap, dict) or not isinstance(snap.get("name"), str):
                    continue
                name, state = snap["name"], str(snap.get("state", ""))
                before = self._states.get((url, name))
                self._states[(url, name)] = state
                if before is None or before == state or not state:
                    continue
                self._add_event("breaker", target=name, description=_describe(name, state, snap))
                reported += 1
        return reported

    def start(self) -> None:
        """Poll on a daemon thread until `close()` (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="stoic-guard-watch", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:  # a bad event or endpoint must not stop the watch
                log.exception("polling /guard endpoints failed")
            self._stop.wait(self.interval)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout * len(self.urls) + self.interval + 1.0)
        self._client.close()


def _describe(name: str, state: str, snap: dict[str, Any]) -> str:
    text = f"The circuit breaker for {name} {_VERBS.get(state, state)}"
    return text + fallback_share(snap)


def fallback_share(snap: dict[str, Any]) -> str:
    """`; fallbacks answered 41% of its 1200 calls` from a dependency snapshot, or "" without
    calls or fallback answers in its window."""
    requests = snap.get("requests")
    levels = snap.get("fallbacks")
    if not isinstance(requests, int) or requests <= 0 or not isinstance(levels, dict):
        return ""
    answered = sum(v for v in levels.values() if isinstance(v, int))
    if answered <= 0:
        return ""
    return f"; fallbacks answered {min(answered / requests, 1.0):.0%} of its {requests} calls"
