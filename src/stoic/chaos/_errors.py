"""The one error type for bad chaos settings."""

from __future__ import annotations


class ChaosConfigError(ValueError):
    """A chaos setting is invalid; the message names the field and what is allowed."""
