"""The error types of the Simian Army."""

from __future__ import annotations


class ChaosConfigError(ValueError):
    """A chaos setting is invalid; the message names the field and what is allowed."""


class AuditError(OSError):
    """The audit log cannot be read or written; the message names the file and what to do.

    Chaos never acts without its audit record, so this stops a strike rather than follow it.
    """
