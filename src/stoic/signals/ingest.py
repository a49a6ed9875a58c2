"""Validation of an ingest body (JSON) into typed observations; errors name the field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from stoic.signals import _validate
from stoic.signals.context import EVENT_KINDS, ContextEvent

MAX_OBSERVATIONS = 1000
MAX_AGE = 7 * 86400.0
MAX_AHEAD = 60.0
TYPES = ("start", "playback", "metric", "event")


class IngestError(ValueError):
    """A bad ingest body; `field` is the JSON path of the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Start:
    region: str
    ok: bool
    at: float
    account: str | None = None


@dataclass(frozen=True, slots=True)
class Playback:
    region: str
    watched_s: float
    rebuffer_s: float
    at: float
    account: str | None = None


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    value: float
    region: str
    at: float


Observation = Start | Playback | Metric | ContextEvent

_FIELDS = {
    "start": {"type", "region", "ok", "account", "at"},
    "playback": {"type", "region", "watched_s", "rebuffer_s", "account", "at"},
    "metric": {"type", "name", "value", "region", "at"},
    "event": {"type", "kind", "target", "description", "region", "at"},
}


def parse(body: object, *, now: float) -> list[Observation]:
    """Validate a whole body and return its observations (all or nothing)."""
    return [_one(f"observations[{i}]", item, now) for i, item in enumerate(observations(body))]


def observations(body: object) -> list[object]:
    """The `observations` list of a push body: a JSON object with that one field, 1 to
    `MAX_OBSERVATIONS` items long (IngestError names the field otherwise)."""
    if not isinstance(body, Mapping):
        raise IngestError(
            "body", f"body: must be a JSON object with an 'observations' list, got {type(body).__name__}"
        )
    extra = set(body) - {"observations"}
    if extra:
        raise IngestError(sorted(extra)[0], f"{sorted(extra)[0]}: unknown field; allowed: observations")
    items = body.get("observations")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_OBSERVATIONS:
        got = f"a list of {len(items)}" if isinstance(items, list) else repr(items)[:40]
        raise IngestError(
            "observations", f"observations: must be a list of 1..{MAX_OBSERVATIONS} items, got {got}"
        )
    return items


def _one(path: str, item: object, now: float) -> Observation:
    if not isinstance(item, Mapping):
        raise IngestError(path, f"{path}: must be an object, got {type(item).__name__}")
    kind = item.get("type")
    if kind not in TYPES:
        raise IngestError(f"{path}.type", f"{path}.type: must be one of {', '.join(TYPES)}, got {kind!r}")
    extra = set(item) - _FIELDS[str(kind)]
    if extra:
        name = sorted(extra)[0]
        raise IngestError(
            f"{path}.{name}",
            f"{path}.{name}: unknown field for type {kind}; allowed: {', '.join(sorted(_FIELDS[str(kind)]))}",
        )
    try:
        return _build(path, str(kind), item, now)
    except IngestError:
        raise
    except ValueError as exc:  # from _validate: the message already starts with the field
        field = str(exc).split(":", 1)[0]
        raise IngestError(field, str(exc)) from None


def _build(path: str, kind: str, item: Mapping[str, object], now: float) -> Observation:
    at = now
    if item.get("at") is not None:
        at = _validate.epoch(f"{path}.at", item["at"])
        if not now - MAX_AGE <= at <= now + MAX_AHEAD:
            raise ValueError(
                f"{path}.at: must be within the last {MAX_AGE / 86400:g} days and at most {MAX_AHEAD:g} s "
                f"ahead of now ({now:.0f}), got {at!r}"
            )
    region = _validate.region(f"{path}.region", item.get("region", "global"))
    account = item.get("account")
    if account is not None:
        account = _validate.text(f"{path}.account", account, max_len=200)
    if kind == "start":
        ok = item.get("ok", True)
        if not isinstance(ok, bool):
            raise IngestError(f"{path}.ok", f"{path}.ok: must be true or false, got {ok!r}")
        return Start(region, ok, at, account)
    if kind == "playback":
        if "watched_s" not in item:
            raise IngestError(f"{path}.watched_s", f"{path}.watched_s: required, a number >= 0")
        watched = _validate.number(f"{path}.watched_s", item["watched_s"], low=0.0, high=86400.0)
        rebuffer = _validate.number(f"{path}.rebuffer_s", item.get("rebuffer_s", 0.0), low=0.0, high=86400.0)
        return Playback(region, watched, rebuffer, at, account)
    if kind == "metric":
        name = _validate.name(f"{path}.name", item.get("name"))
        if "value" not in item:
            raise IngestError(f"{path}.value", f"{path}.value: required, a finite number")
        return Metric(name, _validate.measurement(f"{path}.value", item["value"]), region, at)
    event_kind = _validate.choice(f"{path}.kind", item.get("kind"), EVENT_KINDS)
    target = _validate.text(f"{path}.target", item.get("target"), max_len=200)
    description = _validate.text(
        f"{path}.description", item.get("description", ""), max_len=500, required=False
    )
    return ContextEvent(at, event_kind, target, description, region if "region" in item else None)
