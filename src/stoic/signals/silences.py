"""Silences and maintenance windows: alerts that match are recorded and shown, never delivered.

A silence works as Alertmanager's does: a list of label matchers (`team="payments"`,
`region=~"eu-.*"`, `severity!="info"`), a start and an end, who made it and why. A firing
alert whose labels match every matcher while the silence is active is held: it is kept in
history and listed with `silenced_by`, but no notification leaves the outbox. When the silence
ends (or is expired early) and the alert still fires, it is delivered then.

Three kinds share the shape:

- `silence`: made by a person, in the indicators file (`[[silences]]`) or through the API;
- `maintenance`: an announced window (`[[maintenance]]`); its comment also becomes the cause
  named by alerts it covers;
- `experiment`: made by a chaos experiment for its target and duration. It silences only what
  the experiment is expected to move: alerts in its regions (and indicators, when given) up to
  `max_severity`. An alert beyond that blast radius, raised while the experiment runs, is
  delivered with a line naming the experiment and its kill switch.

```python
from stoic.signals.silences import Silences

silences = Silences(clock=lambda: 1_764_064_800.0)
s = silences.add(['team="payments"', 'region=~"eu-.*"'], ends_at=1_764_068_400.0,
                 created_by="ana", comment="card provider maintenance")
print(s.matches({"team": "payments", "region": "eu-west", "severity": "critical"}))  # True
print(s.matches({"team": "payments", "region": "us-east"}))                        # False
```
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from stoic.signals import _validate

KINDS = ("silence", "maintenance", "experiment")
OPERATORS = ("=~", "!~", "!=", "=")  # longest first: "=~" before "="
SEVERITY_ORDER = ("info", "warning", "critical")
MAX_SILENCES = 1000  # active and pending at once; one more is refused
MAX_DURATION = 31 * 86400.0
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,63}$")
_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$')


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher: `name` `op` `value`, with `op` one of =, !=, =~, !~ (regular expressions
    are anchored, as in Alertmanager). A label the alert does not have reads as ""."""

    name: str
    op: str
    value: str

    def __post_init__(self) -> None:
        if not _LABEL.match(self.name):
            raise ValueError(
                f"matcher.name: must be a label name ([a-zA-Z_][a-zA-Z0-9_]*), got {self.name!r}"
            )
        _validate.choice("matcher.op", self.op, OPERATORS)
        if self.op in ("=~", "!~"):
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(
                    f"matcher.value: not a valid regular expression ({exc}), got {self.value!r}"
                ) from None

    @classmethod
    def parse(cls, text: object) -> Matcher:
        """`name="value"`, `name!="value"`, `name=~"regex"` or `name!~"regex"`."""
        m = _MATCHER.match(text) if isinstance(text, str) else None
        if m is None:
            raise ValueError(
                f'matchers: each must read name="value" with one of =, !=, =~, !~, got {text!r}'
            )
        value = m.group(3).replace('\\"', '"').replace("\\\\", "\\")
        return cls(m.group(1), m.group(2), value)

    def matches(self, labels: Mapping[str, str]) -> bool:
        got = labels.get(self.name, "")
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        hit = re.fullmatch(self.value, got) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'

    def to_alertmanager(self) -> dict[str, object]:
        """The matcher in Alertmanager's `/api/v2/silences` shape."""
        return {
            "name": self.name,
            "value": self.value,
            "isRegex": self.op in ("=~", "!~"),
            "isEqual": self.op in ("=", "=~"),
        }


@dataclass(frozen=True, slots=True)
class Silence:
    """One silence. `max_severity` (experiments): alerts above it are not silenced;
    `kill_switch`: how to stop what the silence covers, named when an alert breaks through."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    kind: str = "silence"
    max_severity: str = "critical"
    kill_switch: str = ""
    expired_by: str = ""

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when every matcher matches and the severity is not above `max_severity`."""
        return self.in_scope(labels) and _rank(labels.get("severity", "")) <= _rank(self.max_severity)

    def in_scope(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    def describe(self) -> str:
        """The scope in words: `region="eu-west", severity up to warning`."""
        scope = ", ".join(str(m) for m in self.matchers) or "every alert"
        if self.max_severity != "critical":
            scope += f", severity up to {self.max_severity}"
        return scope

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind,
            "matchers": [str(m) for m in self.matchers],
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "created_by": self.created_by,
            "comment": self.comment,
            "max_severity": self.max_severity,
            "kill_switch": self.kill_switch,
            "expired_by": self.expired_by,
        }

    def to_alertmanager(self, iso: Callable[[float], str]) -> dict[str, object]:
        """The body of Alertmanager's `POST /api/v2/silences` (severity limits become a matcher)."""
        matchers = [m.to_alertmanager() for m in self.matchers]
        if self.max_severity != "critical":
            allowed = "|".join(SEVERITY_ORDER[: _rank(self.max_severity) + 1])
            matchers.append({"name": "severity", "value": allowed, "isRegex": True, "isEqual": True})
        return {
            "matchers": matchers,
            "startsAt": iso(self.starts_at),
            "endsAt": iso(self.ends_at),
            "createdBy": self.created_by,
            "comment": f"{self.comment} (stoic {self.kind} {self.id})",
        }


def _rank(severity: str) -> int:
    return SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else len(SEVERITY_ORDER)


class SilenceStore(Protocol):
    """Where silences made through the API are kept across restarts (`History` has this shape)."""

    def save_silence(self, silence: Silence) -> None: ...

    def load_silences(self, now: float) -> list[Silence]: ...


class Silences:
    """The silences of one process: thread-safe; `store` keeps API-made ones across restarts."""

    def __init__(
        self,
        silences: Iterable[Silence] = (),
        *,
        store: SilenceStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self._store = store
        self._lock = threading.Lock()
        self._by_id: dict[str, Silence] = {}
        self._on_add: list[Callable[[Silence], None]] = []
        # what the store kept wins over the same silence declared again (an early expiry holds)
        for s in [*silences, *(store.load_silences(clock()) if store is not None else [])]:
            self._by_id[s.id] = s

    def listen(self, fn: Callable[[Silence], None]) -> None:
        """Call `fn` with every silence added from now on (e.g. to mirror it in Alertmanager)."""
        self._on_add.append(fn)

    def add(
        self,
        matchers: Iterable[str | Matcher],
        *,
        ends_at: float,
        created_by: str,
        comment: str,
        starts_at: float | None = None,
        kind: str = "silence",
        max_severity: str = "critical",
        kill_switch: str = "",
    ) -> Silence:
        """Add a silence (ValueError names the field at fault); it is kept in the store, if any."""
        silence = make_silence(
            matchers,
            starts_at=self.clock() if starts_at is None else starts_at,
            ends_at=ends_at,
            created_by=created_by,
            comment=comment,
            kind=kind,
            max_severity=max_severity,
            kill_switch=kill_switch,
        )
        now = self.clock()
        if silence.ends_at <= now:
            raise ValueError(f"ends_at: must be in the future, got {ends_at!r} (now {now:.0f})")
        with self._lock:
            live = [s for s in self._by_id.values() if s.ends_at > now]
            if len(live) >= MAX_SILENCES:
                raise ValueError(f"silences: at most {MAX_SILENCES} active or pending at once")
            self._by_id = {s.id: s for s in live}
            self._by_id[silence.id] = silence
        if self._store is not None:
            self._store.save_silence(silence)
        for fn in self._on_add:
            fn(silence)
        return silence

    def expire(self, silence_id: str, *, by: str) -> Silence:
        """End a silence now; KeyError when there is no such silence."""
        _validate.text("by", by, max_len=100)
        now = self.clock()
        with self._lock:
            old = self._by_id.get(silence_id)
            if old is None:
                raise KeyError(f"silence_id: no silence {silence_id!r}")
            new = replace(old, ends_at=min(old.ends_at, now), expired_by=by)
            self._by_id[silence_id] = new
        if self._store is not None:
            self._store.save_silence(new)
        return new

    def all(self, *, active_only: bool = False) -> list[Silence]:
        now = self.clock()
        with self._lock:
            out = [s for s in self._by_id.values() if not active_only or s.active(now)]
        return sorted(out, key=lambda s: (s.starts_at, s.id))

    def silencing(self, labels: Mapping[str, str], now: float | None = None) -> Silence | None:
        """The active silence that holds an alert with `labels` (maintenance first), or None."""
        now = self.clock() if now is None else now
        with self._lock:
            hits = [s for s in self._by_id.values() if s.active(now) and s.matches(labels)]
        return min(hits, key=lambda s: (KINDS.index(s.kind) != 1, s.starts_at), default=None)

    def exceeded(self, labels: Mapping[str, str], now: float | None = None) -> list[Silence]:
        """Active experiment silences whose blast radius an alert with `labels` goes beyond."""
        now = self.clock() if now is None else now
        with self._lock:
            running = [s for s in self._by_id.values() if s.kind == "experiment" and s.active(now)]
        return [s for s in running if not s.matches(labels)]


def scenario_scope(scenario: object) -> tuple[str, float, list[tuple[str, str]]]:
    """(comment, end, [(dependency, description)]) of a `stoic.fit.Scenario` for its silence and
    its `fit` context events; ValueError when it is not one or never ends."""
    name = getattr(scenario, "name", None)
    ends = getattr(scenario, "expires_at", None)
    if not isinstance(name, str):
        raise ValueError(f"scenario: must be a stoic.fit.Scenario, got {type(scenario).__name__}")
    if ends is None:
        raise ValueError(
            f"scenario.expires_at: scenario {name} never ends, so its silence could not; give it a ttl"
        )
    kind = getattr(scenario, "kind", "fault")
    percent = getattr(scenario, "percent", 100.0)
    deps = [str(d) for d in getattr(scenario, "dependencies", ())]
    events = [(d, f"FIT scenario {name} added: {kind} on {d} for {percent:g}% of requests") for d in deps]
    return f"FIT scenario {name}", float(ends), events


def experiment_matchers(regions: Sequence[str], indicators: Sequence[str]) -> list[str]:
    """Matchers for an experiment's blast radius: its regions and indicators (regex-quoted)."""
    out = []
    for label, values in (("region", regions), ("indicator", indicators)):
        if isinstance(values, str):
            raise ValueError(f"{label}s: must be a list of names, got {values!r}")
        if values:
            out.append(f'{label}=~"{"|".join(re.escape(str(v)) for v in values)}"')
    return out


def make_silence(
    matchers: Iterable[str | Matcher],
    *,
    starts_at: float,
    ends_at: float,
    created_by: str,
    comment: str,
    kind: str = "silence",
    max_severity: str = "critical",
    kill_switch: str = "",
    silence_id: str | None = None,
) -> Silence:
    """A validated `Silence`; ValueError names the field and the allowed values."""
    if isinstance(matchers, str) or not isinstance(matchers, Iterable):
        raise ValueError(f'matchers: must be a list of matchers such as team="payments", got {matchers!r}')
    parsed = tuple(m if isinstance(m, Matcher) else Matcher.parse(m) for m in matchers)
    if kind != "experiment" and not parsed:
        raise ValueError('matchers: at least one is needed (a silence of everything hides every page)')
    if len(parsed) > 20:
        raise ValueError(f"matchers: at most 20, got {len(parsed)}")
    start = _validate.epoch("starts_at", starts_at)
    end = _validate.epoch("ends_at", ends_at)
    if not start < end <= start + MAX_DURATION:
        raise ValueError(
            f"ends_at: must be after starts_at and at most {MAX_DURATION / 86400:g} days later, "
            f"got {end!r} (starts_at {start!r})"
        )
    _validate.text("created_by", created_by, max_len=100)
    _validate.text("comment", comment, max_len=500)
    _validate.choice("kind", kind, KINDS)
    _validate.choice("max_severity", max_severity, SEVERITY_ORDER)
    _validate.text("kill_switch", kill_switch, max_len=300, required=False)
    return Silence(
        silence_id or uuid.uuid4().hex[:16],
        parsed,
        start,
        end,
        created_by,
        comment,
        kind,
        max_severity,
        kill_switch,
    )


class SilenceControls:
    """The silence API of a signals process (the embedded `Signals` hub and `SignalsService`):
    what an operator, an experiment or a FIT scenario calls. The class it is mixed into holds
    `silences` (a `Silences`) and reports context with `add_event`."""

    silences: Silences

    def add_event(
        self,
        kind: str,
        *,
        target: str,
        description: str = "",
        region: str | None = None,
        at: float | None = None,
    ) -> object:
        raise NotImplementedError

    def silence(
        self,
        matchers: list[str],
        *,
        ends_at: float,
        created_by: str,
        comment: str,
        starts_at: float | None = None,
        kind: str = "silence",
    ) -> dict[str, object]:
        """Silence alerts whose labels match every matcher (`'region="eu-west"'`, `=~`, `!=`,
        `!~`) from `starts_at` (default now) to `ends_at`; kept in history (and posted to each
        Alertmanager receiver's silences API by a service that has one). Returns the silence
        (JSON-ready, with its `id`); ValueError names the field at fault."""
        return self.silences.add(
            matchers, ends_at=ends_at, created_by=created_by, comment=comment, starts_at=starts_at, kind=kind
        ).to_dict()

    def expire_silence(self, silence_id: str, *, by: str) -> dict[str, object]:
        """End a silence now; alerts it held that still fire are delivered at the next evaluation."""
        return self.silences.expire(silence_id, by=by).to_dict()

    def silence_experiment(
        self,
        name: str,
        *,
        ends_at: float,
        created_by: str,
        regions: tuple[str, ...] | list[str] = (),
        indicators: tuple[str, ...] | list[str] = (),
        max_severity: str = "warning",
        kill_switch: str = "",
        starts_at: float | None = None,
    ) -> dict[str, object]:
        """The silence a chaos experiment makes for its blast radius: alerts in `regions` (all,
        when empty) on `indicators` (all, when empty) up to `max_severity` are held until
        `ends_at`; anything beyond breaks through, naming the experiment and `kill_switch`."""
        return self.silences.add(
            experiment_matchers(regions, indicators),
            ends_at=ends_at,
            created_by=created_by,
            comment=f"chaos experiment {name}",
            starts_at=starts_at,
            kind="experiment",
            max_severity=max_severity,
            kill_switch=kill_switch,
        ).to_dict()

    def silence_scenario(
        self,
        scenario: object,
        *,
        created_by: str,
        regions: tuple[str, ...] | list[str] = (),
        indicators: tuple[str, ...] | list[str] = (),
        max_severity: str = "warning",
        kill_switch: str = "",
    ) -> dict[str, object]:
        """A FIT scenario's silence, from now until it expires (`expires_at`), scoped like an
        experiment's; its dependencies are also reported as `fit` context events, so alerts name
        it in their cause chain."""
        comment, ends_at, events = scenario_scope(scenario)
        made = self.silences.add(
            experiment_matchers(regions, indicators),
            ends_at=ends_at,
            created_by=created_by,
            comment=comment,
            kind="experiment",
            max_severity=max_severity,
            kill_switch=kill_switch or f"removing {comment}",
        ).to_dict()
        for dependency, description in events:
            self.add_event("fit", target=dependency, description=description)
        return made

    def list_silences(self, *, active_only: bool = False) -> list[dict[str, object]]:
        """Every silence known (or only the active ones), oldest first, JSON-ready."""
        return [s.to_dict() for s in self.silences.all(active_only=active_only)]
