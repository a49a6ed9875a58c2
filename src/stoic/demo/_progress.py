"""One live progress line: rewritten in place on a terminal, a plain line every few seconds otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressLine:
    """Writes status lines to `stream`; `final()` ends the line."""

    def __init__(self, stream: TextIO | None = None, every: float = 5.0, enabled: bool = True) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = enabled and bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = enabled
        self.every = every
        self._last = 0.0
        self._width = 0

    def update(self, text: str, force: bool = False) -> None:
        if not self.enabled:
            return
        if self.live:
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self.stream.flush()
            self._width = len(text)
            return
        now = time.monotonic()
        if force or now - self._last >= self.every:
            self._last = now
            self.stream.write(text + "\n")
            self.stream.flush()

    def say(self, text: str) -> None:
        """A line of its own (an event), without losing the live line."""
        if not self.enabled:
            return
        if self.live and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(text + "\n")
        self.stream.flush()

    def final(self) -> None:
        if self.enabled and self.live and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
