"""Edge validation shared by the public constructors: errors name the field and the allowed range."""

from __future__ import annotations

import math
import re

_REGION = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_NAME = re.compile(r"^[a-z0-9_]{1,64}$")


def number(
    field: str, value: object, *, low: float | None = None, high: float | None = None, low_open: bool = False
) -> float:
    """Return `value` as a float or raise ValueError naming `field` and the allowed range."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{field}: must be a finite number, got {value!r}")
    out = float(value)
    if low is not None and (out <= low if low_open else out < low):
        raise ValueError(f"{field}: must be {'>' if low_open else '>='} {low:g}, got {value!r}")
    if high is not None and out > high:
        raise ValueError(f"{field}: must be <= {high:g}, got {value!r}")
    return out


def integer(field: str, value: object, *, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{field}: must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{field}: must be {allowed}, got {value!r}")
    return value


def region(field: str, value: object) -> str:
    if not isinstance(value, str) or not _REGION.match(value):
        raise ValueError(f"{field}: must be 1..64 characters of A-Z a-z 0-9 _ . -, got {value!r}")
    return value


def name(field: str, value: object) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(f"{field}: must be 1..64 characters of a-z 0-9 _, got {value!r}")
    return value


def text(field: str, value: object, *, max_len: int = 500, required: bool = True) -> str:
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > max_len:
        need = "a non-empty string" if required else "a string"
        raise ValueError(f"{field}: must be {need} of at most {max_len} characters, got {value!r}")
    return value


def choice(field: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{field}: must be one of {', '.join(allowed)}, got {value!r}")
    return str(value)


MAX_VALUE = 1e150  # larger magnitudes overflow when summed or squared
EPOCH_MIN = 946684800.0  # 2000-01-01
EPOCH_MAX = 4102444800.0  # 2100-01-01


def _float(field: str, value: object, what: str) -> float:
    """`value` as a float (an int too large for one becomes inf), or ValueError naming `field`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{field}: must be {what}, got {value!r}")
    try:
        return float(value)
    except OverflowError:
        return math.inf


def measurement(field: str, value: object) -> float:
    """`value` as a float, or ValueError naming `field` unless it is a finite number of magnitude
    at most MAX_VALUE: NaN never enters a model, and no sum of accepted values overflows."""
    out = _float(field, value, "a number")
    if not -MAX_VALUE <= out <= MAX_VALUE:  # NaN fails both comparisons
        raise ValueError(
            f"{field}: must be a finite number of magnitude at most {MAX_VALUE:g}, got {value!r}"
        )
    return out


def epoch(field: str, value: object) -> float:
    """`value` as epoch seconds, or ValueError naming `field` unless it falls in 2000..2100
    (milliseconds or microseconds by mistake are named as such)."""
    out = _float(field, value, "epoch seconds (a number)")
    if not EPOCH_MIN <= out <= EPOCH_MAX:
        hint = ""
        if EPOCH_MIN * 1e3 <= out <= EPOCH_MAX * 1e3:
            hint = " (milliseconds? divide by 1000)"
        elif EPOCH_MIN * 1e6 <= out <= EPOCH_MAX * 1e6:
            hint = " (microseconds? divide by 1000000)"
        raise ValueError(
            f"{field}: must be epoch seconds between 2000-01-01 and 2100-01-01, got {value!r}{hint}"
        )
    return out

