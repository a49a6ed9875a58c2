"""Notifiers: how conformity findings reach the owning team."""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .conformity import Finding

log = logging.getLogger("stoic.chaos.conformity")


class Notifier(Protocol):
    """Delivers one owner's findings."""

    def notify(self, owner: str, findings: Sequence[Finding]) -> None: ...


class LogNotifier:
    """Writes findings to the ``stoic.chaos.conformity`` logger (the default)."""

    def notify(self, owner: str, findings: Sequence[Finding]) -> None:
        for f in findings:
            log.warning("to %s: [%s] %s: %s", owner, f.rule, f.subject, f.message)


class Inbox:
    """Keeps findings in memory per owner (for a dashboard, or to read in a test)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: dict[str, list[Finding]] = {}

    def notify(self, owner: str, findings: Sequence[Finding]) -> None:
        with self._lock:
            self.messages.setdefault(owner, []).extend(findings)

    def for_owner(self, owner: str) -> list[Finding]:
        with self._lock:
            return list(self.messages.get(owner, []))


class WebhookNotifier:
    """POSTs ``{"owner": ..., "findings": [...]}`` as JSON to `url` (chat webhook, ticket system)."""

    def __init__(self, url: str, timeout: float = 2.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url must start with http:// or https://; got {url!r}")
        self.url = url
        self.timeout = timeout

    def notify(self, owner: str, findings: Sequence[Finding]) -> None:
        body = json.dumps({"owner": owner, "findings": [f.to_dict() for f in findings]}).encode()
        req = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            resp.read()


__all__ = ["Inbox", "LogNotifier", "Notifier", "WebhookNotifier"]
