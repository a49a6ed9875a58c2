"""The fault board: fleet-wide faults in a small JSON file that every process's injector re-reads.

The Latency Monkey posts `FaultRule`s; each process runs `install()` once, which sets a
`BoardInjector` as `stoic.guard`'s process-wide injector. The injector looks at the file at most
every 100 ms (one `stat`), re-reads it only when it changed, and ignores every rule while the
kill-switch file next to it exists.

The same file holds FIT's fleet-wide catalogue (`stoic.fit.Catalog(board=...)`) in its own
``scenarios`` section: each side rewrites only its own section, under one lock (`stoic.fit._board`),
so neither drops the other's entries.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

# the one writer of the board file's format, shared with FIT's catalogue section
from stoic.fit._board import BOARD_ENV, KILL_SWITCH_FILE, change_section

from ._errors import ChaosConfigError

if TYPE_CHECKING:
    from stoic.guard import Fault

log = logging.getLogger("stoic.chaos.board")

FAULT_KINDS = ("delay", "error", "timeout", "reject")


@dataclass(frozen=True)
class FaultRule:
    """One fleet-wide fault: which dependencies (glob) in which apps (glob), what, how often, until when."""

    dependency: str = "*"
    kind: str = "delay"
    delay: float = 0.0
    rate: float = 1.0
    app: str = "*"
    expires: float | None = None  # real time (epoch seconds); None = until removed
    monkey: str = "latency-monkey"

    def __post_init__(self) -> None:
        if not isinstance(self.dependency, str) or not self.dependency:
            raise ChaosConfigError(f"fault.dependency must be a non-empty glob; got {self.dependency!r}")
        if not isinstance(self.app, str) or not self.app:
            raise ChaosConfigError(f"fault.app must be a non-empty glob; got {self.app!r}")
        if self.kind not in FAULT_KINDS:
            raise ChaosConfigError(f"fault.kind must be one of {', '.join(FAULT_KINDS)}; got {self.kind!r}")
        if (
            isinstance(self.delay, bool)
            or not isinstance(self.delay, int | float)
            or not 0 <= self.delay <= 3600
        ):
            raise ChaosConfigError(f"fault.delay must be seconds in [0, 3600]; got {self.delay!r}")
        if isinstance(self.rate, bool) or not isinstance(self.rate, int | float) or not 0 < self.rate <= 1:
            raise ChaosConfigError(f"fault.rate must be in (0, 1]; got {self.rate!r}")
        if self.expires is not None and (
            isinstance(self.expires, bool)
            or not isinstance(self.expires, int | float)
            or not math.isfinite(self.expires)
            or self.expires < 0
        ):
            raise ChaosConfigError(
                f"fault.expires must be epoch seconds >= 0 (a number) or null; got {self.expires!r}"
            )
        if not isinstance(self.monkey, str) or not self.monkey:
            raise ChaosConfigError(f"fault.monkey must be a non-empty string; got {self.monkey!r}")

    def active(self, now: float | None = None) -> bool:
        return self.expires is None or (time.time() if now is None else now) < self.expires

    def matches(self, dependency: str, app: str) -> bool:
        return fnmatch.fnmatchcase(dependency, self.dependency) and fnmatch.fnmatchcase(app, self.app)

    def describe(self) -> str:
        what = f"{self.delay * 1000:.0f} ms delay" if self.kind == "delay" else self.kind
        share = "" if self.rate >= 1 else f" on {self.rate:.0%} of calls"
        until = (
            "" if self.expires is None else f" until {time.strftime('%H:%M:%S', time.gmtime(self.expires))}Z"
        )
        return f"{what}{share} for dependency {self.dependency!r} in app {self.app!r}{until}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> FaultRule:
        """A rule from its JSON form; `ChaosConfigError` names the bad field and what is allowed."""
        if not isinstance(data, dict):
            raise ChaosConfigError(f"fault must be a JSON object; got {type(data).__name__}")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ChaosConfigError(
                f"fault has unknown fields {sorted(unknown)}; allowed: {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**data)


class FaultBoard:
    """The board file: post, list and clear rules (atomic writes, so readers never see half a file)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    @property
    def kill_switch_path(self) -> Path:
        return self.path.parent / KILL_SWITCH_FILE

    def rules(self, *, include_expired: bool = False) -> list[FaultRule]:
        """The rules on the board (active ones unless asked otherwise)."""
        rules = read_rules(self.path)
        return rules if include_expired else [r for r in rules if r.active()]

    def post(self, *rules: FaultRule) -> None:
        """Add rules (expired ones are dropped on the way)."""
        self._change(lambda current: [*current, *rules])

    def remove(self, monkey: str) -> None:
        """Remove the rules a monkey posted."""
        self._change(lambda current: [r for r in current if r.monkey != monkey])

    def clear(self) -> None:
        self._change(lambda current: [])

    def _change(self, change: Callable[[list[FaultRule]], Iterable[FaultRule]]) -> None:
        """Rewrite the rules (read, changed and written under the board's lock, so a concurrent
        writer of either section is never lost; the FIT scenarios are kept as they are)."""

        def rules(items: list[Any]) -> list[Any]:
            current = [r for r in _parse(items, self.path) if r.active()]
            return [r.to_dict() for r in change(current)]

        with self._lock:
            try:
                change_section(self.path, "rules", rules)
            except ValueError as exc:  # an unreadable board is not overwritten
                raise ChaosConfigError(f"fault board {self.path}: {exc}") from None

    def __repr__(self) -> str:
        return f"FaultBoard({str(self.path)!r})"


def read_rules(path: Path) -> list[FaultRule]:
    """Rules in a board file; a missing or unreadable file means no rules.

    A bad rule (written by hand or by another version) is left out with a warning, and the others
    still apply: a board must never break the guarded calls that read it.
    """
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        log.warning("fault board %s ignored: %s", path, exc)
        return []
    raw = data.get("rules", []) if isinstance(data, dict) else None
    if not isinstance(raw, list):
        log.warning('fault board %s ignored: it must hold {"rules": [...]}', path)
        return []
    return _parse(raw, path)


def _parse(raw: list[Any], path: Path) -> list[FaultRule]:
    rules = []
    for i, item in enumerate(raw):
        try:
            rules.append(FaultRule.from_dict(item))
        except (ChaosConfigError, TypeError) as exc:
            log.warning("fault board %s: rule %d ignored: %s", path, i, exc)
    return rules


class BoardInjector:
    """A `stoic.guard` injector that serves the board's rules to this process.

    Cheap on the call path: one clock read per call, one `stat` at most every `check_every` seconds.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        app: str | None = None,
        check_every: float = 0.1,
        seed: int | None = None,
    ) -> None:
        if not 0 < check_every <= 5:
            raise ChaosConfigError(f"check_every must be in (0, 5] seconds; got {check_every!r}")
        self.path = Path(path)
        self.app = app if app is not None else os.environ.get("STOIC_APP", "")
        self.check_every = check_every
        self._kill = self.path.parent / KILL_SWITCH_FILE
        self._rng = random.Random(seed)
        self._rules: tuple[FaultRule, ...] = ()
        self._signature: tuple[int, int, int] | None = None
        self._matching: dict[str, tuple[FaultRule, ...]] = {}
        self._halted = False
        self._next_check = 0.0
        self._refresh = threading.Lock()

    def fault_for(self, dependency: str) -> Fault | None:
        """The fault for one guarded call, or None. Never raises: chaos must not break the call."""
        try:
            now = time.monotonic()
            if now >= self._next_check and self._refresh.acquire(blocking=False):
                try:
                    self._next_check = now + self.check_every
                    self._reload()
                finally:
                    self._refresh.release()
            if self._halted or not self._rules:
                return None
            matching = self._matching.get(dependency)
            if matching is None:  # glob matching once per dependency name and board version
                matching = tuple(r for r in self._rules if r.matches(dependency, self.app))
                self._matching[dependency] = matching
            if not matching:
                return None
            wall = time.time()
            for rule in matching:
                if rule.active(wall):
                    if rule.rate < 1 and self._rng.random() >= rule.rate:
                        continue
                    from stoic.guard import Fault

                    return Fault(rule.kind, delay=rule.delay, message=f"{rule.monkey}: {rule.kind}")  # type: ignore[arg-type]
            return None
        except Exception:  # a try block costs nothing until it catches
            log.exception("fault board %s: no fault served for %r", self.path, dependency)
            return None

    @property
    def rules(self) -> tuple[FaultRule, ...]:
        """The rules this process currently applies."""
        return () if self._halted else self._rules

    def _reload(self) -> None:
        self._halted = self._kill.exists()
        try:
            st = self.path.stat()
        except OSError:
            self._rules, self._signature, self._matching = (), None, {}
            return
        signature = (st.st_mtime_ns, st.st_size, st.st_ino)
        if signature != self._signature:
            self._signature = signature
            self._matching = {}  # a new dict, not clear(): readers may hold the old one
            self._rules = tuple(read_rules(self.path))


def install(
    path: str | os.PathLike[str] | None = None, *, app: str | None = None, check_every: float = 0.1
) -> BoardInjector:
    """Serve the fault board to every guarded call in this process; call once at start-up.

    `path` defaults to ``$STOIC_FAULT_BOARD``; `app` to ``$STOIC_APP`` (set by the `Supervisor`).
    """
    from stoic.guard import set_process_injector

    where = path if path is not None else os.environ.get(BOARD_ENV)
    if not where:
        raise ChaosConfigError(f"install() needs a board path or the {BOARD_ENV} environment variable")
    injector = BoardInjector(where, app=app, check_every=check_every)
    set_process_injector(injector)
    return injector


def uninstall() -> None:
    """Stop serving faults to this process."""
    from stoic.guard import set_process_injector

    set_process_injector(None)


__all__ = [
    "BOARD_ENV",
    "FAULT_KINDS",
    "KILL_SWITCH_FILE",
    "BoardInjector",
    "FaultBoard",
    "FaultRule",
    "install",
    "uninstall",
]
