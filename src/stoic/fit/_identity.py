"""Who a request is: the identity every targeting decision is made on."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from stoic.fit._errors import InvalidScenario

MAX_ID_LENGTH = 128


def check_token(field: str, value: object, *, max_length: int = MAX_ID_LENGTH) -> str:
    """Return `value` if it is a non-empty printable string of at most `max_length` characters."""
    if not isinstance(value, str):
        raise InvalidScenario(field, f"must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidScenario(field, "must not be empty")
    if len(value) > max_length:
        raise InvalidScenario(field, f"must be at most {max_length} characters, got {len(value)}")
    if not value.isprintable():
        raise InvalidScenario(field, "must contain printable characters only")
    return value


@dataclass(frozen=True, slots=True)
class RequestIdentity:
    """One request: its id (drives percentage decisions), and optionally its user and device type."""

    request_id: str
    user_id: str | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        check_token("request_id", self.request_id)
        if self.user_id is not None:
            check_token("user_id", self.user_id)
        if self.device is not None:
            # device types are compared case-insensitively ("TV" and "tv" are one device type)
            object.__setattr__(self, "device", check_token("device", self.device).lower())

    @classmethod
    def new(cls, user_id: str | None = None, device: str | None = None) -> RequestIdentity:
        """An identity with a fresh random request id."""
        return cls(uuid.uuid4().hex, user_id, device)
