"""Errors raised by stoic.fit."""

from __future__ import annotations


class InvalidScenario(ValueError):
    """A scenario or identity field is outside its allowed values; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class InvalidHeader(ValueError):
    """A failure-plan header that must not be honoured; `reason` is a short, stable tag."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class FitWarning(UserWarning):
    """A scenario that is valid but probably not what was meant (a dependency no registry knows, a
    `percent` below 1)."""
